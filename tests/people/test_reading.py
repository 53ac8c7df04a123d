"""Tests for reading uploaded CSVs (core.people.reading), their columns (columns) and prospect rows (rows)."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from core.people import reading
from core.people.columns import CANONICAL_FIELDS, REQUIRED_FIELDS, custom_key, parse_company_size, suggest_mapping
from core.people.identity import normalize_linkedin_url
from core.people.reading import Table, UnreadableFile, read_table
from core.people.rows import identity_for, parse_prospects

CORPUS_DIR = Path(__file__).parent / "csv_corpus"

# filename -> ("ok", total_records, rows, errors, duplicates) or ("refused", message fragment).
# Counts are after parse_prospects with the suggested mapping; a refusal may come from either stage.
CORPUS: dict[str, tuple[str, int, int, int, int] | tuple[str, str]] = {
    "utf8_basic.csv": ("ok", 3, 3, 0, 0),
    "utf8_bom.csv": ("ok", 2, 2, 0, 0),
    "cp1252_accents.csv": ("ok", 2, 2, 0, 0),
    "utf16le_bom_tab.csv": ("ok", 2, 2, 0, 0),
    "utf16be_bom.csv": ("ok", 2, 2, 0, 0),
    "utf16le_nobom.csv": ("ok", 2, 2, 0, 0),
    "semicolon.csv": ("ok", 3, 3, 0, 0),
    "tab.tsv": ("ok", 3, 3, 0, 0),
    "pipe.csv": ("ok", 2, 2, 0, 0),
    "excel_sep_hint.csv": ("ok", 2, 2, 0, 0),
    "quoted_newlines.csv": ("ok", 3, 3, 0, 0),
    "crlf.csv": ("ok", 3, 3, 0, 0),
    "cr_only.csv": ("ok", 2, 2, 0, 0),
    "ragged_rows.csv": ("ok", 5, 3, 2, 0),
    "unclosed_quote.csv": ("ok", 4, 3, 1, 0),
    "stray_quote_runaway.csv": ("ok", 4, 3, 1, 0),
    "junk_after_quote.csv": ("ok", 2, 1, 1, 0),
    "formula_payloads.csv": ("ok", 4, 4, 0, 0),
    "na_null_zeros.csv": ("ok", 3, 3, 0, 0),
    "blank_lines.csv": ("ok", 3, 3, 0, 0),
    "header_only.csv": ("ok", 0, 0, 0, 0),
    "wide.csv": ("ok", 3, 3, 0, 0),
    "non_latin.csv": ("ok", 4, 4, 0, 0),
    "mixed_header_spellings.csv": ("ok", 2, 2, 0, 0),
    "duplicates_in_file.csv": ("ok", 10, 6, 0, 4),
    "invalid_values.csv": ("ok", 5, 1, 4, 0),
    "empty.csv": ("refused", "the file is empty"),
    "whitespace_only.csv": ("refused", "only blank lines or spaces"),
    "png_image.csv": ("refused", "this looks like an image file (PNG)"),
    "prospects.xlsx": ("refused", "this looks like an Excel workbook (.xlsx)"),
    "legacy.xls": ("refused", "this looks like an Excel (.xls)"),
    "binary_nul.csv": ("refused", "binary data (NUL bytes)"),
    "html_page.csv": ("refused", "web page (HTML)"),
    "duplicate_headers.csv": ("refused", 'columns 2 ("Email") and 4 ("email") of the header have the same name'),
    "all_empty_header.csv": ("refused", "the header (line 1) has no column names"),
    "number_header.csv": ("refused", "contains only numbers"),
    "missing_required.csv": (
        "refused",
        "the file has no column for company_name; columns found: first_name, last_name, email; "
        "map one in the mapping step",
    ),
    "single_column.csv": ("refused", "the file has no column for company_name"),
}


def load(name: str) -> Table:
    return read_table((CORPUS_DIR / name).read_bytes())


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_file(name: str) -> None:
    expected = CORPUS[name]
    data = (CORPUS_DIR / name).read_bytes()
    if expected[0] == "refused":
        with pytest.raises(UnreadableFile, match=re.escape(str(expected[1]))):
            parse_prospects(read_table(data))
        return
    table = read_table(data)
    parsed = parse_prospects(table)
    counts = (parsed.total_records, len(parsed.rows), len(parsed.errors), len(parsed.duplicates_in_file))
    assert ("ok", *counts) == expected
    assert table.total_records == len(table.rows) + len(table.errors) == parsed.total_records
    assert all(row.identity == identity_for(row.fields) for row in parsed.rows)


def test_corpus_is_complete_large_enough_and_small() -> None:
    files = {p.name for p in CORPUS_DIR.iterdir() if p.is_file()}
    assert files == set(CORPUS)
    assert len(files) >= 25
    assert sum(p.stat().st_size for p in CORPUS_DIR.iterdir()) < 50 * 1024


# ---------------------------------------------------------------------------------------------
# What the corpus files contain once read
# ---------------------------------------------------------------------------------------------


def test_encodings_are_detected_and_text_is_intact() -> None:
    cp = load("cp1252_accents.csv")
    assert cp.encoding == "cp1252"
    assert cp.rows[0][1] == ["José", "Café Société", "Price: 5€ – it’s “fine”"]
    bom = load("utf8_bom.csv")
    assert (bom.encoding, bom.headers[0]) == ("utf-8-sig", "First Name")
    assert bom.rows[1][1] == ["Zoë", "Ærø Shipping", "Owner"]
    le = load("utf16le_bom_tab.csv")
    assert (le.encoding, le.delimiter) == ("utf-16", "\t")
    assert le.headers == ["first_name", "company_name", "notes"]
    assert le.rows[0][1] == ["Jürgen", "Straße AG", "日本語 ok"]
    be = load("utf16be_bom.csv")
    assert be.encoding == "utf-16" and be.rows[0][1] == ["Marta", "Łódź Tech"]
    nobom = load("utf16le_nobom.csv")
    assert nobom.encoding == "utf-16" and nobom.rows[1][1] == ["Anna", "Göteborg Oy", "CFO"]
    assert load("utf8_basic.csv").encoding == "utf-8"


def test_delimiters_are_sniffed_and_quoted_delimiters_kept() -> None:
    semi = load("semicolon.csv")
    assert semi.delimiter == ";"
    assert semi.rows[0][1] == ["Hans", "Müller GmbH", "1.200", "Umsatz 1,5 Mio"]
    assert semi.rows[1][1] == ["Eva", "Schmidt; Partner", "50", 'Zitat "gut"']
    tab = load("tab.tsv")
    assert tab.delimiter == "\t"
    assert tab.rows[0][1] == ["Amy", "Acme, Inc.", "likes; semicolons, commas | pipes"]
    pipe = load("pipe.csv")
    assert pipe.delimiter == "|" and pipe.rows[0][1] == ["Dana", "Delta, LLC", "Founder; CEO"]
    hint = load("excel_sep_hint.csv")
    assert hint.delimiter == ";" and hint.headers == ["first_name", "company_name"]
    assert hint.rows == [(3, ["Ann", "Acme, Inc."]), (4, ["Bob", "Beta"])]


def test_line_numbers_are_physical_lines() -> None:
    quoted = load("quoted_newlines.csv")
    assert [line for line, _ in quoted.rows] == [2, 4, 7]
    assert quoted.rows[0][1] == ["Ann", "Acme, Inc.", "line one\nline two, still notes"]
    assert quoted.rows[1][1] == ["Bob", 'The "Best" Co', "a\r\nb\r\nc"]
    crlf = load("crlf.csv")
    assert [line for line, _ in crlf.rows] == [2, 4, 6]
    assert crlf.rows[0][1][2] == "two\r\nlines"
    assert [line for line, _ in load("cr_only.csv").rows] == [2, 3]
    assert [line for line, _ in load("blank_lines.csv").rows] == [5, 8, 11]


def test_ragged_rows_report_line_and_widths_and_trailing_empties_are_tolerated() -> None:
    table = load("ragged_rows.csv")
    assert [(e.line, e.reason) for e in table.errors] == [
        (3, "expected 4 columns, found 3"),
        (4, "expected 4 columns, found 5; a value that contains a comma must be in double quotes"),
    ]
    assert table.rows[1] == (5, ["Dee", "Dunn", "Delta", "COO"])
    assert [line for line, _ in table.rows] == [2, 5, 6]


def test_unclosed_quote_loses_only_its_line() -> None:
    table = load("unclosed_quote.csv")
    assert [line for line, _ in table.rows] == [2, 4, 5]
    assert table.rows[1][1] == ["Cid", "Gamma", "after the broken line"]
    [error] = table.errors
    assert error.line == 3
    assert 'unclosed quote: the quote that opens column "company_name" on line 3 is never closed' in error.reason
    assert "reading resumed on line 4" in error.reason


def test_stray_quote_pairing_with_a_later_quote_is_reported_not_merged() -> None:
    table = load("stray_quote_runaway.csv")
    assert [(line, cells[0]) for line, cells in table.rows] == [(3, "Bob"), (4, "Cid"), (5, "Dee")]
    assert table.rows[1][1][2] == "a proper quoted cell"
    [error] = table.errors
    assert error.line == 2 and "unmatched quote" in error.reason and "resumed on line 3" in error.reason


def test_text_after_closing_quote_is_a_row_error() -> None:
    table = load("junk_after_quote.csv")
    assert table.errors[0].line == 2
    assert 'text after the closing quote in column "company_name": "Acme" is followed by "Inc"' in (
        table.errors[0].reason
    )
    assert table.rows == [(3, ["Bob", "Beta", "y"])]


def test_formulas_and_null_like_values_stay_verbatim() -> None:
    companies = [cells[1] for _, cells in load("formula_payloads.csv").rows]
    assert companies == [
        '=HYPERLINK("http://evil.example","click")',
        "+cmd|' /C calc'!A0",
        "-1+1",
        "@SUM(1+1)*cmd|' /C calc'!A0",
    ]
    rows = [cells for _, cells in load("na_null_zeros.csv").rows]
    assert rows == [["NA", "null", "007", ""], ["None", "N/A", "0042", "NULL"], ["007", "Acme", "", ""]]


def test_header_only_and_wide_and_non_latin_files() -> None:
    header_only = load("header_only.csv")
    assert header_only.headers == ["first_name", "company_name", "email"]
    assert header_only.rows == [] and header_only.errors == []
    wide = load("wide.csv")
    assert len(wide.headers) == 300 and all(len(cells) == 300 for _, cells in wide.rows)
    parsed = parse_prospects(wide)
    assert len(parsed.rows[0].custom) == 298 and parsed.rows[2].custom["signal_297"] == str((14 + 297) % 10)
    names = [
        (row.fields["first_name"], row.fields["company_name"]) for row in parse_prospects(load("non_latin.csv")).rows
    ]
    assert names == [
        ("太郎", "株式会社サンプル"),
        ("Γιώργος", "Ελληνικά Α.Ε."),
        ("Zoë 🚀", "Emoji Labs 🎉"),
        ("محمد", "شركة"),
    ]


def test_mixed_header_spellings_map_and_leftovers_become_custom_variables() -> None:
    table = load("mixed_header_spellings.csv")
    assert suggest_mapping(table.headers) == {
        "first_name": "FIRST NAME",
        "last_name": "Surname",
        "company_name": "Organization",
        "job_title": "Position",
        "linkedin_url": "LinkedIn Profile",
        "email": "E-mail",
        "company_size": "# Employees",
        "recent_news": "Recent News",
        "sender_account": "Sender",
    }
    ann, bob = parse_prospects(table).rows
    assert ann.fields["linkedin_url"] == "linkedin.com/in/ann-ames"  # kept as written; the identity is normalised
    assert ann.fields["email"] == "Ann@Acme.example"
    assert ann.custom == {"favourite_colour": "teal", "lead_source_2024": "webinar"}
    assert ann.identity == "li:https://www.linkedin.com/in/ann-ames"
    assert parse_company_size(ann.fields["company_size"]) == 1200
    assert parse_company_size(bob.fields["company_size"]) == 51
    assert bob.custom == {} and "recent_news" not in bob.fields
    assert bob.identity == "email:bob@beta.example"


def test_in_file_duplicates_by_url_variants_email_case_and_name() -> None:
    parsed = parse_prospects(load("duplicates_in_file.csv"))
    assert [(d.line, d.reason) for d in parsed.duplicates_in_file] == [
        (3, "duplicate of line 2: the same LinkedIn profile"),
        (4, "duplicate of line 2: the same LinkedIn profile"),
        (6, "duplicate of line 5: the same email address"),
        (8, "duplicate of line 7: the same name and company"),
    ]
    # Line 9 shares name and company with line 7 but has its own profile; lines 10 and 11 are two profiles.
    assert [row.line for row in parsed.rows] == [2, 5, 7, 9, 10, 11]
    assert parsed.rows[2].identity == "name:li wei|blue yonder"


def test_invalid_values_are_row_errors() -> None:
    parsed = parse_prospects(load("invalid_values.csv"))
    assert [row.line for row in parsed.rows] == [2]
    assert [(e.line, e.reason) for e in parsed.errors] == [
        (3, 'first_name is empty (column "first_name")'),
        (4, 'email "not-an-email" is not a valid email address'),
        (
            5,
            'linkedin_url "https://www.linkedin.com/company/delta" is not a LinkedIn profile address '
            "(expected linkedin.com/in/...)",
        ),
        (6, 'company_name is empty (column "company_name")'),
    ]


def test_single_column_file_reads_as_one_column() -> None:
    table = load("single_column.csv")
    assert (table.headers, table.delimiter) == (["first_name"], ",")
    assert table.rows == [(2, ["Ann"]), (3, ["Bob"])]


# ---------------------------------------------------------------------------------------------
# Generated at test time: big cells, size limits, pathological quoting
# ---------------------------------------------------------------------------------------------


def test_ten_megabyte_cell_is_a_row_error_and_neighbours_survive(tmp_path: Path) -> None:
    path = tmp_path / "big_cell.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("first_name,company_name,notes\nAnn,Acme,short\nBob,Beta,")
        handle.write("x" * 10_485_760)
        handle.write("\nCid,Gamma,short\n")
    table = read_table(path.read_bytes())
    assert [line for line, _ in table.rows] == [2, 4]
    assert table.errors == [
        type(table.errors[0])(3, 'cell in column "notes" is 10,485,760 characters; the limit is 20,000')
    ]


def test_big_quoted_cell_with_newlines_keeps_line_numbers() -> None:
    body = "line\n" * 50_000
    data = f'first_name,company_name,notes\nAnn,Acme,"{body}"\nBob,Beta,x\n'.encode()
    table = read_table(data, max_cell_chars=1_000_000)
    assert [line for line, _ in table.rows] == [2, 50_003]
    assert table.rows[0][1][2] == body.strip()


def test_file_over_the_size_limit_is_refused() -> None:
    data = b"first_name,company_name\n" + b"Ann,Acme\n" * 200
    with pytest.raises(UnreadableFile, match=re.escape("the file is 1.8 KB; the limit is 1 KB")):
        read_table(data, max_bytes=1024)
    assert read_table(data, max_bytes=len(data)).total_records == 200


def test_many_stray_quotes_are_each_reported_and_nothing_is_swallowed() -> None:
    data = ("first_name,notes\n" + 'Ann,"open\n' * 2_000).encode()
    table = read_table(data)
    assert table.total_records == 2_000 and table.rows == []
    assert [e.line for e in table.errors] == list(range(2, 2_002))


# ---------------------------------------------------------------------------------------------
# Parser details
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "fragment"),
    [
        (b"\xff\xfe\x00\x00a\x00\x00\x00", "UTF-32"),
        (b"\xff\xfea\x00,\x00b", "not valid UTF-16"),
        (b"a,b\n" + b"\x01\x02\x03\x04" * 30, "of the start of the file is control characters"),
        (b'<?xml version="1.0"?><Workbook/>', "XML file"),
        (b"%PDF-1.7\n", "a PDF document"),
        (b"GIF89a....", "an image file (GIF)"),
        (b"PK\x03\x04not an office file", "a zip archive"),
        (b"a,b\n\n\n", None),
    ],
)
def test_whole_file_refusals(data: bytes, fragment: str | None) -> None:
    if fragment is None:
        assert read_table(data).headers == ["a", "b"]
        return
    with pytest.raises(UnreadableFile, match=re.escape(fragment)):
        read_table(data)


def test_invalid_utf8_falls_back_to_cp1252_without_crashing() -> None:
    # 0x81 is undefined in cp1252: it becomes U+FFFD instead of raising.
    table = read_table(b"first_name,company_name\nJos\xe9,Caf\xe9 \x81\n")
    assert table.encoding == "cp1252"
    assert table.rows == [(2, ["José", "Café \ufffd"])]


def test_bomless_utf16_big_endian_is_detected() -> None:
    table = read_table("first_name;company_name\nÅsa;Örebro AB\n".encode("utf-16-be"))
    assert (table.encoding, table.delimiter, table.rows) == ("utf-16", ";", [(2, ["Åsa", "Örebro AB"])])


@pytest.mark.parametrize(
    ("text", "delimiter"),
    [
        ("name,company,notes\nAnn,Acme,a;b;c\nBob,Beta,d;e\n", ","),
        ("name;company;size\nAnn;Acme;1,5\nBob;Beta;2,75\n", ";"),
        ("name\tcompany\n", "\t"),
        ("name|company|title\nAnn|Acme, Inc|CEO; founder\n", "|"),
        ("name\nAnn, the first\nBob\n", ","),
        ('"Name, full";Company\n"Doe, Jane";Acme\n', ";"),
    ],
)
def test_delimiter_sniffing(text: str, delimiter: str) -> None:
    assert read_table(text.encode()).delimiter == delimiter


def test_bulk_line_splitting_agrees_with_line_by_line_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    # Quote-free runs of lines are split in chunks of _BULK_CHARS; tiny chunks put chunk edges
    # everywhere, including between the \r and \n of a line break.
    names = [
        "crlf.csv",
        "cr_only.csv",
        "blank_lines.csv",
        "quoted_newlines.csv",
        "ragged_rows.csv",
        "unclosed_quote.csv",
        "excel_sep_hint.csv",
        "utf16le_bom_tab.csv",
        "semicolon.csv",
    ]
    extra = b"a,b\r\n1,2\r\n\r\n3,4\r\r\n5,6"
    expected = {name: load(name) for name in names}
    expected_extra = read_table(extra)
    assert [line for line, _ in expected_extra.rows] == [2, 4, 6]
    for size in (1, 2, 3, 4, 5, 8, 13):
        monkeypatch.setattr(reading, "_BULK_CHARS", size)
        for name in names:
            assert load(name) == expected[name], (name, size)
        assert read_table(extra) == expected_extra, size


def test_vertical_tab_and_unicode_line_separator_stay_inside_cells() -> None:
    table = read_table("first_name,notes\nAnn,a\x0bb\u2028c\x85d\nBob,e\n".encode())
    assert table.rows == [(2, ["Ann", "a\x0bb\u2028c\x85d"]), (3, ["Bob", "e"])]


def test_header_cleanup_and_refusals() -> None:
    table = read_table(b"first_name,,company_name,,\nAnn,x,Acme,,\n")
    assert table.headers == ["first_name", "column_2", "company_name"]
    assert table.rows == [(2, ["Ann", "x", "Acme"])]
    with pytest.raises(UnreadableFile, match="have the same name"):
        read_table(b"First Name,first_name\nAnn,Ann\n")
    with pytest.raises(UnreadableFile, match="have the same name"):
        read_table("名前,名前\nA,B\n".encode())
    assert read_table("名前,会社\nA,B\n".encode()).headers == ["名前", "会社"]
    with pytest.raises(UnreadableFile, match="column names are limited to 200"):
        read_table(("a," + "x" * 201 + "\n1,2\n").encode())
    with pytest.raises(UnreadableFile, match=re.escape("the header (line 1) cannot be read: unclosed quote")):
        read_table(b'"first_name,company\nAnn,Acme\n')
    with pytest.raises(UnreadableFile, match="contains only numbers"):
        read_table(b"12.5,-3,40%\n1,2,3\n")


def test_leading_blank_lines_move_the_header_down() -> None:
    table = read_table(b"\r\n\r\nfirst_name,company_name\r\nAnn,Acme\r\n")
    assert table.rows == [(4, ["Ann", "Acme"])]


def test_quoted_empty_cells_and_spaces_around_quotes() -> None:
    table = read_table(b'a,b,c\n"",  "x, y"  ,""""\n')
    assert table.rows == [(2, ["", "x, y", '"'])]


ALPHABET = st.characters(
    codec="utf-8",
    exclude_categories=("Cs", "Cc"),
    include_characters=",;\t|\"'\n\r \x0b\u2028é日🚀",
)


@settings(max_examples=150, deadline=None)
@given(
    rows=st.lists(st.lists(st.text(ALPHABET, max_size=12), min_size=3, max_size=3), max_size=8),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
)
def test_round_trip_with_the_standard_csv_writer(rows: list[list[str]], delimiter: str, encoding: str) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=delimiter, lineterminator="\r\n")
    writer.writerow(["alpha", "beta", "gamma"])
    writer.writerows(rows)
    table = read_table(buffer.getvalue().encode(encoding))
    expected = [[c.strip() for c in row] for row in rows if any(c.strip() for c in row)]
    assert table.errors == []
    assert table.delimiter == delimiter
    assert [cells for _, cells in table.rows] == expected
    lines = [line for line, _ in table.rows]
    assert lines == sorted(lines)


@settings(max_examples=300, deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        st.text(st.sampled_from('ab,;\t|"\r\n é€'), max_size=300).map(str.encode),
        st.text(st.sampled_from('ab,;\t|"\r\n é€'), max_size=300).map(lambda t: t.encode("utf-16")),
    )
)
def test_any_bytes_give_a_table_or_a_refusal(data: bytes) -> None:
    try:
        table = read_table(data)
    except UnreadableFile as exc:
        assert str(exc)
        return
    assert table.total_records == len(table.rows) + len(table.errors)
    assert all(len(cells) == len(table.headers) for _, cells in table.rows)
    lines = [line for line, _ in table.rows] + [e.line for e in table.errors]
    assert len(lines) == len(set(lines)) and all(line >= 2 for line in lines)


# ---------------------------------------------------------------------------------------------
# Mapping, normalisation, identity, sizes
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "field"),
    [
        ("first_name", "first_name"),
        ("firstName", "first_name"),
        ("First Name", "first_name"),
        ("FIRST NAME", "first_name"),
        ("fname", "first_name"),
        ("Given name", "first_name"),
        ("Last Name", "last_name"),
        ("surname", "last_name"),
        ("company", "company_name"),
        ("Company Name", "company_name"),
        ("organization", "company_name"),
        ("Employer", "company_name"),
        ("title", "job_title"),
        ("Job Title", "job_title"),
        ("position", "job_title"),
        ("Role", "job_title"),
        ("LinkedIn", "linkedin_url"),
        ("linkedin profile", "linkedin_url"),
        ("Profile URL", "linkedin_url"),
        ("LinkedIn URL", "linkedin_url"),
        ("e-mail", "email"),
        ("Email Address", "email"),
        ("employees", "company_size"),
        ("company size", "company_size"),
        ("Headcount", "company_size"),
        ("# employees", "company_size"),
        ("news", "recent_news"),
        ("Recent News", "recent_news"),
        ("account", "sender_account"),
        ("sender", "sender_account"),
        ("Sender Account", "sender_account"),
        ("Industry", "industry"),
        ("Notes", "notes"),
    ],
)
def test_suggest_mapping_spellings(header: str, field: str) -> None:
    assert suggest_mapping(["something else", header]) == {field: header}


def test_suggest_mapping_prefers_the_closest_spelling_and_leaves_unknowns() -> None:
    headers = ["Company", "Company Name", "Name", "Title", "Job Title", "Vorname", "Website"]
    assert suggest_mapping(headers) == {"company_name": "Company Name", "job_title": "Job Title"}
    assert suggest_mapping(["email", "E-Mail"]) == {"email": "email"}
    assert suggest_mapping([]) == {}


def test_every_spelling_belongs_to_one_field_and_fields_are_canonical() -> None:
    from core.people.columns import _SYNONYMS

    assert set(_SYNONYMS) == set(CANONICAL_FIELDS)
    spellings = [s for values in _SYNONYMS.values() for s in values]
    assert len(spellings) == len(set(spellings))
    assert all(f in _SYNONYMS[f] or f.replace("_", "") in _SYNONYMS[f] for f in CANONICAL_FIELDS)
    assert set(REQUIRED_FIELDS) <= set(CANONICAL_FIELDS)


@pytest.mark.parametrize(
    ("header", "key"),
    [
        ("Recent Funding (USD)", "recent_funding_usd"),
        ("firstName", "first_name"),
        ("URLValue", "url_value"),
        ("Société", "societe"),
        ("2024 revenue", "col_2024_revenue"),
        ("  --Pet__Name--  ", "pet_name"),
        ("名前", ""),
        ("#", ""),
    ],
)
def test_custom_key(header: str, key: str) -> None:
    assert custom_key(header) == key


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("HTTPS://www.LinkedIn.com/in/Jane-Doe/?utm=x", "https://www.linkedin.com/in/jane-doe"),
        ("linkedin.com/in/jane-doe", "https://www.linkedin.com/in/jane-doe"),
        ("  www.linkedin.com/in/jane-doe///  ", "https://www.linkedin.com/in/jane-doe"),
        ("http://uk.linkedin.com/in/jane-doe#about", "https://www.linkedin.com/in/jane-doe"),
        ("https://m.linkedin.com/in/jane-doe/details/experience/", "https://www.linkedin.com/in/jane-doe"),
        ("//linkedin.com/IN/jane-doe", "https://www.linkedin.com/in/jane-doe"),
        ("https://www.linkedin.com/in/jos%C3%A9", "https://www.linkedin.com/in/jos%C3%A9"),
        ("https://www.linkedin.com/in/José", "https://www.linkedin.com/in/jos%C3%A9"),
        ("https://www.linkedin.com/company/acme", None),
        ("https://www.linkedin.com/pub/jane-doe/1/2/3", None),
        ("https://www.linkedin.com/in/", None),
        ("https://evil-linkedin.com/in/jane", None),
        ("https://linkedin.com.evil.example/in/jane", None),
        ("ftp://linkedin.com/in/jane", None),
        ("javascript:alert(1)//linkedin.com/in/x", None),
        ("https://[bad/in/x", None),
        ("jane@example.com", None),
        ("", None),
    ],
)
def test_normalize_linkedin_url(url: str, expected: str | None) -> None:
    assert normalize_linkedin_url(url) == expected


@pytest.mark.parametrize(
    ("fields", "identity"),
    [
        (
            {"linkedin_url": "uk.linkedin.com/in/Jane-Doe/", "email": "J@X.com", "first_name": "Jane"},
            "li:https://www.linkedin.com/in/jane-doe",
        ),
        ({"linkedin_url": "https://linkedin.com/company/x", "email": " Jane@Acme.COM "}, "email:jane@acme.com"),
        (
            {"first_name": " Jane  Marie ", "last_name": "DOE", "company_name": "Acme   Corp "},
            "name:jane marie doe|acme corp",
        ),
        ({"first_name": "Straße", "company_name": "ÉCOLE"}, "name:strasse|école"),
        ({"first_name": "Jane", "company_name": "Acme", "email": ""}, "name:jane|acme"),
    ],
)
def test_identity_for(fields: dict[str, str], identity: str) -> None:
    assert identity_for(fields) == identity


@pytest.mark.parametrize(
    ("value", "size"),
    [
        ("1,200", 1200),
        ("1200", 1200),
        ("1k", 1000),
        ("1.5K", 1500),
        ("2m", 2_000_000),
        ("501-1000", 501),
        ("501 – 1,000", 501),
        ("1001 to 5000 employees", 1001),
        ("51-200 employees", 51),
        ("10000+", 10000),
        ("10,001+", 10001),
        ("10k+", 10000),
        ("over 500", 500),
        (">= 50", 50),
        ("1k-5k", 1000),
        (" 42 ", 42),
        ("", None),
        ("big", None),
        ("1,20", None),
        ("12.5", None),
        ("0", None),
        ("200-50", None),
        ("-5", None),
        ("n/a", None),
    ],
)
def test_parse_company_size(value: str, size: int | None) -> None:
    assert parse_company_size(value) == size


# ---------------------------------------------------------------------------------------------
# parse_prospects with an explicit mapping
# ---------------------------------------------------------------------------------------------

TABLE_BYTES = b"Vorname,Firma,Kontakt,Extra\nAnn,Acme,ann@acme.example,x\nBob,Beta,,\n"


def test_explicit_mapping_is_used_and_unmapped_columns_become_custom() -> None:
    table = read_table(TABLE_BYTES)
    parsed = parse_prospects(table, {"first_name": "Vorname", "company_name": "Firma", "email": "Kontakt"})
    assert [(r.fields, r.custom) for r in parsed.rows] == [
        ({"first_name": "Ann", "company_name": "Acme", "email": "ann@acme.example"}, {"extra": "x"}),
        ({"first_name": "Bob", "company_name": "Beta"}, {}),
    ]
    ignoring_email = parse_prospects(table, {"first_name": "Vorname", "company_name": "Firma", "email": ""})
    assert ignoring_email.rows[0].custom == {"kontakt": "ann@acme.example", "extra": "x"}


def test_mapping_errors() -> None:
    table = read_table(TABLE_BYTES)
    with pytest.raises(
        UnreadableFile,
        match=re.escape("no column for first_name or company_name; columns found: Vorname, Firma, Kontakt, Extra"),
    ):
        parse_prospects(table)
    with pytest.raises(UnreadableFile, match='uses column "Company" for company_name'):
        parse_prospects(table, {"first_name": "Vorname", "company_name": "Company"})
    with pytest.raises(ValueError, match="unknown prospect field"):
        parse_prospects(table, {"first_name": "Vorname", "company_name": "Firma", "shoe_size": "Extra"})


def test_table_errors_and_prospect_errors_are_merged_in_line_order() -> None:
    table = read_table(b"first_name,company_name\n,Acme\nAnn,Acme,extra\nBob,Beta\n")
    parsed = parse_prospects(table)
    assert [e.line for e in parsed.errors] == [2, 3]
    assert parsed.total_records == 3 == len(parsed.rows) + len(parsed.errors)
