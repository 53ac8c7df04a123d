"""Crash recovery in seconds: workers announce themselves and beat; the items and budget holds of one that
falls silent go back at once (not after the lease); SIGTERM gives them back before the process exits; and
`batch resume` finishes a batch whose worker was killed, waiting (and saying for whom) while a live worker
holds items. Worker processes are real `python -m core worker` processes, killed with real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from core.app import App
from core.batches import heartbeat
from core.batches.claims import claim
from core.batches.creation import create_batch
from core.batches.lifecycle import start_batch, status
from core.config import PROJECT_ROOT, Settings
from core.costs.prices import current_book
from core.demo import open_demo_app
from core.people.prospects import import_prospects
from core.sim.simulator import Faults, Simulator, SimulatorServer
from core.store.models import utcnow
from tests.batches.test_batches_crash import _prospects_csv


def _setup(settings: Settings, n: int, concurrency: int = 4) -> tuple[App, int]:
    app = open_demo_app(settings)
    report = import_prospects(app, _prospects_csv(n))
    assert report.accepted == n
    batch = create_batch(app, report.prospect_ids, concurrency=concurrency)
    start_batch(app, batch.id)  # type: ignore[arg-type]
    return app, batch.id  # type: ignore[return-value]


def _spawn(db_url: str, *args: str, env: dict[str, str]) -> subprocess.Popen[str]:
    full = {**os.environ, "DATABASE_URL": db_url, "LLM_PROVIDER": "simulator", **env}
    if "OPENROUTER_API_KEY" not in env:
        full.pop("OPENROUTER_API_KEY", None)
    return subprocess.Popen([sys.executable, "-m", "core", *args], cwd=PROJECT_ROOT, env=full, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def _scalar(app: App, sql: str, **params: Any) -> Any:
    with app.engine.connect() as conn:
        return conn.execute(text(sql), params).scalar()


def _owners(app: App, batch_id: int) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {str(o): int(n) for o, n in conn.execute(text(
            "SELECT lease_owner, COUNT(*) FROM batch_items WHERE batch_id = :b AND state = 'claimed' "
            "GROUP BY lease_owner"), {"b": batch_id})}


@pytest.fixture
def slow_server() -> Iterator[tuple[Simulator, SimulatorServer]]:
    sim = Simulator(current_book(), Faults(latency_ms=3000))
    with sim.serve() as srv:
        yield sim, srv


def _http_env(srv: SimulatorServer, **extra: str) -> dict[str, str]:
    return {"LLM_PROVIDER": "openrouter", "OPENROUTER_API_KEY": "sk-or-v1-test-not-a-key",
            "OPENROUTER_BASE_URL": srv.url, **extra}


def test_a_worker_announces_itself_beats_and_gives_everything_back_when_it_stops(demo_app: App) -> None:
    batch = create_batch(demo_app, [1, 2, 3, 4])
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    beat = heartbeat.Heartbeat(demo_app, "box-7:4242:abcdef")
    beat.start()
    try:
        ids = claim(demo_app, batch.id, beat.worker_id, 3)  # type: ignore[arg-type]
        before = _scalar(demo_app, "SELECT MAX(lease_expires_at) FROM batch_items")
        time.sleep(0.01)
        assert beat.beat() == 3
        [row] = heartbeat.list_workers(demo_app)
        assert (row.host, row.pid, row.state, row.items_held) == ("box-7", 4242, "alive", 3)
        assert row.started_at <= row.last_beat_at <= utcnow()
        assert str(_scalar(demo_app, "SELECT MIN(lease_expires_at) FROM batch_items WHERE id IN (:a, :b, :c)",
                           a=ids[0], b=ids[1], c=ids[2])) > str(before), "the beat renewed every held lease"
    finally:
        assert beat.stop() == (3, 0)
    [row] = heartbeat.list_workers(demo_app)
    assert row.state == "stopped" and row.items_held == 0
    assert status(demo_app, batch.id).counts["pending"] == 4  # type: ignore[arg-type]


def test_a_silent_worker_is_shown_silent_and_its_items_go_back_at_the_next_beat(demo_app: App) -> None:
    batch = create_batch(demo_app, [1, 2, 3])
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    long_ago = utcnow() - timedelta(seconds=60)
    with demo_app.engine.begin() as conn:  # a worker that announced itself, then beat no more (killed)
        heartbeat.announce_on(conn, "dead:1:aaaaaa", long_ago)
    claim(demo_app, batch.id, "dead:1:aaaaaa", 2)  # type: ignore[arg-type]
    live = heartbeat.Heartbeat(demo_app, "live:2:bbbbbb")  # beaten by hand below, not by its thread
    with demo_app.engine.begin() as conn:
        heartbeat.announce_on(conn, live.worker_id)
    try:
        states = {w.id: w.state for w in heartbeat.list_workers(demo_app)}
        assert states == {"dead:1:aaaaaa": "silent", "live:2:bbbbbb": "alive"}
        assert _owners(demo_app, batch.id) == {"dead:1:aaaaaa": 2}  # type: ignore[arg-type]
        live.beat()
        assert _owners(demo_app, batch.id) == {}, "the silent worker's items went back"  # type: ignore[arg-type]
    finally:
        live.stop()


@pytest.mark.slow
def test_killed_workers_items_and_holds_go_back_in_seconds_not_after_the_lease(
        settings: Settings, slow_server: tuple[Simulator, SimulatorServer]) -> None:
    _, srv = slow_server
    app, batch_id = _setup(settings, 40)
    env = _http_env(srv, BATCH_LEASE_SECONDS="600", WORKER_SILENT_SECONDS="2")
    worker = _spawn(settings.database_url, "worker", env=env)
    try:
        dead = _wait_for(lambda: _owners(app, batch_id), 90, "the worker to claim items")
        _wait_for(lambda: _scalar(app, "SELECT COUNT(*) FROM reservations WHERE state = 'held'"), 60,
                  "a call in flight (a budget hold)")
    finally:
        worker.kill()  # SIGKILL: no clean-up of any kind
        worker.communicate(timeout=30)
    killed_at = time.monotonic()
    [dead_id] = dead
    rescuer = _spawn(settings.database_url, "worker", "--once", env=env)
    try:
        _wait_for(lambda: dead_id not in _owners(app, batch_id), 90, "the dead worker's items to go back")
        back_after = time.monotonic() - killed_at
        _, err = rescuer.communicate(timeout=300)
        assert rescuer.returncode == 0, err[-2000:]
    finally:
        if rescuer.poll() is None:
            rescuer.kill()
    print(f"\na killed worker's items went back after {back_after:.1f} s (lease: 600 s)")
    assert status(app, batch_id).status == "done"
    assert _scalar(app, "SELECT COUNT(*) FROM reservations WHERE state = 'held'") == 0
    assert _scalar(app, "SELECT SUM(reserved_usd) FROM budget_months") == 0, "the dead worker's holds were returned"
    rows = {w.id: w for w in heartbeat.list_workers(app)}
    assert rows[dead_id].state == "silent" and rows[dead_id].items_held == 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "Ctrl-C"])
def test_sigterm_gives_back_claims_and_holds_before_the_worker_exits(
        settings: Settings, slow_server: tuple[Simulator, SimulatorServer], sig: signal.Signals) -> None:
    _, srv = slow_server
    app, batch_id = _setup(settings, 40)
    worker = _spawn(settings.database_url, "worker", env=_http_env(srv, BATCH_LEASE_SECONDS="600"))
    try:
        [owner] = _wait_for(lambda: _owners(app, batch_id), 90, "the worker to claim items")
        _wait_for(lambda: _scalar(app, "SELECT COUNT(*) FROM reservations WHERE state = 'held'"), 60,
                  "a call in flight (a budget hold)")
        worker.send_signal(sig)
        _, err = worker.communicate(timeout=60)
    finally:
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0, err[-2000:]
    assert owner not in _owners(app, batch_id), "no item is left claimed by the stopped worker"
    assert _scalar(app, "SELECT COUNT(*) FROM reservations WHERE state = 'held'") == 0
    assert _scalar(app, "SELECT state FROM workers WHERE id = :w", w=owner) == "stopped"
    assert status(app, batch_id).counts["pending"] > 0, "the batch was stopped mid-way, as intended"


@pytest.mark.slow
def test_resume_after_kill_9_finishes_the_batch(settings: Settings) -> None:
    n = 600
    app, batch_id = _setup(settings, n, concurrency=16)
    env = {"SIMULATOR_LATENCY_MS": "20", "BATCH_LEASE_SECONDS": "600", "WORKER_SILENT_SECONDS": "3"}
    worker = _spawn(settings.database_url, "worker", env=env)
    try:
        _wait_for(lambda: status(app, batch_id).done >= 100 and _owners(app, batch_id), 120,
                  "the worker to be mid-batch")
    finally:
        worker.kill()
        worker.communicate(timeout=30)
    held = sum(_owners(app, batch_id).values())
    resume = _spawn(settings.database_url, "batch", "resume", str(batch_id), "--json", env=env)
    _, err = resume.communicate(timeout=300)
    left = sum(_owners(app, batch_id).values())
    print(f"\nkill -9 with {held} of {n} items claimed; after resume: {left} claimed, "
          f"status {status(app, batch_id).status}, exit {resume.returncode}")
    assert held > 0, "the kill left items claimed; the test proves nothing otherwise"
    assert left == 0, f"{left} of {n} items still claimed by the dead worker after resume"
    assert resume.returncode == 0, err[-2000:]
    st = status(app, batch_id)
    assert st.status == "done" and st.done == n


@pytest.mark.slow
def test_resume_waits_for_a_live_worker_and_says_which(settings: Settings) -> None:
    app, batch_id = _setup(settings, 12)
    live = heartbeat.Heartbeat(app, "livebox:4242:cccccc")
    live.start()
    stopped = False
    try:
        assert len(claim(app, batch_id, live.worker_id, 3)) == 3
        resume = _spawn(settings.database_url, "batch", "resume", str(batch_id), "--json", env={})
        seen: list[str] = []
        reader = threading.Thread(target=lambda: seen.extend(iter(resume.stderr.readline, "")), daemon=True)
        reader.start()
        _wait_for(lambda: any("waiting" in line for line in seen) or resume.poll() is not None, 120,
                  "resume to say what it waits for")
        assert resume.poll() is None, f"resume returned while a live worker held items: {''.join(seen)[-2000:]}"
        live.stop()  # the live worker gives its items back; resume finishes them
        stopped = True
        resume.wait(timeout=120)
        reader.join(5)
    finally:
        if not stopped:
            live.stop()
    said = "".join(seen)
    assert "worker livebox pid 4242" in said and "holds 3 items" in said, said
    assert resume.returncode == 0, said[-2000:]
    st = status(app, batch_id)
    assert st.status == "done" and st.done == 12 and st.counts["claimed"] == 0
