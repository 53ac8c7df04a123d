"""Exports: formula neutralizing, CSV/JSON encoding, and the usage-ledger CSV streamed from SQL."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from core.app import App
from core.costs.spend import month_totals
from core.messages.exports import (
    BOM,
    LEDGER_COLUMNS,
    ledger_csv,
    ledger_rows,
    neutralize,
    to_csv_bytes,
    to_json_bytes,
    write_ledger_csv,
)
from core.store.db import session_scope
from core.store.models import UsageEntry, month_of, utcnow


def _read(data: bytes) -> list[list[str]]:
    assert data.startswith(b"\xef\xbb\xbf")
    return list(csv.reader(io.StringIO(data.decode("utf-8-sig"), newline="")))


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("=1+1", "'=1+1"),
        ("+1", "'+1"),
        ("-1", "'-1"),
        ("-5", "'-5"),  # negative numbers are neutralized by the rule too
        ("-", "'-"),  # no exception for a lone sign: one rule, no judgement calls
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=cmd", "'\t=cmd"),
        ("\rdata", "'\rdata"),
        ("  =1", "'  =1"),  # apostrophe first, then the original text verbatim
        (" +HYPERLINK(\"x\")", "' +HYPERLINK(\"x\")"),
        ("   \tx", "'   \tx"),
        ("=cmd|' /C calc'!A0", "'=cmd|' /C calc'!A0"),
    ],
)
def test_neutralize_prefixes_formula_starts(raw: str, expected: str) -> None:
    assert neutralize(raw) == expected


@pytest.mark.parametrize(
    "raw",
    ["", "hello", "5", "0.000043338", "a=b", "user@example.com", "3-4", " hi", "'quoted", "Zoë, Ελένη", "x\n=1"],
)
def test_neutralize_leaves_harmless_text_alone(raw: str) -> None:
    assert neutralize(raw) is raw


def test_csv_round_trip_keeps_commas_newlines_quotes_and_unicode() -> None:
    moment = datetime(2026, 11, 3, 9, 30, tzinfo=UTC)
    rows = [
        {"name": "Doe, Jane", "note": "line one\nline two", "cost": Decimal("0.000043338"), "when": moment,
         "extra": "ignored"},
        {"name": 'Say "hi"', "note": "Ελένη 🚀", "cost": Decimal("1E+3"), "when": None},
        {"name": "=HYPERLINK(\"http://evil\")", "cost": None},
    ]
    data = to_csv_bytes(rows, ["name", "note", "cost", "when"])
    assert _read(data) == [
        ["name", "note", "cost", "when"],
        ["Doe, Jane", "line one\nline two", "0.000043338", "2026-11-03T09:30:00+00:00"],
        ['Say "hi"', "Ελένη 🚀", "1000", ""],
        ["'=HYPERLINK(\"http://evil\")", "", "", ""],
    ]
    assert data.count(BOM.encode()) == 1


def test_csv_neutralizes_every_cell_including_numbers_and_headers() -> None:
    data = to_csv_bytes([{"=h": Decimal("-2"), "n": -3, "ok": True}], ["=h", "n", "ok"])
    assert _read(data) == [["'=h", "n", "ok"], ["'-2", "'-3", "true"]]


def test_csv_refuses_naive_times_with_the_row_number() -> None:
    rows = [{"when": datetime(2026, 1, 1, tzinfo=UTC)}, {"when": datetime(2026, 1, 1)}]
    with pytest.raises(ValueError, match=r"row 2: naive datetime"):
        to_csv_bytes(rows, ["when"])


def test_csv_refuses_unknown_types_with_the_row_number() -> None:
    with pytest.raises(ValueError, match=r"row 1: cannot export a value of type set"):
        to_csv_bytes([{"x": {1}}], ["x"])


def test_json_keeps_decimals_as_strings_and_unicode_as_utf8() -> None:
    data = to_json_bytes([{"cost": Decimal("0.000000446"), "name": "Zoë", "at": datetime(2026, 11, 1, tzinfo=UTC),
                           "n": 3, "none": None}])
    assert "Zoë".encode() in data
    assert json.loads(data) == [{"cost": "0.000000446", "name": "Zoë", "at": "2026-11-01T00:00:00+00:00",
                                 "n": 3, "none": None}]
    with pytest.raises(TypeError, match="cannot export a value of type set"):
        to_json_bytes([{"x": {1}}])


def _insert(app: App, **fields: object) -> None:
    created = fields.pop("created_at", utcnow())
    assert isinstance(created, datetime)
    values = {"task": "personalize", "model_requested": "mistralai/mistral-7b-instruct", "provider": "simulator",
              **fields}
    with session_scope(app.engine) as s:
        s.add(UsageEntry(created_at=created, month=month_of(created), **values))  # type: ignore[arg-type]


def test_ledger_csv_has_the_columns_and_the_real_rows(app: App) -> None:
    async def calls() -> None:
        async with app.gateway() as gw:
            await gw.call("personalize", [{"role": "user", "content": "hi"}])
            await gw.call("review", [{"role": "user", "content": "check this message"}])

    asyncio.run(calls())
    _insert(app, status="http_400", error="=cmd|' /C calc'!A0, then a comma\nand a newline", batch_id=7,
            prospect_id=42)
    _insert(app, created_at=datetime(2020, 1, 15, 12, tzinfo=UTC), cost_usd=Decimal("9.5"))
    month = month_of(utcnow())

    table = _read(ledger_csv(app, month))
    assert table[0] == list(LEDGER_COLUMNS)
    records = [dict(zip(table[0], r, strict=True)) for r in table[1:]]
    assert [r["task"] for r in records] == ["personalize", "review", "personalize"]
    for r in records:
        assert datetime.fromisoformat(r["created_at"]).utcoffset() == UTC.utcoffset(None)
    assert records[0]["model_answered"] == "mistralai/mistral-7b-instruct"
    assert records[0]["cost_source"] == "provider" and records[0]["request_id"].startswith("gen-sim-")
    assert int(records[0]["input_tokens"]) > 0 and int(records[0]["output_tokens"]) > 0
    assert records[2]["error"] == "'=cmd|' /C calc'!A0, then a comma\nand a newline"
    assert (records[2]["batch_id"], records[2]["prospect_id"], records[2]["model_answered"]) == ("7", "42", "")
    assert sum(Decimal(r["cost_usd"]) for r in records) == month_totals(app, month).spent_usd

    everything = _read(ledger_csv(app, None))
    assert len(everything) == 1 + 4
    assert "9.5" in [r[LEDGER_COLUMNS.index("cost_usd")] for r in everything[1:]]


def test_ledger_rows_stream_in_chunks_in_order(app: App) -> None:
    for n in range(5):
        _insert(app, latency_ms=n, cost_usd=Decimal("0.001"))
    rows = list(ledger_rows(app, month_of(utcnow()), chunk_rows=2))
    assert [r["latency_ms"] for r in rows] == [0, 1, 2, 3, 4]
    out = io.BytesIO()
    assert write_ledger_csv(out, app, month_of(utcnow())) == 5
    assert out.getvalue() == ledger_csv(app, month_of(utcnow()))


def test_empty_ledger_gives_a_header_only_csv(app: App) -> None:
    assert _read(ledger_csv(app, "2026-01")) == [list(LEDGER_COLUMNS)]


def test_ledger_csv_refuses_a_malformed_month(app: App) -> None:
    with pytest.raises(ValueError, match="month must look like 2026-11"):
        ledger_csv(app, "2026-13")
