"""Do-not-contact, everywhere: a person suppressed under one identity (an e-mail from an opt-out reply, in any
case) is never imported, messaged, assigned, approved or exported under another (a LinkedIn URL)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from typing import Any

import pytest
from sqlmodel import func, select

from core.app import App
from core.batches.creation import create_batch
from core.batches.kinds.personalize import unsent_prospects
from core.batches.lifecycle import start_batch
from core.batches.runs import run_pending
from core.messages.approvals import (
    QueueFilter,
    ReviewError,
    approve,
    approve_passed,
    export,
    export_file,
    queue,
)
from core.people.prospects import count_prospects, import_prospects, suppress
from core.people.reading import RowError
from core.replies.classify import classify_and_route
from core.replies.holds import sequence_stopped
from core.replies.importing import import_replies
from core.store.db import session_scope
from core.store.models import Assignment, BatchItem, Message, Prospect, Reply, UsageEntry
from tests.conftest import sim_answers

HEADER = b"first_name,last_name,company_name,linkedin_url,email\n"
JANE = b"Jane,Doe,Acme,https://fr.linkedin.com/in/jane-doe/?trk=abc,JANE.DOE@ACME.EXAMPLE\n"
MARC = b"Marc,Roux,Bleu,https://www.linkedin.com/in/marc-roux,marc@bleu.example\n"
OPT_OUT = json.dumps({"category": "do_not_contact", "confidence": 0.97, "return_date": None, "referral": None})


def _opt_out_by_email(app: App, address: str) -> None:
    """An opt-out reply imported from a CSV that knows the person only by e-mail, classified and routed."""
    report = import_replies(app, f"email,text,received\n{address},Please remove me from your list,2026-11-02\n"
                            .encode())
    assert report.stored == 1
    sim_answers(app, {"classify_reply": [OPT_OUT]})

    async def go() -> None:
        async with app.gateway() as gw:
            await classify_and_route(app, gw, report.reply_ids[0])

    asyncio.run(go())
    with session_scope(app.engine) as s:
        reply = s.get(Reply, report.reply_ids[0])
        assert reply is not None and reply.next_action == "suppress"


def _run(app: App, prospect_ids: list[int], template: str | None = None) -> int:
    batch = create_batch(app, prospect_ids, template_name=template)
    assert batch.id is not None
    start_batch(app, batch.id)
    run_pending(app, "w1")
    return batch.id


def _ids(app: App) -> dict[str, int]:
    with session_scope(app.engine) as s:
        return {p.first_name: int(p.id) for p in s.exec(select(Prospect)).all() if p.id is not None}


def test_opt_out_by_email_blocks_a_later_import_in_another_case_with_a_profile(demo_app: App) -> None:
    _opt_out_by_email(demo_app, "Jane.Doe@acme.example")
    before = count_prospects(demo_app)
    report = import_prospects(demo_app, HEADER + JANE + MARC)
    assert (report.accepted, report.suppressed, report.duplicates) == (1, 1, 0)
    assert report.suppressed_lines == [RowError(2, "do not contact")]
    assert count_prospects(demo_app) == before + 1
    assert "Jane" not in _ids(demo_app), "a suppressed person is never written"


def test_a_stored_person_suppressed_under_another_identity_gets_no_message_and_no_call(demo_app: App) -> None:
    import_prospects(demo_app, HEADER + JANE + MARC)
    people = _ids(demo_app)
    # The opt-out arrives under the e-mail only (another case); Jane is stored under her LinkedIn profile.
    suppress(demo_app, "email:Jane.Doe@Acme.Example", "manual list")
    assert sequence_stopped(demo_app, people["Jane"])
    assert unsent_prospects(demo_app, [people["Jane"], people["Marc"]], "connection_request") == [people["Marc"]]
    batch_id = _run(demo_app, [people["Jane"], people["Marc"]])  # a batch made before the opt-out, say
    with session_scope(demo_app.engine) as s:
        item = s.exec(select(BatchItem).where(BatchItem.batch_id == batch_id,
                                              BatchItem.prospect_id == people["Jane"])).one()
        jane_messages = s.exec(select(Message).where(Message.prospect_id == people["Jane"])).all()
        jane_calls = s.exec(select(func.count()).select_from(UsageEntry)
                            .where(UsageEntry.prospect_id == people["Jane"])).one()
        marc_messages = s.exec(select(Message).where(Message.prospect_id == people["Marc"])).all()
    assert jane_messages == [] and jane_calls == 0
    assert item.state != "ready" and "do-not-contact" in item.error
    assert len(marc_messages) == 1


def test_export_after_an_opt_out_withholds_the_approved_message_and_says_so(demo_app: App) -> None:
    report = import_prospects(demo_app, HEADER + JANE + MARC)
    batch_id = _run(demo_app, report.prospect_ids, template="connection_request_safe")
    rows = queue(demo_app, QueueFilter(batch_id=batch_id))
    assert approve(demo_app, [r.id for r in rows]) == 2
    _opt_out_by_email(demo_app, "jane.doe@ACME.example")  # after approval, before the export

    result = export_file(demo_app, batch_id, "csv")
    parsed = list(csv.DictReader(io.StringIO(result.data.decode("utf-8-sig"))))
    assert [r["first_name"] for r in parsed] == ["Marc"]
    assert (result.rows, result.withheld, result.reason) == (1, 1, "do not contact")
    assert result.summary() == "1 message exported; withheld 1: do not contact"
    as_json = json.loads(export_file(demo_app, batch_id, "json").data)
    assert [r["first_name"] for r in as_json] == ["Marc"]
    assert b"Jane" not in export(demo_app, batch_id, "csv")


def test_suppressed_people_cannot_be_approved_and_are_marked_in_the_queue(demo_app: App) -> None:
    report = import_prospects(demo_app, HEADER + JANE + MARC)
    batch_id = _run(demo_app, report.prospect_ids, template="connection_request_safe")
    suppress(demo_app, "https://www.linkedin.com/in/jane-doe", "manual list")  # a bare URL is normalised too
    rows = {r.prospect: r for r in queue(demo_app, QueueFilter(batch_id=batch_id))}
    assert rows["Jane Doe"].do_not_contact is True and rows["Marc Roux"].do_not_contact is False
    with pytest.raises(ReviewError, match="do-not-contact"):
        approve(demo_app, [rows["Jane Doe"].id])
    assert approve_passed(demo_app, batch_id) == 1  # Marc only


def test_experiment_assignment_skips_suppressed_people(demo_app: App) -> None:
    from core.experiments.assignment import assigned_templates
    from core.experiments.catalog import create_experiment
    from core.messages.library import add_template
    from core.people.prospects import list_prospects

    add_template(demo_app, "cr_dnc_b", "connection_request",
                 "Hello {{ first_name }}, {{ recent_achievement }} Would be glad to connect with {{ company_name }}.")
    create_experiment(demo_app, "dnc", "connection_request", "connection_request_default", ["cr_dnc_b"])
    everyone = [p for p in list_prospects(demo_app, limit=1000) if p.email and p.linkedin_url]
    # Opted out by e-mail (in capitals); the demo people are stored under their LinkedIn profiles.
    opted_out = {int(p.id) for p in everyone[::2] if p.id is not None}
    for p in everyone[::2]:
        suppress(demo_app, f"email:{p.email.upper()}", "manual list")
    got = assigned_templates(demo_app, [int(p.id) for p in everyone if p.id is not None], "connection_request")
    assert got, "the others are assigned"
    assert not opted_out & set(got)
    with session_scope(demo_app.engine) as s:
        stored = {a.prospect_id for a in s.exec(select(Assignment)).all()}
    assert stored and not opted_out & stored


def test_exports_keep_urls_as_the_user_gave_them(demo_app: App) -> None:
    data = "first_name,company_name,linkedin_url\nJosé,Café Ltd,https://fr.linkedin.com/in/josé/\n".encode()
    report = import_prospects(demo_app, data)
    assert report.accepted == 1
    batch_id = _run(demo_app, report.prospect_ids, template="connection_request_safe")
    approve(demo_app, [r.id for r in queue(demo_app, QueueFilter(batch_id=batch_id))])
    rows: list[dict[str, Any]] = json.loads(export_file(demo_app, batch_id, "json").data)
    assert rows[0]["linkedin_url"] == "https://fr.linkedin.com/in/josé/"
    # ... and the same person under the percent-encoded spelling is a duplicate, not a new prospect
    again = import_prospects(demo_app, b"first_name,company_name,linkedin_url\n"
                                       b"Jose,Cafe,https://www.linkedin.com/in/jos%C3%A9\n")
    assert (again.accepted, again.duplicates) == (0, 1)
