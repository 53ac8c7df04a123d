"""The yearly planner: default volumes, per-call tiers, the review-rate sensitivity, refused inputs."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest

from core.app import App
from core.costs.original_plan import (
    PERSONALIZATION,
    QUALITY_REVIEW,
    TASKS,
    TEMPLATE_GENERATION,
)
from core.costs.planner import TaskPlan, annual_cost, default_scenario, review_rate_sensitivity, routed_models
from core.costs.prices import PriceBook, current_book, seed_book

MISTRAL = "mistralai/mistral-7b-instruct"
SONNET = "anthropic/claude-sonnet-4.5"


# ---- the planner ------------------------------------------------------------------------------------------


def test_default_scenario_matches_the_seed_volumes() -> None:
    scenario = default_scenario()
    result = annual_cost(scenario, seed_book())
    assert abs(result.annual_tokens - 55_000_000) / 55_000_000 < Decimal("0.01")
    assert result.task(PERSONALIZATION).tokens_per_month * 12 == 45_000_000
    # 12,500 messages × (225 + 75 tokens) at $0.0007/1K = $2.625 a month
    assert result.task(PERSONALIZATION).monthly_usd == Decimal("2.625")
    assert result.task(PERSONALIZATION).annual_usd == Decimal("31.5")
    # 2% of 12,500 messages reviewed: 250 × (500 × $0.015 + 150 × $0.075) / 1K
    assert result.task(QUALITY_REVIEW).calls_per_month == 250
    assert result.task(QUALITY_REVIEW).monthly_usd == Decimal("4.6875")
    assert result.annual_usd == sum((t.annual_usd for t in result.tasks), Decimal(0))
    assert result.rows()[-1].annual_usd == result.annual_usd and result.rows()[-1].task == "Total"


def test_planner_prices_each_call_with_tiers() -> None:
    # One 300K-token prompt per month crosses Sonnet's long-context tier; PriceBook.cost prices it per call.
    big = replace(default_scenario(), messages_per_month=1, review_rate=Decimal(1),
                  tasks={**default_scenario().tasks, QUALITY_REVIEW: TaskPlan(SONNET, 300_000, 0)})
    assert annual_cost(big, current_book()).task(QUALITY_REVIEW).monthly_usd == Decimal("1.8")


@pytest.mark.parametrize("book", [seed_book(), current_book()], ids=["seed", "current"])
def test_sensitivity_is_monotone_and_review_dominates(book: PriceBook) -> None:
    rows = review_rate_sensitivity(default_scenario(), book)
    assert [r.review_rate for r in rows] == [Decimal(x) for x in ("0", "0.05", "0.1", "0.2", "0.5", "1")]
    totals = [r.total_annual_usd for r in rows]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    assert len({r.other_annual_usd for r in rows}) == 1  # only the review moves
    assert rows[0].review_share == 0
    # Reviewing 5% of messages already costs more than everything else together
    assert all(r.review_share > Decimal("0.5") for r in rows[1:])
    assert rows[-1].total_annual_usd > 10 * rows[0].total_annual_usd


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"messages_per_month": -1}, "cannot be negative"),
        ({"template_calls_per_month": 2.5}, "whole number"),
        ({"review_rate": Decimal("1.5")}, "between 0 and 1"),
        ({"review_rate": -0.1}, "between 0 and 1"),
        ({"review_rate": "NaN"}, "finite"),
        ({"book": "tomorrow"}, "unknown price book"),
    ],
)
def test_bad_scenarios_are_refused(change: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(default_scenario(), **change)


def test_bad_task_plans_are_refused() -> None:
    with pytest.raises(ValueError, match="cannot be negative"):
        TaskPlan(MISTRAL, -5, 10)
    with pytest.raises(ValueError, match="needs a model"):
        TaskPlan("  ", 5, 10)
    with pytest.raises(ValueError, match="missing: quality_review"):
        replace(default_scenario(), tasks={t: default_scenario().tasks[t] for t in TASKS[:2]})


def test_unknown_model_is_refused_by_the_current_book() -> None:
    scenario = replace(default_scenario(), tasks={**default_scenario().tasks,
                                                  TEMPLATE_GENERATION: TaskPlan("nobody/none-1b", 10, 10)})
    with pytest.raises(ValueError, match="no price for model 'nobody/none-1b'"):
        annual_cost(scenario, current_book())
    # The seed's cost monitor prices unknown models at its default $0.001/1K, and says so
    result = annual_cost(scenario, seed_book())
    assert result.task(TEMPLATE_GENERATION).price_source == "original cost plan's default rate"


def test_routed_models_follow_retirement(app: App) -> None:
    assert routed_models(app.routing, date(2026, 11, 1))[QUALITY_REVIEW] == SONNET
    assert routed_models(app.routing, date(2026, 12, 1))[QUALITY_REVIEW] == "anthropic/claude-sonnet-5.5"
    assert routed_models(app.routing, date(2026, 12, 1))[PERSONALIZATION] == MISTRAL
