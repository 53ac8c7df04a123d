"""The run loop: one worker's pass over the runnable batches, the same in the console's worker thread,
`python -m core worker` and a foreground `batch run`.

A pass claims chunks of a batch's items (`core.batches.claims`), asks the batch's kind (`core.batches.kinds`) to
prepare each chunk and work each item, with at most the batch's concurrency of model calls on the wire. It ends
when no item is left (the batch is done), the budget cannot cover the next call (paused_budget), the provider
refuses every call (paused_provider, `core.batches.halts`), someone cancelled the batch, or the worker is
stopping (the items it holds go back within SHUTDOWN_GRACE_S). An item whose write fails goes back to pending
with its error kept, and the pass goes on. Model answers are stored per item and stage with their ledger row
(see `Gateway.call`), so an item reclaimed after its worker died replays what was already paid for; every
write the pass makes goes through the batch's group committer (`core.store.commits`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import select

from core.app import App
from core.batches import claims, heartbeat
from core.batches.halts import ProviderFence, ProviderHalt
from core.batches.kinds import RunContext, kind_of
from core.batches.lifecycle import (
    ACTIVE,
    finish_batch_if_complete_on,
    get_batch,
    note_budget_pause,
    runnable_batches,
    set_status_on,
)
from core.costs import budget
from core.llm.errors import BudgetExceededError
from core.store.db import session_scope
from core.store.models import Batch, BatchItem, BatchStatus, utcnow

log = logging.getLogger("sam.batches")

SHUTDOWN_GRACE_S = 5.0  # on SIGTERM / Ctrl-C, calls in flight get this long to finish before they are dropped


class RunOutcome(StrEnum):
    """How a pass over a batch ended, besides the batch statuses it can leave (done, paused_*, cancelled)."""

    IDLE = "idle"  # the batch was not runnable
    STOPPED = "stopped"  # the worker is stopping; the batch stays queued


@dataclass
class RunReport:
    batch_id: int
    processed: int
    outcome: str  # a BatchStatus (done, paused_budget, ...) or a RunOutcome (idle, stopped)
    errors: int = 0


Progress = Callable[[int], None]


async def work_batch(app: App, batch_id: int, worker_id: str, *, stop: threading.Event | None = None,
                     progress: Progress | None = None) -> RunReport:
    """Process a batch's items until none are left, the budget runs out, the provider refuses every call, it
    is cancelled, or `stop` is set (then the items this worker holds go back within SHUTDOWN_GRACE_S)."""
    batch = get_batch(app, batch_id)
    if batch.status not in ACTIVE:
        return RunReport(batch_id, 0, RunOutcome.IDLE)
    with heartbeat.running(app, worker_id) as beat:
        return await _work(app, batch, worker_id, beat, stop, progress)


def _read_items(app: App, item_ids: list[int]) -> list[BatchItem]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(BatchItem).where(BatchItem.id.in_(item_ids))).all())  # type: ignore[union-attr]


async def _work(app: App, batch: Batch, worker_id: str, beat: heartbeat.Heartbeat, stop: threading.Event | None,
                progress: Progress | None) -> RunReport:
    batch_id = int(batch.id)  # type: ignore[arg-type]
    log.info("batch started", extra={"fields": {"batch_id": batch_id, "worker": worker_id, "items": batch.items_total,
                                                "concurrency": batch.concurrency, "kind": batch.kind}})
    kind = kind_of(batch.kind)
    processed = errors = 0
    budget_hit = asyncio.Event()
    halted: list[ProviderHalt] = []

    def stopping() -> bool:
        return stop is not None and stop.is_set()

    def quitting() -> bool:
        return budget_hit.is_set() or bool(halted) or stopping()

    # The batch's concurrency is the number of model calls on the wire at once (the client's slots); twice as
    # many items are worked on, so that a slot never waits while an item writes its reservation or its result.
    workers = 2 * batch.concurrency
    async with app.gateway(max_in_flight=batch.concurrency) as gw:
        writes = gw.writes
        run = RunContext(app, batch, ProviderFence(gw), worker_id)
        with beat.through(writes):
            await writes(lambda conn: set_status_on(conn, batch_id, BatchStatus.RUNNING, (BatchStatus.QUEUED,)))
            queue: asyncio.Queue[int] = asyncio.Queue(maxsize=workers)
            claimed: set[int] = set()
            items: dict[int, BatchItem] = {}
            prepared: dict[int, Any] = {}
            lease_s, silent_s = app.settings.batch_lease_s, app.settings.worker_silent_s

            async def feeder() -> None:
                while not quitting():
                    room = queue.maxsize - queue.qsize()
                    if room < queue.maxsize // 2:  # claim in chunks of at least half the queue, not item by item
                        await asyncio.sleep(0.01)
                        continue
                    current = await asyncio.to_thread(get_batch, app, batch_id)
                    if current.status not in ACTIVE:  # cancelled (or paused) from the page or another process
                        break
                    ids = await writes(lambda conn, n=room: claims.claim_on(conn, lease_s, batch_id, worker_id, n,
                                                                            silent_s=silent_s))
                    if not ids:
                        break
                    claimed.update(ids)
                    chunk = await asyncio.to_thread(_read_items, app, ids)
                    items.update((int(i.id), i) for i in chunk)  # type: ignore[arg-type]
                    prepared.update(await kind.prepare(run, chunk))
                    for item_id in ids:
                        await queue.put(item_id)

            async def one(item_id: int) -> bool:
                item = items.pop(item_id)
                # Renewing the lease fences out a worker that lost it (its items were taken over): no call, no
                # payment. A lease with more than half its time left cannot have been taken over yet, so it needs
                # no renewal (the heartbeat renews every held item while it waits or its calls are in flight).
                half = timedelta(seconds=lease_s / 2)
                fresh = item.lease_expires_at is not None and item.lease_expires_at - utcnow() > half
                if not fresh and not await writes(lambda conn: claims.renew_lease_on(conn, lease_s, item_id,
                                                                                     worker_id)):
                    return False
                return await kind.process(run, item, prepared.pop(item_id, None))

            async def runner() -> None:
                nonlocal processed, errors
                while True:
                    item_id = await queue.get()
                    try:
                        if quitting():
                            continue
                        try:
                            if await one(item_id):
                                processed += 1
                                if progress:
                                    progress(processed)
                            claimed.discard(item_id)
                        except BudgetExceededError:
                            budget_hit.set()
                        except ProviderHalt as halt:  # the item goes back with the others; the batch pauses
                            halted.append(halt)
                        except Exception as exc:  # e.g. a failed commit: the item goes back to pending, the run goes on
                            errors += 1
                            error = f"{type(exc).__name__}: {exc}"[:300]
                            log.error("batch item failed", extra={"fields": {
                                "batch_id": batch_id, "item_id": item_id, "error": error}})
                            with contextlib.suppress(Exception):  # the database may be what failed
                                await writes(lambda conn, i=item_id, e=error:
                                             claims.record_item_error_on(conn, i, worker_id, e))
                    finally:
                        queue.task_done()

            runners = [asyncio.create_task(runner()) for _ in range(workers)]
            try:
                await feeder()
                await _drain(queue, stopping)
            finally:
                for task in runners:
                    task.cancel()
                await asyncio.gather(*runners, return_exceptions=True)
                if claimed:
                    await writes(lambda conn: claims.release_claims_on(conn, sorted(claimed), worker_id))
            outcome = await writes(lambda conn: _conclude_on(conn, batch_id, budget_hit.is_set(), halted, stopping()))
    if outcome == BatchStatus.PAUSED_BUDGET:
        note_budget_pause(app, batch_id)
        log.warning("batch paused: budget", extra={"fields": {"batch_id": batch_id, "processed": processed}})
    elif outcome == BatchStatus.PAUSED_PROVIDER:
        log.warning("batch paused: provider", extra={"fields": {"batch_id": batch_id, "processed": processed,
                                                                "reason": halted[0].reason}})
    else:
        log.info("batch pass ended", extra={"fields": {"batch_id": batch_id, "processed": processed,
                                                       "status": outcome}})
    return RunReport(batch_id, processed, outcome, errors)


async def _drain(queue: asyncio.Queue[int], stopping: Callable[[], bool]) -> None:
    """Wait for the items in hand to finish; once stopping, give calls in flight SHUTDOWN_GRACE_S at most."""
    join = asyncio.ensure_future(queue.join())
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    try:
        while not join.done():
            await asyncio.wait({join}, timeout=0.1)
            if stopping():
                deadline = deadline if deadline is not None else loop.time() + SHUTDOWN_GRACE_S
                if loop.time() >= deadline:
                    return
    finally:
        join.cancel()


def _conclude_on(conn: Connection, batch_id: int, budget_hit: bool, halted: list[ProviderHalt],
                 stopped: bool) -> str:
    """The batch's status once this worker's pass ends (after its claims went back)."""
    if budget_hit:
        if set_status_on(conn, batch_id, BatchStatus.PAUSED_BUDGET, ACTIVE, error=(
                "paused: the monthly budget cannot cover the next call; raise it on the Spend page or wait for the "
                "month to roll")):
            return BatchStatus.PAUSED_BUDGET
    elif halted:
        first = halted[0]
        detail = f"HTTP {first.cause.status}" if first.cause.status else first.cause.kind
        set_status_on(conn, batch_id, BatchStatus.PAUSED_PROVIDER, ACTIVE, error=(
            f"paused: {first.reason} ({detail}); fix it, then resume the batch: the {len(halted)} item"
            f"{'s' if len(halted) != 1 else ''} it stopped are redone"))
        return BatchStatus.PAUSED_PROVIDER
    if stopped:
        return RunOutcome.STOPPED
    current = conn.execute(text("SELECT status FROM batches WHERE id = :b"), {"b": batch_id}).scalar()
    if current in ACTIVE and finish_batch_if_complete_on(conn, batch_id):
        return BatchStatus.DONE
    return str(current)


def run_pending(app: App, worker_id: str, *, stop: threading.Event | None = None,
                progress: Progress | None = None) -> list[RunReport]:
    """One pass of the worker: sweep expired reservations, give back what silent workers held, then work every
    runnable batch."""
    budget.sweep(app.engine)
    reports = []
    with heartbeat.running(app, worker_id):
        heartbeat.reap(app, spare=worker_id)
        for batch_id in runnable_batches(app):
            if stop and stop.is_set():
                break
            reports.append(asyncio.run(work_batch(app, batch_id, worker_id, stop=stop, progress=progress)))
    return reports
