"""A file that mixes UTF-8 and Windows-1252 is read right line by line, or refused with the line numbers:
never silently turned into mojibake ("JosÃ©")."""

from __future__ import annotations

import pytest

from core.app import App
from core.people.prospects import count_prospects, import_prospects, list_prospects
from core.people.reading import UnreadableFile, read_table

HEADER = b"first_name,company_name,notes\n"
UTF8_LINE = "José,Société Générale,café crème\n".encode()
CP1252_LINE = "Zoë,Müller GmbH,“quoted” – dash €5\n".encode("cp1252")


def test_lines_in_either_encoding_are_each_decoded_right() -> None:
    data = HEADER + UTF8_LINE + CP1252_LINE + UTF8_LINE.replace(b"Jos", b"Ren") + CP1252_LINE.replace(b"Zo", b"No")
    table = read_table(data)
    assert [cells for _, cells in table.rows] == [
        ["José", "Société Générale", "café crème"],
        ["Zoë", "Müller GmbH", "“quoted” – dash €5"],
        ["René", "Société Générale", "café crème"],
        ["Noë", "Müller GmbH", "“quoted” – dash €5"],
    ]
    assert table.encoding.startswith("mixed")
    assert not any("Ã" in c or "\ufffd" in c for _, cells in table.rows for c in cells)


def test_a_line_that_mixes_both_encodings_is_refused_with_its_line_number() -> None:
    bad = "Ana,Café".encode() + ",cr\xe8me\n".encode("cp1252")  # UTF-8 é and cp1252 è on one line
    data = HEADER + UTF8_LINE + bad + CP1252_LINE + bad
    with pytest.raises(UnreadableFile, match=r"lines 3, 5 mix two text encodings"):
        read_table(data)


def test_the_import_of_a_mixed_file_stores_the_right_text(app: App) -> None:
    report = import_prospects(app, HEADER + UTF8_LINE + CP1252_LINE)
    assert report.accepted == 2
    assert {p.first_name for p in list_prospects(app)} == {"José", "Zoë"}


def test_a_refused_mixed_file_writes_nothing(app: App) -> None:
    bad = "Ana,Café".encode() + ",cr\xe8me\n".encode("cp1252")
    with pytest.raises(UnreadableFile, match="line 2 mix"):
        import_prospects(app, HEADER + bad + UTF8_LINE)
    assert count_prospects(app) == 0


def test_a_whole_cp1252_file_is_still_cp1252_and_crlf_line_numbers_hold() -> None:
    data = HEADER.replace(b"\n", b"\r\n") + CP1252_LINE.replace(b"\n", b"\r\n") * 2
    table = read_table(data)
    assert table.encoding == "cp1252" and [line for line, _ in table.rows] == [2, 3]
