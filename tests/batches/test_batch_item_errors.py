"""An item error counts on the batch's status ("done with 5 errors", the last error message) instead of living
only in the logs, and the Batches page shows it beside the workers (alive, silent, stopped) and their items."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import text

from core.app import App
from core.batches.claims import claim
from core.batches.creation import create_batch
from core.batches.lifecycle import start_batch, status
from core.batches.runs import run_pending
from core.config import Settings
from core.demo import open_demo_app
from core.messages.library import add_template
from core.people.prospects import list_prospects
from core.store.models import utcnow
from tests.conftest import console_page


def _batch_whose_template_disappears(app: App, n: int) -> int:
    add_template(app, "gone_soon", "connection_request", "Hi {{ first_name }}, glad to connect.")
    batch = create_batch(app, [p.id for p in list_prospects(app)][:n], template_name="gone_soon")  # type: ignore[misc]
    with app.engine.begin() as conn:  # archived after the batch was made: every item fails
        conn.execute(text("UPDATE templates SET archived = :t WHERE name = 'gone_soon'"), {"t": True})
    start_batch(app, batch.id)  # type: ignore[arg-type]
    return batch.id  # type: ignore[return-value]


def test_failed_items_count_on_the_batch_status_with_the_last_error(demo_app: App) -> None:
    batch_id = _batch_whose_template_disappears(demo_app, 5)
    run_pending(demo_app, "w1")
    st = status(demo_app, batch_id)
    assert st.status == "done" and st.errors == 5
    assert st.label == "done with 5 errors"
    assert "gone_soon" in st.last_error


def test_an_attempt_that_raised_is_counted_until_the_item_is_done(demo_app: App,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from sqlalchemy.exc import OperationalError

    import core.batches.claims

    ids = [p.id for p in list_prospects(demo_app)][:6]
    batch = create_batch(demo_app, ids, concurrency=1)  # type: ignore[arg-type]
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    finish_on, broken = core.batches.claims.finish_on, set()

    def fails_for_two(conn, item_id, *args):  # type: ignore[no-untyped-def]
        if item_id in broken or len(broken) < 2:
            broken.add(item_id)
            raise OperationalError("INSERT INTO messages", {}, Exception("disk I/O error"))
        return finish_on(conn, item_id, *args)

    monkeypatch.setattr(core.batches.claims, "finish_on", fails_for_two)
    run_pending(demo_app, "w1")
    st = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert st.errors == 2 and "disk I/O error" in st.last_error and st.label == "running with 2 errors"
    monkeypatch.setattr(core.batches.claims, "finish_on", finish_on)
    run_pending(demo_app, "w1")
    st = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert st.status == "done" and st.errors == 0 and st.label == "done", "retried and written: no error"


def test_skipped_prospects_are_not_errors(demo_app: App) -> None:
    from core.replies.classify import classify_replies
    from core.replies.importing import import_replies

    prospect = list_prospects(demo_app)[0]
    batch = create_batch(demo_app, [prospect.id])  # type: ignore[list-item]
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    import_replies(demo_app, f"email,text,received\n{prospect.email},\"Not interested.\",2026-11-20\n".encode())
    classify_replies(demo_app)
    run_pending(demo_app, "w1")
    st = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert st.counts["failed"] == 1 and st.errors == 0 and st.label == "done"


def test_batches_page_shows_workers_their_items_and_item_errors(console_env: Settings) -> None:
    from core.batches import heartbeat

    app = open_demo_app(console_env)
    batch_id = _batch_whose_template_disappears(app, 3)
    run_pending(app, "console:1:aaaaaa")  # now stopped: it gave everything back
    other = create_batch(app, [p.id for p in list_prospects(app)][10:14])  # type: ignore[misc]
    start_batch(app, other.id)  # type: ignore[arg-type]
    with app.engine.begin() as conn:  # one that beat five minutes ago (killed), one beating right now
        heartbeat.announce_on(conn, "crashed:2:bbbbbb", utcnow() - timedelta(minutes=5))
        heartbeat.announce_on(conn, "busy:3:cccccc")
    claim(app, other.id, "busy:3:cccccc", 2)  # type: ignore[arg-type]  # (a claim takes over a silent worker's
    claim(app, other.id, "crashed:2:bbbbbb", 1)  # type: ignore[arg-type]  # items: the silent one claims last)
    at = console_page("pages/batches.py")
    at.session_state["follow"] = batch_id
    at.run()
    assert not at.exception, at.exception
    progress = " ".join(p.value["text"] if isinstance(p.value, dict) else str(p.proto.text)
                        for p in at.get("progress"))
    assert "3 / 3 done — done with 3 errors" in progress, progress
    assert any("gone_soon" in t.value for t in at.text), "the last error message is shown"
    tables = [df.value for df in at.dataframe]
    errors = next(t for t in tables if "error" in t.columns)
    assert len(errors) == 3 and set(errors["state"]) == {"failed"}
    workers = next(t for t in tables if "worker" in t.columns)
    shown = dict(zip(workers["worker"], zip(workers["state"], workers["items held"], strict=True), strict=True))
    assert shown == {"busy:3:cccccc": ("Alive", 2), "crashed:2:bbbbbb": ("Silent", 1),
                     "console:1:aaaaaa": ("Stopped", 0)}, shown
    row = workers[workers["worker"] == "busy:3:cccccc"].iloc[0]
    assert row["host"] == "busy" and row["pid"] == 3 and row["batches"] == f"#{other.id}"
