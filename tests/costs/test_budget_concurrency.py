"""Concurrent calls through the gateway never overspend the month, and nothing is sent that the ledger cannot record.

64 calls race for a cap that fits only some of them, once as coroutines on one event loop and once as 8 threads
each running its own loop; the simulator adds latency so the calls are really in flight together. Then the
database is broken for writes in real ways (another connection holding the write lock, a missing table) to check
that a call is refused before it is sent, and that a ledger write failing after the send is never silent.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from core.app import App
from core.costs import budget
from core.llm.client import ChatResult
from core.llm.errors import BudgetExceededError
from core.llm.tokens import count_messages
from core.store.db import is_sqlite
from core.store.models import from_nanos, utcnow

TASK = "personalize"
MAX_TOKENS = 8  # keeps the worst case close to the real cost, so many holds fit under the cap at once
CALLS = 64
# A prompt long enough that its input cost dominates the worst case (the simulator answers it in a token or two).
MESSAGES = [{"role": "user", "content": "Write one short opener for a founder in logistics. " * 30}]


def _sent(app: App) -> int:
    assert app.simulator is not None
    return app.simulator.requests["POST completions"]


def _race_cap(app: App) -> tuple[Decimal, Decimal]:
    """(cap, worst case of one call): a cap holding dozens of worst cases at once but not all 64 real costs.

    Any 64th call would find at least 63 calls' real cost (>= the prompt-only cost) committed, and that plus its
    own worst case exceeds this cap, so at least one call must be refused however the race goes.
    """
    book = app.price_book()
    prompt = count_messages(MESSAGES)
    route = app.routing.route(TASK, utcnow().date())
    worst = max(book.cost(m, prompt, MAX_TOKENS) for m in route.models if book.has(m))
    floor = min(book.cost(m, prompt, 0) for m in route.models if book.has(m))
    cap = worst + 60 * floor
    assert cap >= 16 * worst, "prices changed: the race would no longer overlap many holds"
    return cap, worst


async def _calls(app: App, n: int) -> list[Any]:
    async with app.gateway() as gw:
        return await asyncio.gather(
            *(gw.call(TASK, MESSAGES, max_tokens=MAX_TOKENS) for _ in range(n)), return_exceptions=True
        )


def _ledger(engine: Engine) -> tuple[int, Decimal, set[str]]:
    with engine.connect() as conn:
        count, total = conn.execute(text("SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM usage_ledger")).one()
        statuses = {r[0] for r in conn.execute(text("SELECT DISTINCT status FROM usage_ledger"))}
    return int(count), from_nanos(total), statuses


def _held(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM reservations WHERE state = 'held'")).scalar_one())


def _check_race(app: App, results: list[Any], cap: Decimal) -> None:
    ok = [r for r in results if isinstance(r, ChatResult)]
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    others = [r for r in results if not isinstance(r, ChatResult | BudgetExceededError)]
    assert not others, f"calls failed otherwise than by the budget: {others[:3]}"
    assert len(ok) + len(refused) == CALLS
    assert ok and refused, (len(ok), len(refused))
    assert _sent(app) == len(ok), "a refused call reached the provider, or a sent one was not counted"
    count, total, statuses = _ledger(app.engine)
    assert count == len(ok) and statuses == {"ok"}
    assert total == sum((r.cost_usd for r in ok), Decimal(0))
    assert total <= cap, f"the month overspent: {total} > {cap}"
    state = app.budget_state()
    assert state.spent_usd == total and state.reserved_usd == 0
    assert _held(app.engine) == 0


def test_64_concurrent_gateway_calls_never_overspend(app: App) -> None:
    assert app.simulator is not None
    app.simulator.faults.latency_ms = 20
    cap, _ = _race_cap(app)
    app.set_budget_cap(cap)
    results = asyncio.run(_calls(app, CALLS))
    _check_race(app, results, cap)


def test_8_threads_with_their_own_loops_never_overspend(app: App) -> None:
    assert app.simulator is not None
    app.simulator.faults.latency_ms = 20
    cap, _ = _race_cap(app)
    app.set_budget_cap(cap)
    results: list[Any] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        got = asyncio.run(_calls(app, CALLS // 8))
        with lock:
            results.extend(got)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not any(t.is_alive() for t in threads)
    _check_race(app, results, cap)


@contextmanager
def _short_lock_wait(engine: Engine) -> Iterator[None]:
    """New connections of `engine` give up on a held lock after 200 ms instead of the usual 30 s."""

    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        if is_sqlite(engine):
            cursor.execute("PRAGMA busy_timeout=200")
        else:
            cursor.execute("SET lock_timeout = '200ms'")
            dbapi_connection.commit()
        cursor.close()

    event.listen(engine, "connect", on_connect)
    engine.dispose()  # pooled connections were opened without it
    try:
        yield
    finally:
        event.remove(engine, "connect", on_connect)
        engine.dispose()


@contextmanager
def _write_lock_held_elsewhere(db_url: str) -> Iterator[None]:
    """Another connection (another process, as far as the database knows) holds the write lock."""
    if db_url.startswith("sqlite"):
        other = sqlite3.connect(db_url.split("///", 1)[1], isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            yield
        finally:
            other.execute("ROLLBACK")
            other.close()
        return
    other_engine = create_engine(db_url)
    try:
        with other_engine.connect() as conn, conn.begin():
            conn.execute(text("LOCK TABLE budget_months, reservations IN EXCLUSIVE MODE"))
            yield
    finally:
        other_engine.dispose()


def test_locked_database_refuses_before_sending(app: App, db_url: str) -> None:
    app.set_budget_cap(Decimal("10"))
    with (
        _short_lock_wait(app.engine),
        _write_lock_held_elsewhere(db_url),
        pytest.raises(OperationalError, match=r"(?i)database is locked|lock timeout"),
    ):
        asyncio.run(_calls_one(app))
    assert _sent(app) == 0, "a call was sent although its reservation could not be written"
    assert _ledger(app.engine)[0] == 0
    state = app.budget_state()
    assert state.reserved_usd == 0 and state.spent_usd == 0
    # Once the lock is gone the same call goes through: the failure was the lock, not the call.
    asyncio.run(_calls_one(app))
    assert _sent(app) == 1 and _ledger(app.engine)[0] == 1


def test_missing_reservations_table_refuses_before_sending(app: App) -> None:
    app.set_budget_cap(Decimal("10"))
    with app.engine.begin() as conn:
        conn.execute(text("DROP TABLE reservations"))
    with pytest.raises(DBAPIError, match="reservations"):
        asyncio.run(_calls_one(app))
    assert _sent(app) == 0
    assert _ledger(app.engine)[0] == 0
    assert app.budget_state().reserved_usd == 0, "the failed reservation must roll back its hold too"


def test_ledger_write_failing_after_the_send_is_loud_and_keeps_the_hold(app: App) -> None:
    """The reservation succeeded, so the call went out; the ledger row then cannot be written. The caller must
    get the error (not a result as if all were well), and the worst-case hold must stay counted against the
    budget until the sweep, rather than be released with no spend recorded."""
    app.set_budget_cap(Decimal("10"))
    with app.engine.begin() as conn:
        conn.execute(text("DROP TABLE usage_ledger"))
    with pytest.raises(DBAPIError, match="usage_ledger"):
        asyncio.run(_calls_one(app))
    assert _sent(app) == 1
    state = app.budget_state()
    assert state.spent_usd == 0 and state.reserved_usd > 0
    assert _held(app.engine) == 1
    assert budget.sweep(app.engine, utcnow() + budget.RESERVATION_LEASE) == 1
    assert app.budget_state().reserved_usd == 0


async def _calls_one(app: App) -> ChatResult:
    async with app.gateway() as gw:
        return await gw.call(TASK, MESSAGES, max_tokens=MAX_TOKENS)
