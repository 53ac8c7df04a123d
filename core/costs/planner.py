"""The yearly planner: what a year of outreach costs at given monthly volumes, models and tokens per call.

A `ScenarioInput` gives monthly volumes per task, the model and tokens per call of each task, the share of
messages sent to the premium reviewer, and the price book. `annual_cost` prices it one call at a time with
`PriceBook.cost` (so long-context tiers apply per call); `review_rate_sensitivity` shows that the review rate
dominates the bill. The defaults follow the original cost plan's volumes (`core.costs.original_plan`).
Saved scenarios are in `core.costs.scenarios`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import Decimal
from typing import Any

from core.costs.original_plan import (
    PERSONALIZATION,
    QUALITY_REVIEW,
    SEED_HYBRID,
    TASK_LABELS,
    TASKS,
    TEMPLATE_GENERATION,
    require_price,
    share,
    whole_count,
)
from core.costs.prices import PriceBook
from core.costs.routing import RoutingTable
from core.store.models import money_str

BOOKS = ("current", "seed")
_SHARE_PLACES = Decimal("0.0001")

# The routing-table task (data/routing.json) that serves each planner task.
ROUTING_TASKS: dict[str, str] = {
    PERSONALIZATION: "personalize",
    TEMPLATE_GENERATION: "optimize_template",
    QUALITY_REVIEW: "review",
}

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
        whole_count(self.input_tokens, f"input tokens per call for {self.model}")
        whole_count(self.output_tokens, f"output tokens per call for {self.model}")


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
        whole_count(self.messages_per_month, "messages per month")
        whole_count(self.template_calls_per_month, "template-generation calls per month")
        object.__setattr__(self, "review_rate", share(self.review_rate, "the premium review rate"))
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
class CostRow:
    """One line of a priced scenario (a task, or the total)."""

    task: str  # the task's label, or "Total"
    model: str
    calls_per_month: Decimal
    tokens_per_year: Decimal
    cost_per_call_usd: Decimal | None  # None on the total
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

    def rows(self) -> list[CostRow]:
        """Per task plus a total, for display."""
        rows = [CostRow(TASK_LABELS[t.task], t.model, t.calls_per_month, t.tokens_per_month * 12, t.cost_per_call_usd,
                        t.monthly_usd, t.annual_usd, t.price_source) for t in self.tasks]
        rows.append(CostRow("Total", "", sum((t.calls_per_month for t in self.tasks), Decimal(0)), self.annual_tokens,
                            None, self.monthly_usd, self.annual_usd, ""))
        return rows

    def task(self, name: str) -> TaskCost:
        for t in self.tasks:
            if t.task == name:
                return t
        raise KeyError(name)


def annual_cost(scenario: ScenarioInput, book: PriceBook) -> ScenarioResult:
    """Monthly and annual USD per task with `book` (each call priced on its own, so tiers apply per call)."""
    calls = scenario.calls_per_month()
    out = []
    for task in TASKS:
        plan = scenario.tasks[task]
        require_price(book, plan.model)
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


@dataclass(frozen=True)
class SensitivityRow:
    review_rate: Decimal
    reviews_per_month: Decimal
    review_annual_usd: Decimal
    other_annual_usd: Decimal
    total_annual_usd: Decimal
    review_share: Decimal  # the review's part of the total (0..1)


def review_rate_sensitivity(
    scenario: ScenarioInput,
    book: PriceBook,
    rates: Iterable[Any] = DEFAULT_SENSITIVITY_RATES,
) -> list[SensitivityRow]:
    """The annual bill at each review rate, split into premium review and everything else: it shows how
    quickly the review rate comes to dominate the bill."""
    rows = []
    for rate in rates:
        checked = share(rate, "a review rate")
        result = annual_cost(replace(scenario, review_rate=checked), book)
        review = result.task(QUALITY_REVIEW).annual_usd
        total = result.annual_usd
        rows.append(SensitivityRow(
            review_rate=checked, reviews_per_month=result.task(QUALITY_REVIEW).calls_per_month,
            review_annual_usd=review, other_annual_usd=total - review, total_annual_usd=total,
            review_share=(review / total).quantize(_SHARE_PLACES) if total > 0 else Decimal(0),
        ))
    return rows
