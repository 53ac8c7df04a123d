"""The original cost plan (`seed.md`) checked: its tables as data, recomputed from volumes and a price book.

`seed.md` prices Mistral 7B at $0.0007 per 1K tokens and then claims 45M tokens a year cost $63,000; at its own
rate they cost $31.50. Every claimed figure is kept here as data (cited below) and shown beside the figure
recomputed with a price book (`seed` = the plan's own rates, `current` = today's prices), with the ratio
claimed / computed.

The plan gives total tokens per task, not an input/output split, so the split is an explicit assumption
(`DEFAULT_INPUT_SHARE`, adjustable per call). Cost is linear in the split, so its extremes (all input, all
output) bound the computed cost for *any* split; `split_bounds` reports them, and the claims stay two to
four orders of magnitude above even the upper bound.

Aggregate volumes are priced at each model's base (untiered) rate: long-context tiers apply per request
(above 200K prompt tokens), and a year of outreach is made of small requests. The yearly planner
(`core.costs.planner`) prices one call at a time instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

from core.costs.money import usd
from core.costs.prices import MTOK, PriceBook, UnknownModelPrice
from core.store.models import money_str

# ---------------------------------------------------------------------------------------------------------
# The plan's tables, as data. Source: /work/shared/seed.md (copied as seed.md beside DESIGN.md).
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

_RATIO_PLACES = Decimal("0.01")
_PCT_PLACES = Decimal("0.01")



# ---------------------------------------------------------------------------------------------------------
# Checks shared with the planner
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


def share(value: Any, what: str) -> Decimal:
    out = _to_decimal(value, what)
    if not Decimal(0) <= out <= Decimal(1):
        raise ValueError(f"{what} must be between 0 and 1 (a share: 0.05 means 5%), got {value}")
    return out


def whole_count(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{what} must be a whole number, got {value!r}")
    if value < 0:
        raise ValueError(f"{what} cannot be negative, got {value}")
    return value


def _ratio(claimed: Decimal | None, computed: Decimal) -> Decimal | None:
    if claimed is None or computed <= 0:
        return None
    return (claimed / computed).quantize(_RATIO_PLACES, rounding=ROUND_HALF_EVEN)


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
        shares[task] = share(value, f"input share for {task}")
    return shares


def require_price(book: PriceBook, model: str) -> None:
    try:
        book.price(model)
    except UnknownModelPrice as exc:
        raise ValueError(
            f"the {book.name} price book has no price for model {model!r}; pick a model it knows "
            "(Settings › Price book lists them) or add a price override"
        ) from exc


def _opt_money(value: Decimal | None) -> str | None:
    return None if value is None else money_str(value)


# ---------------------------------------------------------------------------------------------------------
# The plan's figures, recomputed
# ---------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class HybridRow:
    task: str  # the plan's task label
    model: str
    tokens: int
    computed_usd: Decimal
    claimed_usd: Decimal
    ratio: Decimal | None  # claimed / computed; None when nothing is computed

    def as_json(self) -> dict[str, Any]:
        return {"task": self.task, "model": self.model, "tokens": self.tokens,
                "computed_usd": money_str(self.computed_usd), "claimed_usd": money_str(self.claimed_usd),
                "ratio": _opt_money(self.ratio)}


@dataclass(frozen=True)
class HybridTable:
    book: str
    rows: tuple[HybridRow, ...]
    total_computed_usd: Decimal
    total_claimed_usd: Decimal
    ratio: Decimal | None

    @property
    def total_tokens(self) -> int:
        return sum(r.tokens for r in self.rows)

    def as_json(self) -> dict[str, Any]:
        """The CLI's contract: money as decimal text."""
        return {"book": self.book, "rows": [r.as_json() for r in self.rows],
                "total_computed_usd": money_str(self.total_computed_usd),
                "total_claimed_usd": money_str(self.total_claimed_usd), "ratio": _opt_money(self.ratio)}


def hybrid_table(book: PriceBook, input_share: Mapping[str, Any] | None = None) -> HybridTable:
    """The plan's hybrid-strategy table recomputed with `book`, beside the plan's claims.

    `input_share` overrides `DEFAULT_INPUT_SHARE` per task (keys: task ids such as "personalization", or
    the plan's task labels).
    """
    shares = _input_shares(input_share)
    rows = []
    for seed_row in SEED_HYBRID:
        computed = _aggregate_cost(book, seed_row.model, seed_row.tokens_per_year, shares[seed_row.task])
        rows.append(HybridRow(TASK_LABELS[seed_row.task], seed_row.model, seed_row.tokens_per_year, computed,
                              seed_row.claimed_usd, _ratio(seed_row.claimed_usd, computed)))
    total = sum((r.computed_usd for r in rows), Decimal(0))
    return HybridTable(book.name, tuple(rows), total, SEED_HYBRID_TOTAL_CLAIMED_USD,
                       _ratio(SEED_HYBRID_TOTAL_CLAIMED_USD, total))


def hybrid_headlines(table: HybridTable) -> list[str]:
    """One plain sentence per row of a `hybrid_table`, e.g. 'At the original cost plan's own rates Mistral 7B
    costs $31.50 for 45M tokens a year, not $63,000.00 (2,000x).'"""
    seed_names = {r.model: r.seed_model for r in SEED_HYBRID}
    at = "At the original cost plan's own rates" if table.book == "seed" else "At current prices"
    out = []
    for row in table.rows:
        name = seed_names.get(row.model, row.model)
        tokens = Decimal(row.tokens) / MTOK
        sentence = f"{at} {name} costs {usd(row.computed_usd)} for {tokens:,f}M tokens a year"
        sentence += f", not {usd(row.claimed_usd)}"
        if row.ratio is not None:
            sentence += f" ({row.ratio:,.0f}x)"
        out.append(sentence + ".")
    return out


@dataclass(frozen=True)
class SplitBound:
    """A hybrid row (or the total) at the two extreme splits; any split costs between them."""

    task: str
    model: str
    low_usd: Decimal
    high_usd: Decimal
    claimed_usd: Decimal
    min_ratio: Decimal | None  # the smallest claimed / computed over all splits


def split_bounds(book: PriceBook) -> list[SplitBound]:
    """For every hybrid row (and the total, last), the computed cost at the two extreme splits (all input, all
    output). Cost is linear in the split, so any split lies between them."""
    rows = []
    for seed_row in SEED_HYBRID:
        ends = sorted(_aggregate_cost(book, seed_row.model, seed_row.tokens_per_year, Decimal(s)) for s in (0, 1))
        rows.append(SplitBound(TASK_LABELS[seed_row.task], seed_row.model, ends[0], ends[1], seed_row.claimed_usd,
                               _ratio(seed_row.claimed_usd, ends[1])))
    low = sum((r.low_usd for r in rows), Decimal(0))
    high = sum((r.high_usd for r in rows), Decimal(0))
    rows.append(SplitBound("Total", "", low, high, SEED_HYBRID_TOTAL_CLAIMED_USD,
                           _ratio(SEED_HYBRID_TOTAL_CLAIMED_USD, high)))
    return rows


@dataclass(frozen=True)
class PremiumComparison:
    book: str
    premium_model: str
    tokens: int
    all_premium_computed_usd: Decimal
    all_premium_claimed_usd: Decimal
    all_premium_ratio: Decimal | None
    hybrid_computed_usd: Decimal
    hybrid_claimed_usd: Decimal
    reduction_computed_pct: Decimal | None
    reduction_claimed_pct: Decimal
    reduction_implied_by_claims_pct: Decimal

    def as_json(self) -> dict[str, Any]:
        return {
            "book": self.book, "premium_model": self.premium_model, "tokens": self.tokens,
            "all_premium_computed_usd": money_str(self.all_premium_computed_usd),
            "all_premium_claimed_usd": money_str(self.all_premium_claimed_usd),
            "all_premium_ratio": _opt_money(self.all_premium_ratio),
            "hybrid_computed_usd": money_str(self.hybrid_computed_usd),
            "hybrid_claimed_usd": money_str(self.hybrid_claimed_usd),
            "reduction_computed_pct": _opt_money(self.reduction_computed_pct),
            "reduction_claimed_pct": money_str(self.reduction_claimed_pct),
            "reduction_implied_by_claims_pct": money_str(self.reduction_implied_by_claims_pct),
        }


def all_premium_comparison(
    book: PriceBook,
    premium_model: str = SEED_PREMIUM_MODEL,
    input_share: Mapping[str, Any] | None = None,
) -> PremiumComparison:
    """The plan's "all-premium" claim recomputed: all 55M tokens (each task at its split) on the premium
    model, against the hybrid as recomputed, with the real reduction."""
    require_price(book, premium_model)
    shares = _input_shares(input_share)
    hybrid = Decimal(0)
    premium = Decimal(0)
    for seed_row in SEED_HYBRID:
        task_share = shares[seed_row.task]
        hybrid += _aggregate_cost(book, seed_row.model, seed_row.tokens_per_year, task_share)
        premium += _aggregate_cost(book, premium_model, seed_row.tokens_per_year, task_share)
    reduction = ((premium - hybrid) / premium * 100).quantize(_PCT_PLACES) if premium > 0 else None
    implied = ((SEED_ALL_PREMIUM_CLAIMED_USD - SEED_HYBRID_TOTAL_CLAIMED_USD) / SEED_ALL_PREMIUM_CLAIMED_USD
               * 100).quantize(_PCT_PLACES)
    return PremiumComparison(
        book=book.name, premium_model=premium_model, tokens=SEED_HYBRID_TOTAL_TOKENS,
        all_premium_computed_usd=premium, all_premium_claimed_usd=SEED_ALL_PREMIUM_CLAIMED_USD,
        all_premium_ratio=_ratio(SEED_ALL_PREMIUM_CLAIMED_USD, premium), hybrid_computed_usd=hybrid,
        hybrid_claimed_usd=SEED_HYBRID_TOTAL_CLAIMED_USD, reduction_computed_pct=reduction,
        reduction_claimed_pct=SEED_REDUCTION_CLAIMED_PCT, reduction_implied_by_claims_pct=implied,
    )


@dataclass(frozen=True)
class PrimaryClaim:
    """A per-model "Annual Cost" claim with no volume behind it: only the volume it would imply."""

    model: str
    use_case: str
    claimed_annual_usd: Decimal
    implied_tokens_low: int | None  # every token billed at the dearer rate
    implied_tokens_high: int | None  # ... at the cheaper one


def primary_table_claims(book: PriceBook) -> list[PrimaryClaim]:
    """The plan's per-model "Annual Cost" claims. It gives no volume for them, so there is nothing to
    recompute; instead each row shows the yearly token volume the claim would imply at `book`'s rates."""
    rows = []
    for r in SEED_PRIMARY:
        price = book.price(r.model)
        dear = max(price.input_per_mtok, price.output_per_mtok)
        cheap = min(price.input_per_mtok, price.output_per_mtok)
        rows.append(PrimaryClaim(r.model, r.use_case, r.claimed_annual_usd,
                                 int(r.claimed_annual_usd / dear * MTOK) if dear > 0 else None,
                                 int(r.claimed_annual_usd / cheap * MTOK) if cheap > 0 else None))
    return rows


@dataclass(frozen=True)
class UnitSlip:
    task: str
    model: str
    claimed_usd: Decimal
    tokens_times_rates_per_token_usd: Decimal
    matches: bool  # the claim is explained by the slip


def unit_slip_check(seed: PriceBook) -> list[UnitSlip]:
    """Where the plan's hybrid claims come from: tokens × (input rate + output rate), with the per-1K rate
    applied per token. Matches the Mistral and Llama rows exactly (a 1,000x unit slip plus a 2x double
    count). Use with the `seed` book."""
    thousand = Decimal(1000)
    rows = []
    for r in SEED_HYBRID:
        price = seed.price(r.model)
        slipped = Decimal(r.tokens_per_year) * (price.input_per_mtok + price.output_per_mtok) / thousand
        rows.append(UnitSlip(TASK_LABELS[r.task], r.model, r.claimed_usd, slipped, slipped == r.claimed_usd))
    return rows
