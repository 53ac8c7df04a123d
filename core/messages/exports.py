"""CSV and JSON exports: the one place files leave the console, so spreadsheet safety is decided once.

A CSV opened in Excel, LibreOffice or Google Sheets runs any cell that starts with `=`, `+`, `-` or `@` as a
formula (and a leading tab or carriage return can smuggle one past a naive check). Cells here routinely hold
text nobody on the team wrote: provider error messages, model names from the wire, prospect fields, model
output. So every CSV cell goes through `neutralize`, which prefixes such a cell with an apostrophe (OWASP's
"CSV injection" advice): spreadsheets then show it as text and the original characters are kept verbatim.

The rule is applied to every cell alike, numbers included, because one rule is easy to audit: a negative
amount such as "-5" is written as "'-5". Nothing the console exports today is negative (costs, tokens and
latencies are all zero or more).

CSV files are UTF-8 with a byte-order mark (Excel needs it to read UTF-8 rather than the ANSI code page) and
RFC 4180 quoting from the `csv` module, so commas, quotes and newlines inside cells survive a round trip.
JSON is UTF-8; Decimals are written as strings so no amount passes through a float.

The usage ledger export streams rows from SQL in chunks, so a month with a million calls never sits in memory
as Python objects at once.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import IO, Any

from sqlalchemy import select

from core.app import App
from core.store.models import UsageEntry, money_str

BOM = "\ufeff"
CHUNK_ROWS = 5_000

# A cell is a formula to a spreadsheet when its first character (after any leading spaces) is one of these.
_FORMULA_START = re.compile(r"^ *[=+\-@\t\r]")

LEDGER_COLUMNS: tuple[str, ...] = (
    "created_at",
    "task",
    "model_requested",
    "model_answered",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_source",
    "status",
    "error",
    "latency_ms",
    "attempt",
    "batch_id",
    "prospect_id",
    "request_id",
    "provider",
)


def neutralize(value: str) -> str:
    """Prefix an apostrophe when a spreadsheet would read `value` as a formula; otherwise return it unchanged.

    Triggers: `=`, `+`, `-`, `@`, tab or carriage return as the first character, optionally after spaces
    ("  =1" becomes "'  =1": the apostrophe first, then the original text verbatim). A lone "-" is neutralized
    too; the rule has no exceptions.
    """
    return "'" + value if _FORMULA_START.match(value) else value


def cell_text(value: Any) -> str:
    """The plain text of one value, before neutralizing: Decimal without exponent, None as "", UTC ISO times."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return money_str(value)
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, int | float):
        return str(value)
    raise TypeError(f"cannot export a value of type {type(value).__name__} to CSV: {value!r:.80}")


def iso_utc(moment: datetime) -> str:
    """ISO 8601 in UTC with an explicit offset; a naive datetime is refused (times are UTC everywhere)."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment.isoformat()} cannot be exported: times must be timezone-aware UTC")
    return moment.astimezone(UTC).isoformat()


def _csv_lines(rows: Iterable[Mapping[str, Any]], columns: Sequence[str], *, bom: bool = True) -> Iterator[str]:
    """CSV text in pieces: the header (with BOM), then one piece per row."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")

    def take() -> str:
        text = buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
        return text

    writer.writerow([neutralize(c) for c in columns])
    yield (BOM if bom else "") + take()
    for number, row in enumerate(rows, start=1):
        try:
            writer.writerow([neutralize(cell_text(row.get(c))) for c in columns])
        except (TypeError, ValueError) as exc:
            raise ValueError(f"row {number}: {exc}") from exc
        yield take()


def to_csv_bytes(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> bytes:
    """CSV of `rows` restricted to `columns` (missing keys give empty cells), UTF-8 with BOM, every cell neutralized."""
    return "".join(_csv_lines(rows, columns)).encode("utf-8")


def write_csv(out: IO[bytes], rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> int:
    """Stream the same CSV as `to_csv_bytes` into a binary file; returns the number of data rows written."""
    written = -1  # the header is the first piece
    for piece in _csv_lines(rows, columns):
        out.write(piece.encode("utf-8"))
        written += 1
    return written


def _json_default(value: Any) -> Any:
    if isinstance(value, Decimal | date):  # datetime is a date: UTC ISO text, like the CSV cell
        return cell_text(value)
    raise TypeError(f"cannot export a value of type {type(value).__name__} to JSON: {value!r:.80}")


def to_json_bytes(rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A JSON array of the rows, UTF-8 (non-ASCII kept as is), Decimals as plain strings, times as UTC ISO."""
    payload = [dict(row) for row in rows]
    return json.dumps(payload, ensure_ascii=False, default=_json_default).encode("utf-8")


def ledger_rows(app: App, month: str | None = None, chunk_rows: int = CHUNK_ROWS) -> Iterator[dict[str, Any]]:
    """Usage-ledger rows (oldest first) for `month` ('YYYY-MM'), or every month when None, fetched in chunks."""
    if month is not None and not re.fullmatch(r"\d{4}-(0[1-9]|1[0-2])", month):
        raise ValueError(f"month must look like 2026-11, got {month!r}")
    table = UsageEntry.__table__  # type: ignore[attr-defined]
    query = select(*(table.c[name] for name in LEDGER_COLUMNS)).order_by(table.c.id)
    if month is not None:
        query = query.where(table.c.month == month)
    with app.engine.connect() as conn:
        # stream_results gives a server-side cursor on PostgreSQL; SQLite's cursor is lazy already.
        result = conn.execution_options(stream_results=True, yield_per=chunk_rows).execute(query)
        for chunk in result.partitions(chunk_rows):
            for row in chunk:
                yield dict(row._mapping)


def write_ledger_csv(out: IO[bytes], app: App, month: str | None = None) -> int:
    """Stream the ledger CSV for `month` (None: all months) into `out`; returns the number of rows."""
    return write_csv(out, ledger_rows(app, month), LEDGER_COLUMNS)


def ledger_csv(app: App, month: str | None = None) -> bytes:
    """The ledger CSV for `month` (None: all months) as bytes, for a download button."""
    buffer = io.BytesIO()
    write_ledger_csv(buffer, app, month)
    return buffer.getvalue()
