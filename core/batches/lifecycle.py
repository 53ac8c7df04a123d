"""A batch's life as the pages and the command line see it: create it, queue it, cancel or resume it, and read
its progress from the database alone (so it is right after a reload, from another tab or another process).

Lifecycle of a batch: draft (created, estimate shown) -> queued (Run pressed; pressing again changes nothing)
-> running -> done, or paused_budget (the budget ran out: not an error; resumes when the budget is raised or
the month rolls), or paused_provider (the provider refuses every call: a rejected key, no credits, an outage
past the retries; resumed by hand once fixed, redoing exactly the items that hit it), or cancelled. Items move
pending -> claimed (lease, see `core.batches.claims`) -> one final state (`FINAL_ITEM_STATES`).

What a batch's items are (prospects, replies, templates, labelled rows) is its kind (`core.batches.kinds`);
creating one asks the kind for its items. A prospect's sequence step is written at most once, whichever batch,
session or process asks: creating a personalize item takes the (prospect, step) row of `step_claims` (a primary
key, so the database refuses a second one); an item that ends without a message gives it up again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlmodel import select

from core.app import App
from core.costs import budget
from core.store.db import immediate, session_scope
from core.store.lookup import get_or_raise
from core.store.models import (
    FINAL_ITEM_STATES,
    OPEN_ITEM_STATES,
    Batch,
    BatchStatus,
    ItemState,
    as_utc,
    from_nanos,
    money_str,
    utcnow,
)

ACTIVE: tuple[BatchStatus, ...] = (BatchStatus.QUEUED, BatchStatus.RUNNING)
PAUSED: tuple[BatchStatus, ...] = (BatchStatus.PAUSED_BUDGET, BatchStatus.PAUSED_PROVIDER)
SKIPPED = "skipped:"  # an item error starting so is a decision (a reply, do-not-contact), not a failure
# Items whose error counts as a failure to show: final failures and attempts that will be retried.
_ERRED_STATES = ItemState.sql(ItemState.FAILED, *OPEN_ITEM_STATES)


class BatchError(ValueError):
    """A batch request that cannot be carried out (unknown id, wrong state); the message says why."""


# ---------------------------------------------------------------------------------------------------------
# Creating and steering batches
# ---------------------------------------------------------------------------------------------------------

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


GIVE_UP_STEP = text("DELETE FROM step_claims WHERE prospect_id = :p AND step = :s AND batch_id = :b")


def claim_steps(conn: Connection, batch_id: int, prospect_ids: list[int], step: str, now: datetime) -> list[int]:
    """Take the (prospect, step) claims still free for this batch; the prospects it got, in the given order.
    Claims are inserted in id order, so two batches taking overlapping sets never deadlock on PostgreSQL.

    Items still pending in a cancelled batch give their claim up to the new one (someone cancelled, then ran
    again, e.g. with another template): they are first marked skipped in that batch, in the statement that
    locks them, so resuming it later never does them too."""
    ordered = sorted(prospect_ids)
    for start in range(0, len(ordered), 500):
        chunk = ", ".join(str(int(p)) for p in ordered[start:start + 500])
        moved = conn.execute(text(
            f"UPDATE batch_items SET state = '{ItemState.FAILED}', error = :e, updated_at = :now WHERE step = :s "
            f"AND state = '{ItemState.PENDING}' AND prospect_id IN ({chunk}) AND batch_id IN (SELECT id FROM "
            f"batches WHERE status = '{BatchStatus.CANCELLED}') RETURNING batch_id, prospect_id"),
            {"e": f"{SKIPPED} moved to batch #{batch_id}", "now": now, "s": step}).all()
        for old_batch, prospect in moved:
            conn.execute(GIVE_UP_STEP, {"p": prospect, "s": step, "b": old_batch})
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


def set_status(app: App, batch_id: int, new: BatchStatus, allowed_from: Sequence[BatchStatus], **extra: Any) -> bool:
    with immediate(app.engine) as conn:
        return set_status_on(conn, batch_id, new, allowed_from, **extra)


def set_status_on(conn: Connection, batch_id: int, new: BatchStatus, allowed_from: Sequence[BatchStatus],
                  **extra: Any) -> bool:
    """Move the batch to `new` if it is in one of `allowed_from`, inside the caller's write transaction."""
    sets = ", ".join(["status = :new", *[f"{k} = :{k}" for k in extra]])
    params: dict[str, Any] = {"new": str(new), "id": batch_id, **{
        k: (v.replace(tzinfo=None) if isinstance(v, datetime) else v) for k, v in extra.items()}}
    marks = ", ".join(f":f{i}" for i in range(len(allowed_from)))
    params.update({f"f{i}": str(v) for i, v in enumerate(allowed_from)})
    return conn.execute(text(f"UPDATE batches SET {sets} WHERE id = :id AND status IN ({marks})"),
                        params).rowcount == 1


def get_batch(app: App, batch_id: int) -> Batch:
    with session_scope(app.engine) as s:
        return get_or_raise(s, Batch, batch_id, BatchError)


def start_batch(app: App, batch_id: int) -> bool:
    """Queue a draft batch for the workers. Returns False (and changes nothing) if it was already started."""
    get_batch(app, batch_id)
    return set_status(app, batch_id, BatchStatus.QUEUED, (BatchStatus.DRAFT,), started_at=utcnow())


def cancel_batch(app: App, batch_id: int) -> bool:
    """Stop claiming new items; items in flight finish. Pending items stay pending (resumable)."""
    get_batch(app, batch_id)
    return set_status(app, batch_id, BatchStatus.CANCELLED, (BatchStatus.DRAFT, *ACTIVE, BatchStatus.PAUSED_BUDGET))


def resume_batch(app: App, batch_id: int) -> bool:
    """Queue a paused, cancelled or interrupted batch again; items already final are never redone."""
    batch = get_batch(app, batch_id)
    if batch.status == BatchStatus.DONE:
        raise BatchError(f"batch {batch_id} is already done")
    if batch.status in ACTIVE:
        return False
    return set_status(app, batch_id, BatchStatus.QUEUED,
                      (BatchStatus.DRAFT, *PAUSED, BatchStatus.CANCELLED, BatchStatus.FAILED), error="")


def list_batches(app: App, limit: int = 100, kind: str | None = None) -> list[Batch]:
    """The latest batches, newest first; with `kind`, only that kind's."""
    with session_scope(app.engine) as s:
        query = select(Batch).order_by(Batch.id.desc()).limit(limit)  # type: ignore[union-attr]
        if kind is not None:
            query = query.where(Batch.kind == kind)
        return list(s.exec(query).all())


def finish_batch_if_complete_on(conn: Connection, batch_id: int) -> bool:
    left = conn.execute(text(f"SELECT COUNT(*) FROM batch_items WHERE batch_id = :b AND state IN "
                             f"{ItemState.sql(*OPEN_ITEM_STATES)}"), {"b": batch_id}).scalar()
    if left:
        return False
    return set_status_on(conn, batch_id, BatchStatus.DONE, ACTIVE, finished_at=utcnow())


# ---------------------------------------------------------------------------------------------------------
# Progress
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BatchProgress:
    """A batch's progress and cost, read from the database alone."""

    batch_id: int
    name: str
    status: str  # a BatchStatus code
    kind: str  # a BatchKind code
    step: str
    items: int
    done: int
    counts: dict[str, int]  # items per ItemState code, every state present
    cost_usd: Decimal
    input_tokens: int
    output_tokens: int
    calls: int
    rate_per_s: float | None
    eta_s: int | None
    error: str  # why the batch paused or failed (the batch's own error)
    errors: int  # items whose last attempt failed (skipped ones are not failures)
    last_error: str
    label: str  # the status as a user reads it: "done with 3 errors"
    created_at: datetime

    @property
    def fraction(self) -> float:
        return self.done / self.items if self.items else 0.0

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["cost_usd"] = money_str(self.cost_usd)
        data["created_at"] = self.created_at.isoformat()
        return data


def counts(app: App, batch_id: int) -> dict[str, int]:
    with app.engine.connect() as conn:
        rows = conn.execute(text("SELECT state, COUNT(*) FROM batch_items WHERE batch_id = :b GROUP BY state"),
                            {"b": batch_id}).all()
    return {str(r[0]): int(r[1]) for r in rows}


def status(app: App, batch_id: int) -> BatchProgress:
    """Progress from the database alone, so it is right after a reload or from another tab or process."""
    batch = get_batch(app, batch_id)
    by_state = counts(app, batch_id)
    done = sum(by_state.get(s, 0) for s in FINAL_ITEM_STATES)
    erred = (f"FROM batch_items WHERE batch_id = :b AND error <> '' AND error NOT LIKE :skip AND state IN "
             f"{_ERRED_STATES}")
    skip = {"b": batch_id, "skip": f"{SKIPPED}%"}
    with app.engine.connect() as conn:
        row = conn.execute(text(
            "SELECT COALESCE(SUM(cost_usd), 0), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
            "COUNT(*) FROM usage_ledger WHERE batch_id = :b"), {"b": batch_id}).one()
        first_last = conn.execute(text(
            "SELECT MIN(updated_at), MAX(updated_at) FROM batch_items WHERE batch_id = :b AND state IN "
            f"{ItemState.sql(*FINAL_ITEM_STATES)}"), {"b": batch_id}).one()
        errors = int(conn.execute(text(f"SELECT COUNT(*) {erred}"), skip).scalar() or 0)
        last_error = conn.execute(text(f"SELECT error {erred} ORDER BY updated_at DESC, id DESC LIMIT 1"),
                                  skip).scalar()
    rate: float | None = None
    eta: int | None = None
    if done >= 2 and first_last[0] is not None and first_last[1] is not None:
        seconds = (as_utc(first_last[1]) - as_utc(first_last[0])).total_seconds()
        if seconds > 0:
            rate = round((done - 1) / seconds, 2)
            eta = round((batch.items_total - done) / rate) if rate and batch.status in ACTIVE else None
    return BatchProgress(
        batch_id=int(batch.id),  # type: ignore[arg-type]
        name=batch.name, status=batch.status, kind=batch.kind, step=batch.step, items=batch.items_total, done=done,
        counts={s.value: by_state.get(s, 0) for s in ItemState}, cost_usd=from_nanos(row[0]),
        input_tokens=int(row[1]), output_tokens=int(row[2]), calls=int(row[3]), rate_per_s=rate, eta_s=eta,
        error=batch.error, errors=errors, last_error=str(last_error or ""),
        label=status_label(batch.status, errors, batch.error), created_at=batch.created_at)


@dataclass(frozen=True)
class ItemError:
    """An item whose last attempt failed."""

    item: int
    prospect_id: int | None
    reply_id: int | None
    state: str  # as a user reads it: "failed" or "will be retried"
    attempts: int
    error: str
    at: str


def item_errors(app: App, batch_id: int, limit: int = 50) -> list[ItemError]:
    """The batch's items whose last attempt failed (not those skipped on purpose), latest first."""
    with app.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, prospect_id, reply_id, state, attempts, error, updated_at FROM batch_items WHERE batch_id = :b "
            f"AND error <> '' AND error NOT LIKE :skip AND state IN {_ERRED_STATES} "
            "ORDER BY updated_at DESC, id DESC LIMIT :n"), {"b": batch_id, "skip": f"{SKIPPED}%", "n": limit}).all()
    return [ItemError(item=int(r[0]), prospect_id=r[1], reply_id=r[2],
                      state="will be retried" if r[3] != ItemState.FAILED else "failed", attempts=int(r[4]),
                      error=str(r[5]), at=str(r[6])[:19]) for r in rows]


def status_label(batch_status: str, errors: int, reason: str = "") -> str:
    """The batch's status as a user reads it in a sentence: "done with 3 errors", "paused: the provider rejected
    the key"."""
    if batch_status == BatchStatus.PAUSED_PROVIDER and reason:
        label = reason.split(";")[0]
    elif batch_status == BatchStatus.PAUSED_BUDGET:
        label = "paused: the budget ran out"
    else:
        label = BatchStatus.label_of(batch_status).lower()
    if errors:
        label += f" with {errors} error{'s' if errors != 1 else ''}"
    return label


# ---------------------------------------------------------------------------------------------------------
# Budget pauses
# ---------------------------------------------------------------------------------------------------------

def note_budget_pause(app: App, batch_id: int) -> None:
    """Remember the month and cap a batch paused at, so it resumes by itself once either changes."""
    state = app.budget_state()
    with session_scope(app.engine) as s:
        batch = s.get(Batch, batch_id)
        if batch is None:
            raise BatchError(f"no batch with id {batch_id}")
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
        paused = list(s.exec(select(Batch).where(Batch.status == BatchStatus.PAUSED_BUDGET)).all())
    for batch in paused:
        if batch.id is not None and _budget_allows(app, batch):
            set_status(app, batch.id, BatchStatus.QUEUED, (BatchStatus.PAUSED_BUDGET,), error="")
    with app.engine.connect() as conn:
        return [int(r[0]) for r in conn.execute(text(
            f"SELECT id FROM batches WHERE status IN {BatchStatus.sql(*ACTIVE)} ORDER BY id"))]
