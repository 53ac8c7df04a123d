"""The same prospect and sequence step is written, and paid for, at most once: across batches (two people
pressing Run on one upload, two `batch run` of one file at once), enforced by the database's (prospect, step)
key; and across workers, where a call longer than the lease is never taken over because the heartbeat keeps
the lease alive while the call is in flight. Calls are counted at the simulator and in the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from core.app import App, open_app
from core.batches.claims import finish
from core.batches.creation import create_batch
from core.batches.lifecycle import BatchError, start_batch, status
from core.batches.runs import run_pending
from core.config import PROJECT_ROOT, Settings
from core.costs.prices import current_book
from core.demo import open_demo_app
from core.people.prospects import import_prospects, list_prospects
from core.sim.simulator import Faults, Simulator, SimulatorServer
from tests.batches.test_batches_crash import _prospects_csv


def _duplicates(app: App) -> int:
    with app.engine.connect() as conn:
        return len(conn.execute(text("SELECT prospect_id, step FROM messages GROUP BY prospect_id, step "
                                     "HAVING COUNT(*) > 1")).all())


def _calls(app: App) -> int:
    with app.engine.connect() as conn:
        return int(conn.execute(text("SELECT COUNT(*) FROM usage_ledger")).scalar() or 0)


def test_two_sessions_pressing_run_on_one_upload_make_one_batch_of_calls(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app)][:30]
    made: list[int] = []
    refused: list[str] = []
    gate = threading.Barrier(2)

    def press() -> None:
        gate.wait()
        try:
            batch = create_batch(demo_app, ids, concurrency=4)  # type: ignore[arg-type]
        except BatchError as exc:
            refused.append(str(exc))
        else:
            made.append(batch.id)  # type: ignore[arg-type]
            start_batch(demo_app, batch.id)  # type: ignore[arg-type]

    threads = [threading.Thread(target=press) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    run_pending(demo_app, "w1")
    items = sum(status(demo_app, b).items for b in made)
    assert items == 30, f"one batch's worth of items between the two presses, got {items} ({refused})"
    assert _duplicates(demo_app) == 0, "no prospect got two connection requests"
    assert demo_app.simulator is not None
    assert demo_app.simulator.requests["POST completions"] == _calls(demo_app), "calls at the simulator = ledger"
    if refused:
        assert f"batch #{made[0]}" in refused[0], "the refusal says which batch has them"


def test_a_step_that_ended_without_a_message_can_be_run_again_but_a_written_one_cannot(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app)][:2]
    first = create_batch(demo_app, ids)  # type: ignore[arg-type]
    start_batch(demo_app, first.id)  # type: ignore[arg-type]
    from core.batches.claims import claim

    failed, _written = claim(demo_app, first.id, "w1", 2)  # type: ignore[arg-type]
    assert finish(demo_app, failed, "w1", None, "boom", first.id, ids[0], "connection_request")
    with pytest.raises(BatchError, match=f"batch #{first.id}"):
        create_batch(demo_app, [ids[1]])  # type: ignore[arg-type]  # still to do in the first batch
    again = create_batch(demo_app, ids)  # type: ignore[arg-type]
    assert again.items_total == 1, "the failed prospect may be tried again; the other is still the first batch's"
    assert create_batch(demo_app, ids, step="follow_up_1").items_total == 2, "another step is another claim"


def _cli(db_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    full = {**os.environ, "DATABASE_URL": db_url, "LLM_PROVIDER": "simulator", "WORKER_CONCURRENCY": "8",
            **(env or {})}
    full.pop("OPENROUTER_API_KEY", None) if "OPENROUTER_API_KEY" not in (env or {}) else None
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
def test_two_batch_runs_of_one_file_at_once_make_one_batch_of_calls(
        db_url: str, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    path = tmp_path / "people.csv"
    path.write_bytes(_prospects_csv(60))
    # The reference: one run of the file, alone, in a database of its own (the simulator is deterministic).
    alone_url = f"sqlite:///{tmp_path_factory.mktemp('alone') / 'alone.db'}"
    alone = _cli(alone_url, "batch", "run", str(path), "--json")
    _, err = alone.communicate(timeout=300)
    assert alone.returncode == 0, err[-2000:]
    reference = create_engine(alone_url)
    with reference.connect() as conn:
        one_batch = int(conn.execute(text("SELECT COUNT(*) FROM usage_ledger")).scalar() or 0)
    reference.dispose()
    assert one_batch > 0

    # The database exists and holds the file's prospects already (as it does for two people at one console);
    # two first starts, or two imports, racing on one SQLite file is not what this test is about.
    ready = open_demo_app(Settings(database_url=db_url, llm_provider="simulator"))
    assert import_prospects(ready, path.read_bytes()).accepted == 60
    runs = [_cli(db_url, "batch", "run", str(path), "--json") for _ in range(2)]
    outs = [run.communicate(timeout=300) for run in runs]
    codes = sorted(run.returncode for run in runs)
    app = open_app(Settings(database_url=db_url, llm_provider="simulator"))
    calls = _calls(app)
    print(f"\ncalls for two concurrent runs: {calls} (one run alone: {one_batch})")
    assert calls == one_batch, f"two runs made {calls} calls; one run makes {one_batch}"
    assert _duplicates(app) == 0
    assert codes[0] == 0, outs
    if codes[1] != 0:  # the later one found every prospect taken: a one-line refusal naming the batch
        refusal = next(err for run, (_, err) in zip(runs, outs, strict=True) if run.returncode)
        assert codes[1] == 2 and "already in batch" in refusal, refusal


@pytest.fixture
def slow_server() -> Iterator[tuple[Simulator, SimulatorServer]]:
    sim = Simulator(current_book(), Faults(latency_ms=2500))
    with sim.serve() as srv:
        yield sim, srv


@pytest.mark.slow
def test_a_call_longer_than_the_lease_is_never_taken_over_and_paid_twice(
        settings: Settings, slow_server: tuple[Simulator, SimulatorServer]) -> None:
    sim, srv = slow_server
    app = open_demo_app(settings)
    report = import_prospects(app, _prospects_csv(8))
    batch = create_batch(app, report.prospect_ids, concurrency=4)
    start_batch(app, batch.id)  # type: ignore[arg-type]
    env = {"LLM_PROVIDER": "openrouter", "OPENROUTER_API_KEY": "sk-or-v1-test-not-a-key",
           "OPENROUTER_BASE_URL": srv.url, "BATCH_LEASE_SECONDS": "1"}  # every call outlasts the lease 2.5 times
    workers = [_cli(settings.database_url, "worker", "--once", env=env) for _ in range(2)]
    for proc in workers:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-2000:]
    st = status(app, batch.id)  # type: ignore[arg-type]
    assert st.status == "done" and st.done == 8
    with app.engine.connect() as conn:
        retaken = conn.execute(text("SELECT COUNT(*) FROM batch_items WHERE batch_id = :b AND attempts > 1"),
                               {"b": batch.id}).scalar()
        stored = conn.execute(text("SELECT COUNT(*) FROM stage_results")).scalar()
    paid = sim.requests["POST completions"]
    assert paid > 0 and paid == _calls(app), "the calls went over HTTP and each is in the ledger"
    assert retaken == 0, "no item was taken over while its worker was calling"
    assert paid == stored, f"{paid} calls for {stored} answers: some answer was paid for twice"


def test_run_again_after_cancel_takes_the_cancelled_items_and_resuming_the_old_batch_never_redoes_them(
        demo_app: App) -> None:
    from core.batches.lifecycle import cancel_batch, resume_batch

    ids = [p.id for p in list_prospects(demo_app)][:6]
    old = create_batch(demo_app, ids)  # type: ignore[arg-type]
    start_batch(demo_app, old.id)  # type: ignore[arg-type]
    cancel_batch(demo_app, old.id)  # type: ignore[arg-type]  # wrong template: cancelled before it ran
    new = create_batch(demo_app, ids, template_name="connection_request_default")  # type: ignore[arg-type]
    assert new.items_total == 6
    start_batch(demo_app, new.id)  # type: ignore[arg-type]
    resume_batch(demo_app, old.id)  # type: ignore[arg-type]
    run_pending(demo_app, "w1")
    assert _duplicates(demo_app) == 0
    assert status(demo_app, new.id).counts["ready"] + status(demo_app, new.id).counts["fallback"] == 6  # type: ignore[arg-type]
    old_st = status(demo_app, old.id)  # type: ignore[arg-type]
    assert old_st.status == "done" and old_st.counts["failed"] == 6 and old_st.errors == 0
