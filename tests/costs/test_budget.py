"""Reservation keeps concurrent callers under the cap; the ladder and alerts follow the budget."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from core.app import App
from core.costs import budget
from core.llm.errors import BudgetExceededError
from core.store.models import UsageEntry, month_of, utcnow


def _entry(cost: str) -> UsageEntry:
    now = utcnow()
    return UsageEntry(created_at=now, month=month_of(now), task="personalize", model_requested="m",
                      cost_usd=Decimal(cost), cost_source="provider")


def test_reserve_settle_release(app: App) -> None:
    cap = Decimal("1")
    budget.set_cap(app.engine, cap)
    rid = budget.reserve(app.engine, Decimal("0.4"), cap=cap)
    state = budget.budget_state(app.engine, cap, Decimal("0.1"))
    assert state.reserved_usd == Decimal("0.4") and state.spent_usd == 0
    budget.settle(app.engine, rid, _entry("0.1"), cap=cap)
    state = budget.budget_state(app.engine, cap, Decimal("0.1"))
    assert state.reserved_usd == 0 and state.spent_usd == Decimal("0.1")
    with pytest.raises(BudgetExceededError, match="cannot cover"):
        budget.reserve(app.engine, Decimal("0.95"), cap=cap)


def test_64_concurrent_reservations_never_overspend(app: App) -> None:
    cap = Decimal("1.00")
    budget.set_cap(app.engine, cap)
    granted: list[int] = []
    refused: list[Exception] = []
    lock = threading.Lock()

    def worker() -> None:
        try:
            rid = budget.reserve(app.engine, Decimal("0.05"), cap=cap)
            budget.settle(app.engine, rid, _entry("0.03"), cap=cap)
            with lock:
                granted.append(rid)
        except BudgetExceededError as exc:
            with lock:
                refused.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(64)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    state = budget.budget_state(app.engine, cap, Decimal("0.1"))
    assert len(granted) + len(refused) == 64
    assert state.spent_usd == Decimal("0.03") * len(granted)
    assert state.spent_usd + state.reserved_usd <= cap
    assert refused, "a 1.00 cap cannot take 64 calls of up to 0.05"


def test_sweep_returns_holds_of_crashed_workers(app: App) -> None:
    cap = Decimal("1")
    budget.set_cap(app.engine, cap)
    rid = budget.reserve(app.engine, Decimal("0.9"), cap=cap)
    assert budget.sweep(app.engine) == 0
    assert budget.sweep(app.engine, now=utcnow() + budget.RESERVATION_LEASE + timedelta(seconds=1)) == 1
    assert budget.budget_state(app.engine, cap, Decimal("0.1")).reserved_usd == 0
    budget.settle(app.engine, rid, _entry("0.2"), cap=cap)  # the late settle must not release twice
    state = budget.budget_state(app.engine, cap, Decimal("0.1"))
    assert state.reserved_usd == 0 and state.spent_usd == Decimal("0.2")


@pytest.mark.parametrize(
    ("spent", "level", "alert"),
    [("0.50", "normal", None), ("0.85", "normal", "80%"), ("0.91", "review_top_only", "90%"),
     ("0.96", "template_only", "90%"), ("1.00", "stopped", "exhausted")],
)
def test_ladder_and_alerts(spent: str, level: str, alert: str | None) -> None:
    state = budget.BudgetState("2026-11", Decimal("1"), Decimal(spent), Decimal(0), Decimal("0.10"))
    assert state.level == level
    if alert is None:
        assert state.alerts == []
    else:
        assert alert in state.alerts[0]


def test_months_are_separate(app: App) -> None:
    cap = Decimal("1")
    budget.set_cap(app.engine, cap)
    budget.reserve(app.engine, Decimal("0.9"), cap=cap)
    next_month = utcnow().replace(day=1) + timedelta(days=40)
    budget.reserve(app.engine, Decimal("0.9"), cap=cap, now=next_month)
    assert budget.budget_state(app.engine, cap, Decimal("0.1"), month_of(next_month)).reserved_usd == Decimal("0.9")
