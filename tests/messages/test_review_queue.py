"""Review queue: filters, approve / reject / edit with guards re-run, bulk approval, safe export."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest

from core.app import App
from core.batches.creation import create_batch
from core.batches.lifecycle import start_batch
from core.batches.runs import run_pending
from core.messages.approvals import (
    EXPORT_COLUMNS,
    ExportRow,
    QueueFilter,
    ReviewError,
    approve,
    approve_passed,
    approved_rows,
    edit,
    export,
    queue,
    reject,
)
from core.people.prospects import import_prospects, list_prospects


@pytest.fixture
def batch(demo_app: App) -> int:
    ids = [p.id for p in list_prospects(demo_app)][:30]
    b = create_batch(demo_app, ids)  # type: ignore[arg-type]
    start_batch(demo_app, b.id)  # type: ignore[arg-type]
    run_pending(demo_app, "w")
    return b.id  # type: ignore[return-value]


def test_queue_shows_message_beside_template(demo_app: App, batch: int) -> None:
    rows = queue(demo_app, QueueFilter(batch_id=batch))
    assert len(rows) == 30
    assert all(r.template_text for r in rows)
    ready = queue(demo_app, QueueFilter(batch_id=batch, states=("ready",)))
    assert ready and all(r.state == "ready" for r in ready)
    flagged = queue(demo_app, QueueFilter(batch_id=batch, flagged_only=True))
    assert all(r.flagged for r in flagged)


def test_bulk_approval_skips_flagged_and_failed(demo_app: App, batch: int) -> None:
    approved = approve_passed(demo_app, batch)
    rows = queue(demo_app, QueueFilter(batch_id=batch))
    assert approved == sum(r.approval == "approved" for r in rows)
    for r in rows:
        if r.approval == "approved":
            assert r.state == "ready" and not r.guards_failed and not r.flagged
    assert approve_passed(demo_app, batch) == 0, "approving twice changes nothing"


def test_edit_reruns_guards_and_blocks_approval_until_they_pass(demo_app: App, batch: int) -> None:
    target = queue(demo_app, QueueFilter(batch_id=batch, states=("ready",)))[0].id
    results = edit(demo_app, target, "Hi! Visit https://totally-new.example.biz now, **act now**")
    assert not all(r.passed for r in results)
    with pytest.raises(ReviewError, match="fails a guard"):
        approve(demo_app, [target])
    results = edit(demo_app, target, "Hi there, glad to connect about outbound costs.")
    assert all(r.passed for r in results)
    assert approve(demo_app, [target]) == 1
    row = next(r for r in queue(demo_app, QueueFilter(batch_id=batch)) if r.id == target)
    assert row.edited and row.message == "Hi there, glad to connect about outbound costs."
    assert reject(demo_app, [target]) == 1


def test_export_neutralizes_formula_cells_and_round_trips(demo_app: App) -> None:
    # (A formula without a link: a link from prospect data would fail the contacts guard and not be exported.)
    data = (b"first_name,company_name,email\n=HYPERLINK(\"x\"),@Evil Corp,eve@example.com\n"
            b"-1+2,+Plus Inc,plus@example.com\n")
    report = import_prospects(demo_app, data)
    b = create_batch(demo_app, report.prospect_ids, template_name="connection_request_safe")
    start_batch(demo_app, b.id)  # type: ignore[arg-type]
    run_pending(demo_app, "w")
    rows = queue(demo_app, QueueFilter(batch_id=b.id))
    approve(demo_app, [r.id for r in rows if r.message])
    raw = export(demo_app, b.id, "csv")  # type: ignore[arg-type]
    assert raw.startswith("\ufeff".encode())
    parsed = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    assert len(parsed) == len(approved_rows(demo_app, b.id)) == 2  # type: ignore[arg-type]
    names = {r["first_name"] for r in parsed}
    assert names == {"'=HYPERLINK(\"x\")", "'-1+2"}
    assert {r["company_name"] for r in parsed} == {"'@Evil Corp", "'+Plus Inc"}
    for r in parsed:
        for value in r.values():
            assert not value.lstrip(" ").startswith(("=", "+", "-", "@", "\t", "\r"))
    as_json = json.loads(export(demo_app, b.id, "json"))  # type: ignore[arg-type]
    assert {r["first_name"] for r in as_json} == {"=HYPERLINK(\"x\")", "-1+2"}
    with pytest.raises(ReviewError):
        export(demo_app, b.id, "xlsx")  # type: ignore[arg-type]


def test_the_export_row_is_the_export_columns() -> None:
    assert tuple(f.name for f in dataclasses.fields(ExportRow)) == EXPORT_COLUMNS
