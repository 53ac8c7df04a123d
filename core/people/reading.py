"""Reading uploaded CSV files: bytes in, rows with physical line numbers out, or a clear refusal.

Operators upload spreadsheets exported from CRMs, Excel, Google Sheets and LinkedIn tools. Those files
arrive in several encodings and dialects and are often a little broken, so this module is the single,
database-free place that turns them into text cells and says precisely what it could not read.

``read_table`` / ``open_table`` (any CSV) decide, in order:

1. *Refuse the whole file* (``UnreadableFile``, nothing partial) when it is larger than ``max_bytes``,
   empty or whitespace only, a known binary format (Excel ``.xlsx``/``.xls``, zip, PNG/JPEG/GIF, PDF,
   gzip), HTML or XML, contains NUL bytes not explained by UTF-16, is mostly control characters, or has
   no usable header (see below).
2. *Encoding*: a BOM wins (UTF-8 BOM -> ``"utf-8-sig"``, UTF-16 LE/BE BOM -> ``"utf-16"``); BOM-less
   UTF-16 is recognised by its NUL-byte pattern; otherwise strict UTF-8, and when that fails, each line
   on its own: UTF-8 when the line is valid UTF-8, else cp1252 (the Windows "ANSI" code page Excel uses;
   the five bytes it leaves undefined become U+FFFD). So a file mixing UTF-8 and cp1252 lines is read
   right (encoding ``"mixed: ..."``), and a file with a line that mixes both inside itself is refused with
   the numbers of those lines rather than read as mojibake.
3. *Delimiter*: an Excel ``sep=;`` first line wins; otherwise each of ``,`` ``;`` tab ``|`` is tried on
   the header and the first records, and the one whose header has at least two columns and whose
   records most often have the header's width wins (ties: more columns, then the order above).
   With no candidate the file is one column wide and the delimiter is ``,``.
4. *Header*: the first line that is not blank. Trailing empty header cells (``a,b,c,,``) are dropped;
   an empty name between named columns becomes ``column_<n>``. Refused: a header with no names
   (``,,,``), a header made only of numbers (that is a data row), two names that are equal after
   normalisation (``Email`` and ``email``, ``First Name`` and ``first_name``), a name over 200 characters.
5. *Records*: quoting is RFC 4180 (``"a, b"``, ``""`` for a quote, newlines inside quotes). Every cell is
   text, stripped of surrounding whitespace and nothing else (``NA``, ``null``, ``007``, ``=SUM(A1)`` stay
   as written; neutralising formulas is the exporter's job). Blank lines and lines of only delimiters
   are skipped and not counted. A record whose width differs from the header is a ``RowError``
   ("expected 4 columns, found 3"), except that extra *empty* trailing cells are tolerated and dropped.
   A cell over ``max_cell_chars`` is a ``RowError``.

Line numbers are physical: a record is reported at the line where it starts, and a quoted cell with
newlines moves the following records down accordingly. Line breaks are ``\\r\\n``, ``\\n`` or ``\\r``
only (never ``\\v`` or U+2028, which stay inside cells).

Broken quoting never swallows the rest of the file:

- A quote that is never closed: the record it belongs to is a ``RowError`` ("unclosed quote ...") and
  reading resumes on the line after the one where the quote opened, so the rows below are still read.
- Text after a closing quote (``"Acme" Inc,``) is a ``RowError`` for that record. When the quoted part
  spanned several lines, that is the signature of a stray quote that paired with a quote further down
  the file; reading then resumes on the line after the one where the stray quote opened, so only the
  broken line is lost. (A stray quote that happens to pair with a later quote directly followed by a
  delimiter or a line end is indistinguishable from a legitimate multi-line cell; as in every CSV
  reader, those lines become one cell.)

What the columns mean is `core.people.columns`; turning rows into prospects is `core.people.rows`.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from core.people.columns import custom_key

__all__ = [
    "DELIMITERS",
    "RowError",
    "Table",
    "TableStream",
    "UnreadableFile",
    "open_table",
    "quoted",
    "read_table",
]

DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")
_MAX_HEADER_NAME_CHARS = 200
_SNIFF_RECORDS = 50
_CONTROL_SAMPLE_CHARS = 65_536
_CONTROL_SHARE_LIMIT = 0.05



class UnreadableFile(ValueError):
    """The file is refused whole; ``str(e)`` is a message an operator can act on."""


@dataclass(frozen=True)
class RowError:
    line: int  # 1-based physical line where the record starts (the header is usually line 1)
    reason: str


@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[int, list[str]]]
    errors: list[RowError]
    encoding: str
    delimiter: str
    total_records: int


# --------------------------------------------------------------------------------------------------
# Whole-file checks and decoding
# --------------------------------------------------------------------------------------------------

_EXPORT_HINT = "export or save the data as CSV (in Excel: File > Save As > CSV UTF-8) and upload that file"

_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\x89PNG\r\n\x1a\n", "an image file (PNG)"),
    (b"\xff\xd8\xff", "an image file (JPEG)"),
    (b"GIF87a", "an image file (GIF)"),
    (b"GIF89a", "an image file (GIF)"),
    (b"%PDF-", "a PDF document"),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an Excel (.xls) or other Office file"),
    (b"\x1f\x8b", "a compressed (gzip) file"),
)


def _human_size(n: int) -> str:
    if n >= 1024 * 1024:
        value, unit = n / (1024 * 1024), "MB"
    elif n >= 1024:
        value, unit = n / 1024, "KB"
    else:
        return f"{n:,} bytes"
    text = f"{value:.1f}"
    return f"{text.removesuffix('.0')} {unit}"


def _check_bytes(data: bytes, max_bytes: int) -> None:
    if len(data) > max_bytes:
        raise UnreadableFile(
            f"the file is {_human_size(len(data))}; the limit is {_human_size(max_bytes)}. "
            "Split it into smaller files and upload them one by one"
        )
    if not data:
        raise UnreadableFile("the file is empty (0 bytes); it has no header and no rows")
    if data.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        head = data[:65_536]
        if b"xl/" in head or b"[Content_Types].xml" in head:
            raise UnreadableFile(f"this looks like an Excel workbook (.xlsx), not a CSV file; {_EXPORT_HINT}")
        raise UnreadableFile(f"this looks like a zip archive, not a CSV file; {_EXPORT_HINT}")
    if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
        raise UnreadableFile(f"this looks like an image file (WebP), not a CSV file; {_EXPORT_HINT}")
    for signature, what in _SIGNATURES:
        if data.startswith(signature):
            raise UnreadableFile(f"this looks like {what}, not a CSV file; {_EXPORT_HINT}")


def _bomless_utf16(data: bytes) -> str | None:
    """UTF-16 without a BOM has NUL bytes on one parity (ASCII characters, delimiters, newlines)."""
    sample = data[:8192]
    pairs = len(sample) // 2
    if pairs == 0:
        return None
    nul_even = sample[0 : pairs * 2 : 2].count(0)
    nul_odd = sample[1 : pairs * 2 : 2].count(0)
    if nul_odd >= 0.1 * pairs and nul_even <= 0.05 * pairs and nul_odd >= 4 * nul_even:
        return "utf-16-le"
    if nul_even >= 0.1 * pairs and nul_odd <= 0.05 * pairs and nul_even >= 4 * nul_odd:
        return "utf-16-be"
    return None


_BINARY_MESSAGE = (
    "the file contains binary data (NUL bytes), so it is not a text CSV; "
    "it may be a spreadsheet or another program's file; " + _EXPORT_HINT
)


def _decode_utf16(data: bytes, codec: str) -> str:
    try:
        return data.decode(codec)
    except UnicodeDecodeError as exc:
        raise UnreadableFile(
            f"the file looks like UTF-16 text but is not valid UTF-16 (at byte {exc.start:,}); "
            "re-save it as CSV UTF-8 and upload that file"
        ) from exc


def _decode(data: bytes) -> tuple[str, str]:
    if data.startswith((b"\xff\xfe\x00\x00", b"\x00\x00\xfe\xff")):
        raise UnreadableFile("the file is encoded as UTF-32, which is not supported; re-save it as CSV UTF-8")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return _decode_utf16(data, "utf-16"), "utf-16"
    codec = _bomless_utf16(data)
    if codec is not None:
        try:
            return data.decode(codec), "utf-16"
        except UnicodeDecodeError as exc:
            raise UnreadableFile(_BINARY_MESSAGE) from exc
    if b"\x00" in data:
        raise UnreadableFile(_BINARY_MESSAGE)
    encoding = "utf-8"
    if data.startswith(codecs.BOM_UTF8):
        data, encoding = data[len(codecs.BOM_UTF8) :], "utf-8-sig"
    try:
        return data.decode("utf-8"), encoding
    except UnicodeDecodeError:
        return _decode_lines(data)


# A well-formed multi-byte UTF-8 sequence. Windows-1252 text almost never contains one (it would take an
# accented capital or "Â"/"Ã" followed by one or more of the bytes 0x80-0xBF).
_UTF8_SEQUENCE_RE = re.compile(
    rb"[\xc2-\xdf][\x80-\xbf]|\xe0[\xa0-\xbf][\x80-\xbf]|[\xe1-\xec\xee\xef][\x80-\xbf]{2}|\xed[\x80-\x9f][\x80-\xbf]"
    rb"|\xf0[\x90-\xbf][\x80-\xbf]{2}|[\xf1-\xf3][\x80-\xbf]{3}|\xf4[\x80-\x8f][\x80-\xbf]{2}"
)
_BYTE_LINES_RE = re.compile(rb"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+")


def _line_list(numbers: Sequence[int], limit: int = 10) -> str:
    shown = ", ".join(str(n) for n in numbers[:limit])
    return shown + (f" and {len(numbers) - limit:,} more" if len(numbers) > limit else "")


def _decode_lines(data: bytes) -> tuple[str, str]:
    """Not UTF-8 as a whole: decode each physical line on its own, as UTF-8 when it is valid UTF-8, else as
    Windows-1252 (the five bytes cp1252 leaves undefined become U+FFFD).

    A file saved by two programs (a UTF-8 export with rows pasted from an ANSI one) is then read right line by
    line. A line that is itself a mix (UTF-8 sequences beside bytes that are not UTF-8) has no right reading:
    decoding it either way would turn part of it into mojibake ("JosÃ©"), so the file is refused with the
    numbers of those lines.
    """
    pieces: list[str] = []
    mixed: list[int] = []
    utf8_lines = 0
    legacy_lines = 0
    for number, match in enumerate(_BYTE_LINES_RE.finditer(data), start=1):
        chunk = match.group()
        try:
            pieces.append(chunk.decode("utf-8"))
            utf8_lines += chunk.isascii() is False
        except UnicodeDecodeError:
            if _UTF8_SEQUENCE_RE.search(chunk):
                mixed.append(number)
            legacy_lines += 1
            pieces.append(chunk.decode("cp1252", errors="replace"))
    if mixed:
        raise UnreadableFile(
            f"line{'s' if len(mixed) > 1 else ''} {_line_list(mixed)} mix two text encodings (UTF-8 and "
            "Windows-1252) within the line, so no reading of them is right; fix those lines, or re-save the "
            "whole file as CSV UTF-8, and upload it again"
        )
    return "".join(pieces), "cp1252" if not utf8_lines else f"mixed: utf-8 and cp1252 ({legacy_lines:,} lines)"


_CONTROL_RE = re.compile("[\x00-\x08\x0e-\x1f\x7f\ufffd]")


def _check_text(text: str) -> str:
    text = text.removeprefix("\ufeff")
    if "\x00" in text:
        raise UnreadableFile(_BINARY_MESSAGE)
    if not text.strip():
        raise UnreadableFile("the file contains only blank lines or spaces; it has no header and no rows")
    sample = text[:_CONTROL_SAMPLE_CHARS]
    control = len(_CONTROL_RE.findall(sample))
    if control >= _CONTROL_SHARE_LIMIT * len(sample):
        raise UnreadableFile(
            f"{control / len(sample):.0%} of the start of the file is control characters or undecodable bytes, "
            "so it is not a text CSV; " + _EXPORT_HINT
        )
    head = sample[:512].lstrip().lower()
    if head.startswith(("<!doctype html", "<html")):
        raise UnreadableFile(
            "this looks like a web page (HTML), not a CSV file; download the sheet as CSV "
            "(in Google Sheets: File > Download > Comma-separated values) and upload that file"
        )
    if head.startswith("<?xml"):
        raise UnreadableFile(f"this looks like an XML file (for example an Excel XML spreadsheet); {_EXPORT_HINT}")
    return text


# --------------------------------------------------------------------------------------------------
# Record scanner
# --------------------------------------------------------------------------------------------------

_NEWLINE_RE = re.compile(r"\r\n|\r|\n")
_NEWLINE_SPLIT_RE = re.compile(r"(\r\n|\r|\n)")
_BULK_CHARS = 1 << 20
_QUOTE_OPEN_RE = re.compile(r' *"')
# The body of a quoted cell: ordinary characters and doubled quotes. Possessive quantifiers keep a
# missing closing quote a single linear scan.
_QUOTED_BODY_RE = re.compile(r'[^"]*+(?:""[^"]*+)*+')
_UNQUOTED_RE = {d: re.compile(f"[^{re.escape(d)}\r\n]*+") for d in DELIMITERS}
_SEP_HINT_RE = re.compile(r'"?sep=(.)"?[ \t]*')


class _Record(NamedTuple):
    line: int  # physical line where the record starts
    cells: list[str]  # raw cells (not stripped); empty when error is set
    error: str | None
    end: int  # text position after the record (and its line break)
    next_line: int  # physical line number at ``end``


def _column_number(index: int) -> str:
    return f"column {index + 1}"


def quoted(value: str, limit: int = 40) -> str:
    flat = _NEWLINE_RE.sub(" ⏎ ", value)
    return '"' + (flat if len(flat) <= limit else flat[: limit - 1] + "…") + '"'


def _count_newlines(value: str) -> int:
    if "\n" not in value and "\r" not in value:
        return 0
    return sum(1 for _ in _NEWLINE_RE.finditer(value))


def _after_line_break(text: str, pos: int) -> int:
    """Position just after the first line break at or after ``pos`` (or the end of the text)."""
    match = _NEWLINE_RE.search(text, pos)
    return match.end() if match else len(text)


def _skipped(first: int, last: int, resume_pos: int, resume_line: int, text_len: int) -> str:
    lines = f"line {first} was skipped" if first == last else f"lines {first}–{last} were skipped"
    if resume_pos >= text_len:
        return lines
    return f"{lines} and reading resumed on line {resume_line}"


def _parse_quoted_record(text: str, pos: int, line: int, delimiter: str, label: Callable[[int], str]) -> _Record:
    """The slow path for a record that contains a quote somewhere."""
    n = len(text)
    start_line = line
    unquoted = _UNQUOTED_RE[delimiter]
    cells: list[str] = []
    while True:
        opening = _QUOTE_OPEN_RE.match(text, pos)
        if opening is None:
            cell = unquoted.match(text, pos)
            assert cell is not None  # a *+ pattern always matches
            cells.append(cell.group())
            pos = cell.end()
        else:
            open_line = line
            body = _QUOTED_BODY_RE.match(text, opening.end())
            assert body is not None
            if body.end() >= n:
                resume = _after_line_break(text, opening.start())
                reason = (
                    f"unclosed quote: the quote that opens {label(len(cells))} on line {open_line} is never "
                    f"closed; {_skipped(start_line, open_line, resume, open_line + 1, n)}"
                )
                return _Record(start_line, [], reason, resume, open_line + 1)
            value = body.group()
            line += _count_newlines(value)
            tail = unquoted.match(text, body.end() + 1)
            assert tail is not None
            if tail.group().strip():
                shown = quoted(value.replace('""', '"'))
                extra = quoted(tail.group().strip())
                if line > open_line:
                    # A quote closed several lines later and followed by text: most likely a stray
                    # quote that paired with the next quote in the file. Lose only its line.
                    resume = _after_line_break(text, opening.start())
                    reason = (
                        f"unmatched quote: the quote that opens {label(len(cells))} on line {open_line} "
                        f"closes on line {line} and is followed by {extra}; "
                        f"{_skipped(start_line, open_line, resume, open_line + 1, n)}"
                    )
                    return _Record(start_line, [], reason, resume, open_line + 1)
                resume = _after_line_break(text, tail.end())
                reason = (
                    f"text after the closing quote in {label(len(cells))}: {shown} is followed by {extra}; "
                    "put the whole cell in quotes and double any quote inside it "
                    f"({_skipped(start_line, line, resume, line + 1, n)})"
                )
                return _Record(start_line, [], reason, resume, line + 1)
            cells.append(value.replace('""', '"'))
            pos = tail.end()
        if pos >= n:
            return _Record(start_line, cells, None, n, line + 1)
        if text[pos] == delimiter:
            pos += 1
            continue
        pos += 2 if text.startswith("\r\n", pos) else 1
        return _Record(start_line, cells, None, pos, line + 1)


def _scan(
    text: str, delimiter: str, pos: int = 0, line: int = 1, label: Callable[[int], str] = _column_number
) -> Iterator[_Record]:
    """Yield every record (blank lines included, as a single empty cell) from ``pos`` on.

    Runs of lines without any quote are split in bulk (the common case, at C speed); a line that
    holds a quote goes through ``_parse_quoted_record``.
    """
    n = len(text)
    next_quote = -1
    while pos < n:
        if next_quote < pos:
            found = text.find('"', pos)
            next_quote = n if found == -1 else found
        limit = min(next_quote, pos + _BULK_CHARS)
        cut = n if limit == n else max(text.rfind("\n", pos, limit), text.rfind("\r", pos, limit)) + 1
        if 0 < cut < n and text[cut - 1] == "\r" and text[cut] == "\n":
            cut += 1  # the chunk limit fell inside a \r\n pair
        if cut > pos:
            # pieces alternate line, line break, line, ..., last (empty when the block ends in a break)
            pieces = _NEWLINE_SPLIT_RE.split(text[pos:cut])
            for i in range(0, len(pieces) - 1, 2):
                pos += len(pieces[i]) + len(pieces[i + 1])
                yield _Record(line, pieces[i].split(delimiter), None, pos, line + 1)
                line += 1
            if pieces[-1]:
                pos += len(pieces[-1])
                yield _Record(line, pieces[-1].split(delimiter), None, pos, line + 1)
                line += 1
            continue
        newline = _NEWLINE_RE.search(text, pos)
        end_of_line, after = (newline.start(), newline.end()) if newline else (n, n)
        if next_quote >= end_of_line:  # a single quote-free line longer than _BULK_CHARS
            yield _Record(line, text[pos:end_of_line].split(delimiter), None, after, line + 1)
            pos, line = after, line + 1
            continue
        record = _parse_quoted_record(text, pos, line, delimiter, label)
        yield record
        pos, line = record.end, record.next_line


def _is_blank_line(record: _Record) -> bool:
    return record.error is None and len(record.cells) == 1 and not record.cells[0].strip()


def _trim_trailing_empty(cells: list[str]) -> list[str]:
    end = len(cells)
    while end > 0 and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _sniff_delimiter(text: str, pos: int, line: int) -> str:
    best: tuple[float, int, int] | None = None
    best_delimiter = ","
    for priority, delimiter in enumerate(DELIMITERS):
        records = (r for r in _scan(text, delimiter, pos, line) if not _is_blank_line(r))
        header = next(records, None)
        if header is None or header.error is not None:
            continue
        width = len(_trim_trailing_empty(header.cells))
        if width < 2:
            continue
        seen = fitting = 0
        for record in records:
            seen += 1
            if record.error is None:
                cells = record.cells
                if len(cells) == width or (len(cells) > width and not any(c.strip() for c in cells[width:])):
                    fitting += 1
            if seen >= _SNIFF_RECORDS:
                break
        score = (fitting / seen if seen else 1.0, width, -priority)
        if best is None or score > best:
            best, best_delimiter = score, delimiter
    return best_delimiter


# --------------------------------------------------------------------------------------------------
# Header and table
# --------------------------------------------------------------------------------------------------

_NUMBER_RE = re.compile(r"[+-]?(?:\d[\d,. ]*|\.\d+)%?")


def _read_header(record: _Record | None, max_name_chars: int) -> list[str]:
    if record is None:
        raise UnreadableFile("the file has no header line")
    where = f"line {record.line}"
    if record.error is not None:
        raise UnreadableFile(f"the header ({where}) cannot be read: {record.error}")
    names = _trim_trailing_empty([c.strip() for c in record.cells])
    if not names:
        raise UnreadableFile(f"the header ({where}) has no column names; the first line must name the columns")
    for index, name in enumerate(names):
        if len(name) > max_name_chars:
            raise UnreadableFile(
                f"the name of column {index + 1} in the header ({where}) is {len(name):,} characters long; "
                f"column names are limited to {max_name_chars:,}. Is the first line really the header?"
            )
    written = [n for n in names if n]
    if all(_NUMBER_RE.fullmatch(n) for n in written):
        shown = ", ".join(written[:5]) + (", …" if len(written) > 5 else "")
        raise UnreadableFile(
            f"the first line ({where}: {shown}) contains only numbers, so it looks like data, not column "
            "names; add a header line that names the columns"
        )
    headers = [name or f"column_{index + 1}" for index, name in enumerate(names)]
    seen: dict[str, int] = {}
    for index, name in enumerate(headers):
        key = custom_key(name) or "\x00" + _collapse(name)
        if key in seen:
            first = seen[key]
            raise UnreadableFile(
                f'columns {first + 1} ("{headers[first]}") and {index + 1} ("{name}") of the header have '
                "the same name; rename one so that every column has a distinct name"
            )
        seen[key] = index
    return headers


@dataclass
class TableStream:
    """A table read one record at a time: `records()` yields ``(line, cells)`` or a ``RowError``."""

    headers: list[str]
    encoding: str
    delimiter: str
    text: str
    start: int
    start_line: int
    max_cell_chars: int

    def label(self, index: int) -> str:
        if index < len(self.headers):
            name = self.headers[index]
            return f'column "{name if len(name) <= 40 else name[:39] + "…"}"'
        return _column_number(index)

    def records(self) -> Iterator[tuple[int, list[str]] | RowError]:
        width = len(self.headers)
        delimiter, max_cell_chars, label = self.delimiter, self.max_cell_chars, self.label
        for record in _scan(self.text, delimiter, self.start, self.start_line, label):
            if record.error is not None:
                yield RowError(record.line, record.error)
                continue
            cells = list(map(str.strip, record.cells))
            if not any(cells):
                continue
            if len(cells) != width:
                if len(cells) > width and not any(cells[width:]):
                    cells = cells[:width]
                else:
                    reason = f"expected {width} columns, found {len(cells)}"
                    if len(cells) > width:
                        reason += f"; a value that contains {_delimiter_name(delimiter)} must be in double quotes"
                    yield RowError(record.line, reason)
                    continue
            if max(map(len, cells)) > max_cell_chars:
                too_long = next(i for i, c in enumerate(cells) if len(c) > max_cell_chars)
                yield RowError(record.line, f"cell in {label(too_long)} is {len(cells[too_long]):,} characters; "
                                            f"the limit is {max_cell_chars:,}")
                continue
            yield record.line, cells


def open_table(data: bytes, *, max_bytes: int = 50 * 1024 * 1024, max_cell_chars: int = 20_000) -> TableStream:
    """Decode an uploaded CSV and read its header; raise ``UnreadableFile`` when it cannot be used at all.
    The records are read lazily (`TableStream.records`), so a large file never sits in memory as rows."""
    _check_bytes(data, max_bytes)
    raw_text, encoding = _decode(data)
    text = _check_text(raw_text)
    del raw_text

    pos, line = 0, 1
    delimiter: str | None = None
    first_line_end = _NEWLINE_RE.search(text)
    hint = _SEP_HINT_RE.fullmatch(text[: first_line_end.start() if first_line_end else len(text)])
    if hint and hint.group(1) in DELIMITERS:
        delimiter = hint.group(1)
        pos, line = (first_line_end.end() if first_line_end else len(text)), 2
    if delimiter is None:
        delimiter = _sniff_delimiter(text, pos, line)

    header_record = next((r for r in _scan(text, delimiter, pos, line) if not _is_blank_line(r)), None)
    headers = _read_header(header_record, _MAX_HEADER_NAME_CHARS)
    assert header_record is not None
    return TableStream(headers=headers, encoding=encoding, delimiter=delimiter, text=text,
                       start=header_record.end, start_line=header_record.next_line, max_cell_chars=max_cell_chars)


def read_table(data: bytes, *, max_bytes: int = 50 * 1024 * 1024, max_cell_chars: int = 20_000) -> Table:
    """Decode and parse an uploaded CSV; raise ``UnreadableFile`` when it cannot be used at all."""
    stream = open_table(data, max_bytes=max_bytes, max_cell_chars=max_cell_chars)
    rows: list[tuple[int, list[str]]] = []
    errors: list[RowError] = []
    for record in stream.records():
        if isinstance(record, RowError):
            errors.append(record)
        else:
            rows.append(record)
    return Table(
        headers=stream.headers,
        rows=rows,
        errors=errors,
        encoding=stream.encoding,
        delimiter=stream.delimiter,
        total_records=len(rows) + len(errors),
    )


def _delimiter_name(delimiter: str) -> str:
    return {",": "a comma", ";": "a semicolon", "\t": "a tab", "|": "a pipe (|)"}[delimiter]



def _collapse(value: str) -> str:
    return " ".join(value.split()).casefold()
