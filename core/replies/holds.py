"""Sequence holds: whether the automatic sequence may message a prospect now, as rows the batch runner reads.

Every reply from a known prospect holds that prospect's sequence, one `SequenceHold` row per reply: a reply
stops the sequence as soon as it is imported (`HoldKind.STOPPED`, even before it is classified); routing
then keeps the stop, turns it into a pause until a return date (`PAUSED`) for an out-of-office reply, or
into a suppression (`SUPPRESSED`) for an opt-out. Routing the same reply again (a person's override)
replaces that reply's hold, so the table always says what the latest routing decided.

A stop outlasts any pause; a suppressed identity (the do-not-contact list of `core.people.identity`, which
also holds people who never replied) stops the sequence too. Replies from unknown prospects hold no one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlmodel import Session, col, select

from core.app import App
from core.people import identity as idm
from core.store.db import session_scope
from core.store.models import HoldKind, Reply, SequenceHold, utcnow

_STOPPING = (HoldKind.STOPPED.value, HoldKind.SUPPRESSED.value)
_DB_CHUNK = 500
PENDING_REASON = "reply received; not classified yet"


@dataclass(frozen=True)
class Hold:
    """One reply's hold on its prospect's sequence."""

    kind: HoldKind
    until: date | None
    reason: str

    def describe(self) -> str:
        """The hold in a person's words: "stopped", "paused until 2025-03-21", "suppressed (opt-out)"."""
        if self.kind == HoldKind.PAUSED and self.until is not None:
            return f"paused until {self.until.isoformat()}"
        if self.kind == HoldKind.SUPPRESSED:
            return "stopped: opted out"
        return "stopped"


def hold_reply(s: Session, reply: Reply, kind: HoldKind, until: date | None, reason: str) -> None:
    """Set the hold `reply` puts on its prospect, replacing any earlier one of the same reply, inside the caller's
    transaction. A pause needs its end date; a reply from an unknown prospect holds no one (nothing is written)."""
    if kind == HoldKind.PAUSED and until is None:
        raise ValueError("a paused hold needs the date the sequence may resume")
    if reply.prospect_id is None:
        return
    if reply.id is None:
        s.add(reply)
        s.flush()
    row = s.exec(select(SequenceHold).where(SequenceHold.reply_id == reply.id)).first()
    if row is None:
        row = SequenceHold(prospect_id=reply.prospect_id, reply_id=reply.id)
    row.prospect_id = reply.prospect_id
    row.kind = kind
    row.until = until if kind == HoldKind.PAUSED else None
    row.reason = reason[:500]
    row.created_at = utcnow()
    s.add(row)


def hold_new_replies(s: Session, replies: Iterable[Reply]) -> None:
    """Stop the sequence of every known prospect among these just-stored (flushed) replies, pending their
    classification, inside the caller's transaction."""
    now = utcnow()
    s.add_all([SequenceHold(prospect_id=r.prospect_id, kind=HoldKind.STOPPED, reason=PENDING_REASON, reply_id=r.id,
                            created_at=now) for r in replies if r.prospect_id is not None and r.id is not None])


def reply_holds(s: Session, reply_ids: Iterable[int]) -> dict[int, Hold]:
    """reply id -> its hold, for the replies that have one."""
    ids = list(dict.fromkeys(int(i) for i in reply_ids))
    out: dict[int, Hold] = {}
    for start in range(0, len(ids), _DB_CHUNK):
        part = ids[start:start + _DB_CHUNK]
        for row in s.exec(select(SequenceHold).where(col(SequenceHold.reply_id).in_(part))):
            out[int(row.reply_id or 0)] = Hold(HoldKind(row.kind), row.until, row.reason)
    return out


@dataclass(frozen=True)
class SequenceState:
    """What the holds say for one prospect: stopped (any stop, suppression or do-not-contact identity), or paused
    until `paused_until` (the latest pause still ahead), or free to go on (neither)."""

    stopped: bool
    paused_until: date | None
    reason: str = ""


def sequence_states(app: App, prospect_ids: Iterable[int], today: date | None = None) -> dict[int, SequenceState]:
    """The held prospects among `prospect_ids` as of `today` (UTC today by default), by id: stopped, or paused
    until a day still ahead. Prospects free to go on are left out. A few queries per 500 prospects, so a batch
    can ask for a whole chunk at once."""
    today = today or utcnow().date()
    ids = list(dict.fromkeys(int(i) for i in prospect_ids))
    out: dict[int, SequenceState] = {}
    with session_scope(app.engine) as s:
        for start in range(0, len(ids), _DB_CHUNK):
            part = ids[start:start + _DB_CHUNK]
            rows = s.exec(select(SequenceHold).where(col(SequenceHold.prospect_id).in_(part))
                          .order_by(col(SequenceHold.id))).all()
            suppressed = idm.suppressed_prospects(s, part)
            for pid in part:
                mine = [r for r in rows if r.prospect_id == pid]
                stop = next((r for r in mine if r.kind in _STOPPING), None)
                if stop is not None:
                    out[pid] = SequenceState(True, None, stop.reason)
                    continue
                if pid in suppressed:
                    out[pid] = SequenceState(True, None, "on the do-not-contact list")
                    continue
                pauses = [r for r in mine if r.kind == HoldKind.PAUSED and r.until is not None and r.until > today]
                latest = max(pauses, key=lambda r: r.until or today, default=None)
                if latest is not None:
                    out[pid] = SequenceState(False, latest.until, latest.reason)
    return out


def sequence_state(app: App, prospect_id: int, today: date | None = None) -> SequenceState:
    """One prospect's holds as of `today` (see `sequence_states`)."""
    return sequence_states(app, [prospect_id], today).get(prospect_id, SequenceState(False, None))


def sequence_stopped(app: App, prospect_id: int) -> bool:
    """True when the automatic sequence must not send to this prospect again: a reply of theirs that is not an
    out-of-office pause (pending replies included), or any of their identities is suppressed."""
    return sequence_state(app, prospect_id).stopped


def paused_until(app: App, prospect_id: int, today: date | None = None) -> date | None:
    """The day the sequence may resume after an out-of-office reply, while that day is still ahead of `today`
    (UTC today by default); None when no pause is running or a stop outlasts it."""
    return sequence_state(app, prospect_id, today).paused_until
