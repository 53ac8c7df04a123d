"""AppTest of the Spend and home pages for the money holes of issue 12: refused provider figures, unreconciled
timed-out calls, and the reconcile button settling them."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from streamlit.testing.v1 import AppTest

from core.app import App
from core.config import PROJECT_ROOT, Settings
from core.llm.client import RetryPolicy
from core.llm.errors import DeadlineExceededError
from core.sim.simulator import Scripted
from core.store.models import utcnow

MESSAGES = [{"role": "user", "content": "Write one short opener."}]


def _page(path: str) -> AppTest:
    at = AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    return at


def _timed_out_call(app: App) -> None:
    assert app.simulator is not None
    app.simulator.faults.stall_s = 5.0
    app.simulator.script(Scripted("billed_stall"))

    async def go() -> None:
        async with app.gateway(RetryPolicy(deadline_s=0.3, max_attempts=1)) as gw:
            await gw.call("personalize", MESSAGES)

    with pytest.raises(DeadlineExceededError):
        asyncio.run(go())


def _negative_cost_call(app: App) -> None:
    assert app.simulator is not None
    original = app.simulator._chat

    def chat(raw: bytes):  # type: ignore[no-untyped-def]
        resp = original(raw)
        import json

        body = json.loads(resp.body)
        body["usage"]["cost"] = -0.5  # a provider (or a proxy) claiming to pay us back
        resp.body = json.dumps(body).encode()
        return resp

    app.simulator._chat = chat  # type: ignore[method-assign]

    async def go() -> None:
        async with app.gateway() as gw:
            await gw.call("personalize", MESSAGES)

    asyncio.run(go())
    app.simulator._chat = original  # type: ignore[method-assign]


def test_spend_page_lists_refused_figures_and_unreconciled_calls(console_env: Settings, app: App) -> None:
    _negative_cost_call(app)
    _timed_out_call(app)
    at = _page("pages/spend.py")
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Unreconciled calls"] == "1" and metrics["Refused provider figures"] == "1"
    assert any("timed out after they were sent" in w.value for w in at.warning)
    refused = next(w.value for w in at.warning if "cannot be right" in w.value)
    assert "booked at its hold" in refused
    table = next(d.value for d in at.dataframe if "why" in d.value.columns)
    assert "cost is negative" in table["why"][0] and '"cost": -0.5' in table["why"][0]


def test_reconcile_button_settles_unreconciled_calls(console_env: Settings, app: App) -> None:
    _timed_out_call(app)
    with app.engine.begin() as conn:  # /key counts a call a little after it ends: reconcile waits a minute
        conn.execute(text("UPDATE usage_ledger SET created_at = :t"),
                     {"t": (utcnow() - timedelta(minutes=2)).replace(tzinfo=None)})
    at = _page("pages/spend.py")
    assert {m.label: m.value for m in at.metric}["Unreconciled calls"] == "1"
    at.button(key="spend_reconcile").click()
    at.run()
    assert not at.exception
    assert any("1 open" in t.value and "0 still open" in t.value for t in at.text), [t.value for t in at.text]
    assert {m.label: m.value for m in at.metric}["Unreconciled calls"] == "0"


def test_home_warns_about_unreconciled_calls(console_env: Settings, app: App) -> None:
    _timed_out_call(app)
    at = _page("pages/home.py")
    assert any("1 call timed out after it was sent" in w.value for w in at.warning), [w.value for w in at.warning]
    assert app.budget_state().spent_usd > Decimal(0)
