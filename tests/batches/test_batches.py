"""Batch lifecycle, claiming with leases, exactly-once results, budget pause and resume, cancel."""

from __future__ import annotations

import asyncio
import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.app import App
from core.batches.claims import claim, finish
from core.batches.creation import create_batch
from core.batches.kinds.personalize import unsent_prospects
from core.batches.lifecycle import BatchError, cancel_batch, resume_batch, start_batch, status
from core.batches.runs import run_pending, work_batch
from core.people.prospects import list_prospects
from core.store.db import session_scope
from core.store.models import BatchItem, Message, StageResult, UsageEntry, utcnow


def _ids(app: App, n: int | None = None) -> list[int]:
    return [p.id for p in list_prospects(app)][:n]  # type: ignore[misc]


def _messages(app: App, batch_id: int) -> list[Message]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(Message).where(Message.batch_id == batch_id)).all())


def test_run_produces_exactly_one_final_state_per_item(demo_app: App) -> None:
    batch = create_batch(demo_app, _ids(demo_app, 60), concurrency=8)
    assert batch.status == "draft"
    assert start_batch(demo_app, batch.id) is True
    assert start_batch(demo_app, batch.id) is False, "pressing Run twice runs once"
    reports = run_pending(demo_app, "w1")
    assert reports[0].outcome == "done" and reports[0].processed == 60
    st = status(demo_app, batch.id)
    assert st.status == "done" and st.done == 60
    assert st.counts["pending"] == st.counts["claimed"] == 0
    messages = _messages(demo_app, batch.id)
    assert len(messages) == 60 and len({m.batch_item_id for m in messages}) == 60
    assert Decimal(st.cost_usd) == sum((m.cost_usd for m in messages), Decimal(0))
    assert run_pending(demo_app, "w1") == [], "a finished batch is never run again"


def test_claims_are_exclusive_between_workers(demo_app: App) -> None:
    batch = create_batch(demo_app, _ids(demo_app, 100))
    start_batch(demo_app, batch.id)
    got: list[list[int]] = []
    lock = threading.Lock()

    def grab(worker: str) -> None:
        ids = claim(demo_app, batch.id, worker, 10)
        with lock:
            got.append(ids)

    threads = [threading.Thread(target=grab, args=(f"w{i}",)) for i in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    flat = [i for ids in got for i in ids]
    assert len(flat) == 100 and len(set(flat)) == 100


def test_expired_lease_is_reclaimed_and_old_owner_is_fenced(demo_app: App) -> None:
    batch = create_batch(demo_app, _ids(demo_app, 3))
    start_batch(demo_app, batch.id)
    first = claim(demo_app, batch.id, "dead-worker", 3)
    assert claim(demo_app, batch.id, "w2", 3) == [], "live leases are not stolen"
    later = utcnow() + timedelta(minutes=5)
    assert claim(demo_app, batch.id, "w2", 3, now=later) == first
    assert finish(demo_app, first[0], "dead-worker", None, "late") is False, "the old owner lost its lease"
    assert finish(demo_app, first[0], "w2", None, "boom") is True
    assert finish(demo_app, first[0], "w2", None, "again") is False, "a result is written once"


def test_reclaimed_item_replays_stored_answers_instead_of_paying_twice(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app) if p.company_size and p.company_size > 1000][:1]
    batch = create_batch(demo_app, ids)
    start_batch(demo_app, batch.id)
    asyncio.run(work_batch(demo_app, batch.id, "w1"))
    with session_scope(demo_app.engine) as s:
        paid = len(s.exec(select(UsageEntry)).all())
        stages = [r.stage for r in s.exec(select(StageResult)).all()]
        item = s.exec(select(BatchItem).where(BatchItem.batch_id == batch.id)).one()
        # simulate a crash after the calls but before the result: undo the result, keep stage answers
        s.exec(text("DELETE FROM messages"))  # type: ignore[call-overload]
        s.exec(text("UPDATE batches SET status = 'running'"))  # type: ignore[call-overload]
        item.state, item.lease_owner = "pending", None
        s.add(item)
    assert stages, "model answers are stored per stage"
    asyncio.run(work_batch(demo_app, batch.id, "w2"))
    with session_scope(demo_app.engine) as s:
        assert len(s.exec(select(UsageEntry)).all()) == paid, "no stage was paid for twice"
    assert len(_messages(demo_app, batch.id)) == 1


def test_budget_exhaustion_pauses_then_raising_it_resumes(demo_app: App) -> None:
    batch = create_batch(demo_app, _ids(demo_app, 40), concurrency=4)
    start_batch(demo_app, batch.id)
    demo_app.set_budget_cap(Decimal("0.0015"))
    report = asyncio.run(work_batch(demo_app, batch.id, "w1"))
    st = status(demo_app, batch.id)
    assert report.outcome == "paused_budget" and st.status == "paused_budget"
    assert "budget" in st.error
    assert st.counts["claimed"] == 0, "claimed items go back to pending"
    assert run_pending(demo_app, "w1") == [], "still paused while the budget is unchanged"
    spent = demo_app.budget_state()
    assert spent.spent_usd <= Decimal("0.0015")
    demo_app.set_budget_cap(Decimal("100"))
    reports = run_pending(demo_app, "w1")
    assert reports and reports[0].outcome == "done"
    assert status(demo_app, batch.id).done == 40


def test_cancel_stops_claiming_and_resume_continues(demo_app: App) -> None:
    batch = create_batch(demo_app, _ids(demo_app, 30), concurrency=2)
    start_batch(demo_app, batch.id)
    assert cancel_batch(demo_app, batch.id)
    assert asyncio.run(work_batch(demo_app, batch.id, "w1")).outcome == "idle"
    assert status(demo_app, batch.id).counts["pending"] == 30
    assert resume_batch(demo_app, batch.id)
    assert run_pending(demo_app, "w1")[0].outcome == "done"
    with pytest.raises(BatchError, match="already done"):
        resume_batch(demo_app, batch.id)


def test_unsent_prospects_leave_out_those_already_messaged(demo_app: App) -> None:
    ids = _ids(demo_app, 10)
    batch = create_batch(demo_app, ids[:4])
    start_batch(demo_app, batch.id)
    run_pending(demo_app, "w1")
    assert unsent_prospects(demo_app, ids, "connection_request") == ids[4:]
    assert unsent_prospects(demo_app, ids, "follow_up_1") == ids


def test_bad_requests(demo_app: App) -> None:
    with pytest.raises(BatchError, match="no items"):
        create_batch(demo_app, [])
    with pytest.raises(BatchError, match="no batch"):
        status(demo_app, 999)


def test_missing_data_and_states_are_counted(demo_app: App) -> None:
    from core.messages.library import add_template

    add_template(demo_app, "needs_notes", "connection_request", "Hi {{ first_name }}, {{ notes }}")
    batch = create_batch(demo_app, _ids(demo_app, 20), template_name="needs_notes")
    start_batch(demo_app, batch.id)
    run_pending(demo_app, "w1")
    counts = Counter(m.state for m in _messages(demo_app, batch.id))
    assert counts["needs_data"] > 0 and sum(counts.values()) == 20


def test_a_reply_stops_the_sequence_for_that_prospect(demo_app: App) -> None:
    from core.replies.classify import classify_replies
    from core.replies.importing import import_replies

    prospects = list_prospects(demo_app)[:6]
    ids = [p.id for p in prospects]
    batch = create_batch(demo_app, ids)  # type: ignore[arg-type]
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    replier = prospects[0]
    data = f"email,text,received\n{replier.email},\"Not interested, thanks.\",2026-11-20\n".encode()
    assert import_replies(demo_app, data).reply_ids
    classify_replies(demo_app)
    run_pending(demo_app, "w1")
    skipped = [m for m in _messages(demo_app, batch.id) if m.prospect_id == replier.id]
    assert skipped == [], "no message is written for a prospect who replied"
    with session_scope(demo_app.engine) as s:
        item = s.exec(select(BatchItem).where(BatchItem.prospect_id == replier.id)).one()
    assert item.state == "failed" and "replied" in item.error
    assert replier.id not in unsent_prospects(demo_app, ids, "follow_up_1")


def test_the_batch_concurrency_caps_model_calls_on_the_wire(demo_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from core.sim.simulator import SimulatorTransport

    assert demo_app.simulator is not None
    demo_app.simulator.faults.latency_ms = 20  # calls overlap, as they do against a real provider
    on_wire = {"now": 0, "peak": 0}
    handle = SimulatorTransport.handle_async_request

    async def counted(self, request):  # type: ignore[no-untyped-def]
        on_wire["now"] += 1
        on_wire["peak"] = max(on_wire["peak"], on_wire["now"])
        try:
            return await handle(self, request)
        finally:
            on_wire["now"] -= 1

    monkeypatch.setattr(SimulatorTransport, "handle_async_request", counted)
    batch = create_batch(demo_app, _ids(demo_app, 40), concurrency=3)
    start_batch(demo_app, batch.id)
    [report] = run_pending(demo_app, "w1")
    assert report.outcome == "done" and report.processed == 40
    with session_scope(demo_app.engine) as s:
        calls = len(s.exec(select(UsageEntry).where(UsageEntry.batch_id == batch.id)).all())
    assert calls > 3, "the batch made enough calls to overlap"
    assert on_wire["peak"] == 3, "never more calls at once than the batch's concurrency, and all of its slots used"


def test_an_item_whose_result_cannot_be_written_goes_back_and_is_finished_without_paying_twice(
        demo_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    import core.batches.claims

    batch = create_batch(demo_app, _ids(demo_app, 12), concurrency=1)  # two items in flight
    start_batch(demo_app, batch.id)
    finish_on, broken = core.batches.claims.finish_on, set()

    def fails_for_three_items(conn, item_id, *args):  # type: ignore[no-untyped-def]
        if item_id in broken or len(broken) < 3:
            broken.add(item_id)
            raise OperationalError("INSERT INTO messages", {}, Exception("disk I/O error"))
        return finish_on(conn, item_id, *args)

    monkeypatch.setattr(core.batches.claims, "finish_on", fails_for_three_items)
    passes: list[list] = []
    worker = threading.Thread(target=lambda: passes.append(run_pending(demo_app, "w1")), daemon=True)
    worker.start()
    worker.join(60)
    assert passes, "the pass hung: its runners died with the failed items"
    [first] = passes[0]
    monkeypatch.setattr(core.batches.claims, "finish_on", finish_on)  # the disk is back
    assert first.processed == 9, "more failures than items in flight, and the others still carried on"
    assert status(demo_app, batch.id).counts["pending"] == 3, "the items went back to pending, not lost"
    [second] = run_pending(demo_app, "w1")
    assert second.outcome == "done" and second.processed == 3
    messages = _messages(demo_app, batch.id)
    assert len(messages) == 12 and len({m.batch_item_id for m in messages}) == 12
    with session_scope(demo_app.engine) as s:
        paid = len(s.exec(select(UsageEntry).where(UsageEntry.batch_id == batch.id, UsageEntry.status == "ok")).all())
        stored = len(s.exec(select(StageResult)).all())
    assert paid == stored, "the retried item replayed its stored answer instead of paying again"
