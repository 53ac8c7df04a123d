"""Claims and leases: which worker holds which batch item, and the one write that finishes it.

A worker claims a chunk of items in one statement (SQLite: inside BEGIN IMMEDIATE; PostgreSQL:
`FOR UPDATE SKIP LOCKED`, so several workers share a batch). Each claim is a lease: the heartbeat
(`core.batches.heartbeat`) renews the leases of a live worker, and the items of one that stopped or fell silent
are taken over at once. Every finishing write is fenced on the lease (`lease_owner = :w AND state = 'claimed'`),
so a worker that lost an item can never write it; the `_on` forms run inside the caller's write transaction
(the batch's group committer, `core.store.commits`).
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from core.app import App
from core.batches.lifecycle import GIVE_UP_STEP
from core.messages.personalize import Result
from core.store.db import immediate
from core.store.models import BatchItem, ItemState, Message, WorkerState, utcnow

_PENDING, _CLAIMED = ItemState.PENDING.value, ItemState.CLAIMED.value


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


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
        gone = (f" OR lease_owner IN (SELECT id FROM workers WHERE state = '{WorkerState.STOPPED}' OR "
                f"(state = '{WorkerState.ALIVE}' AND last_beat_at < :silent))")
    # An expired lease of this same worker is not taken back: the item is still queued or in flight here.
    pick = (f"SELECT id FROM batch_items WHERE batch_id = :b AND (state = '{_PENDING}' OR "
            f"(state = '{_CLAIMED}' AND lease_owner <> :w AND (lease_expires_at < :now{gone}))) ORDER BY id LIMIT :n")
    if conn.dialect.name != "sqlite":
        pick += " FOR UPDATE SKIP LOCKED"
    sql = (f"UPDATE batch_items SET state = '{_CLAIMED}', lease_owner = :w, lease_expires_at = :exp, "
           f"attempts = attempts + 1, updated_at = :now WHERE id IN ({pick}) RETURNING id")
    return sorted(int(r[0]) for r in conn.execute(text(sql), params).all())


def renew_lease(app: App, item_id: int, worker_id: str) -> bool:
    """Extend this worker's lease as it starts on an item; False when the lease was lost (another worker took
    the item over), in which case nothing is called or paid for."""
    with immediate(app.engine) as conn:
        return renew_lease_on(conn, app.settings.batch_lease_s, item_id, worker_id)


_RENEW = text(f"UPDATE batch_items SET lease_expires_at = :exp WHERE id = :i AND lease_owner = :w AND "
              f"state = '{_CLAIMED}'")


def renew_lease_on(conn: Connection, lease_s: float, item_id: int, worker_id: str) -> bool:
    exp = (utcnow() + timedelta(seconds=lease_s)).replace(tzinfo=None)
    return conn.execute(_RENEW, {"exp": exp, "i": item_id, "w": worker_id}).rowcount == 1


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
            f"UPDATE batch_items SET state = '{_PENDING}', lease_owner = NULL, lease_expires_at = NULL "
            f"WHERE id IN ({chunk}) AND lease_owner = :w AND state = '{_CLAIMED}'"), {"w": worker_id}).rowcount
    return released


def record_item_error_on(conn: Connection, item_id: int, worker_id: str, error: str) -> None:
    """Keep the last error of an attempt on its item (it stays claimed, then goes back to pending), so the
    batch's status counts it instead of it living only in the logs."""
    conn.execute(text("UPDATE batch_items SET error = :e, updated_at = :now WHERE id = :i AND lease_owner = :w"),
                 {"e": error[:1000], "now": utcnow().replace(tzinfo=None), "i": item_id, "w": worker_id})


# Built once: every item ends with one of these.
_FINISH_ITEM = text("UPDATE batch_items SET state = :st, error = :e, lease_owner = NULL, lease_expires_at = NULL, "
                    f"updated_at = :now WHERE id = :i AND lease_owner = :w AND state = '{_CLAIMED}'")
_INSERT_MESSAGE = Message.__table__.insert()  # type: ignore[attr-defined]


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
    state = result.state if result is not None else ItemState.FAILED
    updated = conn.execute(_FINISH_ITEM, {
        "st": str(state), "e": (error or (result.reason if result else ""))[:1000], "now": now.replace(tzinfo=None),
        "i": item_id, "w": worker_id}).rowcount
    if updated != 1:
        return False
    if result is None:  # no message: the prospect's step is free for a later batch
        if prospect_id is not None and batch_id is not None and step is not None:
            conn.execute(GIVE_UP_STEP, {"p": prospect_id, "s": step, "b": batch_id})
    else:
        conn.execute(_INSERT_MESSAGE, {
            "prospect_id": prospect_id, "batch_item_id": item_id, "batch_id": batch_id, "step": result.step,
            "template_name": result.template, "variant": result.variant, "text": result.message, "state": state,
            "used_ai": result.used_ai, "model": result.model, "input_tokens": result.input_tokens,
            "output_tokens": result.output_tokens, "cost_usd": result.cost_usd, "guards": result.guards_json(),
            "review": result.review.as_json() if result.review else None, "fallback": result.fallback,
            "reason": result.reason[:1000], "created_at": now})
    return True


def finish_plain_on(conn: Connection, item_id: int, worker_id: str, state: ItemState, error: str = "",
                    result: dict[str, Any] | None = None) -> bool:
    """Finish an item that writes no message (a classified reply, a template's variants, an evaluated row),
    keeping what it produced in `batch_items.result`; False if this worker lost the lease."""
    table = BatchItem.__table__  # type: ignore[attr-defined]
    statement = table.update().where(table.c.id == item_id, table.c.lease_owner == worker_id,
                                     table.c.state == _CLAIMED).values(
        state=str(state), error=error[:1000], result=result, lease_owner=None, lease_expires_at=None,
        updated_at=utcnow())
    return conn.execute(statement).rowcount == 1
