"""The review queue: look at what a batch produced, approve, reject or edit, and export what was approved.

An edit re-runs the guards on the edited text, so a person cannot approve a message the code would refuse.
Bulk approval takes only messages that are ready, passed every guard, passed review when there was one, and
whose prospect was not flagged by the injection screen; everything else needs a person's eye.

People on the do-not-contact list (under any identity they are known by, asked of `core.people.identity` at the
moment of each action) are marked in the queue, can never be approved, and are withheld from every export,
which says how many it withheld and why: an opt-out that arrives after approval still stops the message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import and_, or_
from sqlmodel import Session, select

from core.app import App
from core.messages.exports import to_csv_bytes, to_json_bytes
from core.messages.guards import GuardResult
from core.messages.library import get_template
from core.messages.library import specs as library_specs
from core.messages.personalize import Pipeline
from core.people import identity
from core.people.prospects import prospect_fields
from core.store.db import session_scope
from core.store.lookup import get_or_raise
from core.store.models import Message, Prospect, utcnow

EXPORT_COLUMNS = ("identity", "first_name", "last_name", "company_name", "linkedin_url", "email", "step", "message",
                  "template", "variant", "model", "cost_usd", "batch_id")


@dataclass(frozen=True)
class ExportRow:
    """One approved message as exported (the CSV's columns are `EXPORT_COLUMNS`, in this order)."""

    identity: str
    first_name: str
    last_name: str
    company_name: str
    linkedin_url: str
    email: str
    step: str
    message: str
    template: str
    variant: str
    model: str
    cost_usd: Decimal
    batch_id: int | None


class ReviewError(ValueError):
    """A review action that cannot be done; the message says why."""


WITHHELD_REASON = identity.DO_NOT_CONTACT


@dataclass(frozen=True)
class ExportResult:
    """An export's file and what it left out: `withheld` approved messages of people not to contact."""

    data: bytes
    fmt: str
    rows: int
    withheld: int
    reason: str = WITHHELD_REASON

    def summary(self) -> str:
        text = f"{self.rows:,} message{'' if self.rows == 1 else 's'} exported"
        return f"{text}; withheld {self.withheld:,}: {self.reason}" if self.withheld else text


def _do_not_contact(s: Session, prospect_ids: Sequence[int | None]) -> dict[int, str]:
    return identity.suppressed_prospects(s, [int(i) for i in dict.fromkeys(prospect_ids) if i is not None])


@dataclass(frozen=True)
class QueueFilter:
    batch_id: int | None = None
    states: tuple[str, ...] = ()
    approval: tuple[str, ...] = ()
    guard_failed: str | None = None  # a guard name: only messages that failed it
    min_score: float | None = None
    max_score: float | None = None
    template: str | None = None
    flagged_only: bool = False


@dataclass(frozen=True)
class QueueRow:
    """One message of the review table, beside its template, guards, review and approval."""

    id: int | None
    prospect: str
    company: str
    state: str
    approval: str
    message: str
    edited: bool
    template: str
    template_text: str
    variant: str
    guards_failed: str  # the failed guards' names, comma-separated
    review_score: float | None
    flagged: str  # the injection kinds found in the prospect's fields, comma-separated
    reason: str
    cost_usd: str
    do_not_contact: bool


def _passed(message: Message) -> bool:
    return all(g.get("passed") for g in message.guards or [])


def _review_ok(message: Message) -> bool:
    return message.review is None or (message.review.get("status") == "ok" and bool(message.review.get("approved")))


def queue(app: App, f: QueueFilter, limit: int = 2000) -> list[QueueRow]:
    """Rows for the review table: message beside its template, guards, review, approval."""
    with session_scope(app.engine) as s:
        q = select(Message, Prospect).join(Prospect, Message.prospect_id == Prospect.id, isouter=True)
        if f.batch_id is not None:
            q = q.where(Message.batch_id == f.batch_id)
        if f.states:
            q = q.where(Message.state.in_(f.states))  # type: ignore[attr-defined]
        if f.approval:
            q = q.where(Message.approval.in_(f.approval))  # type: ignore[attr-defined]
        if f.template:
            q = q.where(Message.template_name == f.template)
        rows = s.exec(q.order_by(Message.id).limit(limit)).all()
        blocked = _do_not_contact(s, [m.prospect_id for m, _ in rows])
        templates = {t.name: t.text for t in library_specs(app)}
    out: list[QueueRow] = []
    for message, prospect in rows:
        flags = (prospect.flags if prospect else []) or []
        failed = [g["name"] for g in message.guards or [] if not g.get("passed")]
        score = message.review.get("score") if message.review else None
        if f.guard_failed and f.guard_failed not in failed:
            continue
        if f.min_score is not None and (score is None or score < f.min_score):
            continue
        if f.max_score is not None and (score is None or score > f.max_score):
            continue
        if f.flagged_only and not flags:
            continue
        out.append(QueueRow(
            id=message.id,
            prospect=f"{prospect.first_name} {prospect.last_name}".strip() if prospect else "",
            company=prospect.company_name if prospect else "",
            state=message.state,
            approval=message.approval,
            message=message.edited_text if message.edited_text is not None else message.text,
            edited=message.edited_text is not None,
            template=message.template_name,
            template_text=templates.get(message.template_name, ""),
            variant=message.variant,
            guards_failed=", ".join(failed),
            review_score=score,
            flagged=", ".join(sorted({fl.get("kind", "") for fl in flags})),
            reason=message.reason,
            cost_usd=str(message.cost_usd),
            do_not_contact=message.prospect_id in blocked,
        ))
    return out


def _get(s: Any, message_id: int) -> Message:
    message = get_or_raise(s, Message, message_id, ReviewError)
    return message


def approve(app: App, message_ids: Sequence[int]) -> int:
    """Approve messages that have text and pass their guards (after any edit)."""
    done = 0
    with session_scope(app.engine) as s:
        messages = [_get(s, mid) for mid in message_ids]
        blocked = _do_not_contact(s, [m.prospect_id for m in messages])
        for mid, message in zip(message_ids, messages, strict=True):
            if message.prospect_id in blocked:
                raise ReviewError(f"message {mid} cannot be approved: its prospect is on the do-not-contact list")
            text = message.edited_text if message.edited_text is not None else message.text
            if not text:
                raise ReviewError(f"message {mid} has no text to approve ({message.state}); edit it first")
            if not _passed(message):
                raise ReviewError(f"message {mid} fails a guard; edit it so the guards pass, or reject it")
            message.approval, message.decided_at = "approved", utcnow()
            s.add(message)
            done += 1
    return done


def reject(app: App, message_ids: Sequence[int]) -> int:
    with session_scope(app.engine) as s:
        for mid in message_ids:
            message = _get(s, mid)
            message.approval, message.decided_at = "rejected", utcnow()
            s.add(message)
    return len(message_ids)


def edit(app: App, message_id: int, new_text: str) -> list[GuardResult]:
    """Store an edit and re-run the guards on it; returns the guard results (approval is reset to pending)."""
    with session_scope(app.engine) as s:
        message = _get(s, message_id)
        prospect = s.get(Prospect, message.prospect_id) if message.prospect_id else None
        fields = prospect_fields(prospect) if prospect else {}
        template = get_template(app, message.template_name)
        pipeline = Pipeline(None, library_specs(app), app.settings.data_dir)
        step = pipeline.steps.get(message.step)
        max_chars = step.max_chars if step else 300
        results = pipeline.check(new_text, fields, template.text if template else "", max_chars)
        message.edited_text = new_text
        message.guards = [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in results]
        message.approval = "pending"
        s.add(message)
        return results


def approve_passed(app: App, batch_id: int) -> int:
    """Bulk-approve a batch's messages that passed everything and whose prospect was not flagged."""
    with session_scope(app.engine) as s:
        rows = s.exec(
            select(Message, Prospect).join(Prospect, Message.prospect_id == Prospect.id, isouter=True)
            .where(Message.batch_id == batch_id, Message.state == "ready", Message.approval == "pending")
        ).all()
        count = 0
        now = utcnow()
        blocked = _do_not_contact(s, [m.prospect_id for m, _ in rows])
        for message, prospect in rows:
            if not message.text or not _passed(message) or not _review_ok(message):
                continue
            if message.prospect_id in blocked:
                continue
            if prospect is not None and prospect.flags:
                continue
            message.approval, message.decided_at = "approved", now
            s.add(message)
            count += 1
    return count


def _approved(app: App, batch_id: int) -> tuple[list[ExportRow], int]:
    """The approved messages of a batch to export, and how many were withheld (do not contact)."""
    with session_scope(app.engine) as s:
        rows = s.exec(
            select(Message, Prospect).join(Prospect, Message.prospect_id == Prospect.id, isouter=True)
            .where(Message.batch_id == batch_id, Message.approval == "approved")
            .where(or_(Message.edited_text.is_not(None), and_(Message.text != "")))  # type: ignore[union-attr]
            .order_by(Message.id)
        ).all()
        blocked = _do_not_contact(s, [m.prospect_id for m, _ in rows])
    kept = [(m, p) for m, p in rows if m.prospect_id not in blocked]
    return [ExportRow(
        identity=p.identity if p else "",
        first_name=p.first_name if p else "",
        last_name=p.last_name if p else "",
        company_name=p.company_name if p else "",
        linkedin_url=p.linkedin_url if p else "",
        email=p.email if p else "",
        step=m.step,
        message=m.edited_text if m.edited_text is not None else m.text,
        template=m.template_name,
        variant=m.variant,
        model=m.model,
        cost_usd=m.cost_usd,
        batch_id=m.batch_id,
    ) for m, p in kept], len(rows) - len(kept)


def approved_rows(app: App, batch_id: int) -> list[ExportRow]:
    """Approved messages of a batch, without those of people on the do-not-contact list."""
    return _approved(app, batch_id)[0]


def export_file(app: App, batch_id: int, fmt: str = "csv") -> ExportResult:
    """Approved messages of a batch as CSV (UTF-8 with BOM, formula cells neutralized) or JSON, with the count
    of approved messages withheld because their prospect is on the do-not-contact list."""
    if fmt not in ("csv", "json"):
        raise ReviewError(f"unknown export format {fmt!r}; use csv or json")
    approved, withheld = _approved(app, batch_id)
    rows = [dataclasses.asdict(row) for row in approved]
    data = to_csv_bytes(rows, EXPORT_COLUMNS) if fmt == "csv" else to_json_bytes(rows)
    return ExportResult(data=data, fmt=fmt, rows=len(rows), withheld=withheld)


def export(app: App, batch_id: int, fmt: str = "csv") -> bytes:
    """The bytes of `export_file` (people on the do-not-contact list withheld)."""
    return export_file(app, batch_id, fmt).data
