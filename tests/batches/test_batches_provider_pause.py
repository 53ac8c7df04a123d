"""A provider failure that is not the prospect's fault (a rejected key, no credits, an outage past the
retries) pauses the batch with the reason instead of burning every item into a fallback; resuming once it is
fixed redoes exactly the items it stopped, and nothing already written."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from sqlalchemy import text

from core.app import App
from core.batches.creation import create_batch
from core.batches.lifecycle import resume_batch, start_batch, status
from core.batches.runs import run_pending
from core.people.prospects import import_prospects
from core.sim.simulator import Scripted
from tests.batches.test_batches_crash import _prospects_csv

N = 24


def _break_after(app: App, ok_calls: int, fault: Callable[[], Scripted]) -> dict[str, bool]:
    """The simulator answers `ok_calls` calls, then fails every call until `state["fixed"]` is set."""
    sim = app.simulator
    assert sim is not None
    draw = sim._draw_fault
    seen = {"n": 0}
    state = {"fixed": False}

    def drawn() -> Scripted | None:
        seen["n"] += 1
        if seen["n"] > ok_calls and not state["fixed"]:
            return fault()
        return draw()

    sim._draw_fault = drawn  # type: ignore[method-assign]
    return state


def _messages(app: App, batch_id: int) -> dict[int, int]:
    with app.engine.connect() as conn:
        return {int(i): int(m) for m, i in conn.execute(text(
            "SELECT id, batch_item_id FROM messages WHERE batch_id = :b"), {"b": batch_id})}


@pytest.mark.parametrize(("fault", "reason"), [
    (lambda: Scripted(401, message="No auth credentials found"), "paused: the provider rejected the key"),
    (lambda: Scripted(402, message="Insufficient credits"), "paused: the provider account is out of credits"),
    (lambda: Scripted(503, retry_after=0), "paused: the provider is unavailable"),
], ids=["401", "402", "outage"])
def test_provider_failure_pauses_with_the_reason_and_resume_redoes_exactly_those_items(
        demo_app: App, fault: Callable[[], Scripted], reason: str) -> None:
    report = import_prospects(demo_app, _prospects_csv(N))
    batch = create_batch(demo_app, report.prospect_ids, concurrency=2)
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    broken = _break_after(demo_app, 6, fault)
    [first] = run_pending(demo_app, "w1")
    st = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert first.outcome == "paused_provider" and st.status == "paused_provider", st
    assert st.label.startswith(reason) and st.error.startswith(reason), st
    assert st.counts["fallback"] == 0, "no item was burned into a fallback"
    assert st.counts["claimed"] == 0, "the stopped items went back"
    before = _messages(demo_app, batch.id)  # type: ignore[arg-type]
    assert 0 < len(before) < N, "the batch was stopped part-way"
    with demo_app.engine.connect() as conn:
        redo = {int(r[0]) for r in conn.execute(text(
            "SELECT id FROM batch_items WHERE batch_id = :b AND state = 'pending'"), {"b": batch.id})}
    assert len(redo) == N - len(before)
    assert run_pending(demo_app, "w1") == [], "a provider pause does not resume by itself"

    broken["fixed"] = True  # the key was replaced, credits added, the provider is back
    assert resume_batch(demo_app, batch.id)  # type: ignore[arg-type]
    [second] = run_pending(demo_app, "w1")
    assert second.outcome == "done" and second.processed == len(redo)
    after = _messages(demo_app, batch.id)  # type: ignore[arg-type]
    assert {i: m for i, m in after.items() if i in before} == before, "nothing written before was redone"
    assert set(after) - set(before) == redo, "exactly the stopped items were done on resume"
    final = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert final.status == "done" and final.done == N and final.counts["fallback"] == 0


def test_a_prospect_specific_rejection_still_falls_back_for_that_item_only(demo_app: App) -> None:
    report = import_prospects(demo_app, _prospects_csv(6))
    batch = create_batch(demo_app, report.prospect_ids, concurrency=1)
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    assert demo_app.simulator is not None
    demo_app.simulator.script(Scripted(400, message="bad request"))
    [done] = run_pending(demo_app, "w1")
    st = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert done.outcome == "done" and st.status == "done" and st.counts["fallback"] == 1
