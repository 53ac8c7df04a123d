"""Every attempt through the gateway lands in the ledger, failures included, with spend settled."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from sqlmodel import select

from core.app import App
from core.llm.client import RetryPolicy
from core.llm.errors import BadRequestError, BudgetExceededError
from core.sim.simulator import Scripted
from core.store.db import session_scope
from core.store.models import UsageEntry

FAST = RetryPolicy(backoff_base_s=0.001, backoff_cap_s=0.002)


def _ledger(app: App) -> list[UsageEntry]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(UsageEntry).order_by(UsageEntry.id)).all())


def _call(app: App, task: str = "personalize", **kw):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with app.gateway(FAST) as gw:
            return await gw.call(task, [{"role": "user", "content": "hello"}], **kw)

    return asyncio.run(go())


def test_success_is_recorded_with_provider_cost(app: App) -> None:
    result = _call(app)
    [row] = _ledger(app)
    assert row.status == "ok" and row.task == "personalize"
    assert row.model_requested == row.model_answered == "mistralai/mistral-7b-instruct"
    assert row.cost_usd == result.cost_usd and row.cost_source == "provider"
    assert row.input_tokens == result.prompt_tokens and row.provider == "simulator"
    state = app.budget_state()
    assert state.spent_usd == result.cost_usd and state.reserved_usd == 0


def test_failed_attempts_are_recorded_too(app: App) -> None:
    assert app.simulator is not None
    app.simulator.script(Scripted(503), Scripted(429, retry_after=0))
    _call(app)
    assert [r.status for r in _ledger(app)] == ["http_503", "http_429", "ok"]
    assert [r.attempt for r in _ledger(app)] == [1, 2, 3]
    assert app.budget_state().reserved_usd == 0


def test_rejected_request_is_recorded_and_not_retried(app: App) -> None:
    assert app.simulator is not None
    app.simulator.script(Scripted(400, message="bad"))
    with pytest.raises(BadRequestError):
        _call(app)
    assert [r.status for r in _ledger(app)] == ["http_400"]


def test_no_call_is_sent_when_the_budget_cannot_cover_it(app: App) -> None:
    assert app.simulator is not None
    app.set_budget_cap(Decimal("0.000001"))
    with pytest.raises(BudgetExceededError):
        _call(app, "review")
    assert app.simulator.requests["POST completions"] == 0
    assert _ledger(app) == []


def test_batch_and_prospect_references(app: App) -> None:
    from core.costs.gateway import CallContext

    _call(app, context=CallContext(batch_id=7, prospect_id=3))
    [row] = _ledger(app)
    assert (row.batch_id, row.prospect_id) == (7, 3)


def test_a_call_is_charged_to_the_month_its_hold_was_taken_in(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from datetime import UTC, datetime

    import core.costs.gateway as gateway
    from core.costs import budget

    state = {"reserved": False}
    reserve = budget.reserve_on

    def reserve_then_midnight(*args, **kwargs):  # type: ignore[no-untyped-def]
        rid = reserve(*args, **kwargs)
        state["reserved"] = True  # the hold is taken before midnight; the answer arrives after it
        return rid

    def clock() -> datetime:
        if state["reserved"]:
            return datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
        return datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)

    monkeypatch.setattr(gateway, "utcnow", clock)
    monkeypatch.setattr(budget, "reserve_on", reserve_then_midnight)
    _call(app)
    [row] = _ledger(app)
    assert row.month == "2026-11" and row.created_at.month == 12
    november = app.budget_state("2026-11")
    assert november.reserved_usd == 0 and november.spent_usd == row.cost_usd
    assert app.budget_state("2026-12").spent_usd == 0
