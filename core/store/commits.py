"""Group commit: the small write transactions of many concurrent model calls, committed together.

Why: every model call writes twice (the reservation before it, the ledger row and settlement after it) and
every batch item once more (its message and final state). Run as a transaction each on a thread each, those
writes queue for SQLite's single write lock and its busy-wait sleeps, and for the thread pool; at a batch's
concurrency they, not the model, set the pace. The committer runs every write submitted while the previous
transaction was committing as one transaction, on one thread of its own.

What each write keeps: one that fails (a reservation the budget cannot cover, a database error) is rolled back
alone and its caller gets the exception, the others are committed; and its result reaches the caller only
after the commit, so nobody acts on a write that was not stored. If the transaction itself fails (a lock
timeout, a deadlock victim on PostgreSQL) and was rolled back whole, it is run once more; otherwise, or if it
fails again, every write of it gets the error.

Threads without an event loop (the worker's heartbeat) hand their writes to the same committer with
`submit`, so a process has one writer while a batch runs, never a second transaction racing it for the lock.

A write is a function of the connection that touches nothing else, since it may run more than once (earlier
runs rolled back), and lets database errors propagate (one swallowed on PostgreSQL leaves the transaction
aborted, failing the whole group).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import DBAPIError, OperationalError

from core.store.db import immediate

log = logging.getLogger("sam.commits")

T = TypeVar("T")
Write = Callable[[Connection], T]

MAX_WRITES = 256  # per transaction: bounds how long one transaction holds the write lock


class _Pending:
    __slots__ = ("future", "loop", "write")

    def __init__(self, write: Write[Any], loop: asyncio.AbstractEventLoop | None,
                 future: asyncio.Future[Any] | concurrent.futures.Future[Any]) -> None:
        self.write = write
        self.loop = loop  # None for a thread's write (`submit`): its future is thread-safe
        self.future = future


Outcome = tuple[_Pending, Any, BaseException | None]  # the write, its result, or the error it raised


class GroupCommitter:
    """Runs writes (functions of a connection inside a transaction) for async callers, many per transaction."""

    def __init__(self, engine: Engine, *, max_writes: int = MAX_WRITES) -> None:
        self.engine = engine
        self.max_writes = max_writes
        self._queue: queue.SimpleQueue[_Pending | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False
        self.transactions = 0
        self.writes = 0

    async def __call__(self, write: Write[T]) -> T:
        """Run `write(conn)` in a transaction shared with other writes; returns its result once committed."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._put(_Pending(write, loop, future))
        return await future

    def submit(self, write: Write[T]) -> concurrent.futures.Future[T]:
        """`write` from any thread, event loop or not: a future that resolves once it is committed."""
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        self._put(_Pending(write, None, future))
        return future

    @property
    def closed(self) -> bool:
        return self._closed

    def _put(self, pending: _Pending) -> None:
        with self._lock:
            if self._closed:
                raise RuntimeError("the committer is closed")
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="group-commit", daemon=True)
                self._thread.start()
            self._queue.put(pending)

    async def aclose(self) -> None:
        """Commit what was submitted, then stop the thread."""
        with self._lock:
            self._closed = True
            thread, self._thread = self._thread, None
            if thread is not None:
                self._queue.put(None)
        if thread is not None:
            await asyncio.to_thread(thread.join)

    async def __aenter__(self) -> GroupCommitter:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            group = [first]
            stop = False
            while len(group) < self.max_writes:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                group.append(nxt)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Pending]) -> None:
        outcomes: list[Outcome]
        try:
            try:
                outcomes = self._attempt(group)
            except Exception as exc:
                if not _rolled_back(exc):
                    raise
                log.warning("group commit rolled back; trying again", extra={"fields": {
                    "writes": len(group), "error": repr(exc)[:300]}})
                outcomes = self._attempt(group)
        except BaseException as exc:  # never leave a caller waiting, whatever happened
            log.error("group commit failed", extra={"fields": {"writes": len(group), "error": repr(exc)[:300]}})
            outcomes = [(pending, None, exc) for pending in group]
        self.transactions += 1
        self.writes += len(group)
        by_loop: dict[asyncio.AbstractEventLoop, list[Outcome]] = {}
        threads: list[Outcome] = []
        for outcome in outcomes:
            loop = outcome[0].loop
            if loop is None:
                threads.append(outcome)
            else:
                by_loop.setdefault(loop, []).append(outcome)
        _deliver(threads)
        for loop, delivered in by_loop.items():
            with contextlib.suppress(RuntimeError):  # that loop has closed: its callers are gone
                loop.call_soon_threadsafe(_deliver, delivered)

    def _attempt(self, group: list[_Pending]) -> list[Outcome]:
        try:
            return self._transaction(group, isolate=False)
        except _WriteFailed as failed:  # rolled back; a lone write's error is final, a group runs again
            if len(group) == 1:
                return [(group[0], None, failed.__cause__)]
            return self._transaction(group, isolate=True)

    def _transaction(self, group: list[_Pending], *, isolate: bool) -> list[Outcome]:
        """Run the group in one transaction. Most writes succeed, so the first try skips the savepoints (two
        statements a write); a failure then costs one rolled-back try."""
        outcomes: list[Outcome] = []
        with immediate(self.engine) as conn:
            for pending in group:
                if not isolate:
                    try:
                        outcomes.append((pending, pending.write(conn), None))
                    except Exception as exc:
                        raise _WriteFailed from exc
                    continue
                savepoint = conn.begin_nested()
                try:
                    value = pending.write(conn)
                except Exception as exc:
                    savepoint.rollback()
                    outcomes.append((pending, None, exc))
                else:
                    savepoint.commit()
                    outcomes.append((pending, value, None))
        return outcomes


def _rolled_back(exc: Exception) -> bool:
    """A transaction the database is known to have rolled back whole, worth one more try: SQLite's lock wait
    ran out, or PostgreSQL chose it as a deadlock victim or failed its serialization. Not a lost connection,
    after which a COMMIT may have landed: running the writes again could then record a call twice."""
    if not isinstance(exc, DBAPIError) or exc.connection_invalidated:
        return False
    if getattr(exc.orig, "sqlstate", None) in ("40001", "40P01"):
        return True
    return isinstance(exc, OperationalError) and "database is locked" in str(exc.orig)


class _WriteFailed(Exception):
    """A write of a group run without savepoints raised: the transaction is rolled back and run again."""


def _deliver(outcomes: list[Outcome]) -> None:
    for pending, value, error in outcomes:
        if pending.future.done():  # the caller was cancelled; the write stands regardless
            continue
        if error is None:
            pending.future.set_result(value)
        elif isinstance(error, StopIteration):  # the one exception a future refuses to carry
            pending.future.set_exception(RuntimeError(f"the write raised {error!r}"))
        else:
            pending.future.set_exception(error)
