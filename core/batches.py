"""Batches that outlive the browser: rows in the database, claimed with a lease, finished exactly once.

Lifecycle of a batch: draft (created, estimate shown) -> queued (Run pressed; pressing again changes nothing)
-> running -> done, or paused_budget (the budget ran out: not an error; resumes when the budget is raised or
the month rolls), or cancelled. Items move pending -> claimed (lease) -> one final state: ready, fallback,
needs_data, review_failed or failed.

A worker claims a chunk of items in one statement (SQLite: inside BEGIN IMMEDIATE; PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so several workers share a batch) and runs the personalization ladder with at most
the batch's concurrency of model calls on the wire. It writes the message and the item's final state in one
write fenced on its lease (committed together with other items' writes, see `core.commits`); an item whose
write fails goes back to pending. Model answers are stored per item and stage with their ledger row (see
`Gateway.call`), so an item reclaimed after its worker died replays what was already paid for. The same loop
runs in the console's worker thread and in `python -m core worker`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import select

from core import budget
from core.app import App
from core.db import immediate, session_scope
from core.gateway import CallContext
from core.library import specs as library_specs
from core.llm.errors import BudgetExceededError, LLMError
from core.models import Batch, BatchItem, Message, Prospect, Reply, utcnow
from core.personalize import Pipeline, Result, options_for
from core.prospects import prospect_fields

log = logging.getLogger("sam.batches")

FINAL_STATES = ("ready", "fallback", "needs_data", "review_failed", "failed")
ACTIVE = ("queued", "running")


class BatchError(ValueError):
    """A batch request that cannot be carried out (unknown id, wrong state); the message says why."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# ---------------------------------------------------------------------------------------------------------
# Creating and steering batches
# ---------------------------------------------------------------------------------------------------------

def create_batch(
    app: App,
    prospect_ids: Sequence[int],
    *,
    step: str = "connection_request",
    template_name: str | None = None,
    concurrency: int | None = None,
    name: str = "",
    kind: str = "personalize",
    reply_ids: Sequence[int] = (),
) -> Batch:
    """A draft batch with one pending item per prospect (or per reply, for kind='classify')."""
    concurrency = concurrency or app.settings.worker_concurrency
    if not 1 <= concurrency <= 256:
        raise BatchError("concurrency must be between 1 and 256")
    ids = list(dict.fromkeys(reply_ids if kind == "classify" else prospect_ids))
    if not ids:
        raise BatchError("nothing to run: the batch would have no items")
    now = utcnow()
    with session_scope(app.engine) as s:
        batch = Batch(name=name or f"{kind} {now:%Y-%m-%d %H:%M}", status="draft", kind=kind, step=step,
                      template_name=template_name, concurrency=concurrency, items_total=len(ids), created_at=now)
        s.add(batch)
        s.flush()
        assert batch.id is not None
        rows = [{"batch_id": batch.id, "prospect_id": None if kind == "classify" else i,
                 "reply_id": i if kind == "classify" else None, "step": step, "state": "pending", "attempts": 0,
                 "error": "", "updated_at": now} for i in ids]
        for start in range(0, len(rows), 1000):
            s.execute(BatchItem.__table__.insert(), rows[start:start + 1000])  # type: ignore[attr-defined]
        return batch


def unsent_prospects(app: App, prospect_ids: Sequence[int], step: str) -> list[int]:
    """The prospects among `prospect_ids` to message at this step: none that already has a message for it (so
    a re-uploaded file never pays twice), and none whose sequence a reply stopped or paused."""
    if not prospect_ids:
        return []
    done: set[int] = set()
    with session_scope(app.engine) as s:
        for start in range(0, len(prospect_ids), 500):
            chunk = list(prospect_ids[start:start + 500])
            done.update(s.exec(select(Message.prospect_id).where(  # type: ignore[arg-type]
                Message.prospect_id.in_(chunk), Message.step == step)).all())  # type: ignore[union-attr]
    halted = _halted(app, prospect_ids)
    return [p for p in prospect_ids if p not in done and p not in halted]


def _maybe_halted(app: App, prospect_ids: Sequence[int]) -> set[int]:
    """Prospects that replied or are on the do-not-contact list under any identity they are known by (asked of
    `core.identity`): the only ones whose sequence may be halted."""
    from core.identity import suppressed_prospects

    replied: set[int] = set()
    with session_scope(app.engine) as s:
        for start in range(0, len(prospect_ids), 500):
            chunk = list(prospect_ids[start:start + 500])
            replied.update(i for i in s.exec(select(Reply.prospect_id).where(  # type: ignore[arg-type]
                Reply.prospect_id.in_(chunk))).all() if i is not None)  # type: ignore[union-attr]
        suppressed = set(suppressed_prospects(s, list(prospect_ids)))
    return replied | suppressed


def _halted(app: App, prospect_ids: Sequence[int]) -> set[int]:
    """Prospects whose automatic sequence is stopped (they replied, or asked not to be contacted) or paused
    (out of office until a date still ahead)."""
    return {p for p in _maybe_halted(app, prospect_ids) if _halt_reason(app, p)}


def _set_status(app: App, batch_id: int, new: str, allowed_from: Sequence[str], **extra: Any) -> bool:
    sets = ", ".join(["status = :new", *[f"{k} = :{k}" for k in extra]])
    params: dict[str, Any] = {"new": new, "id": batch_id, **{k: (v.replace(tzinfo=None) if isinstance(v, datetime)
                                                                else v) for k, v in extra.items()}}
    marks = ", ".join(f":f{i}" for i in range(len(allowed_from)))
    params.update({f"f{i}": v for i, v in enumerate(allowed_from)})
    with immediate(app.engine) as conn:
        return conn.execute(text(f"UPDATE batches SET {sets} WHERE id = :id AND status IN ({marks})"),
                            params).rowcount == 1


def get_batch(app: App, batch_id: int) -> Batch:
    with session_scope(app.engine) as s:
        batch = s.get(Batch, batch_id)
    if batch is None:
        raise BatchError(f"no batch with id {batch_id}")
    return batch


def start_batch(app: App, batch_id: int) -> bool:
    """Queue a draft batch for the workers. Returns False (and changes nothing) if it was already started."""
    get_batch(app, batch_id)
    return _set_status(app, batch_id, "queued", ("draft",), started_at=utcnow())


def cancel_batch(app: App, batch_id: int) -> bool:
    """Stop claiming new items; items in flight finish. Pending items stay pending (resumable)."""
    get_batch(app, batch_id)
    return _set_status(app, batch_id, "cancelled", ("draft", "queued", "running", "paused_budget"))


def resume_batch(app: App, batch_id: int) -> bool:
    """Queue a paused, cancelled or interrupted batch again; items already final are never redone."""
    batch = get_batch(app, batch_id)
    if batch.status == "done":
        raise BatchError(f"batch {batch_id} is already done")
    if batch.status in ACTIVE:
        return False
    return _set_status(app, batch_id, "queued", ("draft", "paused_budget", "cancelled", "failed"), error="")


def list_batches(app: App, limit: int = 100) -> list[Batch]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(Batch).order_by(Batch.id.desc()).limit(limit)).all())  # type: ignore[union-attr]


def counts(app: App, batch_id: int) -> dict[str, int]:
    with app.engine.connect() as conn:
        rows = conn.execute(text("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = :b GROUP BY state"),
                            {"b": batch_id}).all()
    return {str(r[0]): int(r[1]) for r in rows}


def status(app: App, batch_id: int) -> dict[str, Any]:
    """Progress from the database alone, so it is right after a reload or from another tab or process."""
    batch = get_batch(app, batch_id)
    by_state = counts(app, batch_id)
    done = sum(by_state.get(s, 0) for s in FINAL_STATES)
    with app.engine.connect() as conn:
        row = conn.execute(text(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
            "COUNT(*) FROM usage_ledger WHERE batch_id = :b"), {"b": batch_id}).one()
        first_last = conn.execute(text(
            "SELECT MIN(updated_at), MAX(updated_at) FROM batch_items WHERE batch_id = :b AND state IN "
            "('ready', 'fallback', 'needs_data', 'review_failed', 'failed')"), {"b": batch_id}).one()
    from core.models import from_nanos, money_str

    rate = eta = None
    if done >= 2 and first_last[0] is not None and first_last[1] is not None:
        start, end = (v if isinstance(v, datetime) else datetime.fromisoformat(str(v)) for v in first_last)
        seconds = (end - start).total_seconds()
        if seconds > 0:
            rate = round((done - 1) / seconds, 2)
            left = batch.items_total - done
            eta = round(left / rate) if rate and batch.status in ACTIVE else None
    return {
        "batch_id": batch.id,
        "name": batch.name,
        "status": batch.status,
        "kind": batch.kind,
        "step": batch.step,
        "items": batch.items_total,
        "done": done,
        "counts": {s: by_state.get(s, 0) for s in ("pending", "claimed", *FINAL_STATES)},
        "cost_usd": money_str(from_nanos(row[0])),
        "input_tokens": int(row[1]),
        "output_tokens": int(row[2]),
        "calls": int(row[3]),
        "rate_per_s": rate,
        "eta_s": eta,
        "error": batch.error,
        "created_at": batch.created_at.isoformat(),
    }


# ---------------------------------------------------------------------------------------------------------
# Claiming and finishing items
# ---------------------------------------------------------------------------------------------------------

def claim(app: App, batch_id: int, worker_id: str, limit: int, now: datetime | None = None) -> list[int]:
    """Claim up to `limit` pending (or lease-expired) items of a batch for this worker, atomically."""
    with immediate(app.engine) as conn:
        return claim_on(conn, app.settings.batch_lease_s, batch_id, worker_id, limit, now)


def claim_on(conn: Connection, lease_s: float, batch_id: int, worker_id: str, limit: int,
             now: datetime | None = None) -> list[int]:
    """`claim` inside the caller's write transaction (see `core.commits`)."""
    now = now or utcnow()
    params = {"b": batch_id, "w": worker_id, "exp": (now + timedelta(seconds=lease_s)).replace(tzinfo=None),
              "now": now.replace(tzinfo=None), "n": limit}
    # An expired lease of this same worker is not taken back: the item is still queued or in flight here.
    pick = ("SELECT id FROM batch_items WHERE batch_id = :b AND (state = 'pending' OR "
            "(state = 'claimed' AND lease_expires_at < :now AND lease_owner <> :w)) ORDER BY id LIMIT :n")
    if conn.dialect.name != "sqlite":
        pick += " FOR UPDATE SKIP LOCKED"
    sql = (f"UPDATE batch_items SET state = 'claimed', lease_owner = :w, lease_expires_at = :exp, "
           f"attempts = attempts + 1, updated_at = :now WHERE id IN ({pick}) RETURNING id")
    return sorted(int(r[0]) for r in conn.execute(text(sql), params).all())


def renew_lease(app: App, item_id: int, worker_id: str) -> bool:
    """Extend this worker's lease as it starts on an item; False when the lease was lost (another worker took
    the item over), in which case nothing is called or paid for."""
    now = utcnow()
    with immediate(app.engine) as conn:
        return conn.execute(text(
            "UPDATE batch_items SET lease_expires_at = :exp WHERE id = :i AND lease_owner = :w AND state = 'claimed'"),
            {"exp": (now + timedelta(seconds=app.settings.batch_lease_s)).replace(tzinfo=None), "i": item_id,
             "w": worker_id}).rowcount == 1


def release_claims(app: App, item_ids: Sequence[int], worker_id: str) -> None:
    """Give items back (budget pause, cancel, shutdown) without counting them as done."""
    if not item_ids:
        return
    with immediate(app.engine) as conn:
        for item_id in item_ids:
            conn.execute(text("UPDATE batch_items SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL "
                              "WHERE id = :i AND lease_owner = :w AND state = 'claimed'"),
                         {"i": item_id, "w": worker_id})


# Built once: every item ends with these.
_FINISH_ITEM = text("UPDATE batch_items SET state = :st, error = :e, lease_owner = NULL, lease_expires_at = NULL, "
                    "updated_at = :now WHERE id = :i AND lease_owner = :w AND state = 'claimed'")
_INSERT_MESSAGE = Message.__table__.insert()  # type: ignore[attr-defined]


def finish(app: App, item_id: int, worker_id: str, result: Result | None, error: str = "",
           batch_id: int | None = None, prospect_id: int | None = None) -> bool:
    """Write the message and the item's final state together; False if this worker lost the lease."""
    with immediate(app.engine) as conn:
        return finish_on(conn, item_id, worker_id, result, error, batch_id, prospect_id)


def finish_on(conn: Connection, item_id: int, worker_id: str, result: Result | None, error: str = "",
              batch_id: int | None = None, prospect_id: int | None = None) -> bool:
    """`finish` inside the caller's write transaction (see `core.commits`)."""
    now = utcnow()
    state = result.state if result is not None else "failed"
    updated = conn.execute(_FINISH_ITEM, {
        "st": state, "e": (error or (result.reason if result else ""))[:1000], "now": now.replace(tzinfo=None),
        "i": item_id, "w": worker_id}).rowcount
    if updated != 1:
        return False
    if result is not None:
        conn.execute(_INSERT_MESSAGE, {
            "prospect_id": prospect_id, "batch_item_id": item_id, "batch_id": batch_id, "step": result.step,
            "template_name": result.template, "variant": result.variant, "text": result.message, "state": state,
            "used_ai": result.used_ai, "model": result.model, "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens, "cost_usd": result.cost_usd, "guards": result.guards_json(),
            "review": result.review.as_json() if result.review else None, "fallback": result.fallback,
            "reason": result.reason[:1000], "created_at": now})
    return True


def _finish_batch_if_complete(app: App, batch_id: int) -> None:
    with app.engine.connect() as conn:
        left = conn.execute(text("SELECT COUNT(*) FROM batch_items WHERE batch_id = :b AND state IN "
                                 "('pending', 'claimed')"), {"b": batch_id}).scalar()
    if not left:
        _set_status(app, batch_id, "done", ("queued", "running"), finished_at=utcnow())


# ---------------------------------------------------------------------------------------------------------
# The worker loop
# ---------------------------------------------------------------------------------------------------------

@dataclass
class RunReport:
    batch_id: int
    processed: int
    outcome: str  # done | paused_budget | cancelled | idle | stopped


Progress = Callable[[int], None]


async def work_batch(app: App, batch_id: int, worker_id: str, *, stop: threading.Event | None = None,
                     progress: Progress | None = None) -> RunReport:
    """Process a batch's items until none are left, the budget runs out, it is cancelled, or `stop` is set."""
    batch = get_batch(app, batch_id)
    if batch.status not in ACTIVE:
        return RunReport(batch_id, 0, "idle")
    _set_status(app, batch_id, "running", ("queued",))
    log.info("batch started", extra={"fields": {"batch_id": batch_id, "worker": worker_id, "items": batch.items_total,
                                                "concurrency": batch.concurrency}})
    processed = 0
    budget_hit = asyncio.Event()
    # The batch's concurrency is the number of model calls on the wire at once (the client's slots); twice as
    # many items are worked on, so that a slot never waits while an item writes its reservation or its result.
    workers = 2 * batch.concurrency
    async with app.gateway(max_in_flight=batch.concurrency) as gw:
        pipeline = Pipeline(gw, library_specs(app), app.settings.data_dir, app.summaries)
        queue: asyncio.Queue[int] = asyncio.Queue(maxsize=workers)
        claimed: set[int] = set()
        prepared: dict[int, _Prepared] = {}

        async def feeder() -> None:
            while not budget_hit.is_set() and not (stop and stop.is_set()):
                room = queue.maxsize - queue.qsize()
                if room < queue.maxsize // 2:  # claim in chunks of at least half the queue, not item by item
                    await asyncio.sleep(0.01)
                    continue
                current = await asyncio.to_thread(get_batch, app, batch_id)
                if current.status not in ACTIVE:  # cancelled (or paused) from the page or another process
                    break
                ids = await gw.writes(
                    lambda conn, n=room: claim_on(conn, app.settings.batch_lease_s, batch_id, worker_id, n))
                if not ids:
                    break
                claimed.update(ids)
                prepared.update(await asyncio.to_thread(_prepare, app, batch, ids))
                for item_id in ids:
                    await queue.put(item_id)

        async def runner() -> None:
            nonlocal processed
            while True:
                item_id = await queue.get()
                try:
                    if budget_hit.is_set() or (stop and stop.is_set()):
                        continue
                    try:
                        if await _process(app, pipeline, batch, prepared.pop(item_id), worker_id):
                            processed += 1
                            if progress:
                                progress(processed)
                        claimed.discard(item_id)
                    except BudgetExceededError:
                        budget_hit.set()
                    except Exception as exc:  # e.g. a failed commit: the item goes back to pending, the run goes on
                        log.error("batch item failed", extra={"fields": {
                            "batch_id": batch_id, "item_id": item_id, "error": f"{type(exc).__name__}: {exc}"[:300]}})
                finally:
                    queue.task_done()

        runners = [asyncio.create_task(runner()) for _ in range(workers)]
        try:
            await feeder()
            await queue.join()
        finally:
            for task in runners:
                task.cancel()
            await asyncio.gather(*runners, return_exceptions=True)
            await asyncio.to_thread(release_claims, app, sorted(claimed), worker_id)
    if budget_hit.is_set():
        _pause_for_budget(app, batch_id)
        log.warning("batch paused: budget", extra={"fields": {"batch_id": batch_id, "processed": processed}})
        return RunReport(batch_id, processed, "paused_budget")
    if stop and stop.is_set():
        return RunReport(batch_id, processed, "stopped")
    current = get_batch(app, batch_id)
    if current.status == "cancelled":
        return RunReport(batch_id, processed, "cancelled")
    _finish_batch_if_complete(app, batch_id)
    final = get_batch(app, batch_id).status
    log.info("batch pass ended", extra={"fields": {"batch_id": batch_id, "processed": processed, "status": final}})
    return RunReport(batch_id, processed, final)


@dataclass
class _Prepared:
    """What a claimed item needs, read once per claimed chunk instead of once per item."""

    item: BatchItem
    prospect: Prospect | None
    halted: bool  # a reply or the do-not-contact list may stop this prospect: check it in detail
    assigned: tuple[str, str] | None
    budget_level: str


def _prepare(app: App, batch: Batch, item_ids: Sequence[int]) -> dict[int, _Prepared]:
    with session_scope(app.engine) as s:
        items = list(s.exec(select(BatchItem).where(BatchItem.id.in_(item_ids))).all())  # type: ignore[union-attr]
        prospect_ids = [i.prospect_id for i in items if i.prospect_id is not None]
        prospects = {p.id: p for p in s.exec(select(Prospect).where(Prospect.id.in_(prospect_ids))).all()}  # type: ignore[union-attr]
    if batch.kind == "classify":
        return {i.id: _Prepared(i, None, False, None, "") for i in items if i.id is not None}
    halted = _maybe_halted(app, prospect_ids)
    assigned = _assignments(app, prospect_ids, batch.step)
    level = app.budget_state().level
    return {i.id: _Prepared(i, prospects.get(i.prospect_id), i.prospect_id in halted,  # type: ignore[arg-type]
                            assigned.get(i.prospect_id), level)  # type: ignore[arg-type]
            for i in items if i.id is not None}


async def _process(app: App, pipeline: Pipeline, batch: Batch, prep: _Prepared, worker_id: str) -> bool:
    item, prospect = prep.item, prep.prospect
    item_id = int(item.id)  # type: ignore[arg-type]
    prospect_id = prospect.id if prospect is not None else None

    async def done(result: Result | None, error: str = "") -> bool:
        return await pipeline.gw.writes(
            lambda conn: finish_on(conn, item_id, worker_id, result, error, batch.id, prospect_id))

    # Renewing the lease fences out a worker that lost it (its items were taken over): no call, no payment.
    # A lease with more than half its time left cannot have been taken over yet, so it needs no renewal.
    half = timedelta(seconds=app.settings.batch_lease_s / 2)
    fresh = item.lease_expires_at is not None and item.lease_expires_at - utcnow() > half
    if not fresh and not await asyncio.to_thread(renew_lease, app, item_id, worker_id):
        return False
    replay = item.attempts > 1  # only a reclaimed item can have stored answers to replay
    if batch.kind == "classify":
        from core.replies import classify_and_route

        try:
            await classify_and_route(app, pipeline.gw, item.reply_id,  # type: ignore[arg-type]
                                     CallContext(batch_id=batch.id, item_id=item_id, replay=replay))
        except BudgetExceededError:
            raise
        except (LLMError, ValueError, LookupError) as exc:
            return await done(None, f"classification failed: {exc}")
        return await pipeline.gw.writes(lambda conn: _finish_classified_on(conn, item_id, worker_id))
    if prospect is None:
        return await done(None, "the prospect no longer exists")
    halt = await asyncio.to_thread(_halt_reason, app, prospect.id) if prep.halted else ""
    if halt:
        return await done(None, halt)
    context = CallContext(batch_id=batch.id, prospect_id=prospect.id, item_id=item_id, replay=replay)
    assigned = prep.assigned
    try:
        options = options_for(app, step=item.step, template_name=None if assigned else batch.template_name,
                              assigned=assigned[0] if assigned else None, budget_level=prep.budget_level)
        result = await pipeline.run(prospect_fields(prospect), options, context)
        if assigned:
            result.variant = assigned[1]
    except BudgetExceededError:
        raise
    except (LLMError, LookupError, ValueError) as exc:
        return await done(None, f"{type(exc).__name__}: {exc}")
    return await done(result)


def _halt_reason(app: App, prospect_id: int | None) -> str:
    """Why the sequence must not message this prospect now ("" when it may): on the do-not-contact list, or a
    reply since the batch began."""
    from core.identity import is_suppressed
    from core.replies import paused_until, sequence_stopped

    if prospect_id is None:
        return ""
    with session_scope(app.engine) as s:
        if is_suppressed(s, prospect_id):
            return "skipped: the prospect is on the do-not-contact list; nothing was written or paid for"
    if sequence_stopped(app, prospect_id):
        return "skipped: the prospect replied or is on the do-not-contact list; the sequence is stopped"
    until = paused_until(app, prospect_id)
    return f"skipped: out of office; the sequence is paused until {until.isoformat()}" if until else ""


def _assignments(app: App, prospect_ids: Sequence[int], step: str) -> dict[int, tuple[str, str]]:
    """Experiment arms for a chunk of prospects on this step (empty, in one query, when none runs)."""
    if not prospect_ids:
        return {}
    try:
        from core.experiments import assigned_templates
    except ImportError:
        return {}
    return assigned_templates(app, prospect_ids, step)


def _finish_classified_on(conn: Connection, item_id: int, worker_id: str) -> bool:
    return conn.execute(_FINISH_ITEM, {"st": "ready", "e": "", "now": utcnow().replace(tzinfo=None), "i": item_id,
                                       "w": worker_id}).rowcount == 1


def _pause_for_budget(app: App, batch_id: int) -> None:
    state = app.budget_state()
    if _set_status(app, batch_id, "paused_budget", ACTIVE,
                   error="paused: the monthly budget cannot cover the next call; raise it on the Spend page or "
                         "wait for the month to roll"):
        with session_scope(app.engine) as s:
            batch = s.get(Batch, batch_id)
            assert batch is not None
            batch.options = {**batch.options, "paused_at": {"month": state.month, "cap_usd": str(state.cap_usd)}}
            s.add(batch)


def _budget_allows(app: App, batch: Batch) -> bool:
    """A paused batch resumes once the month has rolled or the cap was raised since it paused."""
    paused = batch.options.get("paused_at") or {}
    state = app.budget_state()
    if state.level == budget.LEVEL_STOPPED:
        return False
    try:
        return paused.get("month") != state.month or state.cap_usd > Decimal(str(paused.get("cap_usd")))
    except ArithmeticError:
        return True


def runnable_batches(app: App) -> list[int]:
    """Batches with work to do, oldest first; paused ones come back when the budget allows again."""
    with session_scope(app.engine) as s:
        paused = list(s.exec(select(Batch).where(Batch.status == "paused_budget")).all())
    for batch in paused:
        if batch.id is not None and _budget_allows(app, batch):
            _set_status(app, batch.id, "queued", ("paused_budget",), error="")
    with app.engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(text(
            "SELECT id FROM batches WHERE status IN ('queued', 'running') ORDER BY id"))]


def run_pending(app: App, worker_id: str, *, stop: threading.Event | None = None,
                progress: Progress | None = None) -> list[RunReport]:
    """One pass of the worker: sweep expired reservations, then work every runnable batch."""
    budget.sweep(app.engine)
    reports = []
    for batch_id in runnable_batches(app):
        if stop and stop.is_set():
            break
        reports.append(asyncio.run(work_batch(app, batch_id, worker_id, stop=stop, progress=progress)))
    return reports
