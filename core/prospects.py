"""Prospects into the database: CSV import with duplicates, suppression and injection screening.

`core.tabular` reads and validates the file; this module decides what is new, what is a duplicate of a
stored prospect, who is on the do-not-contact list, and flags fields that carry prompt-injection text.
The counts it reports always add up to the records in the file, and a file refused whole writes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import select

from core.app import App
from core.db import session_scope
from core.guards import screen_fields, strip_invisible
from core.models import Prospect, Suppression, utcnow
from core.tabular import (
    ProspectRow,
    RowError,
    parse_company_size,
    parse_prospects,
    read_table,
)

PROSPECT_TEXT_FIELDS = ("first_name", "last_name", "company_name", "job_title", "industry", "linkedin_url",
                        "email", "recent_news", "notes", "sender_account")
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
CHUNK = 500


@dataclass
class ImportReport:
    rows: int = 0
    accepted: int = 0
    duplicates: int = 0
    suppressed: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicate_lines: list[dict[str, Any]] = field(default_factory=list)
    flagged: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    prospect_ids: list[int] = field(default_factory=list)
    existing_ids: list[int] = field(default_factory=list)  # rows that matched a prospect already stored
    encoding: str = ""
    delimiter: str = ""

    def as_json(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "rejected": self.rejected,
            "flagged": len(self.flagged),
            "warnings": self.warnings,
        }


def prospect_fields(p: Prospect) -> dict[str, str]:
    """Every variable a template may use for this prospect: canonical fields then custom ones."""
    values = {name: str(getattr(p, name) or "") for name in PROSPECT_TEXT_FIELDS}
    values["company_size"] = "" if p.company_size is None else str(p.company_size)
    for key, value in (p.custom or {}).items():
        values.setdefault(key, str(value))
    return values


def build_prospect(row_fields: Mapping[str, str], custom: Mapping[str, str], identity: str,
                   source: str) -> Prospect:
    fields = {k: strip_invisible(str(v)).strip() if k in ("first_name", "last_name", "company_name") else str(v)
              for k, v in row_fields.items()}
    raw = {**fields, **custom}
    flags = [{"field": f.field, "kind": f.kind, "detail": f.detail} for f in screen_fields(raw)]
    return Prospect(
        identity=identity,
        first_name=fields.get("first_name", ""),
        last_name=fields.get("last_name", ""),
        company_name=fields.get("company_name", ""),
        job_title=fields.get("job_title", ""),
        industry=fields.get("industry", ""),
        company_size=parse_company_size(fields.get("company_size", "")),
        linkedin_url=fields.get("linkedin_url", ""),
        email=fields.get("email", ""),
        recent_news=fields.get("recent_news", ""),
        notes=fields.get("notes", ""),
        sender_account=fields.get("sender_account", ""),
        custom=dict(custom),
        flags=flags,
        source=source,
        created_at=utcnow(),
    )


def _existing(app: App, rows: Sequence[ProspectRow]) -> tuple[dict[int, int], set[int]]:
    """For each parsed row (by index): the id of a stored prospect that is the same person (same identity,
    LinkedIn profile or e-mail), and the rows whose identity is on the do-not-contact list."""
    from sqlalchemy import func

    match: dict[int, int] = {}
    suppressed: set[int] = set()
    with session_scope(app.engine) as s:
        for start in range(0, len(rows), CHUNK):
            chunk = list(enumerate(rows[start:start + CHUNK], start))
            identities = [r.identity for _, r in chunk]
            urls = [r.fields["linkedin_url"] for _, r in chunk if r.fields.get("linkedin_url")]
            emails = [r.fields["email"].lower() for _, r in chunk if r.fields.get("email")]
            by_identity = dict(s.exec(select(Prospect.identity, Prospect.id).where(  # type: ignore[arg-type]
                Prospect.identity.in_(identities))).all())  # type: ignore[attr-defined]
            by_url = dict(s.exec(select(Prospect.linkedin_url, Prospect.id).where(  # type: ignore[arg-type]
                Prospect.linkedin_url.in_(urls))).all()) if urls else {}  # type: ignore[attr-defined]
            by_email = dict(s.exec(select(func.lower(Prospect.email), Prospect.id).where(  # type: ignore[arg-type]
                func.lower(Prospect.email).in_(emails))).all()) if emails else {}
            blocked = set(s.exec(select(Suppression.identity).where(
                Suppression.identity.in_(identities))).all())  # type: ignore[attr-defined]
            for index, row in chunk:
                if row.identity in blocked:
                    suppressed.add(index)
                    continue
                found = (by_identity.get(row.identity) or by_url.get(row.fields.get("linkedin_url", ""))
                         or by_email.get(row.fields.get("email", "").lower()))
                if found is not None:
                    match[index] = int(found)
    return match, suppressed


def import_prospects(
    app: App, data: bytes, mapping: Mapping[str, str] | None = None, *, source: str = "import"
) -> ImportReport:
    """Read, check and store prospects. Raises `UnreadableFile` (nothing written) for a file refused whole."""
    table = read_table(data, max_bytes=MAX_UPLOAD_BYTES)
    parsed = parse_prospects(table, mapping)
    report = ImportReport(rows=parsed.total_records, encoding=table.encoding, delimiter=table.delimiter)
    report.rejected = [_err(e) for e in sorted(parsed.errors, key=lambda e: e.line)]
    report.duplicate_lines = [_err(e) for e in parsed.duplicates_in_file]
    report.duplicates = len(parsed.duplicates_in_file)
    stored, suppressed = _existing(app, parsed.rows)
    new_rows: list[ProspectRow] = []
    for index, row in enumerate(parsed.rows):
        if index in suppressed:
            report.suppressed += 1
        elif index in stored:
            report.duplicates += 1
            report.existing_ids.append(stored[index])
            report.duplicate_lines.append({"line": row.line, "reason": "already stored"})
        else:
            new_rows.append(row)
    prospects = []
    for row in new_rows:
        p = build_prospect(row.fields, row.custom, row.identity, source)
        size_text = row.fields.get("company_size", "")
        if size_text and p.company_size is None:
            report.warnings.append({"line": row.line, "reason": f"company size {size_text[:40]!r} not understood; "
                                                                "stored as unknown"})
        if p.flags:
            report.flagged.append({"line": row.line, "flags": p.flags})
        prospects.append(p)
    with session_scope(app.engine) as s:
        s.add_all(prospects)
        s.flush()
        report.prospect_ids = [int(p.id) for p in prospects if p.id is not None]
    report.accepted = len(prospects)
    assert report.accepted + report.duplicates + report.suppressed + len(report.rejected) == report.rows
    return report


def _err(e: RowError) -> dict[str, Any]:
    return {"line": e.line, "reason": e.reason}


def suppress(app: App, identity: str, reason: str) -> None:
    """Add to the do-not-contact list (idempotent)."""
    with session_scope(app.engine) as s:
        if s.get(Suppression, identity) is None:
            s.add(Suppression(identity=identity, reason=reason))


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
