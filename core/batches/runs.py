"""Batches that outlive the browser: rows in the database, claimed with a lease, finished exactly once.

Lifecycle of a batch: draft (created, estimate shown) -> queued (Run pressed; pressing again changes nothing)
-> running -> done, or paused_budget (the budget ran out: not an error; resumes when the budget is raised or
the month rolls), or paused_provider (the provider refuses every call: a rejected key, no credits, an outage
past the retries; resumed by hand once fixed, redoing exactly the items that hit it), or cancelled. Items move
pending -> claimed (lease) -> one final state: ready, fallback, needs_data, review_failed or failed.

A prospect's sequence step is written at most once, whichever batch, session or process asks: creating an item
takes the (prospect, step) row of `step_claims` (a primary key, so the database refuses a second one); an item
that ends without a message (failed, skipped) gives it up so a later batch may try again.

Workers announce themselves and beat (`heartbeat`): each beat renews the leases of the items a worker holds,
so a slow call is never taken over, and gives back the items and budget holds of a worker gone silent.

A worker claims a chunk of items in one statement (SQLite: inside BEGIN IMMEDIATE; PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so several workers share a batch) and runs the personalization ladder with at most
the batch's concurrency of model calls on the wire. It writes the message and the item's final state in one
write fenced on its lease (committed together with other items' writes, see `core.store.commits`); an item whose
write fails goes back to pending. Model answers are stored per item and stage with their ledger row (see
`Gateway.call`), so an item reclaimed after its worker died replays what was already paid for. The same loop
runs in the console's worker thread and in `python -m core worker`; every write it makes goes through the
batch's group committer.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import select

from core.app import App
from core.batches import heartbeat
from core.costs import budget
from core.costs.gateway import CallContext
from core.llm.errors import (
    AuthError,
    BudgetExceededError,
    LLMError,
    OutOfCreditsError,
    ProviderUnavailableError,
    RateLimitedError,
)
from core.messages.library import specs as library_specs
from core.messages.personalize import Pipeline, Result, options_for
from core.people.prospects import prospect_fields
from core.store.db import immediate, session_scope
from core.store.lookup import get_or_raise
from core.store.models import Batch, BatchItem, Message, Prospect, Reply, utcnow

log = logging.getLogger("sam.batches")

class BatchStatus(StrEnum):
    DRAFT = "draft"
    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    PAUSED_BUDGET = "paused_budget"
    PAUSED_PROVIDER = "paused_provider"
    CANCELLED = "cancelled"
    FAILED = "failed"


FINAL_STATES = ("ready", "fallback", "needs_data", "review_failed", "failed")
ACTIVE = ("queued", "running")
PAUSED = (BatchStatus.PAUSED_BUDGET.value, BatchStatus.PAUSED_PROVIDER.value)
SKIPPED = "skipped:"  # an item error starting so is a decision (a reply, do-not-contact), not a failure
SHUTDOWN_GRACE_S = 5.0  # on SIGTERM / Ctrl-C, calls in flight get this long to finish before they are dropped


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
    """A draft batch with one pending item per prospect (or per reply, for kind='classify').

    Each prospect's (prospect, step) claim is taken in the same transaction: a prospect already in another
    batch for this step (still to do, or its message written) is left out, and a batch left with nothing
    raises BatchError naming the batch that has them. Two people pressing Run on one upload, or two
    `batch run` of one file at once, so make one batch's worth of calls.
    """
    concurrency = concurrency or app.settings.worker_concurrency
    if not 1 <= concurrency <= 256:
        raise BatchError("concurrency must be between 1 and 256")
    ids = list(dict.fromkeys(reply_ids if kind == "classify" else prospect_ids))
    if not ids:
        raise BatchError("nothing to run: the batch would have no items")
    if kind != "classify":
        check_template_and_step(app, template_name, step)
    now = utcnow()
    naive = now.replace(tzinfo=None)
    with immediate(app.engine) as conn:
        batch_id = int(conn.execute(Batch.__table__.insert().values(  # type: ignore[attr-defined]
            name=name or f"{kind} {now:%Y-%m-%d %H:%M}", status="draft", kind=kind, step=step,
            template_name=template_name, concurrency=concurrency, items_total=0, options={}, error="",
            created_at=now)).inserted_primary_key[0])
        if kind != "classify":
            ids = _claim_steps(conn, batch_id, ids, step, naive)
        rows = [{"batch_id": batch_id, "prospect_id": None if kind == "classify" else i,
                 "reply_id": i if kind == "classify" else None, "step": step, "state": "pending", "attempts": 0,
                 "error": "", "updated_at": now} for i in ids]
        for start in range(0, len(rows), 1000):
            conn.execute(BatchItem.__table__.insert(), rows[start:start + 1000])  # type: ignore[attr-defined]
        conn.execute(text("UPDATE batches SET items_total = :n WHERE id = :b"), {"n": len(rows), "b": batch_id})
    return get_batch(app, batch_id)


def check_template_and_step(app: App, template_name: str | None, step: str) -> None:
    """Refuse, before anything runs, a step or a hand-picked template that would fail every item."""
    from core.messages.library import get_template, list_templates
    from core.messages.library import steps as step_specs

    known = step_specs(app.settings.data_dir)
    if step not in known:
        raise BatchError(f"unknown step {step!r}; steps: {', '.join(known)}")
    if not template_name:
        return
    template = get_template(app, template_name)
    if template is None or template.archived:
        names = [t.name for t in list_templates(app, step)]
        raise BatchError(f"no template named {template_name!r}; templates for {step}: {', '.join(names) or 'none'}")
    if template.step not in (step, f"{step}_safe"):  # a step's safe templates may be chosen by hand for it
        raise BatchError(f"template {template_name!r} is for the {template.step} step, not {step}")


def _claim_steps(conn: Connection, batch_id: int, prospect_ids: list[int], step: str, now: datetime) -> list[int]:
    """Take the (prospect, step) claims still free for this batch; the prospects it got, in the given order.
    Claims are inserted in id order, so two batches taking overlapping sets never deadlock on PostgreSQL.

    Items still pending in a cancelled batch give their claim up to the new one (someone cancelled, then ran
    again, e.g. with another template): they are first marked skipped in that batch, in the statement that
    locks them, so resuming it later never does them too."""
    ordered = sorted(prospect_ids)
    for start in range(0, len(ordered), 500):
        chunk = ", ".join(str(int(p)) for p in ordered[start:start + 500])
        moved = conn.execute(text(
            "UPDATE batch_items SET state = 'failed', error = :e, updated_at = :now WHERE step = :s AND state = "
            f"'pending' AND prospect_id IN ({chunk}) AND batch_id IN (SELECT id FROM batches WHERE status = "
            "'cancelled') RETURNING batch_id, prospect_id"),
            {"e": f"{SKIPPED} moved to batch #{batch_id}", "now": now, "s": step}).all()
        for old_batch, prospect in moved:
            conn.execute(_GIVE_UP_STEP, {"p": prospect, "s": step, "b": old_batch})
    rows = [{"p": p, "s": step, "b": batch_id, "now": now} for p in ordered]
    insert = text("INSERT INTO step_claims (prospect_id, step, batch_id, created_at) VALUES (:p, :s, :b, :now) "
                  "ON CONFLICT (prospect_id, step) DO NOTHING")
    for start in range(0, len(rows), 1000):
        conn.execute(insert, rows[start:start + 1000])
    mine = {int(r[0]) for r in conn.execute(text("SELECT prospect_id FROM step_claims WHERE batch_id = :b AND "
                                                 "step = :s"), {"b": batch_id, "s": step})}
    if not mine:
        others = [int(r[0]) for r in conn.execute(text(
            "SELECT DISTINCT c.batch_id FROM step_claims c WHERE c.step = :s AND c.prospect_id IN "
            f"({', '.join(str(int(p)) for p in prospect_ids[:500])}) ORDER BY c.batch_id DESC LIMIT 3"),
            {"s": step})]
        shown = ", ".join(f"#{b}" for b in others)
        raise BatchError(f"nothing to run: every one of these prospects is already in batch {shown} for the "
                         f"{step} step (follow or resume that batch; a prospect is never written twice)")
    return [p for p in prospect_ids if p in mine]


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
    `core.people.identity`): the only ones whose sequence may be halted."""
    from core.people.identity import suppressed_prospects

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
        return get_or_raise(s, Batch, batch_id, BatchError)


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
    return _set_status(app, batch_id, "queued", ("draft", *PAUSED, "cancelled", "failed"), error="")


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
        erred = ("FROM batch_items WHERE batch_id = :b AND error <> '' AND error NOT LIKE :skip AND state IN "
                 "('failed', 'pending', 'claimed')")
        errors = conn.execute(text(f"SELECT COUNT(*) {erred}"), {"b": batch_id, "skip": f"{SKIPPED}%"}).scalar()
        last_error = conn.execute(text(f"SELECT error {erred} ORDER BY updated_at DESC, id DESC LIMIT 1"),
                                  {"b": batch_id, "skip": f"{SKIPPED}%"}).scalar()
    from core.store.models import from_nanos, money_str

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
        "errors": int(errors or 0),
        "last_error": str(last_error or ""),
        "label": status_label(batch.status, int(errors or 0), batch.error),
        "created_at": batch.created_at.isoformat(),
    }


def item_errors(app: App, batch_id: int, limit: int = 50) -> list[dict[str, Any]]:
    """The batch's items whose last attempt failed (not those skipped on purpose), latest first."""
    with app.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, prospect_id, reply_id, state, attempts, error, updated_at FROM batch_items WHERE batch_id = :b "
            "AND error <> '' AND error NOT LIKE :skip AND state IN ('failed', 'pending', 'claimed') "
            "ORDER BY updated_at DESC, id DESC LIMIT :n"), {"b": batch_id, "skip": f"{SKIPPED}%", "n": limit}).all()
    return [{"item": int(r[0]), "prospect_id": r[1], "reply_id": r[2],
             "state": "will be retried" if r[3] != "failed" else "failed", "attempts": int(r[4]), "error": str(r[5]),
             "at": str(r[6])[:19]} for r in rows]


def status_label(batch_status: str, errors: int, reason: str = "") -> str:
    """The batch's status as a user reads it: "done with 3 errors", "paused: the provider rejected the key"."""
    if batch_status == BatchStatus.PAUSED_PROVIDER and reason:
        label = reason.split(";")[0]
    elif batch_status == BatchStatus.PAUSED_BUDGET:
        label = "paused: the budget ran out"
    else:
        label = batch_status
    if errors:
        label += f" with {errors} error{'s' if errors != 1 else ''}"
    return label


# ---------------------------------------------------------------------------------------------------------
# Claiming and finishing items
# ---------------------------------------------------------------------------------------------------------

def claim(app: App, batch_id: int, worker_id: str, limit: int, now: datetime | None = None) -> list[int]:
    """Claim up to `limit` pending (or lease-expired, or silent-worker) items of a batch for this worker."""
    with immediate(app.engine) as conn:
        return claim_on(conn, app.settings.batch_lease_s, batch_id, worker_id, limit, now,
                        silent_s=app.settings.worker_silent_s)


def claim_on(conn: Connection, lease_s: float, batch_id: int, worker_id: str, limit: int,
             now: datetime | None = None, *, silent_s: float | None = None) -> list[int]:
    """`claim` inside the caller's write transaction (see `core.store.commits`). With `silent_s`, items held by a
    worker that stopped, or has not beaten for that long, are taken over at once, not after their lease."""
    now = now or utcnow()
    params: dict[str, Any] = {"b": batch_id, "w": worker_id, "n": limit, "now": now.replace(tzinfo=None),
                              "exp": (now + timedelta(seconds=lease_s)).replace(tzinfo=None)}
    gone = ""
    if silent_s is not None:
        params["silent"] = (now - timedelta(seconds=silent_s)).replace(tzinfo=None)
        gone = (" OR lease_owner IN (SELECT id FROM workers WHERE state = 'stopped' OR "
                "(state = 'alive' AND last_beat_at < :silent))")
    # An expired lease of this same worker is not taken back: the item is still queued or in flight here.
    pick = ("SELECT id FROM batch_items WHERE batch_id = :b AND (state = 'pending' OR "
            f"(state = 'claimed' AND lease_owner <> :w AND (lease_expires_at < :now{gone}))) ORDER BY id LIMIT :n")
    if conn.dialect.name != "sqlite":
        pick += " FOR UPDATE SKIP LOCKED"
    sql = (f"UPDATE batch_items SET state = 'claimed', lease_owner = :w, lease_expires_at = :exp, "
           f"attempts = attempts + 1, updated_at = :now WHERE id IN ({pick}) RETURNING id")
    return sorted(int(r[0]) for r in conn.execute(text(sql), params).all())


def renew_lease(app: App, item_id: int, worker_id: str) -> bool:
    """Extend this worker's lease as it starts on an item; False when the lease was lost (another worker took
    the item over), in which case nothing is called or paid for."""
    with immediate(app.engine) as conn:
        return renew_lease_on(conn, app.settings.batch_lease_s, item_id, worker_id)


def renew_lease_on(conn: Connection, lease_s: float, item_id: int, worker_id: str) -> bool:
    exp = (utcnow() + timedelta(seconds=lease_s)).replace(tzinfo=None)
    return conn.execute(text(
        "UPDATE batch_items SET lease_expires_at = :exp WHERE id = :i AND lease_owner = :w AND state = 'claimed'"),
        {"exp": exp, "i": item_id, "w": worker_id}).rowcount == 1


def release_claims(app: App, item_ids: Sequence[int], worker_id: str) -> None:
    """Give items back (budget pause, cancel, shutdown) without counting them as done."""
    if not item_ids:
        return
    with immediate(app.engine) as conn:
        release_claims_on(conn, item_ids, worker_id)


def release_claims_on(conn: Connection, item_ids: Sequence[int], worker_id: str) -> int:
    released = 0
    for start in range(0, len(item_ids), 500):
        chunk = ", ".join(str(int(i)) for i in item_ids[start:start + 500])
        released += conn.execute(text(
            "UPDATE batch_items SET state = 'pending', lease_owner = NULL, lease_expires_at = NULL "
            f"WHERE id IN ({chunk}) AND lease_owner = :w AND state = 'claimed'"), {"w": worker_id}).rowcount
    return released


def record_item_error_on(conn: Connection, item_id: int, worker_id: str, error: str) -> None:
    """Keep the last error of an attempt on its item (it stays claimed, then goes back to pending), so the
    batch's status counts it instead of it living only in the logs."""
    conn.execute(text("UPDATE batch_items SET error = :e, updated_at = :now WHERE id = :i AND lease_owner = :w"),
                 {"e": error[:1000], "now": utcnow().replace(tzinfo=None), "i": item_id, "w": worker_id})


# Built once: every item ends with these.
_FINISH_ITEM = text("UPDATE batch_items SET state = :st, error = :e, lease_owner = NULL, lease_expires_at = NULL, "
                    "updated_at = :now WHERE id = :i AND lease_owner = :w AND state = 'claimed'")
_INSERT_MESSAGE = Message.__table__.insert()  # type: ignore[attr-defined]
_GIVE_UP_STEP = text("DELETE FROM step_claims WHERE prospect_id = :p AND step = :s AND batch_id = :b")


def finish(app: App, item_id: int, worker_id: str, result: Result | None, error: str = "",
           batch_id: int | None = None, prospect_id: int | None = None, step: str | None = None) -> bool:
    """Write the message and the item's final state together; False if this worker lost the lease."""
    with immediate(app.engine) as conn:
        return finish_on(conn, item_id, worker_id, result, error, batch_id, prospect_id, step)


def finish_on(conn: Connection, item_id: int, worker_id: str, result: Result | None, error: str = "",
              batch_id: int | None = None, prospect_id: int | None = None, step: str | None = None) -> bool:
    """`finish` inside the caller's write transaction (see `core.store.commits`). An item that ends without a
    message (`result` None) gives up its (prospect, `step`) claim."""
    now = utcnow()
    state = result.state if result is not None else "failed"
    updated = conn.execute(_FINISH_ITEM, {
        "st": state, "e": (error or (result.reason if result else ""))[:1000], "now": now.replace(tzinfo=None),
        "i": item_id, "w": worker_id}).rowcount
    if updated != 1:
        return False
    if result is None:  # no message: the prospect's step is free for a later batch
        if prospect_id is not None and batch_id is not None and step is not None:
            conn.execute(_GIVE_UP_STEP, {"p": prospect_id, "s": step, "b": batch_id})
    else:
        conn.execute(_INSERT_MESSAGE, {
            "prospect_id": prospect_id, "batch_item_id": item_id, "batch_id": batch_id, "step": result.step,
            "template_name": result.template, "variant": result.variant, "text": result.message, "state": state,
            "used_ai": result.used_ai, "model": result.model, "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens, "cost_usd": result.cost_usd, "guards": result.guards_json(),
            "review": result.review.as_json() if result.review else None, "fallback": result.fallback,
            "reason": result.reason[:1000], "created_at": now})
    return True


def _finish_batch_if_complete_on(conn: Connection, batch_id: int) -> bool:
    left = conn.execute(text("SELECT COUNT(*) FROM batch_items WHERE batch_id = :b AND state IN "
                             "('pending', 'claimed')"), {"b": batch_id}).scalar()
    if left:
        return False
    return _set_status_on(conn, batch_id, "done", ACTIVE, finished_at=utcnow())


def _finish_batch_if_complete(app: App, batch_id: int) -> None:
    with immediate(app.engine) as conn:
        _finish_batch_if_complete_on(conn, batch_id)


def _set_status_on(conn: Connection, batch_id: int, new: str, allowed_from: Sequence[str], **extra: Any) -> bool:
    """`_set_status` inside the caller's write transaction (the batch's group committer)."""
    sets = ", ".join(["status = :new", *[f"{k} = :{k}" for k in extra]])
    params: dict[str, Any] = {"new": new, "id": batch_id, **{k: (v.replace(tzinfo=None) if isinstance(v, datetime)
                                                                else v) for k, v in extra.items()}}
    marks = ", ".join(f":f{i}" for i in range(len(allowed_from)))
    params.update({f"f{i}": v for i, v in enumerate(allowed_from)})
    return conn.execute(text(f"UPDATE batches SET {sets} WHERE id = :id AND status IN ({marks})"),
                        params).rowcount == 1


# ---------------------------------------------------------------------------------------------------------
# Provider failures that are not the prospect's fault
# ---------------------------------------------------------------------------------------------------------

class ProviderHalt(Exception):  # not an LLMError on purpose: the pipeline must not turn it into a fallback
    """The provider refuses every call (a rejected key, no credits, an outage past the retries): the batch
    pauses with `reason` and the item goes back, instead of every item being burned into a fallback."""

    def __init__(self, reason: str, cause: LLMError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


def provider_halt_reason(exc: BaseException) -> str:
    """The pause reason for an error that no other prospect would escape, or "" for one of this prospect."""
    if isinstance(exc, AuthError):
        return "the provider rejected the key"
    if isinstance(exc, OutOfCreditsError):
        return "the provider account is out of credits"
    if isinstance(exc, ProviderUnavailableError):
        return "the provider is unavailable (the outage outlasted the retries)"
    if isinstance(exc, RateLimitedError):
        return "the provider kept refusing calls as rate-limited past the retries"
    return ""


class _ProviderFence:
    """The gateway as the pipeline sees it in a batch: a provider-wide failure raises ProviderHalt, which the
    pipeline does not catch (it falls back only on LLMError and its own errors)."""

    def __init__(self, gw: Any) -> None:
        self._gw = gw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gw, name)

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._gw.call(*args, **kwargs)
        except BudgetExceededError:
            raise
        except LLMError as exc:
            reason = provider_halt_reason(exc)
            if reason:
                raise ProviderHalt(reason, exc) from exc
            raise


# ---------------------------------------------------------------------------------------------------------
# The worker loop
# ---------------------------------------------------------------------------------------------------------

@dataclass
class RunReport:
    batch_id: int
    processed: int
    outcome: str  # done | paused_budget | paused_provider | cancelled | idle | stopped | running (items elsewhere)
    errors: int = 0


Progress = Callable[[int], None]


async def work_batch(app: App, batch_id: int, worker_id: str, *, stop: threading.Event | None = None,
                     progress: Progress | None = None) -> RunReport:
    """Process a batch's items until none are left, the budget runs out, the provider refuses every call, it
    is cancelled, or `stop` is set (then the items this worker holds go back within SHUTDOWN_GRACE_S)."""
    batch = get_batch(app, batch_id)
    if batch.status not in ACTIVE:
        return RunReport(batch_id, 0, "idle")
    with heartbeat.running(app, worker_id) as beat:
        return await _work(app, batch, worker_id, beat, stop, progress)


async def _work(app: App, batch: Batch, worker_id: str, beat: heartbeat.Heartbeat, stop: threading.Event | None,
                progress: Progress | None) -> RunReport:
    batch_id = int(batch.id)  # type: ignore[arg-type]
    log.info("batch started", extra={"fields": {"batch_id": batch_id, "worker": worker_id, "items": batch.items_total,
                                                "concurrency": batch.concurrency}})
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
        with beat.through(writes):
            await writes(lambda conn: _set_status_on(conn, batch_id, "running", ("queued",)))
            pipeline = Pipeline(_ProviderFence(gw), library_specs(app), app.settings.data_dir, app.summaries)
            queue: asyncio.Queue[int] = asyncio.Queue(maxsize=workers)
            claimed: set[int] = set()
            prepared: dict[int, _Prepared] = {}
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
                    ids = await writes(lambda conn, n=room: claim_on(conn, lease_s, batch_id, worker_id, n,
                                                                     silent_s=silent_s))
                    if not ids:
                        break
                    claimed.update(ids)
                    prepared.update(await _prepare(app, writes, batch, ids))
                    for item_id in ids:
                        await queue.put(item_id)

            async def runner() -> None:
                nonlocal processed, errors
                while True:
                    item_id = await queue.get()
                    try:
                        if quitting():
                            continue
                        try:
                            if await _process(app, pipeline, batch, prepared.pop(item_id), worker_id):
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
                                             record_item_error_on(conn, i, worker_id, e))
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
                    await writes(lambda conn: release_claims_on(conn, sorted(claimed), worker_id))
            outcome = await writes(lambda conn: _conclude_on(conn, batch_id, budget_hit.is_set(), halted, stopping()))
    if outcome == BatchStatus.PAUSED_BUDGET:
        _note_budget_pause(app, batch_id)
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
        if _set_status_on(conn, batch_id, "paused_budget", ACTIVE, error=(
                "paused: the monthly budget cannot cover the next call; raise it on the Spend page or wait for the "
                "month to roll")):
            return BatchStatus.PAUSED_BUDGET
    elif halted:
        first = halted[0]
        detail = f"HTTP {first.cause.status}" if first.cause.status else first.cause.kind
        _set_status_on(conn, batch_id, "paused_provider", ACTIVE, error=(
            f"paused: {first.reason} ({detail}); fix it, then resume the batch: the {len(halted)} item"
            f"{'s' if len(halted) != 1 else ''} it stopped are redone"))
        return BatchStatus.PAUSED_PROVIDER
    if stopped:
        return "stopped"
    current = conn.execute(text("SELECT status FROM batches WHERE id = :b"), {"b": batch_id}).scalar()
    if current in ACTIVE and _finish_batch_if_complete_on(conn, batch_id):
        return BatchStatus.DONE
    return str(current)


@dataclass
class _Prepared:
    """What a claimed item needs, read once per claimed chunk instead of once per item."""

    item: BatchItem
    prospect: Prospect | None
    halted: bool  # a reply or the do-not-contact list may stop this prospect: check it in detail
    assigned: tuple[str, str] | None
    budget_level: str


async def _prepare(app: App, writes: Any, batch: Batch, item_ids: Sequence[int]) -> dict[int, _Prepared]:
    read = await asyncio.to_thread(_read_chunk, app, batch, item_ids)
    items, prospects, halted, plan, level = read
    assigned: dict[int, tuple[str, str]] = {}
    if plan is not None:  # new experiment assignments go through the committer, like every write of the worker
        from core.experiments.lifecycle import store_assignments_on

        assigned = await writes(lambda conn: store_assignments_on(conn, plan)) if plan.rows else plan.known
    if batch.kind == "classify":
        return {i.id: _Prepared(i, None, False, None, "") for i in items if i.id is not None}
    return {i.id: _Prepared(i, prospects.get(i.prospect_id), i.prospect_id in halted,  # type: ignore[arg-type]
                            assigned.get(i.prospect_id), level)  # type: ignore[arg-type]
            for i in items if i.id is not None}


def _read_chunk(app: App, batch: Batch, item_ids: Sequence[int]) -> tuple[Any, ...]:
    with session_scope(app.engine) as s:
        items = list(s.exec(select(BatchItem).where(BatchItem.id.in_(item_ids))).all())  # type: ignore[union-attr]
        prospect_ids = [i.prospect_id for i in items if i.prospect_id is not None]
        prospects = {p.id: p for p in s.exec(select(Prospect).where(Prospect.id.in_(prospect_ids))).all()}  # type: ignore[union-attr]
    if batch.kind == "classify":
        return items, {}, set(), None, ""
    halted = _maybe_halted(app, prospect_ids)
    return items, prospects, halted, _assignment_plan(app, prospect_ids, batch.step), app.budget_state().level


async def _process(app: App, pipeline: Pipeline, batch: Batch, prep: _Prepared, worker_id: str) -> bool:
    item, prospect = prep.item, prep.prospect
    item_id = int(item.id)  # type: ignore[arg-type]
    prospect_id = prospect.id if prospect is not None else None
    writes = pipeline.gw.writes

    async def done(result: Result | None, error: str = "") -> bool:
        return await writes(lambda conn: finish_on(conn, item_id, worker_id, result, error, batch.id, prospect_id,
                                                   item.step))

    # Renewing the lease fences out a worker that lost it (its items were taken over): no call, no payment.
    # A lease with more than half its time left cannot have been taken over yet, so it needs no renewal (the
    # heartbeat renews every held item while it waits or its calls are in flight).
    lease_s = app.settings.batch_lease_s
    half = timedelta(seconds=lease_s / 2)
    fresh = item.lease_expires_at is not None and item.lease_expires_at - utcnow() > half
    if not fresh and not await writes(lambda conn: renew_lease_on(conn, lease_s, item_id, worker_id)):
        return False
    replay = item.attempts > 1  # only a reclaimed item can have stored answers to replay
    if batch.kind == "classify":
        from core.replies.inbox import classify_and_route

        try:
            await classify_and_route(app, pipeline.gw, item.reply_id,  # type: ignore[arg-type]
                                     CallContext(batch_id=batch.id, item_id=item_id, replay=replay, owner=worker_id))
        except (BudgetExceededError, ProviderHalt):
            raise
        except (LLMError, ValueError, LookupError) as exc:
            return await done(None, f"classification failed: {exc}")
        return await writes(lambda conn: _finish_classified_on(conn, item_id, worker_id))
    if prospect is None:
        return await done(None, "the prospect no longer exists")
    halt = await asyncio.to_thread(_halt_reason, app, prospect.id) if prep.halted else ""
    if halt:
        return await done(None, halt)
    context = CallContext(batch_id=batch.id, prospect_id=prospect.id, item_id=item_id, replay=replay, owner=worker_id)
    assigned = prep.assigned
    try:
        options = options_for(app, step=item.step, template_name=None if assigned else batch.template_name,
                              assigned=assigned[0] if assigned else None, budget_level=prep.budget_level)
        result = await pipeline.run(prospect_fields(prospect), options, context)
        if assigned:
            result.variant = assigned[1]
    except (BudgetExceededError, ProviderHalt):
        raise
    except (LLMError, LookupError, ValueError) as exc:
        return await done(None, f"{type(exc).__name__}: {exc}")
    return await done(result)


def _halt_reason(app: App, prospect_id: int | None) -> str:
    """Why the sequence must not message this prospect now ("" when it may): on the do-not-contact list, or a
    reply since the batch began."""
    from core.people.identity import is_suppressed
    from core.replies.inbox import paused_until, sequence_stopped

    if prospect_id is None:
        return ""
    with session_scope(app.engine) as s:
        if is_suppressed(s, prospect_id):
            return "skipped: the prospect is on the do-not-contact list; nothing was written or paid for"
    if sequence_stopped(app, prospect_id):
        return "skipped: the prospect replied or is on the do-not-contact list; the sequence is stopped"
    until = paused_until(app, prospect_id)
    return f"skipped: out of office; the sequence is paused until {until.isoformat()}" if until else ""


def _assignment_plan(app: App, prospect_ids: Sequence[int], step: str) -> Any:
    """Experiment arms for a chunk of prospects on this step, read only (None, in one query, when none runs);
    the new assignments are written by the caller through its committer."""
    if not prospect_ids:
        return None
    try:
        from core.experiments.lifecycle import plan_assignments
    except ImportError:
        return None
    plan = plan_assignments(app, prospect_ids, step)
    return plan if plan.known or plan.rows else None


def _finish_classified_on(conn: Connection, item_id: int, worker_id: str) -> bool:
    return conn.execute(_FINISH_ITEM, {"st": "ready", "e": "", "now": utcnow().replace(tzinfo=None), "i": item_id,
                                       "w": worker_id}).rowcount == 1


def _note_budget_pause(app: App, batch_id: int) -> None:
    """Remember the month and cap a batch paused at, so it resumes by itself once either changes."""
    state = app.budget_state()
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
