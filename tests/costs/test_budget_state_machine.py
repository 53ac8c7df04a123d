"""Stateful property test of budget reservation: hypothesis drives reserve / settle / release / crash / sweep /
month rollover / cap changes against a real database, and a pure model kept alongside must agree after every step.

Invariants, checked against the database and against the model after every step:
- the stored totals (cap, spent, reserved) of every month equal the model's, and no total is negative;
- `reserved` equals the sum of the month's live holds (reservations in state 'held');
- `spent` equals the sum of the month's ledger `cost_usd` (the ledger stays the record);
- every reservation's state ('held' | 'settled' | 'swept') is the model's, so a swept reservation that is
  settled late does not release its hold a second time;
- a reservation is granted exactly when it fits: spent + reserved + amount <= cap.

The cap invariant, stated precisely. Call a month's *unreserved* spend the cost that landed in it without a live
hold in that month to cover it: the part of a cost above its reservation (providers can bill slightly over an
estimate), the whole cost of a late settle after its hold was swept, and the whole cost of a call reserved in one
month and settled in the next (the ledger row belongs to the month it was written in, the hold to the month it
was taken in). Then:
- with no unreserved spend and the cap never lowered under what was committed: spent + reserved <= cap;
- always: spent + reserved - unreserved <= max(cap, what was committed when the cap was lowered under it).
Unreserved spend is therefore the only way a month can end above its cap, and it is bounded by the overruns.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule, run_state_machine_as_test
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine

from core.costs import budget
from core.llm.errors import BudgetExceededError
from core.store.db import dispose_engine, get_engine
from core.store.migrations import migrate
from core.store.models import UsageEntry, from_nanos, month_of, to_nanos

PG_URL = os.environ.get("TEST_DATABASE_URL", "")
START = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)
THROTTLE_AT = Decimal("0.10")
USD = 1_000_000_000  # nano-dollars per dollar; the model keeps every amount as an exact integer of nanos

amounts = st.integers(min_value=0, max_value=USD // 2)
caps = st.integers(min_value=0, max_value=3 * USD)


@dataclass
class MonthModel:
    cap: int
    spent: int = 0
    reserved: int = 0
    unreserved: int = 0  # spend that landed here without a live hold in this month covering it
    grandfathered: int | None = None  # committed (net of unreserved) when the cap was lowered under it

    @property
    def committed(self) -> int:
        return self.spent + self.reserved

    @property
    def covered(self) -> int:
        return self.committed - self.unreserved


@dataclass
class HoldModel:
    month: str
    amount: int
    expires_at: datetime
    state: str = "held"  # held | settled | swept, as stored
    abandoned: bool = False  # its worker crashed: it will never be settled
    ledgered: bool = False  # its call's ledger row was written (a swept hold can still be settled late)


@dataclass
class Model:
    cap_setting: int
    months: dict[str, MonthModel] = field(default_factory=dict)
    holds: dict[int, HoldModel] = field(default_factory=dict)

    def month(self, name: str) -> MonthModel:
        if name not in self.months:
            self.months[name] = MonthModel(cap=self.cap_setting)
        return self.months[name]


def _no_flush_wait(dbapi_connection: Any, _record: Any) -> None:
    # A throwaway schema needs no durability: not waiting for the WAL flush on each commit (DDL included)
    # keeps a fresh schema per example affordable. Atomicity and locking, what this test is about, are unchanged.
    cursor = dbapi_connection.cursor()
    cursor.execute("SET synchronous_commit = off")
    cursor.close()
    dbapi_connection.commit()


@cache
def _pg_admin() -> Engine:
    """One engine that creates and drops the per-example schemas (disposed when the test ends)."""
    admin = create_engine(PG_URL)
    event.listen(admin, "connect", _no_flush_wait)
    return admin


def _fresh_database() -> tuple[str, str]:
    """A new empty database for one hypothesis example: (url, what to remove afterwards)."""
    if not PG_URL:
        folder = tempfile.mkdtemp(prefix="budget-sm-")
        return f"sqlite:///{folder}/budget.db", folder
    schema = f"sm_{uuid.uuid4().hex[:12]}"
    with _pg_admin().begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    return f"{PG_URL}{sep}options=-csearch_path%3D{schema}", schema


_used_schemas: list[str] = []


def _drop_database(url: str, handle: str) -> None:
    dispose_engine(url)
    if not PG_URL:
        shutil.rmtree(handle, ignore_errors=True)
        return
    _used_schemas.append(handle)  # dropped together when the test ends: one catalog sweep instead of forty


def _drop_used_schemas() -> None:
    # Small groups: one statement dropping forty schemas' tables at once can exhaust the server's lock table
    # ("out of shared memory"; max_locks_per_transaction).
    while _used_schemas:
        group, _used_schemas[:] = _used_schemas[:5], _used_schemas[5:]
        with _pg_admin().begin() as conn:
            conn.execute(text("DROP SCHEMA " + ", ".join(f'"{s}"' for s in group) + " CASCADE"))
    _pg_admin().dispose()


class BudgetMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.url, self._handle = _fresh_database()
        self.engine: Engine = get_engine(self.url)
        if PG_URL:
            event.listen(self.engine, "connect", _no_flush_wait)
        migrate(self.engine)
        self.now = START
        self.model = Model(cap_setting=USD)
        budget.set_cap(self.engine, from_nanos(USD), month=month_of(self.now))
        self.model.month(month_of(self.now))

    def teardown(self) -> None:
        _drop_database(self.url, self._handle)

    # ---- helpers ----
    def _entry(self, cost: int) -> UsageEntry:
        return UsageEntry(created_at=self.now, month=month_of(self.now), task="personalize",
                          model_requested="m", model_answered="m", cost_usd=from_nanos(cost),
                          cost_source="provider")

    def _reserve(self, amount: int) -> int | None:
        """Reserve through the real code; the model predicts the outcome and both must agree."""
        name = month_of(self.now)
        existed = name in self.model.months
        month = self.model.month(name)
        fits = month.committed + amount <= month.cap
        try:
            rid = budget.reserve(self.engine, from_nanos(amount), cap=from_nanos(self.model.cap_setting),
                                 task="personalize", now=self.now)
        except BudgetExceededError as exc:
            assert not fits, f"refused a reservation of {amount} nanos that fits {month}: {exc}"
            if not existed:  # the refusal rolled back the month row it had seeded
                del self.model.months[name]
            return None
        assert fits, f"granted a reservation of {amount} nanos that does not fit {month}"
        assert rid not in self.model.holds
        month.reserved += amount
        self.model.holds[rid] = HoldModel(name, amount, self.now + budget.RESERVATION_LEASE)
        if month.grandfathered is not None and month.covered <= month.cap:
            month.grandfathered = None
        return rid

    def _release_hold(self, hold: HoldModel, state: str) -> None:
        self.model.months[hold.month].reserved -= hold.amount
        hold.state = state

    def _live(self) -> list[int]:
        """Reservations whose worker is alive and has not written the call's ledger row yet."""
        return sorted(r for r, h in self.model.holds.items() if not h.abandoned and not h.ledgered)

    # ---- rules ----
    @rule(amount=amounts)
    def reserve(self, amount: int) -> None:
        self._reserve(amount)

    @rule()
    def reserve_exactly_what_is_left(self) -> None:
        """The boundary: one nano more than what is left is refused, exactly what is left is granted."""
        month = self.model.month(month_of(self.now))
        left = month.cap - month.committed
        if left < 0:
            assert self._reserve(0) is None
            return
        assert self._reserve(left + 1) is None
        assert self._reserve(left) is not None

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data(), mode=st.sampled_from(["under", "exact", "over"]))
    def settle(self, data: st.DataObject, mode: str) -> None:
        rid = data.draw(st.sampled_from(self._live()), label="reservation")
        hold = self.model.holds[rid]
        if mode == "under":
            cost = data.draw(st.integers(0, hold.amount), label="cost")
        elif mode == "exact":
            cost = hold.amount
        else:  # the provider billed over the estimate, by up to 10% plus a little
            cost = data.draw(st.integers(hold.amount + 1, hold.amount + hold.amount // 10 + 1000), label="cost")
        budget.settle(self.engine, rid, self._entry(cost), cap=from_nanos(self.model.cap_setting))
        name = month_of(self.now)
        month = self.model.month(name)
        month.spent += cost
        if hold.state == "held" and hold.month == name:
            month.unreserved += max(0, cost - hold.amount)
        else:  # swept already, or reserved in an earlier month: nothing in this month covered it
            month.unreserved += cost
        if hold.state == "held":
            self._release_hold(hold, "settled")
        hold.ledgered = True

    @rule(data=st.data())
    def settle_without_reservation(self, data: st.DataObject) -> None:
        """A ledger row with no hold (the gateway passes None when an attempt had none)."""
        cost = data.draw(st.integers(0, USD // 100), label="cost")
        budget.settle(self.engine, None, self._entry(cost), cap=from_nanos(self.model.cap_setting))
        month = self.model.month(month_of(self.now))
        month.spent += cost
        month.unreserved += cost

    @precondition(lambda self: bool(self.model.holds))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """Release any reservation, including one already settled or swept (which must change nothing)."""
        rid = data.draw(st.sampled_from(sorted(self.model.holds)), label="reservation")
        budget.release(self.engine, rid)
        hold = self.model.holds[rid]
        if hold.state == "held":
            self._release_hold(hold, "settled")

    @precondition(lambda self: bool(self._live()))
    @rule(data=st.data())
    def crash(self, data: st.DataObject) -> None:
        """The worker holding a reservation dies: it is never settled, only the sweep can return it."""
        rid = data.draw(st.sampled_from(self._live()), label="reservation")
        self.model.holds[rid].abandoned = True

    @rule(seconds=st.integers(0, 900), micros=st.integers(0, 999_999))
    def advance_clock(self, seconds: int, micros: int) -> None:
        self.now += timedelta(seconds=seconds, microseconds=micros)

    def _sweep(self) -> None:
        due = [h for h in self.model.holds.values() if h.state == "held" and h.expires_at < self.now]
        assert budget.sweep(self.engine, self.now) == len(due)
        for hold in due:
            self._release_hold(hold, "swept")

    @rule(jump=st.booleans())
    def sweep(self, jump: bool) -> None:
        if jump:
            self.now += budget.RESERVATION_LEASE + timedelta(seconds=1)
        self._sweep()

    @precondition(lambda self: any(h.state == "held" and h.expires_at >= self.now
                                   for h in self.model.holds.values()))
    @rule(data=st.data())
    def sweep_at_expiry(self, data: st.DataObject) -> None:
        """The lease boundary: a hold is not swept at the instant its lease ends, only a microsecond later."""
        candidates = sorted(r for r, h in self.model.holds.items() if h.state == "held" and h.expires_at >= self.now)
        hold = self.model.holds[data.draw(st.sampled_from(candidates), label="reservation")]
        self.now = hold.expires_at
        self._sweep()
        assert hold.state == "held"
        self.now += timedelta(microseconds=1)
        self._sweep()
        assert hold.state == "swept"

    @rule(minutes=st.integers(0, 120))
    def month_rollover(self, minutes: int) -> None:
        first = self.now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        following = (first + timedelta(days=32)).replace(day=1)
        self.now = following + timedelta(minutes=minutes)
        name = month_of(self.now)
        assert name not in self.model.months, "the clock only moves forward, so the new month is unseen"
        state = budget.budget_state(self.engine, from_nanos(self.model.cap_setting), THROTTLE_AT, name)
        assert (state.spent_usd, state.reserved_usd) == (0, 0), f"{name} did not start empty: {state}"
        assert state.cap_usd == from_nanos(self.model.cap_setting)

    @rule(cap=caps)
    def set_cap(self, cap: int) -> None:
        self._set_cap(cap)

    @rule(delta=st.integers(-USD // 2, USD // 2))
    def move_cap_around_commitments(self, delta: int) -> None:
        """Raise or lower the cap near what is committed, where lowering it under the commitments matters."""
        month = self.model.month(month_of(self.now))
        self._set_cap(max(0, month.committed + delta))

    def _set_cap(self, cap: int) -> None:
        name = month_of(self.now)
        budget.set_cap(self.engine, from_nanos(cap), month=name)
        self.model.cap_setting = cap
        month = self.model.month(name)
        month.cap = cap
        month.grandfathered = month.covered if month.covered > cap else None

    # ---- invariants ----
    @invariant()
    def database_agrees_with_model(self) -> None:
        with self.engine.connect() as conn:
            stored = {r[0]: (int(r[1]), int(r[2]), int(r[3])) for r in conn.execute(
                text("SELECT month, cap_usd, spent_usd, reserved_usd FROM budget_months"))}
            ledger = {r[0]: int(r[1]) for r in conn.execute(
                text("SELECT month, COALESCE(SUM(cost_usd), 0) FROM usage_ledger GROUP BY month"))}
            held = {r[0]: int(r[1]) for r in conn.execute(
                text("SELECT month, COALESCE(SUM(amount_usd), 0) FROM reservations WHERE state = 'held' "
                     "GROUP BY month"))}
            states = {int(r[0]): r[1] for r in conn.execute(text("SELECT id, state FROM reservations"))}
        model = self.model
        assert set(stored) == set(model.months), (stored, model.months)
        assert states == {rid: h.state for rid, h in model.holds.items()}
        for name, month in model.months.items():
            cap, spent, reserved = stored[name]
            assert (cap, spent, reserved) == (month.cap, month.spent, month.reserved), (name, stored[name], month)
            assert cap >= 0 and spent >= 0 and reserved >= 0, (name, stored[name])
            assert spent == ledger.get(name, 0), f"{name}: spent {spent} but the ledger sums to {ledger.get(name)}"
            live = sum(h.amount for h in model.holds.values() if h.month == name and h.state == "held")
            assert reserved == held.get(name, 0) == live, (name, reserved, held.get(name), live)
        assert set(ledger) <= set(model.months)

    @invariant()
    def cap_holds(self) -> None:
        for name, month in self.model.months.items():
            assert month.covered <= max(month.cap, month.grandfathered or 0), (name, month)
            if month.unreserved == 0 and month.grandfathered is None:
                assert month.committed <= month.cap, (name, month)

    @invariant()
    def budget_state_reads_the_same(self) -> None:
        name = month_of(self.now)
        state = budget.budget_state(self.engine, from_nanos(self.model.cap_setting), THROTTLE_AT, name)
        month = self.model.months.get(name, MonthModel(cap=self.model.cap_setting))
        assert state.remaining_usd == from_nanos(month.cap - month.committed)
        assert to_nanos(state.spent_usd) == month.spent and to_nanos(state.reserved_usd) == month.reserved


def test_budget_reservation_state_machine() -> None:
    try:
        run_state_machine_as_test(
            BudgetMachine,
            settings=settings(max_examples=40, stateful_step_count=25, deadline=None,
                              suppress_health_check=[HealthCheck.too_slow]),
        )
    finally:
        if PG_URL:
            _drop_used_schemas()
