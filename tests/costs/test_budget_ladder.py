"""The throttle ladder and the pause read settled spend plus holds in flight correctly (issue 12, money).

A hold is a call's worst case; most of it comes back at settlement. With a small budget and a batch of
concurrency 16, the holds in flight alone can fill the cap while little is spent: the batch must neither pause
nor turn to template-only then, only when settled spend leaves no room for the next call.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from sqlalchemy import text

from core.app import App
from core.batches.creation import create_batch
from core.batches.lifecycle import start_batch
from core.batches.runs import run_pending
from core.costs import budget
from core.llm.errors import BudgetExceededError
from core.messages.personalize import options_for
from core.people.prospects import list_prospects
from core.sim.simulator import Faults
from core.store.models import UsageEntry, from_nanos, month_of, utcnow


def _entry(cost: str) -> UsageEntry:
    now = utcnow()
    return UsageEntry(created_at=now, month=month_of(now), task="personalize", model_requested="m",
                      cost_usd=Decimal(cost), cost_source="provider")


def test_a_small_budget_is_spent_before_a_concurrent_batch_pauses(demo_app: App) -> None:
    cap = Decimal("0.02")
    demo_app.set_budget_cap(cap)
    assert demo_app.simulator is not None
    demo_app.simulator.faults = Faults(latency_ms=30)  # calls overlap: up to 16 holds in flight at once
    ids = [p.id for p in list_prospects(demo_app)]
    batch = create_batch(demo_app, ids, concurrency=16)  # type: ignore[arg-type]
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    [report] = run_pending(demo_app, "w1")
    assert report.outcome == "paused_budget", "220 prospects cost more than $0.02"
    state = demo_app.budget_state()
    with demo_app.engine.connect() as conn:
        largest_hold = from_nanos(conn.execute(text("SELECT MAX(amount_usd) FROM reservations")).scalar())
    unspent = state.cap_usd - state.spent_usd
    # It may pause only when the next call's worst case does not fit beside what was really spent.
    assert unspent < largest_hold, (
        f"paused with ${unspent} of ${cap} unspent ({unspent / cap:.0%}); one call holds at most ${largest_hold}")
    assert state.reserved_usd == 0


def test_holds_in_flight_count_at_what_calls_really_cost(app: App) -> None:
    cap = Decimal("1")
    budget.set_cap(app.engine, cap)
    for _ in range(10):  # ten calls held at 0.05 each settled at a tenth of their hold
        rid = budget.reserve(app.engine, Decimal("0.05"), cap=cap)
        budget.settle(app.engine, rid, _entry("0.005"), cap=cap)
    for _ in range(19):  # nineteen calls of the same kind in flight: 0.95 held
        budget.reserve(app.engine, Decimal("0.05"), cap=cap)
    state = app.budget_state()
    assert state.spent_usd == Decimal("0.05") and state.reserved_usd == Decimal("0.95")
    # Expected: 0.05 spent + 0.95 x 0.1 in flight = 14.5% of the cap used: the ladder stays normal.
    assert state.level == budget.LEVEL_NORMAL, state.describe_level()
    assert options_for(app, step="connection_request").budget_level == budget.LEVEL_NORMAL
    assert state.alerts == []


def test_a_hold_that_fits_only_once_holds_in_flight_settle_is_busy_not_exhausted(app: App) -> None:
    cap = Decimal("1")
    budget.set_cap(app.engine, cap)
    budget.reserve(app.engine, Decimal("0.9"), cap=cap)
    with pytest.raises(budget.BudgetBusyError, match="in flight"):
        budget.reserve(app.engine, Decimal("0.2"), cap=cap)
    rid = budget.reserve(app.engine, Decimal("0.05"), cap=cap)
    budget.settle(app.engine, rid, _entry("0.95"), cap=cap)
    with pytest.raises(BudgetExceededError) as info:  # settled spend alone leaves no room: a real stop
        budget.reserve(app.engine, Decimal("0.2"), cap=cap)
    assert not isinstance(info.value, budget.BudgetBusyError)
