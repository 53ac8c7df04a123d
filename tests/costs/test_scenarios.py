"""Scenarios: the seed's tables recomputed on both books, the planner, saved scenarios, and the page."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from core.app import App, open_app
from core.config import PROJECT_ROOT, Settings
from core.costs.prices import Price, PriceBook, current_book, seed_book
from core.costs.scenarios import (
    PERSONALIZATION,
    QUALITY_REVIEW,
    SEED_HYBRID,
    TASKS,
    TEMPLATE_GENERATION,
    TaskPlan,
    all_premium_comparison,
    annual_cost,
    compare,
    default_scenario,
    delete_scenario,
    format_usd,
    hybrid_headlines,
    hybrid_table,
    list_scenarios,
    load_scenario,
    primary_table_claims,
    review_rate_sensitivity,
    routed_models,
    save_scenario,
    split_bounds,
    unit_slip_check,
)
from core.store.models import utcnow

MISTRAL = "mistralai/mistral-7b-instruct"
LLAMA = "meta-llama/llama-3-8b-instruct"
SONNET = "anthropic/claude-sonnet-4.5"


def _row(table: dict, model: str) -> dict:
    return next(r for r in table["rows"] if r["model"] == model)


# ---- the seed's figures -----------------------------------------------------------------------------------


def test_hybrid_table_shape_is_exactly_the_cli_contract() -> None:
    table = hybrid_table(seed_book())
    assert set(table) == {"book", "rows", "total_computed_usd", "total_claimed_usd", "ratio"}
    assert [set(r) for r in table["rows"]] == [
        {"task", "model", "tokens", "computed_usd", "claimed_usd", "ratio"}
    ] * 3
    assert [r["model"] for r in table["rows"]] == [MISTRAL, LLAMA, SONNET]
    assert [r["tokens"] for r in table["rows"]] == [45_000_000, 8_000_000, 2_000_000]
    json.dumps(table)  # JSON-ready: money is text, not Decimal


@pytest.mark.parametrize("share", ["0", "0.25", "0.75", "1"])
def test_seed_book_mistral_is_31_50_for_any_split(share: str) -> None:
    table = hybrid_table(seed_book(), {PERSONALIZATION: Decimal(share)})
    row = _row(table, MISTRAL)
    assert Decimal(row["computed_usd"]) == Decimal("31.50")
    assert row["claimed_usd"] == "63000"
    assert Decimal(row["ratio"]) == 2000


def test_seed_book_figures_at_the_default_split() -> None:
    table = hybrid_table(seed_book())
    assert table["book"] == "seed"
    # Llama: 60% of 8M at $0.0005/1K + 40% at $0.0008/1K = 2.40 + 2.56
    assert Decimal(_row(table, LLAMA)["computed_usd"]) == Decimal("4.96")
    # Claude at the seed's $0.015 / $0.075 per 1K: 1.5M in = 22.50, 0.5M out = 37.50
    sonnet = _row(table, SONNET)
    assert Decimal(sonnet["computed_usd"]) == Decimal("60")
    assert Decimal(sonnet["ratio"]) == 1000
    assert Decimal(table["total_computed_usd"]) == Decimal("96.46")
    assert table["total_claimed_usd"] == "133400"
    assert Decimal(table["ratio"]) == (Decimal(133400) / Decimal("96.46")).quantize(Decimal("0.01"))


def test_claude_at_the_seed_rates_follows_the_split() -> None:
    all_input = _row(hybrid_table(seed_book(), {QUALITY_REVIEW: 1}), SONNET)
    all_output = _row(hybrid_table(seed_book(), {"Quality Review": 0}), SONNET)
    assert Decimal(all_input["computed_usd"]) == Decimal("30")  # 2M × $0.015/1K
    assert Decimal(all_output["computed_usd"]) == Decimal("150")  # 2M × $0.075/1K


def test_current_book_figures() -> None:
    table = hybrid_table(current_book())
    assert table["book"] == "current"
    # 33.75M × $0.028/M + 11.25M × $0.054/M
    assert Decimal(_row(table, MISTRAL)["computed_usd"]) == Decimal("1.5525")
    assert Decimal(_row(table, LLAMA)["computed_usd"]) == Decimal("0.336")
    # Sonnet's long-context tier is per request; a year of small reviews pays the base $3 / $15
    assert Decimal(_row(table, SONNET)["computed_usd"]) == Decimal("12")
    assert Decimal(table["total_computed_usd"]) == Decimal("13.8885")


def test_ratio_is_null_when_nothing_is_computed() -> None:
    free = PriceBook("free", {m: Price(m, Decimal(0), Decimal(0), "test") for m in (MISTRAL, LLAMA, SONNET)},
                     use_genai=False)
    table = hybrid_table(free)
    assert all(r["ratio"] is None for r in table["rows"]) and table["ratio"] is None
    assert table["total_computed_usd"] == "0"


def test_input_share_is_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        hybrid_table(seed_book(), {PERSONALIZATION: Decimal("1.2")})
    with pytest.raises(ValueError, match="unknown task"):
        hybrid_table(seed_book(), {"summaries": Decimal("0.5")})


@pytest.mark.parametrize("book", [seed_book(), current_book()], ids=["seed", "current"])
def test_claims_are_orders_of_magnitude_high_for_any_split(book: PriceBook) -> None:
    bounds = split_bounds(book)
    by_model = {b["model"]: b for b in bounds}
    for model in (MISTRAL, LLAMA):
        assert by_model[model]["min_ratio"] >= 1000
    assert all(b["min_ratio"] >= 100 for b in bounds)
    # The bounds really do bracket the computed figure at a mid split
    for seed_row in SEED_HYBRID:
        mid = Decimal(_row(hybrid_table(book, {seed_row.task: Decimal("0.37")}), seed_row.model)["computed_usd"])
        assert by_model[seed_row.model]["low_usd"] <= mid <= by_model[seed_row.model]["high_usd"]


def test_headlines_say_it_plainly() -> None:
    lines = hybrid_headlines(hybrid_table(seed_book()))
    assert lines[0] == "At the seed's own rates Mistral 7B costs $31.50 for 45M tokens a year, not $63,000 (2,000x)."
    assert hybrid_headlines(hybrid_table(current_book()))[0].startswith("At current prices Mistral 7B costs $1.55")


def test_all_premium_recomputed() -> None:
    seed = all_premium_comparison(seed_book())
    # 55M tokens on Sonnet at the seed's rates, each task at its default split
    assert Decimal(seed["all_premium_computed_usd"]) == Decimal("1722")
    assert Decimal(seed["hybrid_computed_usd"]) == Decimal("96.46")
    assert Decimal(seed["reduction_computed_pct"]) == Decimal("94.40")
    assert seed["all_premium_claimed_usd"] == "534000" and seed["reduction_claimed_pct"] == "75"
    assert Decimal(seed["reduction_implied_by_claims_pct"]) == Decimal("75.02")
    current = all_premium_comparison(current_book())
    assert Decimal(current["all_premium_computed_usd"]) == Decimal("344.4")
    assert Decimal(current["reduction_computed_pct"]) == Decimal("95.97")
    with pytest.raises(ValueError, match="no price"):
        all_premium_comparison(current_book(), premium_model="nobody/none-1b")


def test_primary_table_has_no_computable_counterpart() -> None:
    rows = primary_table_claims(seed_book())
    assert [r["claimed_annual_usd"] for r in rows] == [Decimal(76860), Decimal(71370), Decimal(142740)]
    assert all(r["computed_usd"] is None and r["volume_tokens"] is None for r in rows)
    # At the seed's $0.0007/1K the Mistral claim implies 109.8 billion tokens a year, 2,000x the hybrid's 55M
    assert rows[0]["implied_tokens_low"] == rows[0]["implied_tokens_high"] == 109_800_000_000


def test_unit_slip_explains_two_of_three_claims() -> None:
    assert [r["matches"] for r in unit_slip_check(seed_book())] == [True, True, False]


def test_format_usd() -> None:
    assert format_usd(Decimal("31.5")) == "$31.50"
    assert format_usd(Decimal("63000")) == "$63,000"
    assert format_usd(Decimal("0.00375")) == "$0.0038"
    assert format_usd(Decimal("0.00000001")) == "under $0.0001"


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
    assert result.rows()[-1]["annual_usd"] == result.annual_usd


def test_planner_prices_each_call_with_tiers() -> None:
    # One 300K-token prompt per month crosses Sonnet's long-context tier; PriceBook.cost prices it per call.
    big = replace(default_scenario(), messages_per_month=1, review_rate=Decimal(1),
                  tasks={**default_scenario().tasks, QUALITY_REVIEW: TaskPlan(SONNET, 300_000, 0)})
    assert annual_cost(big, current_book()).task(QUALITY_REVIEW).monthly_usd == Decimal("1.8")


@pytest.mark.parametrize("book", [seed_book(), current_book()], ids=["seed", "current"])
def test_sensitivity_is_monotone_and_review_dominates(book: PriceBook) -> None:
    rows = review_rate_sensitivity(default_scenario(), book)
    assert [r["review_rate"] for r in rows] == [Decimal(x) for x in ("0", "0.05", "0.1", "0.2", "0.5", "1")]
    totals = [r["total_annual_usd"] for r in rows]
    assert totals == sorted(totals) and len(set(totals)) == len(totals)
    assert len({r["other_annual_usd"] for r in rows}) == 1  # only the review moves
    assert rows[0]["review_share"] == 0
    # Reviewing 5% of messages already costs more than everything else together
    assert all(r["review_share"] > Decimal("0.5") for r in rows[1:])
    assert rows[-1]["total_annual_usd"] > 10 * rows[0]["total_annual_usd"]


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
    assert result.task(TEMPLATE_GENERATION).price_source == "seed default rate"


def test_routed_models_follow_retirement(app: App) -> None:
    assert routed_models(app.routing, date(2026, 11, 1))[QUALITY_REVIEW] == SONNET
    assert routed_models(app.routing, date(2026, 12, 1))[QUALITY_REVIEW] == "anthropic/claude-sonnet-5.5"
    assert routed_models(app.routing, date(2026, 12, 1))[PERSONALIZATION] == MISTRAL


# ---- saved scenarios --------------------------------------------------------------------------------------


def test_save_load_list_compare_delete(app: App) -> None:
    base = default_scenario()
    heavy = replace(base, review_rate=Decimal("0.2"), book="seed")
    assert save_scenario(app, "  Base plan ", base) == "Base plan"
    save_scenario(app, "Heavy review", heavy)

    assert load_scenario(app, "Base plan") == base
    assert load_scenario(app, "Heavy review") == heavy
    listed = list_scenarios(app)
    assert [r["name"] for r in listed] == ["Base plan", "Heavy review"]
    assert listed[1]["book"] == "seed" and listed[1]["review_rate"] == "0.2"

    rows = compare(app, ["Heavy review", "Base plan", "Heavy review"])
    assert [r["scenario"] for r in rows] == ["Heavy review", "Base plan"]
    assert rows[0]["book"] == "seed" and rows[1]["book"] == "current"
    assert rows[0]["annual_usd"] == annual_cost(heavy, seed_book()).annual_usd
    assert rows[1]["annual_usd"] == annual_cost(base, app.price_book()).annual_usd
    assert rows[0]["quality_review_annual_usd"] > rows[0]["personalization_annual_usd"]

    delete_scenario(app, "Base plan")
    assert [r["name"] for r in list_scenarios(app)] == ["Heavy review"]
    with pytest.raises(ValueError, match="no saved scenario named 'Base plan'"):
        load_scenario(app, "Base plan")
    with pytest.raises(ValueError, match="no saved scenario"):
        compare(app, ["Base plan"])


def test_save_refuses_bad_input(app: App) -> None:
    save_scenario(app, "Plan", default_scenario())
    with pytest.raises(ValueError, match="already exists"):
        save_scenario(app, "Plan ", default_scenario())
    with pytest.raises(ValueError, match="give the scenario a name"):
        save_scenario(app, "   ", default_scenario())
    with pytest.raises(ValueError, match="at most 80"):
        save_scenario(app, "x" * 81, default_scenario())
    with pytest.raises(ValueError, match="control"):
        save_scenario(app, "bad\u202ename", default_scenario())
    unknown = replace(default_scenario(), tasks={**default_scenario().tasks,
                                                 PERSONALIZATION: TaskPlan("nobody/none-1b", 1, 1)})
    with pytest.raises(ValueError, match="no price for model"):
        save_scenario(app, "Unknown model", unknown)
    assert [r["name"] for r in list_scenarios(app)] == ["Plan"]


def test_corrupt_saved_payload_is_reported(app: App) -> None:
    from core.store.db import session_scope
    from core.store.models import Scenario

    with session_scope(app.engine) as s:
        s.add(Scenario(name="broken", payload={"messages_per_month": -3}))
    with pytest.raises(ValueError, match="saved scenario 'broken' cannot be read"):
        load_scenario(app, "broken")


# ---- the page ---------------------------------------------------------------------------------------------



def _page() -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / "pages" / "scenarios.py"), default_timeout=60)
    at.run()
    return at


def test_page_shows_the_recomputed_table(console_env: Settings) -> None:
    at = _page()
    assert not at.exception
    table = at.dataframe[0].value
    assert list(table["task"]) == ["Message Personalization", "Template Generation", "Quality Review", "Total"]
    assert table["computed"][0] == "$31.50" and table["claimed by the seed"][0] == "$63,000"
    assert table["claimed ÷ computed"][0] == "2,000x"
    captions = " ".join(c.value for c in at.caption)
    assert "Mistral 7B costs \\$31.50 for 45M tokens a year, not \\$63,000 (2,000x)" in captions
    assert "Annual total" in [m.label for m in at.metric]

    at.radio(key="sc_hybrid_book").set_value("current").run()
    assert not at.exception
    assert at.dataframe[0].value["computed"][0] == "$1.55"


def test_page_saves_and_compares(console_env: Settings) -> None:
    at = _page()
    at.slider(key="sc_rate_pct").set_value(10.0).run()
    at.text_input(key="sc_name").set_value("Ten percent *review*").run()
    at.button(key="sc_save").click().run()
    assert not at.exception
    assert "Saved as: Ten percent *review*" in [t.value for t in at.text]

    check = open_app(console_env)
    saved = load_scenario(check, "Ten percent *review*")
    assert saved.review_rate == Decimal("0.1")

    at.button(key="sc_save").click().run()  # same name again
    assert any("already exists" in t.value for t in at.text)
    assert [e.value for e in at.error] == ["Not saved."]

    at.multiselect(key="sc_compare").set_value(["Ten percent *review*"]).run()
    assert not at.exception
    compared = at.dataframe[-1].value
    assert list(compared["scenario"]) == ["Ten percent *review*"]
    assert compared["review rate"][0] == "10.0%"



def test_page_loads_and_deletes_a_saved_scenario(console_env: Settings) -> None:
    check = open_app(console_env)
    save_scenario(check, "Small", replace(default_scenario(), messages_per_month=100, review_rate=Decimal("0.5")))
    at = _page()
    annual = next(m for m in at.metric if m.label == "Annual total")
    assert annual.value == format_usd(annual_cost(default_scenario(routed_models(check.routing, utcnow().date())),
                                                  check.price_book()).annual_usd)
    at.selectbox(key="sc_pick").set_value("Small")
    at.button(key="sc_load").click().run()
    assert not at.exception
    assert at.number_input(key="sc_messages").value == 100
    assert at.slider(key="sc_rate_pct").value == 50.0
    planner = next(m for m in at.metric if m.label == "Annual total")
    assert planner.value == format_usd(annual_cost(load_scenario(check, "Small"), check.price_book()).annual_usd)

    at.button(key="sc_delete").click().run()
    assert not at.exception
    assert list_scenarios(check) == []
