"""Saved scenarios (save, load, list, compare, delete) and the Scenarios page."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from core.app import App, open_app
from core.config import PROJECT_ROOT, Settings
from core.costs.money import usd
from core.costs.original_plan import (
    PERSONALIZATION,
    QUALITY_REVIEW,
)
from core.costs.planner import TaskPlan, annual_cost, default_scenario, routed_models
from core.costs.prices import seed_book
from core.costs.scenarios import compare, delete_scenario, list_scenarios, load_scenario, save_scenario
from core.store.models import utcnow

# ---- saved scenarios --------------------------------------------------------------------------------------


def test_save_load_list_compare_delete(app: App) -> None:
    base = default_scenario()
    heavy = replace(base, review_rate=Decimal("0.2"), book="seed")
    assert save_scenario(app, "  Base plan ", base) == "Base plan"
    save_scenario(app, "Heavy review", heavy)

    assert load_scenario(app, "Base plan") == base
    assert load_scenario(app, "Heavy review") == heavy
    listed = list_scenarios(app)
    assert [r.name for r in listed] == ["Base plan", "Heavy review"]
    assert listed[1].book == "seed" and listed[1].review_rate == "0.2"

    rows = compare(app, ["Heavy review", "Base plan", "Heavy review"])
    assert [r.scenario for r in rows] == ["Heavy review", "Base plan"]
    assert rows[0].book == "seed" and rows[1].book == "current"
    assert rows[0].annual_usd == annual_cost(heavy, seed_book()).annual_usd
    assert rows[1].annual_usd == annual_cost(base, app.price_book()).annual_usd
    assert rows[0].annual_by_task[QUALITY_REVIEW] > rows[0].annual_by_task[PERSONALIZATION]

    delete_scenario(app, "Base plan")
    assert [r.name for r in list_scenarios(app)] == ["Heavy review"]
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
    assert [r.name for r in list_scenarios(app)] == ["Plan"]


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
    assert table["computed"][0] == "$31.50" and table["claimed in the original cost plan"][0] == "$63,000.00"
    assert table["claimed ÷ computed"][0] == "2,000x"
    captions = " ".join(c.value for c in at.caption)
    assert "Mistral 7B costs \\$31.50 for 45M tokens a year, not \\$63,000.00 (2,000x)" in captions
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
    assert annual.value == usd(annual_cost(default_scenario(routed_models(check.routing, utcnow().date())),
                                                  check.price_book()).annual_usd)
    at.selectbox(key="sc_pick").set_value("Small")
    at.button(key="sc_load").click().run()
    assert not at.exception
    assert at.number_input(key="sc_messages").value == 100
    assert at.slider(key="sc_rate_pct").value == 50.0
    planner = next(m for m in at.metric if m.label == "Annual total")
    assert planner.value == usd(annual_cost(load_scenario(check, "Small"), check.price_book()).annual_usd)

    at.button(key="sc_delete").click().run()
    assert not at.exception
    assert list_scenarios(check) == []
