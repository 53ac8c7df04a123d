"""AppTest of the Spend page: empty ledger, a ledger with calls, raising the budget, reconciling, export."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from streamlit.testing.v1 import AppTest

from core.app import App
from core.config import PROJECT_ROOT, Settings

PAGE = str(PROJECT_ROOT / "pages/spend.py")



def _page() -> AppTest:
    at = AppTest.from_file(PAGE, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _calls(app: App) -> None:
    async def go() -> None:
        async with app.gateway() as gw:
            await gw.call("personalize", [{"role": "user", "content": "hi"}])
            await gw.call("personalize", [{"role": "user", "content": "hello there"}])
            await gw.call("review", [{"role": "user", "content": "review <b>this</b> " * 60}])

    asyncio.run(go())


def test_empty_ledger_renders_a_sentence_not_charts(console_env: Settings) -> None:
    at = _page()
    labels = [m.label for m in at.metric]
    for label in ("Spent this month", "Monthly budget", "Reserved in flight", "Remaining", "Projected month-end",
                  "Projected year at this rate"):
        assert label in labels
    assert any("No model calls are recorded" in i.value for i in at.info)
    assert len(at.get("plotly_chart")) == 0
    assert len(at.get("download_button")) == 0
    assert any("Normal" in s.value for s in at.success)


def test_with_calls_the_charts_and_breakdowns_appear(console_env: Settings, app: App) -> None:
    _calls(app)
    at = _page()
    assert not any("No model calls are recorded" in i.value for i in at.info)
    # one cumulative chart plus spend and tokens for each of model, task and batch
    assert len(at.get("plotly_chart")) == 1 + 2 * 3
    assert len(at.get("download_button")) == 1
    spent = next(m for m in at.metric if m.label == "Spent this month")
    assert spent.value != "$0.00" and spent.value.startswith("$0.0")
    assert "mistralai/mistral-7b-instruct" in set(at.dataframe[0].value["model"])


def test_raising_the_budget_updates_the_cap(console_env: Settings, app: App) -> None:
    at = _page()
    at.number_input(key="spend_new_cap").set_value(25000.0)
    at.button(key="spend_set_cap").click()
    at.run()
    assert not at.exception
    assert app.budget_cap() == Decimal("25000.00")
    assert app.budget_state().cap_usd == Decimal("25000.00")
    assert any(r"budget is now \$25,000.00 (was \$12,000.00)" in s.value for s in at.success)  # escaped: no LaTeX
    budget = next(m for m in at.metric if m.label == "Monthly budget")
    assert budget.value == "$25,000.00"


def test_lowering_the_budget_below_spend_warns_about_the_ladder(console_env: Settings, app: App) -> None:
    _calls(app)
    at = _page()
    at.number_input(key="spend_new_cap").set_value(0.0)
    at.button(key="spend_set_cap").click()
    at.run()
    assert not at.exception
    assert app.budget_cap() == Decimal("0")
    assert any("ladder is throttled" in w.value and "Stopped" in w.value for w in at.warning)


def test_reconcile_button_shows_both_sides_and_the_difference(console_env: Settings) -> None:
    at = _page()
    at.button(key="spend_reconcile").click()
    at.run()
    assert not at.exception
    values = {m.label: m.value for m in at.metric}
    assert values["Ledger"] == "$0.00" and values["Provider"] == "$0.00"
    assert values["Difference (provider − ledger)"] == "$0.00"
    assert any("matches the ledger" in t.value for t in at.text)
