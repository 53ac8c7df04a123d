"""Turning table rows into prospects: canonical fields, custom variables, validation, in-file duplicates.

``parse_prospects`` (the prospects import) maps headers to the canonical prospect fields with
``suggest_mapping`` (editable by the operator), keeps unmapped columns as custom variables (keys from
``custom_key``: ASCII snake_case usable as template variable names), validates required fields, email
and LinkedIn URL, and finds in-file duplicates. See ``identity_for`` for the identity the database uses.
``ProspectParser`` does the same one record at a time, for a file read as a stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field

from core.people.columns import CANONICAL_FIELDS, REQUIRED_FIELDS, custom_key, suggest_mapping
from core.people.identity import email_key, is_email_address, linkedin_key, name_key, primary_identity
from core.people.reading import RowError, Table, UnreadableFile, quoted

__all__ = [
    "ProspectParse",
    "ProspectParser",
    "ProspectRow",
    "identity_for",
    "parse_prospects",
]


def identity_for(fields: Mapping[str, str]) -> str:
    """The key that says "same person": LinkedIn profile, else email, else name and company.

    ``li:<normalized url>``, else ``email:<case-folded email>``, else
    ``name:<casefolded first last>|<casefolded company>`` (whitespace collapsed). A LinkedIn URL that is
    not a profile URL is ignored here. The rules live in `core.people.identity`.
    """
    return primary_identity(fields)





@dataclass
class ProspectRow:
    line: int
    fields: dict[str, str]  # canonical fields with a value, as written (the LinkedIn URL as the user gave it)
    custom: dict[str, str]  # unmapped columns with a value, keyed by custom_key(header)
    identity: str  # the primary identity key (core.people.identity)
    keys: list[str] = dataclass_field(default_factory=list)  # every identity key the row gives


@dataclass
class ProspectParse:
    rows: list[ProspectRow]
    errors: list[RowError]
    duplicates_in_file: list[RowError]
    total_records: int


class _SeenPeople:
    """Earlier rows of this file, to spot a person listed twice.

    The same LinkedIn profile, or the same email (case-insensitive), is the same person even when the
    other identifiers differ or are missing. Name and company are only compared between rows that have
    neither a LinkedIn profile nor an email (their identities are both ``name:...``), so a richer row is
    never dropped because an earlier, poorer row shares a common name.
    """

    def __init__(self) -> None:
        self.by_linkedin: dict[str, int] = {}
        self.by_email: dict[str, int] = {}
        self.by_name: dict[str, int] = {}

    def check(self, line: int, linkedin: str | None, email: str | None, name: str | None) -> str | None:
        """The reason this row repeats an earlier one, or None after remembering it."""
        if linkedin and linkedin in self.by_linkedin:
            return f"duplicate of line {self.by_linkedin[linkedin]}: the same LinkedIn profile"
        if email and email in self.by_email:
            return f"duplicate of line {self.by_email[email]}: the same email address"
        if name and name in self.by_name:
            return f"duplicate of line {self.by_name[name]}: the same name and company"
        for key, index in ((linkedin, self.by_linkedin), (email, self.by_email), (name, self.by_name)):
            if key:
                index.setdefault(key, line)
        return None


def _columns_found(headers: Sequence[str], limit: int = 20) -> str:
    shown = ", ".join(headers[:limit])
    if len(headers) > limit:
        shown += f" … and {len(headers) - limit} more"
    return shown


def _resolve_mapping(headers: Sequence[str], mapping: Mapping[str, str] | None) -> dict[str, str]:
    chosen = suggest_mapping(headers) if mapping is None else dict(mapping)
    unknown = sorted(k for k in chosen if k not in CANONICAL_FIELDS)
    if unknown:
        raise ValueError(f"unknown prospect field(s) in mapping: {', '.join(unknown)}")
    resolved = {k: v for k, v in chosen.items() if v}
    for canonical, header in resolved.items():
        if header not in headers:
            raise UnreadableFile(
                f'the mapping uses column "{header}" for {canonical}, but the file has no such column; '
                f"columns found: {_columns_found(headers)}"
            )
    missing = [f for f in REQUIRED_FIELDS if f not in resolved]
    if missing:
        raise UnreadableFile(
            f"the file has no column for {' or '.join(missing)}; columns found: "
            f"{_columns_found(headers)}; map one in the mapping step"
        )
    return resolved


class ProspectParser:
    """Turns one table record at a time into a prospect row, a row error or an in-file duplicate.

    It remembers the people of earlier rows (a few strings each), so a file can be read as a stream.
    """

    def __init__(self, headers: Sequence[str], mapping: Mapping[str, str] | None = None) -> None:
        self.resolved = _resolve_mapping(headers, mapping)
        index = {header: i for i, header in enumerate(headers)}
        self.mapped = [(f, index[h]) for f, h in self.resolved.items()]
        mapped_columns = {i for _, i in self.mapped}
        self.custom_columns: list[tuple[str, int]] = []
        used_keys: set[str] = set()
        for i, header in enumerate(headers):
            if i in mapped_columns:
                continue
            key = base = custom_key(header) or f"column_{i + 1}"
            suffix = 2
            while key in used_keys:  # only for names custom_key cannot tell apart ("名前" next to "column_1")
                key, suffix = f"{base}_{suffix}", suffix + 1
            used_keys.add(key)
            self.custom_columns.append((key, i))
        self.seen = _SeenPeople()

    def parse(self, line: int, cells: Sequence[str]) -> tuple[str, ProspectRow | RowError]:
        """("row", ProspectRow), ("error", RowError) or ("duplicate", RowError)."""
        fields = {f: cells[i] for f, i in self.mapped if cells[i]}
        problems: list[str] = []
        missing = [f for f in REQUIRED_FIELDS if f not in fields]
        if missing:
            columns = ", ".join(f'"{self.resolved[f]}"' for f in missing)
            verb = "is" if len(missing) == 1 else "are"
            problems.append(f"{' and '.join(missing)} {verb} empty (column {columns})")
        email = fields.get("email")
        if email is not None and not is_email_address(email):
            problems.append(f"email {quoted(email)} is not a valid email address")
        url = fields.get("linkedin_url")
        linkedin = linkedin_key(url) if url is not None else None
        if url is not None and linkedin is None:
            problems.append(
                f"linkedin_url {quoted(url)} is not a LinkedIn profile address (expected linkedin.com/in/...)"
            )
        if problems:
            return "error", RowError(line, "; ".join(problems))
        mail = email_key(email) if email else None
        name = name_key(fields.get("first_name"), fields.get("last_name"), fields.get("company_name"))
        duplicate = self.seen.check(line, linkedin, mail, None if linkedin or mail else name)
        if duplicate is not None:
            return "duplicate", RowError(line, duplicate)
        custom = {key: cells[i] for key, i in self.custom_columns if cells[i]}
        keys = [k for k in (linkedin, mail, name) if k]
        return "row", ProspectRow(line=line, fields=fields, custom=custom, identity=keys[0], keys=keys)


def parse_prospects(table: Table, mapping: Mapping[str, str] | None = None) -> ProspectParse:
    """Turn table rows into prospects: canonical fields, custom variables, identity, in-file duplicates.

    ``mapping`` (canonical field -> header) defaults to ``suggest_mapping(table.headers)``; an empty
    header value means "not mapped". Raises ``UnreadableFile`` when a required field has no column,
    ``ValueError`` for a mapping key that is not a canonical field. A row is an error when a required
    field is empty, the email is not an address, or the LinkedIn URL is not a profile URL (both feed
    the identity, so a wrong one would defeat duplicate detection). ``company_size`` is kept as written;
    ``parse_company_size`` reads it. Values are kept as written; identity keys are normalised.
    """
    parser = ProspectParser(table.headers, mapping)
    rows: list[ProspectRow] = []
    errors: list[RowError] = list(table.errors)
    duplicates: list[RowError] = []
    for line, cells in table.rows:
        kind, parsed = parser.parse(line, cells)
        if kind == "row":
            assert isinstance(parsed, ProspectRow)
            rows.append(parsed)
        elif kind == "error":
            assert isinstance(parsed, RowError)
            errors.append(parsed)
        else:
            assert isinstance(parsed, RowError)
            duplicates.append(parsed)
    errors.sort(key=lambda e: e.line)
    return ProspectParse(
        rows=rows,
        errors=errors,
        duplicates_in_file=duplicates,
        total_records=len(rows) + len(errors) + len(duplicates),
    )
