"""A batch with an experiment running on its step, on the default SQLite database: the worker's assignment
writes go through its one group committer, so none of them meets "database is locked" and every entrant is
assigned (before, `INSERT INTO assignments` ran in a transaction of its own beside the committer's)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import text

from core.app import App
from core.batches.creation import create_batch
from core.batches.lifecycle import status
from core.batches.runs import run_pending
from core.experiments.catalog import create_experiment
from core.messages.library import add_template
from core.people.prospects import import_prospects

N = 300


def _csv(n: int) -> bytes:
    # Prospects in no industry the library specializes in, so the selection rules give them the control.
    rows = "".join(f"Pat{i},Co{i},Widgets,{50 + i},pat{i}@example.com,Co{i} opened a plant.\n" for i in range(n))
    return ("first_name,company_name,industry,company_size,email,recent_news\n" + rows).encode()


def test_assignments_of_a_running_experiment_are_written_without_lock_errors(
        demo_app: App, caplog: pytest.LogCaptureFixture) -> None:
    if demo_app.engine.dialect.name != "sqlite":
        pytest.skip("the lock contention is SQLite's")
    add_template(demo_app, "cr_b", "connection_request",
                 "Hello {{ first_name }}, {{ recent_achievement }} Would be glad to connect with {{ company_name }}.")
    exp = create_experiment(demo_app, "lock", "connection_request", "connection_request_default", ["cr_b"])
    report = import_prospects(demo_app, _csv(N))
    assert report.accepted == N
    batch = create_batch(demo_app, report.prospect_ids, concurrency=16)
    from core.batches.lifecycle import start_batch

    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING):
        for _ in range(5):  # a pass that failed is retried, as the worker loop does
            if status(demo_app, batch.id).status == "done":  # type: ignore[arg-type]
                break
            try:
                run_pending(demo_app, "w1")
            except Exception as exc:  # the old worker loop logged this and tried again after a pause
                logging.getLogger("test").error("worker pass failed: %s", exc)
    logged = caplog.text + " ".join(str(r.__dict__.get("fields", "")) for r in caplog.records)
    assert "database is locked" not in logged
    st = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert st.status == "done" and st.done == N
    with demo_app.engine.connect() as conn:
        assigned = conn.execute(text("SELECT COUNT(*) FROM assignments WHERE experiment_id = :e"),
                                {"e": exp.id}).scalar()
        variants = conn.execute(text("SELECT COUNT(*) FROM messages WHERE batch_id = :b AND variant <> ''"),
                                {"b": batch.id}).scalar()
    assert assigned == N, "every prospect that gets the control entered the experiment"
    assert variants == N, "and its message carries the arm"
