"""One batch per upload, decided by the database: an upload's prospects already claimed at a step by a batch
that is not cancelled are that batch's, whichever session, tab or process asks."""

from __future__ import annotations

from core.app import App
from core.batches.claims import claim, finish
from core.batches.creation import create_batch
from core.batches.lifecycle import cancel_batch, start_batch
from core.batches.runs import run_pending
from core.batches.uploads import plan_run
from core.people.prospects import list_prospects


def _ids(app: App, n: int) -> list[int]:
    return [p.id for p in list_prospects(app)][:n]  # type: ignore[misc]


def test_a_fresh_upload_runs_every_prospect(demo_app: App) -> None:
    ids = _ids(demo_app, 5)
    plan = plan_run(demo_app, ids, "connection_request")
    assert plan.to_run == tuple(ids) and plan.in_batches == {} and plan.left_out == 0
    assert plan.latest_batch is None and plan.held == 0


def test_once_a_batch_holds_the_upload_there_is_nothing_more_to_run(demo_app: App) -> None:
    ids = _ids(demo_app, 6)
    batch = create_batch(demo_app, ids)
    plan = plan_run(demo_app, ids, "connection_request")
    assert plan.to_run == () and plan.in_batches == {batch.id: 6} and plan.latest_batch == batch.id
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    run_pending(demo_app, "w1")
    done = plan_run(demo_app, ids, "connection_request")
    assert done.to_run == () and done.latest_batch == batch.id, "written prospects stay that batch's"
    assert plan_run(demo_app, ids, "follow_up_1").to_run == tuple(ids), "another step is another batch"


def test_an_upload_overlapping_a_batch_runs_only_the_rest(demo_app: App) -> None:
    ids = _ids(demo_app, 8)
    batch = create_batch(demo_app, ids[:3])
    plan = plan_run(demo_app, ids, "connection_request")
    assert plan.to_run == tuple(ids[3:]) and plan.in_batches == {batch.id: 3} and plan.held == 3


def test_a_cancelled_batch_gives_its_prospects_back_to_a_new_run(demo_app: App) -> None:
    ids = _ids(demo_app, 4)
    batch = create_batch(demo_app, ids)
    cancel_batch(demo_app, batch.id)  # type: ignore[arg-type]
    plan = plan_run(demo_app, ids, "connection_request")
    assert plan.to_run == tuple(ids) and plan.in_batches == {}
    again = create_batch(demo_app, list(plan.to_run))
    assert again.items_total == 4, "create_batch agrees: the cancelled batch's pending prospects move over"


def test_a_prospect_whose_item_failed_may_be_run_again(demo_app: App) -> None:
    ids = _ids(demo_app, 2)
    batch = create_batch(demo_app, ids)
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    first, _second = claim(demo_app, batch.id, "w1", 2)  # type: ignore[arg-type]
    assert finish(demo_app, first, "w1", None, "boom", batch.id, ids[0], "connection_request")
    plan = plan_run(demo_app, ids, "connection_request")
    assert plan.to_run == (ids[0],) and plan.in_batches == {batch.id: 1}


def test_prospects_messaged_outside_any_claim_are_left_out(demo_app: App) -> None:
    from core.replies.classify import classify_replies
    from core.replies.importing import import_replies

    prospects = list_prospects(demo_app)[:3]
    replier = prospects[0]
    data = f"email,text,received\n{replier.email},\"Please remove me from your list.\",2026-11-20\n".encode()
    assert import_replies(demo_app, data).reply_ids
    classify_replies(demo_app)
    ids = [p.id for p in prospects]
    plan = plan_run(demo_app, ids, "connection_request")  # type: ignore[arg-type]
    assert plan.to_run == tuple(ids[1:]) and plan.left_out == 1 and plan.in_batches == {}
