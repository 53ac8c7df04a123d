"""What-if costing for cost-review meetings: the seed's tables recomputed, and a yearly scenario planner.

Two questions come up in every cost review: "are the seed's figures right?" and "what does a year cost at
this volume?". This module answers both from volumes and a price book, never from the seed's totals.

**The seed's figures.** `seed.md` prices Mistral 7B at $0.0007 per 1K tokens and then claims 45M tokens a
year cost $63,000; at its own rate they cost $31.50. Every claimed figure is kept here as data (the seed's
claims, cited below) and shown beside the figure recomputed with a price book (`seed` = the seed's own
rates, `current` = today's prices), with the ratio claimed / computed.

The seed gives total tokens per task, not an input/output split, so the split is an explicit assumption
(`DEFAULT_INPUT_SHARE`, adjustable per call). Cost is linear in the split, so its extremes (all input, all
output) bound the computed cost for *any* split; `split_bounds` reports them, and the claims stay two to
four orders of magnitude above even the upper bound.

Aggregate volumes are priced at each model's base (untiered) rate: long-context tiers apply per request
(above 200K prompt tokens), and a year of outreach is made of small requests. The planner prices one call
at a time with `PriceBook.cost`, which handles tiers itself.

**The planner.** A `ScenarioInput` gives monthly volumes per task, the model and tokens per call of each
task, the share of messages sent to the premium reviewer, and the price book. `annual_cost` prices it;
`review_rate_sensitivity` shows that the review rate dominates the bill. Scenarios are saved by name in the
`scenarios` table (payload JSON) and compared side by side.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.app import App
from core.costs.prices import MTOK, PriceBook, UnknownModelPrice, seed_book
from core.costs.routing import RoutingTable
from core.store.db import session_scope
from core.store.models import Scenario, money_str

# ---------------------------------------------------------------------------------------------------------
# The seed's tables, as data. Source: /work/shared/seed.md (copied as seed.md beside DESIGN.md).
# ---------------------------------------------------------------------------------------------------------

PERSONALIZATION = "personalization"
TEMPLATE_GENERATION = "template_generation"
QUALITY_REVIEW = "quality_review"
TASKS: tuple[str, ...] = (PERSONALIZATION, TEMPLATE_GENERATION, QUALITY_REVIEW)

TASK_LABELS: dict[str, str] = {
    PERSONALIZATION: "Message Personalization",
    TEMPLATE_GENERATION: "Template Generation",
    QUALITY_REVIEW: "Quality Review",
}

# The routing-table task (data/routing.json) that serves each planner task.
ROUTING_TASKS: dict[str, str] = {
    PERSONALIZATION: "personalize",
    TEMPLATE_GENERATION: "optimize_template",
    QUALITY_REVIEW: "review",
}

# The seed's model names mapped to OpenRouter ids. The seed's own code calls the reviewer
# "anthropic/claude-4.5-sonnet", which is not an OpenRouter id; the model is anthropic/claude-sonnet-4.5.
SEED_MODEL_IDS: dict[str, str] = {
    "Mistral 7B": "mistralai/mistral-7b-instruct",
    "Llama 3 8B": "meta-llama/llama-3-8b-instruct",
    "Mistral Nemo 12B": "mistralai/mistral-nemo",
    "Claude 4.5 Sonnet": "anthropic/claude-sonnet-4.5",
}

# The model the seed's "all-premium" claim is about (its quality reviewer).
SEED_PREMIUM_MODEL = SEED_MODEL_IDS["Claude 4.5 Sonnet"]


@dataclass(frozen=True)
class SeedHybridRow:
    task: str
    seed_model: str
    tokens_per_year: int
    claimed_usd: Decimal

    @property
    def model(self) -> str:
        return SEED_MODEL_IDS[self.seed_model]


# seed.md, "Hybrid Strategy: 90% Cost Models + 10% Premium" (columns Task / Model / Volume / Cost/Year).
SEED_HYBRID: tuple[SeedHybridRow, ...] = (
    SeedHybridRow(PERSONALIZATION, "Mistral 7B", 45_000_000, Decimal("63000")),
    SeedHybridRow(TEMPLATE_GENERATION, "Llama 3 8B", 8_000_000, Decimal("10400")),
    SeedHybridRow(QUALITY_REVIEW, "Claude 4.5 Sonnet", 2_000_000, Decimal("60000")),
)
# seed.md, the TOTAL row of the same table.
SEED_HYBRID_TOTAL_TOKENS = 55_000_000
SEED_HYBRID_TOTAL_CLAIMED_USD = Decimal("133400")

# seed.md, "75% cost reduction vs all-premium approach ($534,000/year)" and the "Expected Performance vs
# Cost" table (Annual Cost: All-Premium $534,000, Cost-Optimized $133,400, Savings 75%).
SEED_ALL_PREMIUM_CLAIMED_USD = Decimal("534000")
SEED_REDUCTION_CLAIMED_PCT = Decimal("75")


@dataclass(frozen=True)
class SeedPrimaryRow:
    seed_model: str
    use_case: str
    claimed_annual_usd: Decimal

    @property
    def model(self) -> str:
        return SEED_MODEL_IDS[self.seed_model]


# seed.md, "Primary Models (Cost-Focused)", column "Annual Cost". The seed gives no volume for these rows,
# so they have no computable counterpart; `primary_table_claims` shows the volume they would imply.
SEED_PRIMARY: tuple[SeedPrimaryRow, ...] = (
    SeedPrimaryRow("Mistral 7B", "Message personalization", Decimal("76860")),
    SeedPrimaryRow("Llama 3 8B", "Template optimization", Decimal("71370")),
    SeedPrimaryRow("Mistral Nemo 12B", "Context understanding", Decimal("142740")),
)

# The input/output split assumed for the seed's token totals (share of tokens that are prompt tokens).
# Personalization: system prompt + template + prospect fields in (~225 tokens), one short LinkedIn message
# out (~75): 75% input. Template generation: template + performance data in, a rewritten template out
# (the seed allows 300 output tokens): 60% input. Quality review: message + prospect context in, a short
# JSON verdict out: 75% input.
DEFAULT_INPUT_SHARE: dict[str, Decimal] = {
    PERSONALIZATION: Decimal("0.75"),
    TEMPLATE_GENERATION: Decimal("0.6"),
    QUALITY_REVIEW: Decimal("0.75"),
}

BOOKS = ("current", "seed")
_RATIO_PLACES = Decimal("0.01")
_PCT_PLACES = Decimal("0.01")
_SHARE_PLACES = Decimal("0.0001")


# ---------------------------------------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------------------------------------


def _to_decimal(value: Any, what: str) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"{what} must be a number, not {value!r}")
    try:
        out = value if isinstance(value, Decimal) else Decimal(str(value))
    except (InvalidOperation, ValueError) as exc:
        raise ValueError(f"{what} must be a number, not {value!r}") from exc
    if not out.is_finite():
        raise ValueError(f"{what} must be a finite number, not {value!r}")
    return out


def _share(value: Any, what: str) -> Decimal:
    out = _to_decimal(value, what)
    if not Decimal(0) <= out <= Decimal(1):
        raise ValueError(f"{what} must be between 0 and 1 (a share: 0.05 means 5%), got {value}")
    return out


def _count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} cannot be negative, got {value}")
    return value


def _ratio(claimed: Decimal | None, computed: Decimal) -> Decimal | None:
    if claimed is None or computed <= 0:
        return None
    return (claimed / computed).quantize(_RATIO_PLACES, rounding=ROUND_HALF_EVEN)


def _opt_money(value: Decimal | None) -> str | None:
    return None if value is None else money_str(value)


def format_usd(value: Decimal) -> str:
    """'$31.50', '$63,000' (no cents from $1,000 up); amounts under a cent show four decimals ('$0.0042')."""
    if value != 0 and abs(value) < Decimal("0.0001"):
        return "under $0.0001"
    if value != 0 and abs(value) < Decimal("0.01"):
        return f"${value:.4f}"
    if abs(value) >= 1000:
        return f"${value:,.0f}"
    return f"${value:,.2f}"


def _aggregate_cost(book: PriceBook, model: str, tokens: int, input_share: Decimal) -> Decimal:
    """USD for `tokens` (a year of small requests) split input/output, at the model's base rate."""
    price = book.price(model)
    input_tokens = Decimal(tokens) * input_share
    output_tokens = Decimal(tokens) - input_tokens
    return (input_tokens * price.input_per_mtok + output_tokens * price.output_per_mtok) / MTOK


def _input_shares(input_share: Mapping[str, Any] | None) -> dict[str, Decimal]:
    shares = dict(DEFAULT_INPUT_SHARE)
    by_label = {label.lower(): task for task, label in TASK_LABELS.items()}
    for key, value in (input_share or {}).items():
        task = key if key in TASK_LABELS else by_label.get(str(key).lower())
        if task is None:
            raise ValueError(f"unknown task {key!r} in the input share; known tasks: {', '.join(TASKS)}")
        shares[task] = _share(value, f"input share for {task}")
    return shares


def _require_price(book: PriceBook, model: str) -> None:
    try:
        book.price(model)
    except UnknownModelPrice as exc:
        raise ValueError(
            f"the {book.name} price book has no price for model {model!r}; pick a model it knows "
            "(Settings › Price book lists them) or add a price override"
        ) from exc


# ---------------------------------------------------------------------------------------------------------
# The seed's figures, recomputed
# ---------------------------------------------------------------------------------------------------------


def hybrid_table(book: PriceBook, input_share: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The seed's hybrid-strategy table recomputed with `book`, beside the seed's claims (JSON-ready).

    `input_share` overrides `DEFAULT_INPUT_SHARE` per task (keys: task ids such as "personalization", or
    the seed's task labels). Money is decimal text; ratio = claimed / computed, null when undefined.
    """
    shares = _input_shares(input_share)
    rows = []
    total = Decimal(0)
    for seed_row in SEED_HYBRID:
        computed = _aggregate_cost(book, seed_row.model, seed_row.tokens_per_year, shares[seed_row.task])
        total += computed
        rows.append(
            {
                "task": TASK_LABELS[seed_row.task],
                "model": seed_row.model,
                "tokens": seed_row.tokens_per_year,
                "computed_usd": money_str(computed),
                "claimed_usd": money_str(seed_row.claimed_usd),
                "ratio": _opt_money(_ratio(seed_row.claimed_usd, computed)),
            }
        )
    return {
        "book": book.name,
        "rows": rows,
        "total_computed_usd": money_str(total),
        "total_claimed_usd": money_str(SEED_HYBRID_TOTAL_CLAIMED_USD),
        "ratio": _opt_money(_ratio(SEED_HYBRID_TOTAL_CLAIMED_USD, total)),
    }


def hybrid_headlines(table: Mapping[str, Any]) -> list[str]:
    """One plain sentence per row of a `hybrid_table` result, e.g. 'At the seed's own rates Mistral 7B
    costs $31.50 for 45M tokens a year, not $63,000.00 (2,000x).'"""
    seed_names = {r.model: r.seed_model for r in SEED_HYBRID}
    at = "At the original cost plan's own rates" if table["book"] == "seed" else "At current prices"
    out = []
    for row in table["rows"]:
        name = seed_names.get(row["model"], row["model"])
        tokens = Decimal(row["tokens"]) / MTOK
        sentence = f"{at} {name} costs {format_usd(Decimal(row['computed_usd']))} for {tokens:,f}M tokens a year"
        if row["claimed_usd"] is not None:
            sentence += f", not {format_usd(Decimal(row['claimed_usd']))}"
            if row["ratio"] is not None:
                sentence += f" ({Decimal(row['ratio']):,.0f}x)"
        out.append(sentence + ".")
    return out


def split_bounds(book: PriceBook) -> list[dict[str, Any]]:
    """For every hybrid row (and the total), the computed cost at the two extreme splits (all input, all
    output). Cost is linear in the split, so any split lies between them; `min_ratio` is the smallest
    claimed / computed over all splits."""
    rows = []
    low_total = high_total = Decimal(0)
    for seed_row in SEED_HYBRID:
        ends = sorted(_aggregate_cost(book, seed_row.model, seed_row.tokens_per_year, Decimal(s)) for s in (0, 1))
        low_total += ends[0]
        high_total += ends[1]
        rows.append(
            {
                "task": TASK_LABELS[seed_row.task],
                "model": seed_row.model,
                "low_usd": ends[0],
                "high_usd": ends[1],
                "claimed_usd": seed_row.claimed_usd,
                "min_ratio": _ratio(seed_row.claimed_usd, ends[1]),
            }
        )
    rows.append(
        {
            "task": "Total",
            "model": "",
            "low_usd": low_total,
            "high_usd": high_total,
            "claimed_usd": SEED_HYBRID_TOTAL_CLAIMED_USD,
            "min_ratio": _ratio(SEED_HYBRID_TOTAL_CLAIMED_USD, high_total),
        }
    )
    return rows


def all_premium_comparison(
    book: PriceBook,
    premium_model: str = SEED_PREMIUM_MODEL,
    input_share: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The seed's "all-premium" claim recomputed: all 55M tokens (each task at its split) on the premium
    model, against the hybrid as recomputed, with the real reduction. JSON-ready (money as text)."""
    _require_price(book, premium_model)
    shares = _input_shares(input_share)
    hybrid = Decimal(0)
    premium = Decimal(0)
    for seed_row in SEED_HYBRID:
        share = shares[seed_row.task]
        hybrid += _aggregate_cost(book, seed_row.model, seed_row.tokens_per_year, share)
        premium += _aggregate_cost(book, premium_model, seed_row.tokens_per_year, share)
    reduction = ((premium - hybrid) / premium * 100).quantize(_PCT_PLACES) if premium > 0 else None
    implied = ((SEED_ALL_PREMIUM_CLAIMED_USD - SEED_HYBRID_TOTAL_CLAIMED_USD) / SEED_ALL_PREMIUM_CLAIMED_USD
               * 100).quantize(_PCT_PLACES)
    return {
        "book": book.name,
        "premium_model": premium_model,
        "tokens": SEED_HYBRID_TOTAL_TOKENS,
        "all_premium_computed_usd": money_str(premium),
        "all_premium_claimed_usd": money_str(SEED_ALL_PREMIUM_CLAIMED_USD),
        "all_premium_ratio": _opt_money(_ratio(SEED_ALL_PREMIUM_CLAIMED_USD, premium)),
        "hybrid_computed_usd": money_str(hybrid),
        "hybrid_claimed_usd": money_str(SEED_HYBRID_TOTAL_CLAIMED_USD),
        "reduction_computed_pct": _opt_money(reduction),
        "reduction_claimed_pct": money_str(SEED_REDUCTION_CLAIMED_PCT),
        "reduction_implied_by_claims_pct": money_str(implied),
    }


def primary_table_claims(book: PriceBook) -> list[dict[str, Any]]:
    """The seed's per-model "Annual Cost" claims. The seed gives no volume for them, so there is nothing to
    recompute; instead each row shows the yearly token volume the claim would imply at `book`'s rates
    (low = every token billed at the dearer rate, high = at the cheaper one)."""
    rows = []
    for r in SEED_PRIMARY:
        price = book.price(r.model)
        dear = max(price.input_per_mtok, price.output_per_mtok)
        cheap = min(price.input_per_mtok, price.output_per_mtok)
        rows.append(
            {
                "model": r.model,
                "use_case": r.use_case,
                "claimed_annual_usd": r.claimed_annual_usd,
                "volume_tokens": None,
                "computed_usd": None,
                "implied_tokens_low": int(r.claimed_annual_usd / dear * MTOK) if dear > 0 else None,
                "implied_tokens_high": int(r.claimed_annual_usd / cheap * MTOK) if cheap > 0 else None,
            }
        )
    return rows


def unit_slip_check(seed: PriceBook) -> list[dict[str, Any]]:
    """Where the seed's hybrid claims come from: tokens × (input rate + output rate), with the per-1K rate
    applied per token. Matches the Mistral and Llama rows exactly (a 1,000x unit slip plus a 2x double
    count); `matches` says, row by row, whether the claim is explained. Use with the `seed` book."""
    thousand = Decimal(1000)
    rows = []
    for r in SEED_HYBRID:
        price = seed.price(r.model)
        per_1k_sum = (price.input_per_mtok + price.output_per_mtok) / thousand
        slipped = Decimal(r.tokens_per_year) * per_1k_sum
        rows.append(
            {
                "task": TASK_LABELS[r.task],
                "model": r.model,
                "claimed_usd": r.claimed_usd,
                "tokens_times_rates_per_token_usd": slipped,
                "matches": slipped == r.claimed_usd,
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------
# The planner
# ---------------------------------------------------------------------------------------------------------

# Per-call token counts behind the default scenario (input, output), consistent with the splits above:
# personalization 225 + 75, template generation 300 + 200, quality review 500 + 150.
DEFAULT_TOKENS: dict[str, tuple[int, int]] = {
    PERSONALIZATION: (225, 75),
    TEMPLATE_GENERATION: (300, 200),
    QUALITY_REVIEW: (500, 150),
}
# 12,500 messages × 300 tokens × 12 = 45M tokens a year (the seed's personalization volume);
# 1,333 template calls × 500 × 12 ≈ 8.0M; 2% reviewed (the seed reviews only companies above 1,000 staff)
# = 250 reviews × 650 × 12 ≈ 1.95M. Together ≈ 55M tokens a year, the seed's total.
DEFAULT_MESSAGES_PER_MONTH = 12_500
DEFAULT_TEMPLATE_CALLS_PER_MONTH = 1_333
DEFAULT_REVIEW_RATE = Decimal("0.02")
DEFAULT_SENSITIVITY_RATES: tuple[Decimal, ...] = tuple(Decimal(r) for r in ("0", "0.05", "0.1", "0.2", "0.5", "1"))
MAX_NAME_LENGTH = 80
PAYLOAD_VERSION = 1


@dataclass(frozen=True)
class TaskPlan:
    """The model serving one task and the tokens of one call to it."""

    model: str
    input_tokens: int
    output_tokens: int

    def __post_init__(self) -> None:
        if not isinstance(self.model, str) or not self.model.strip():
            raise ValueError("every task needs a model id, e.g. mistralai/mistral-7b-instruct")
        if any(unicodedata.category(ch).startswith("C") or ch.isspace() for ch in self.model):
            raise ValueError(f"model id {self.model!r} contains spaces or control characters")
        _count(self.input_tokens, f"input tokens per call for {self.model}")
        _count(self.output_tokens, f"output tokens per call for {self.model}")


@dataclass(frozen=True)
class ScenarioInput:
    """A year of outreach, described per month.

    - `messages_per_month`: personalized messages, one personalization call each;
    - `template_calls_per_month`: template-generation calls;
    - `review_rate`: share (0..1) of personalized messages sent to the premium reviewer;
    - `tasks`: the `TaskPlan` (model, tokens per call) of each task in `TASKS`;
    - `book`: "current" (today's prices) or "seed" (the seed's own rates), used by `compare`.
    """

    messages_per_month: int
    template_calls_per_month: int
    review_rate: Decimal
    tasks: Mapping[str, TaskPlan]
    book: str = "current"

    def __post_init__(self) -> None:
        _count(self.messages_per_month, "messages per month")
        _count(self.template_calls_per_month, "template-generation calls per month")
        object.__setattr__(self, "review_rate", _share(self.review_rate, "the premium review rate"))
        if self.book not in BOOKS:
            raise ValueError(f"unknown price book {self.book!r}; choose one of: {', '.join(BOOKS)}")
        missing = [t for t in TASKS if t not in self.tasks]
        extra = [t for t in self.tasks if t not in TASKS]
        if missing or extra:
            raise ValueError(
                f"a scenario plans exactly the tasks {', '.join(TASKS)}; missing: {', '.join(missing) or 'none'}, "
                f"unknown: {', '.join(map(str, extra)) or 'none'}"
            )
        for task in TASKS:
            if not isinstance(self.tasks[task], TaskPlan):
                raise ValueError(f"the plan for {task} must be a TaskPlan")
        object.__setattr__(self, "tasks", {t: self.tasks[t] for t in TASKS})

    def calls_per_month(self) -> dict[str, Decimal]:
        """Calls per month per task; reviews are an expected count (messages × rate), so they may be fractional."""
        return {
            PERSONALIZATION: Decimal(self.messages_per_month),
            TEMPLATE_GENERATION: Decimal(self.template_calls_per_month),
            QUALITY_REVIEW: Decimal(self.messages_per_month) * self.review_rate,
        }

    def to_payload(self) -> dict[str, Any]:
        return {
            "version": PAYLOAD_VERSION,
            "messages_per_month": self.messages_per_month,
            "template_calls_per_month": self.template_calls_per_month,
            "review_rate": money_str(self.review_rate),
            "book": self.book,
            "tasks": {
                t: {"model": p.model, "input_tokens": p.input_tokens, "output_tokens": p.output_tokens}
                for t, p in self.tasks.items()
            },
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> ScenarioInput:
        try:
            tasks = {
                t: TaskPlan(str(p["model"]), p["input_tokens"], p["output_tokens"])
                for t, p in dict(payload["tasks"]).items()
            }
            return cls(
                messages_per_month=payload["messages_per_month"],
                template_calls_per_month=payload["template_calls_per_month"],
                review_rate=payload["review_rate"],
                tasks=tasks,
                book=payload.get("book", "current"),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"scenario payload is incomplete or malformed ({type(exc).__name__}: {exc})") from exc


def routed_models(routing: RoutingTable, today: date) -> dict[str, str]:
    """The model the routing table sends each planner task to today (retired models already skipped)."""
    return {task: routing.route(ROUTING_TASKS[task], today).model for task in TASKS}


def default_scenario(models: Mapping[str, str] | None = None, book: str = "current") -> ScenarioInput:
    """The seed's volumes (≈55M tokens a year) with the per-call tokens in `DEFAULT_TOKENS`.

    `models` picks the model per task (pass `routed_models(...)` for today's configuration); without it the
    seed's own models are used."""
    chosen = {r.task: r.model for r in SEED_HYBRID}
    chosen.update(models or {})
    return ScenarioInput(
        messages_per_month=DEFAULT_MESSAGES_PER_MONTH,
        template_calls_per_month=DEFAULT_TEMPLATE_CALLS_PER_MONTH,
        review_rate=DEFAULT_REVIEW_RATE,
        tasks={t: TaskPlan(chosen[t], *DEFAULT_TOKENS[t]) for t in TASKS},
        book=book,
    )


@dataclass(frozen=True)
class TaskCost:
    task: str
    model: str
    calls_per_month: Decimal
    tokens_per_month: Decimal
    cost_per_call_usd: Decimal
    monthly_usd: Decimal
    annual_usd: Decimal
    price_source: str


@dataclass(frozen=True)
class ScenarioResult:
    book: str
    tasks: list[TaskCost] = field(default_factory=list)

    @property
    def monthly_usd(self) -> Decimal:
        return sum((t.monthly_usd for t in self.tasks), Decimal(0))

    @property
    def annual_usd(self) -> Decimal:
        return sum((t.annual_usd for t in self.tasks), Decimal(0))

    @property
    def annual_tokens(self) -> Decimal:
        return sum((t.tokens_per_month for t in self.tasks), Decimal(0)) * 12

    def task(self, name: str) -> TaskCost:
        for t in self.tasks:
            if t.task == name:
                return t
        raise KeyError(name)

    def rows(self) -> list[dict[str, Any]]:
        """Per task plus a total, Decimal values, for display."""
        rows: list[dict[str, Any]] = [
            {
                "task": TASK_LABELS[t.task],
                "model": t.model,
                "calls_per_month": t.calls_per_month,
                "tokens_per_year": t.tokens_per_month * 12,
                "cost_per_call_usd": t.cost_per_call_usd,
                "monthly_usd": t.monthly_usd,
                "annual_usd": t.annual_usd,
                "price_source": t.price_source,
            }
            for t in self.tasks
        ]
        rows.append(
            {
                "task": "Total",
                "model": "",
                "calls_per_month": sum((t.calls_per_month for t in self.tasks), Decimal(0)),
                "tokens_per_year": self.annual_tokens,
                "cost_per_call_usd": None,
                "monthly_usd": self.monthly_usd,
                "annual_usd": self.annual_usd,
                "price_source": "",
            }
        )
        return rows


def annual_cost(scenario: ScenarioInput, book: PriceBook) -> ScenarioResult:
    """Monthly and annual USD per task with `book` (each call priced on its own, so tiers apply per call)."""
    calls = scenario.calls_per_month()
    out = []
    for task in TASKS:
        plan = scenario.tasks[task]
        _require_price(book, plan.model)
        per_call = book.cost(plan.model, plan.input_tokens, plan.output_tokens)
        monthly = per_call * calls[task]
        out.append(
            TaskCost(
                task=task,
                model=plan.model,
                calls_per_month=calls[task],
                tokens_per_month=calls[task] * (plan.input_tokens + plan.output_tokens),
                cost_per_call_usd=per_call,
                monthly_usd=monthly,
                annual_usd=monthly * 12,
                price_source=book.price(plan.model).source,
            )
        )
    return ScenarioResult(book=book.name, tasks=out)


def review_rate_sensitivity(
    scenario: ScenarioInput,
    book: PriceBook,
    rates: Iterable[Any] = DEFAULT_SENSITIVITY_RATES,
) -> list[dict[str, Decimal]]:
    """The annual bill at each review rate, split into premium review and everything else.

    `review_share` is the review's part of the total (0..1): it shows how quickly the review rate comes to
    dominate the bill."""
    rows = []
    for rate in rates:
        result = annual_cost(replace(scenario, review_rate=_share(rate, "a review rate")), book)
        review = result.task(QUALITY_REVIEW).annual_usd
        total = result.annual_usd
        rows.append(
            {
                "review_rate": _share(rate, "a review rate"),
                "reviews_per_month": result.task(QUALITY_REVIEW).calls_per_month,
                "review_annual_usd": review,
                "other_annual_usd": total - review,
                "total_annual_usd": total,
                "review_share": (review / total).quantize(_SHARE_PLACES) if total > 0 else Decimal(0),
            }
        )
    return rows


# ---------------------------------------------------------------------------------------------------------
# Saved scenarios
# ---------------------------------------------------------------------------------------------------------


def book_for(app: App, which: str) -> PriceBook:
    """The named price book: "current" (live, with refreshed prices) or "seed" (the seed's own rates)."""
    if which == "current":
        return app.price_book()
    if which == "seed":
        return seed_book(app.settings.data_dir)
    raise ValueError(f"unknown price book {which!r}; choose one of: {', '.join(BOOKS)}")


def clean_name(name: Any) -> str:
    """A scenario name as stored: trimmed, 1..80 printable characters."""
    if not isinstance(name, str):
        raise ValueError("a scenario name must be text")
    cleaned = name.strip()
    if not cleaned:
        raise ValueError("give the scenario a name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"a scenario name can have at most {MAX_NAME_LENGTH} characters (this one has {len(cleaned)})")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise ValueError("a scenario name cannot contain control or invisible formatting characters")
    return cleaned


def save_scenario(app: App, name: str, scenario: ScenarioInput) -> str:
    """Store `scenario` under a new name; returns the stored (trimmed) name."""
    cleaned = clean_name(name)
    book = book_for(app, scenario.book)
    for plan in scenario.tasks.values():
        _require_price(book, plan.model)
    duplicate = ValueError(f"a scenario named {cleaned!r} already exists; choose another name or delete it first")
    try:
        with session_scope(app.engine) as s:
            if s.exec(select(Scenario).where(Scenario.name == cleaned)).first() is not None:
                raise duplicate
            s.add(Scenario(name=cleaned, payload=scenario.to_payload()))
    except IntegrityError as exc:  # a concurrent save won the race for the name
        raise duplicate from exc
    return cleaned


def _row(app: App, name: str) -> Scenario:
    with session_scope(app.engine) as s:
        row = s.exec(select(Scenario).where(Scenario.name == name)).first()
    if row is None:
        raise ValueError(f"no saved scenario named {name!r}")
    return row


def load_scenario(app: App, name: str) -> ScenarioInput:
    row = _row(app, name)
    try:
        return ScenarioInput.from_payload(row.payload)
    except ValueError as exc:
        raise ValueError(f"saved scenario {name!r} cannot be read: {exc}") from exc


def list_scenarios(app: App) -> list[dict[str, Any]]:
    """Saved scenarios, oldest first: name, book, monthly messages, review rate, saved at (UTC ISO)."""
    with session_scope(app.engine) as s:
        rows = s.exec(select(Scenario).order_by(Scenario.created_at, Scenario.id)).all()
    return [
        {
            "name": r.name,
            "book": str(r.payload.get("book", "")),
            "messages_per_month": r.payload.get("messages_per_month"),
            "review_rate": r.payload.get("review_rate"),
            "saved_at": r.created_at.isoformat(timespec="seconds"),
        }
        for r in rows
    ]


def delete_scenario(app: App, name: str) -> None:
    row = _row(app, name)
    with session_scope(app.engine) as s:
        stored = s.get(Scenario, row.id)
        if stored is not None:
            s.delete(stored)


def compare(app: App, names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per named scenario, each priced with its own book: volumes, annual USD per task and total."""
    rows = []
    for name in dict.fromkeys(names):
        scenario = load_scenario(app, name)
        result = annual_cost(scenario, book_for(app, scenario.book))
        row: dict[str, Any] = {
            "scenario": name,
            "book": result.book,
            "messages_per_month": scenario.messages_per_month,
            "review_rate": scenario.review_rate,
            "annual_tokens": result.annual_tokens,
        }
        for t in result.tasks:
            row[f"{t.task}_annual_usd"] = t.annual_usd
        row["annual_usd"] = result.annual_usd
        rows.append(row)
    return rows
