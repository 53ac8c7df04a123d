"""Import prospects' replies from a CSV: who replied, what they wrote, when; stored pending classification.

Same reading rules as the prospect import (`core.people.reading`); replies are matched to stored prospects
by any identity the row names (`core.people.identity`). A stored reply from a known prospect stops that
prospect's sequence at once (`core.replies.holds`), before it is classified.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import select

from core.app import App
from core.dates import parse_moment
from core.people import identity as idm
from core.people.columns import find_column, suggest_mapping
from core.people.reading import RowError, UnreadableFile, quoted, read_table
from core.replies.holds import hold_new_replies
from core.store.db import session_scope
from core.store.models import Reply, utcnow

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_STORED_CHARS = 20_000  # longer replies are stored cut (with a warning); the model sees 4,000 at most
_DB_CHUNK = 500

_TEXT_SPELLINGS = ("text", "reply", "replytext", "replybody", "message", "messagetext", "messagebody", "body",
                   "content", "response")
_RECEIVED_SPELLINGS = ("received", "receivedat", "receivedon", "replydate", "repliedat", "repliedon", "date",
                       "datetime", "timestamp", "time")
_IDENTITY_SPELLINGS = ("identity", "prospectidentity")
_IDENTITY_PREFIXES = ("li:", "email:", "name:")
_FUTURE_SLACK = timedelta(days=1)


def parse_received(raw: str) -> datetime:
    """An ISO date or date-time as aware UTC (`core.dates.parse_moment`); ValueError says how to write it."""
    try:
        return parse_moment(raw)
    except ValueError:
        raise ValueError(f"received {quoted(raw.strip())} is not a date like 2025-03-14 or a time like "
                         "2025-03-14T09:30:00Z") from None


def _identity_cell(value: str) -> str | None:
    """An identity column value: a stored identity (li:/email:/name:), a LinkedIn URL or an email."""
    text = value.strip()
    if text.lower().startswith("email:"):
        return idm.email_key(text[6:]) if idm.is_email_address(text[6:].strip()) else None
    if not text.lower().startswith(("li:", "name:")) and "@" in text:
        return idm.email_key(text) if idm.is_email_address(text) else None
    return idm.canonical(text)


@dataclass(frozen=True)
class UnknownProspect:
    """A stored reply from someone who is not a stored prospect (yet): kept, classified, and an opt-out still
    reaches the do-not-contact list."""

    line: int
    identity: str


@dataclass
class ReplyImportReport:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[RowError] = field(default_factory=list)
    duplicate_lines: list[RowError] = field(default_factory=list)  # not stored again, and why
    unknown_prospects: list[UnknownProspect] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)  # stored, with a remark
    reply_ids: list[int] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "stored": self.stored, "duplicates": self.duplicates,
                "rejected": [asdict(r) for r in self.rejected],
                "duplicate_lines": [asdict(r) for r in self.duplicate_lines],
                "unknown_prospects": [asdict(r) for r in self.unknown_prospects],
                "warnings": [asdict(r) for r in self.warnings], "reply_ids": self.reply_ids, "encoding": self.encoding,
                "delimiter": self.delimiter}


@dataclass
class _ReplyRow:
    line: int
    identity: str
    candidates: list[str]  # every identity the row names, for matching a stored prospect
    linkedin: str | None
    email: str | None
    text: str
    received: datetime | None


def _parse_reply_row(line: int, cells: list[str], columns: Mapping[str, int | None],
                     now: datetime) -> tuple[_ReplyRow | None, str]:
    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None else ""

    problems: list[str] = []
    text = cell("text")
    if not text.strip():
        problems.append("the reply text is empty")
    linkedin_raw, email_raw, identity_raw = cell("linkedin_url"), cell("email"), cell("identity")
    linkedin = idm.normalize_linkedin_url(linkedin_raw) if linkedin_raw else None
    if linkedin_raw and linkedin is None:
        problems.append(f"linkedin_url {quoted(linkedin_raw)} is not a LinkedIn profile address "
                        "(expected linkedin.com/in/...)")
    email = idm.normalize_email(email_raw) if email_raw and idm.is_email_address(email_raw) else None
    if email_raw and email is None:
        problems.append(f"email {quoted(email_raw)} is not a valid email address")
    identity = _identity_cell(identity_raw) if identity_raw else None
    if identity_raw and identity is None:
        problems.append(f"identity {quoted(identity_raw)} is not li:<profile URL>, email:<address>, "
                        "name:<name>|<company>, a LinkedIn URL or an email")
    if not (linkedin_raw or email_raw or identity_raw):
        problems.append("no prospect identity: linkedin_url, email and identity are all empty")
    received: datetime | None = None
    raw_received = cell("received")
    if raw_received:
        try:
            received = parse_received(raw_received)
        except ValueError as exc:
            problems.append(str(exc))
        else:
            if received > now + _FUTURE_SLACK:
                problems.append(f"received {quoted(raw_received)} is in the future")
    if problems:
        return None, "; ".join(problems)
    candidates = [c for c in (f"li:{linkedin}" if linkedin else None, f"email:{email}" if email else None, identity)
                  if c]
    # An identity column naming a profile or an email also matches a prospect stored under another identity.
    if identity and identity.startswith("li:") and linkedin is None:
        linkedin = identity[3:]
    if identity and identity.startswith("email:") and email is None:
        email = identity[6:]
    return _ReplyRow(line=line, identity=candidates[0], candidates=candidates, linkedin=linkedin, email=email,
                     text=text, received=received), ""


def _match_prospects(app: App, rows: Sequence[_ReplyRow]) -> dict[int, int]:
    """Row line -> prospect id, by any identity the row names (`core.people.identity`: primary identities, and every
    profile and e-mail a prospect is known by)."""
    with session_scope(app.engine) as s:
        found = idm.find_prospects(s, {c for r in rows for c in r.candidates})
    matched: dict[int, int] = {}
    for row in rows:
        pid = next((found[c] for c in row.candidates if c in found), None)
        if pid is not None:
            matched[row.line] = pid
    return matched


def _stored_keys(app: App, identities: Sequence[str]) -> tuple[set[tuple[str, str, datetime]], set[tuple[str, str]]]:
    with_time: set[tuple[str, str, datetime]] = set()
    without_time: set[tuple[str, str]] = set()
    with session_scope(app.engine) as s:
        for start in range(0, len(identities), _DB_CHUNK):
            part = list(identities[start:start + _DB_CHUNK])
            for identity, text, received in s.exec(select(Reply.prospect_identity, Reply.text, Reply.received_at)
                                                   .where(Reply.prospect_identity.in_(part))).all():  # type: ignore[attr-defined]
                with_time.add((identity, text, received))
                without_time.add((identity, text))
    return with_time, without_time


def import_replies(app: App, data: bytes) -> ReplyImportReport:
    """Read a CSV of replies (prospect identity, text, received) and store them, pending classification.

    Columns, matched by common spellings: linkedin_url and/or email and/or identity; the reply text (text,
    reply, message, body...); received (received, date, timestamp...; ISO date or time, UTC when no offset;
    optional: the import time is used when empty). Same reading rules as the prospect import; refused whole
    (UnreadableFile, nothing written) without a text or identity column. Rows with errors are reported with
    their line; replies from unknown prospects are stored and listed; a reply already stored (same identity,
    text and time) is a duplicate. Counts add up: stored + duplicates + rejected == rows.
    """
    table = read_table(data, max_bytes=MAX_UPLOAD_BYTES, max_cell_chars=MAX_UPLOAD_BYTES)
    mapping = suggest_mapping(table.headers)
    index = {h: i for i, h in enumerate(table.headers)}
    columns: dict[str, int | None] = {
        "text": find_column(table.headers, _TEXT_SPELLINGS),
        "received": find_column(table.headers, _RECEIVED_SPELLINGS),
        "identity": find_column(table.headers, _IDENTITY_SPELLINGS),
        "linkedin_url": index[mapping["linkedin_url"]] if "linkedin_url" in mapping else None,
        "email": index[mapping["email"]] if "email" in mapping else None,
    }
    shown = ", ".join(table.headers[:20]) + (" …" if len(table.headers) > 20 else "")
    if columns["text"] is None:
        raise UnreadableFile(f"the file has no column for the reply text (name it text, reply or message); "
                             f"columns found: {shown}")
    if all(columns[k] is None for k in ("identity", "linkedin_url", "email")):
        raise UnreadableFile(f"the file has no column that says who replied (linkedin_url, email or identity); "
                             f"columns found: {shown}")

    now = utcnow()
    report = ReplyImportReport(rows=table.total_records, encoding=table.encoding, delimiter=table.delimiter)
    rejected = list(table.errors)
    rows: list[_ReplyRow] = []
    for line, cells in table.rows:
        row, problem = _parse_reply_row(line, cells, columns, now)
        if row is None:
            rejected.append(RowError(line, problem))
        else:
            rows.append(row)
    report.rejected = sorted(rejected, key=lambda r: r.line)

    matched = _match_prospects(app, rows)
    with_time, without_time = _stored_keys(app, sorted({r.identity for r in rows}))
    first_seen: dict[tuple[str, str, datetime | None], int] = {}
    to_store: list[Reply] = []
    for row in rows:
        key = (row.identity, row.text, row.received)
        if key in first_seen:
            report.duplicate_lines.append(RowError(row.line, f"duplicate of line {first_seen[key]}"))
            continue
        first_seen[key] = row.line
        stored = (row.identity, row.text, row.received) in with_time if row.received else \
            (row.identity, row.text) in without_time
        if stored:
            report.duplicate_lines.append(RowError(row.line, "this reply is already stored"))
            continue
        text = row.text
        if len(text) > MAX_STORED_CHARS:
            report.warnings.append(RowError(row.line, f"the reply is {len(text):,} characters; "
                                                      f"stored cut to {MAX_STORED_CHARS:,}"))
            text = text[:MAX_STORED_CHARS]
        if row.received is None:
            report.warnings.append(RowError(row.line, "received is empty; the import time is used"))
        prospect_id = matched.get(row.line)
        if prospect_id is None:
            report.unknown_prospects.append(UnknownProspect(row.line, row.identity))
        to_store.append(Reply(
            prospect_id=prospect_id,
            prospect_identity=row.identity,
            text=text,
            received_at=row.received or now,
            details={"source": {"line": row.line}},
            created_at=now,
        ))
    report.duplicates = len(report.duplicate_lines)
    with session_scope(app.engine) as s:
        s.add_all(to_store)
        s.flush()
        hold_new_replies(s, to_store)
        report.reply_ids = [int(r.id) for r in to_store if r.id is not None]
    report.stored = len(to_store)
    assert report.stored + report.duplicates + len(report.rejected) == report.rows
    return report

