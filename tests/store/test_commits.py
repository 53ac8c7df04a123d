"""The group committer: many writes per transaction, each atomic on its own, results only after the commit."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError

import core.store.commits
from core.app import App
from core.costs import budget
from core.llm.errors import BudgetExceededError
from core.store.commits import GroupCommitter


def _probe(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE probe (id INTEGER PRIMARY KEY, v VARCHAR(20) NOT NULL)"))


def _rows(engine: Engine) -> list[tuple[int, str]]:
    with engine.connect() as conn:
        return [(int(r[0]), str(r[1])) for r in conn.execute(text("SELECT id, v FROM probe ORDER BY id"))]


def _insert(i: int, v: str = "ok") -> Callable[[Connection], int]:
    def write(conn: Connection) -> int:
        conn.execute(text("INSERT INTO probe (id, v) VALUES (:i, :v)"), {"i": i, "v": v})
        return i
    return write


async def _held_group(committer: GroupCommitter, writes: list[Callable[[Connection], object]]) -> list[object]:
    """Submit `writes` while a first write holds the committer, so they all land in its next transaction."""
    entered, gate = threading.Event(), threading.Event()

    def hold(_conn: Connection) -> None:
        entered.set()
        gate.wait(10)

    first = asyncio.ensure_future(committer(hold))
    assert await asyncio.to_thread(entered.wait, 10), "the committer never ran the first write"
    rest = [asyncio.ensure_future(committer(w)) for w in writes]
    await asyncio.sleep(0)
    gate.set()
    await first
    return await asyncio.gather(*rest, return_exceptions=True)


def test_writes_submitted_together_share_one_transaction(app: App) -> None:
    _probe(app.engine)

    async def run() -> tuple[list[object], int, int]:
        async with GroupCommitter(app.engine) as committer:
            results = await _held_group(committer, [_insert(i) for i in range(1, 41)])
            return results, committer.transactions, committer.writes

    results, transactions, writes = asyncio.run(run())
    assert results == list(range(1, 41))
    assert (transactions, writes) == (2, 41), "the 40 writes queued behind the first commit as one transaction"
    assert [i for i, _ in _rows(app.engine)] == list(range(1, 41))


def test_a_failing_write_is_rolled_back_alone_and_its_caller_gets_the_error(app: App) -> None:
    _probe(app.engine)

    def half_then_fail(conn: Connection) -> None:
        conn.execute(text("INSERT INTO probe (id, v) VALUES (100, 'partial')"))
        raise ValueError("second statement refused")

    async def run() -> list[object]:
        async with GroupCommitter(app.engine) as committer:
            return await _held_group(committer, [_insert(1), half_then_fail, _insert(2), _insert(1, "duplicate")])

    first, failed, second, duplicate = asyncio.run(run())
    assert (first, second) == (1, 2)
    assert isinstance(failed, ValueError) and "refused" in str(failed)
    assert duplicate.__class__.__name__ == "IntegrityError"
    assert _rows(app.engine) == [(1, "ok"), (2, "ok")], "the failed writes left nothing, the others all stand"


def test_a_failed_commit_fails_every_write_of_the_transaction(app: App) -> None:
    with app.engine.begin() as conn:
        conn.execute(text("CREATE TABLE parent (id INTEGER PRIMARY KEY)"))
        conn.execute(text("CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id) "
                          "DEFERRABLE INITIALLY DEFERRED)"))  # checked at COMMIT, which then fails
    _probe(app.engine)

    def orphan(conn: Connection) -> None:
        conn.execute(text("INSERT INTO child (id, parent_id) VALUES (1, 999)"))

    async def run() -> list[object]:
        async with GroupCommitter(app.engine) as committer:
            results = await _held_group(committer, [_insert(1), orphan, _insert(2)])
            after = await committer(_insert(3))  # the committer goes on after a failed transaction
            return [*results, after]

    *failed, after = asyncio.run(run())
    assert all("foreign key" in str(f).lower() for f in failed), "no write is reported done before its commit"
    assert after == 3 and _rows(app.engine) == [(3, "ok")]


def test_closing_commits_what_was_submitted_and_refuses_more(app: App) -> None:
    _probe(app.engine)

    async def run() -> GroupCommitter:
        committer = GroupCommitter(app.engine)
        pending = [asyncio.ensure_future(committer(_insert(i))) for i in range(1, 6)]
        await asyncio.sleep(0)
        await committer.aclose()
        assert await asyncio.gather(*pending) == [1, 2, 3, 4, 5]
        return committer

    committer = asyncio.run(run())
    assert len(_rows(app.engine)) == 5
    with pytest.raises(RuntimeError, match="closed"):
        asyncio.run(committer(_insert(6)))


def test_reservations_grouped_in_one_transaction_stop_at_the_cap(app: App) -> None:
    cap = Decimal("1.00")
    budget.set_cap(app.engine, cap)

    def hold(conn: Connection) -> int:
        return budget.reserve_on(conn, Decimal("0.15"), cap=cap)

    async def run() -> list[object]:
        async with GroupCommitter(app.engine) as committer:
            return await _held_group(committer, [hold] * 10)

    results = asyncio.run(run())
    granted = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, BudgetExceededError)]
    assert (len(granted), len(refused)) == (6, 4), "6 x 0.15 fits under 1.00; the 7th would not"
    state = app.budget_state()
    assert state.reserved_usd == Decimal("0.90")


def test_a_transaction_the_database_rolled_back_is_run_once_more(app: App,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(app.engine)
    begins = {"n": 0}
    real = core.store.commits.immediate

    @contextmanager
    def locked_at_first(engine: Engine) -> Iterator[Connection]:
        begins["n"] += 1
        if begins["n"] == 1:  # SQLite's answer when the write lock stayed taken for the whole busy timeout
            raise OperationalError("BEGIN IMMEDIATE", {}, Exception("database is locked"))
        with real(engine) as conn:
            yield conn

    monkeypatch.setattr(core.store.commits, "immediate", locked_at_first)

    async def run() -> list[object]:
        async with GroupCommitter(app.engine) as committer:
            return await asyncio.gather(committer(_insert(1)), committer(_insert(2)))

    assert sorted(asyncio.run(run())) == [1, 2] and begins["n"] >= 2
    assert [i for i, _ in _rows(app.engine)] == [1, 2]


def test_a_commit_that_may_have_landed_is_not_run_again(app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    _probe(app.engine)
    real = core.store.commits.immediate

    @contextmanager
    def commit_then_lose_the_connection(engine: Engine) -> Iterator[Connection]:
        with real(engine) as conn:
            yield conn
        raise OperationalError("COMMIT", {}, Exception("server closed the connection"), connection_invalidated=True)

    monkeypatch.setattr(core.store.commits, "immediate", commit_then_lose_the_connection)
    runs = {"n": 0}

    def counted(conn: Connection) -> int:
        runs["n"] += 1
        return _insert(1)(conn)

    async def run() -> list[object]:
        async with GroupCommitter(app.engine) as committer:
            return await asyncio.gather(committer(counted), return_exceptions=True)

    [error] = asyncio.run(run())
    assert isinstance(error, OperationalError), "the caller hears of the failure"
    assert runs["n"] == 1 and _rows(app.engine) == [(1, "ok")], "not run again: that could record a call twice"
