"""Prospects into the database: CSV import with duplicates, suppression and injection screening.

`core.people.reading` and `core.people.rows` read and validate the file; this module decides what is new,
what is a duplicate of a stored prospect, who is on the do-not-contact list (asked of `core.people.identity`,
under every identity the row or the stored person is known by), and flags fields that carry prompt-injection text.
The counts it reports always add up to the records in the file, and a file refused whole writes nothing.
People on the do-not-contact list are counted and never written.

The import streams: records are parsed one at a time and stored in chunks of `CHUNK_ROWS` (one transaction,
a few set look-ups and two bulk inserts per chunk), so memory stays flat however long the file is.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from core.app import App
from core.messages.injection import InjectionFlag, screen_fields
from core.messages.textfold import strip_invisible
from core.people import identity
from core.people.columns import parse_company_size
from core.people.reading import RowError, open_table
from core.people.rows import ProspectParser, ProspectRow
from core.store.db import immediate, session_scope
from core.store.models import Prospect, ProspectIdentity, utcnow

PROSPECT_TEXT_FIELDS = ("first_name", "last_name", "company_name", "job_title", "industry", "linkedin_url",
                        "email", "recent_news", "notes", "sender_account")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
CHUNK = 500
CHUNK_ROWS = 10_000


@dataclass(frozen=True)
class FlaggedRow:
    """A row stored with prompt-injection findings in its fields (it gets plain templates only)."""

    line: int
    flags: tuple[InjectionFlag, ...]


@dataclass
class ImportReport:
    """What an import did, line by line; `rows` = accepted + duplicates + suppressed + rejected."""

    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    rejected: list[RowError] = field(default_factory=list)
    duplicate_lines: list[RowError] = field(default_factory=list)
    suppressed_lines: list[RowError] = field(default_factory=list)
    flagged: list[FlaggedRow] = field(default_factory=list)
    warnings: list[RowError] = field(default_factory=list)
    prospect_ids: list[int] = field(default_factory=list)
    existing_ids: list[int] = field(default_factory=list)  # rows that matched a prospect already stored
    encoding: str = ""
    delimiter: str = ""
    chunks: int = 0  # how many chunks the rows were stored in

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "rejected": [dataclasses.asdict(e) for e in self.rejected],
            "flagged": len(self.flagged),
            "warnings": [dataclasses.asdict(w) for w in self.warnings],
        }


def prospect_fields(p: Prospect) -> dict[str, str]:
    """Every variable a template may use for this prospect: canonical fields then custom ones."""
    values = {name: str(getattr(p, name) or "") for name in PROSPECT_TEXT_FIELDS}
    values["company_size"] = "" if p.company_size is None else str(p.company_size)
    for key, value in (p.custom or {}).items():
        values.setdefault(key, str(value))
    return values


_NAME_FIELDS = ("first_name", "last_name", "company_name")


@functools.lru_cache(maxsize=65_536)
def _screen_one(name: str, value: str) -> tuple[dict[str, str], ...]:
    """The injection flags of one field value (a file repeats titles, industries, senders: screen each once)."""
    return tuple({"field": f.field, "kind": f.kind, "detail": f.detail} for f in screen_fields({name: value}))


# Checked identifiers that never reach a model (prompts send only company, news, industry, title and first name):
# screened for hidden characters only. Screening them for instructions cost more than the rest of the import.
_IDENTIFIER_FIELDS = frozenset({"linkedin_url", "email"})


def _flags(raw: Mapping[str, str]) -> list[dict[str, str]]:
    return [dict(flag) for name, value in raw.items()
            if name not in _IDENTIFIER_FIELDS or strip_invisible(value) != value
            for flag in _screen_one(name, value)]


@functools.lru_cache(maxsize=65_536)  # names repeat down a file
def _clean(value: str) -> str:
    return strip_invisible(value).strip()


def _values(fields: Mapping[str, str], custom: Mapping[str, str], key: str, source: str) -> dict[str, Any]:
    """The column values of a new prospect (the LinkedIn URL as the user gave it; the identity normalised).
    Names are cleaned of invisible characters here; `fields` is what the file said."""
    get = fields.get
    cleaned = {**fields, **{n: _clean(fields[n]) for n in _NAME_FIELDS if n in fields}}
    return {
        "identity": key,
        "first_name": cleaned.get("first_name", ""),
        "last_name": cleaned.get("last_name", ""),
        "company_name": cleaned.get("company_name", ""),
        "job_title": get("job_title", ""),
        "industry": get("industry", ""),
        "company_size": _size(get("company_size", "")),
        "linkedin_url": get("linkedin_url", "").strip(),
        "email": get("email", ""),
        "recent_news": get("recent_news", ""),
        "notes": get("notes", ""),
        "sender_account": get("sender_account", ""),
        "custom": dict(custom),
        "flags": _flags({**cleaned, **custom} if custom else cleaned),
        "source": source,
    }


def _size(text: str) -> int | None:
    if text.isdigit() and text.isascii():  # the usual "250", without the general parser
        return int(text) or None
    return parse_company_size(text) if text else None


def build_prospect(row_fields: Mapping[str, str], custom: Mapping[str, str], key: str,
                   source: str) -> Prospect:
    """A Prospect object for one row (the import itself writes rows in bulk, with the same values)."""
    return Prospect(**_values({k: str(v) for k, v in row_fields.items()}, custom, key, source), created_at=utcnow())


def _bulk_insert(conn: Connection, table: Any, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert `rows` in one statement per chunk. On SQLite, one driver-level executemany with each value through
    its column type's own bind processor (JSON, UTC times), so thousands of rows cost no per-row SQL work;
    elsewhere SQLAlchemy's executemany (which adds the casts PostgreSQL's JSON columns want)."""
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(table.insert(), list(rows))
        return
    names = list(rows[0])
    procs = [(i, proc) for i, n in enumerate(names) if (proc := table.c[n].type.bind_processor(conn.dialect))]
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})"
    bound: dict[tuple[int, int], Any] = {}  # (column, id(value)) -> bound value, for values every row shares
    params = []
    for row in rows:
        values = [row[n] for n in names]
        for i, proc in procs:
            value = values[i]
            if value is None:
                continue
            if not value and isinstance(value, dict | list):
                values[i] = "{}" if isinstance(value, dict) else "[]"  # what json.dumps writes
            elif isinstance(value, datetime):
                key = (i, id(value))
                if key not in bound:
                    bound[key] = proc(value)
                values[i] = bound[key]
            else:
                values[i] = proc(value)
        params.append(tuple(values))
    conn.exec_driver_sql(sql, params)


def _store_chunk(conn: Connection, rows: Sequence[ProspectRow], source: str, report: ImportReport) -> None:
    """Match, suppress and insert one chunk of parsed rows, inside the caller's transaction."""
    keys = {k for row in rows for k in row.keys}
    blocked = identity.suppressed_keys(conn, keys)
    # Name and company only say "same person" for a row with neither profile nor e-mail (its primary identity).
    found = identity.find_prospects(conn, {k for row in rows for k in row.keys
                                           if k == row.identity or not k.startswith("name:")})
    matched_ids = sorted({found[k] for row in rows for k in row.keys if k in found})
    blocked_people: dict[int, str] = {}
    if matched_ids:
        with Session(bind=conn) as session:
            blocked_people = identity.suppressed_prospects(session, matched_ids)
    new: list[tuple[ProspectRow, dict[str, Any]]] = []
    learned: set[tuple[int, str]] = set()
    now = utcnow()
    for row in rows:
        stored = next((found[k] for k in row.keys if k in found), None) if found else None
        if (blocked and any(k in blocked for k in row.keys)) or (stored is not None and stored in blocked_people):
            report.suppressed += 1
            report.suppressed_lines.append(RowError(row.line, identity.DO_NOT_CONTACT))
            continue
        if stored is not None:
            report.duplicates += 1
            report.existing_ids.append(stored)
            report.duplicate_lines.append(RowError(row.line, "already stored"))
            # The stored person is now also known by this row's profile or address (when nobody else is).
            learned.update((stored, k) for k in row.keys if k not in found and not k.startswith("name:"))
            continue
        values = _values(row.fields, row.custom, row.identity, source)
        values["created_at"] = now
        if values["company_size"] is None and row.fields.get("company_size"):
            report.warnings.append(RowError(row.line, f"company size {row.fields['company_size'][:40]!r} "
                                                      "not understood; stored as unknown"))
        if values["flags"]:
            report.flagged.append(FlaggedRow(row.line, tuple(InjectionFlag(**flag) for flag in values["flags"])))
        new.append((row, values))
    if new:
        _bulk_insert(conn, Prospect.__table__, [values for _, values in new])  # type: ignore[attr-defined]
        # The primary identity is unique, so it finds the new ids (RETURNING costs a statement per row on SQLite).
        by_key = identity.find_prospects(conn, [row.identity for row, _ in new], primary_only=True)
        ids = [by_key[row.identity] for row, _ in new]
        links = [r for (row, _), pid in zip(new, ids, strict=True)
                 for r in identity.identity_rows(pid, row.keys, primary=row.identity)]
        _bulk_insert(conn, ProspectIdentity.__table__, links)  # type: ignore[attr-defined]
        report.prospect_ids.extend(ids)
        report.accepted += len(ids)
    if learned:
        _bulk_insert(conn, ProspectIdentity.__table__,  # type: ignore[attr-defined]
                     [{"prospect_id": pid, "key": k, "kind": k.partition(":")[0]} for pid, k in sorted(learned)])


def _flush(app: App, rows: list[ProspectRow], source: str, report: ImportReport) -> None:
    for attempt in range(2):
        partial = ImportReport()
        try:
            with immediate(app.engine) as conn:
                _store_chunk(conn, rows, source, partial)
        except IntegrityError:
            if attempt:  # another import stored some of the same people first; the retry sees them
                raise
            continue
        break
    report.accepted += partial.accepted
    report.duplicates += partial.duplicates
    report.suppressed += partial.suppressed
    for name in ("duplicate_lines", "suppressed_lines", "flagged", "warnings", "prospect_ids", "existing_ids"):
        getattr(report, name).extend(getattr(partial, name))
    report.chunks += 1


def import_prospects(
    app: App, data: bytes, mapping: Mapping[str, str] | None = None, *, source: str = "import",
    chunk_rows: int = CHUNK_ROWS,
) -> ImportReport:
    """Read, check and store prospects. Raises `UnreadableFile` (nothing written) for a file refused whole.

    Rows are stored chunk by chunk as the file is read (each chunk in its own transaction).
    """
    stream = open_table(data, max_bytes=MAX_UPLOAD_BYTES)
    parser = ProspectParser(stream.headers, mapping)  # a missing required column is refused here
    report = ImportReport(encoding=stream.encoding, delimiter=stream.delimiter)
    pending: list[ProspectRow] = []
    for record in stream.records():
        report.rows += 1
        if isinstance(record, RowError):
            report.rejected.append(record)
            continue
        kind, parsed = parser.parse(*record)
        if isinstance(parsed, RowError):
            if kind == "duplicate":
                report.duplicates += 1
                report.duplicate_lines.append(parsed)
            else:
                report.rejected.append(parsed)
            continue
        pending.append(parsed)
        if len(pending) >= chunk_rows:
            _flush(app, pending, source, report)
            pending = []
    if pending:
        _flush(app, pending, source, report)
    report.rejected.sort(key=lambda e: e.line)
    report.duplicate_lines.sort(key=lambda e: e.line)
    assert report.accepted + report.duplicates + report.suppressed + len(report.rejected) == report.rows
    return report


def suppress(app: App, key: str, reason: str) -> list[str]:
    """Add an identity (``email:…``, ``li:…``, ``name:…``, or a bare address or profile URL) to the do-not-contact
    list, normalised by `core.people.identity` (idempotent); returns the keys added now."""
    with session_scope(app.engine) as s:
        return identity.add_suppressions(s, [key], reason)


def count_prospects(app: App) -> int:
    from sqlalchemy import func

    with session_scope(app.engine) as s:
        return int(s.exec(select(func.count()).select_from(Prospect)).one())


def get_prospect(app: App, prospect_id: int) -> Prospect | None:
    with session_scope(app.engine) as s:
        return s.get(Prospect, prospect_id)


def list_prospects(app: App, limit: int = 500) -> list[Prospect]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(Prospect).order_by(Prospect.id).limit(limit)).all())  # type: ignore[arg-type]
