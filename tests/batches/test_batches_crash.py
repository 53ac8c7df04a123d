"""Worker processes killed at random points of a 2,000-row run; resume; every item ends in exactly one final
state, no result is written twice, and no model answer is paid for twice. Two workers share one batch
without ever claiming the same item (on PostgreSQL via FOR UPDATE SKIP LOCKED when TEST_DATABASE_URL is set)."""

from __future__ import annotations

import csv
import io
import os
import random
import signal
import subprocess
import sys
import time

import pytest
from sqlalchemy import text

from core.app import App
from core.batches.creation import create_batch
from core.batches.lifecycle import start_batch, status
from core.config import PROJECT_ROOT, Settings
from core.demo import open_demo_app
from core.people.prospects import import_prospects
from core.store.models import FINAL_ITEM_STATES as FINAL_STATES

pytestmark = pytest.mark.slow


def _prospects_csv(n: int) -> bytes:
    out = io.StringIO()
    w = csv.writer(out)
    w.writerow(["first_name", "last_name", "company_name", "industry", "company_size", "email", "recent_news"])
    industries = ["SaaS", "Fintech", "Healthcare", "Retail", "Logistics"]
    for i in range(n):
        w.writerow([f"Pat{i}", "Doe", f"Company {i % 400}", industries[i % 5], str(50 + (i * 37) % 3000),
                    f"pat{i}@example.com", f"Company {i % 400} launched product {i}." if i % 3 else ""])
    return out.getvalue().encode()


def _worker(db_url: str, *extra: str, lease_s: int = 2) -> subprocess.Popen[bytes]:
    env = {**os.environ, "DATABASE_URL": db_url, "LLM_PROVIDER": "simulator", "SIMULATOR_LATENCY_MS": "3",
           "BATCH_LEASE_SECONDS": str(lease_s), "WORKER_CONCURRENCY": "16"}
    env.pop("OPENROUTER_API_KEY", None)
    return subprocess.Popen([sys.executable, "-m", "core", "worker", *extra], cwd=PROJECT_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _setup(settings: Settings, n: int) -> tuple[App, int]:
    app = open_demo_app(settings)
    report = import_prospects(app, _prospects_csv(n))
    assert report.accepted == n
    batch = create_batch(app, report.prospect_ids, concurrency=16)
    assert batch.id is not None
    start_batch(app, batch.id)
    return app, batch.id


def _check_exactly_once(app: App, batch_id: int, n: int) -> None:
    st = status(app, batch_id)
    assert st.status == "done", st
    assert sum(st.counts[s] for s in FINAL_STATES) == n
    with app.engine.connect() as conn:
        items, distinct_items = conn.execute(text(
            "SELECT COUNT(*), COUNT(DISTINCT batch_item_id) FROM messages WHERE batch_id = :b"), {"b": batch_id}).one()
        assert items == distinct_items == n, "one message per item, written once"
        not_final = conn.execute(text(
            "SELECT COUNT(*) FROM batch_items WHERE batch_id = :b AND state NOT IN "
            "('ready', 'fallback', 'needs_data', 'review_failed', 'failed')"), {"b": batch_id}).scalar()
        assert not_final == 0
        paid = conn.execute(text(
            "SELECT COUNT(*) FROM usage_ledger WHERE batch_id = :b AND status = 'ok'"), {"b": batch_id}).scalar()
        stored = conn.execute(text(
            "SELECT COUNT(*) FROM stage_results r JOIN batch_items i ON i.id = r.batch_item_id "
            "WHERE i.batch_id = :b"), {"b": batch_id}).scalar()
        assert paid == stored, "every paid answer is stored once and was never paid for again"


def test_killed_workers_resume_without_loss_or_double_payment(settings: Settings) -> None:
    n = 2000
    app, batch_id = _setup(settings, n)
    rng = random.Random(20261125)
    kills = 0
    # Each worker is killed once the batch passes a random point of its progress (not after a fixed time,
    # which a fast machine outruns): somewhere in each third of the first 90%.
    for third in range(3):
        target = int(n * rng.uniform(0.3 * third + 0.05, 0.3 * third + 0.3))
        proc = _worker(settings.database_url)
        deadline = time.monotonic() + 120
        while proc.poll() is None and status(app, batch_id).done < target and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait(30)
    assert kills == 3, "a worker ended by itself before it was killed; the test proves less than it says"
    mid = status(app, batch_id)
    print(f"\nafter {kills} kills: {mid.done} of {n} done")
    assert mid.done < n, "the batch finished before the last kill: resuming it proves nothing"
    final = _worker(settings.database_url, "--once")
    _, err = final.communicate(timeout=600)
    assert final.returncode == 0, err.decode()[-2000:]
    _check_exactly_once(app, batch_id, n)


def test_two_workers_share_a_batch_without_claiming_the_same_item(settings: Settings) -> None:
    n = 600
    app, batch_id = _setup(settings, n)
    procs = [_worker(settings.database_url, "--once", lease_s=60) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err.decode()[-2000:]
    _check_exactly_once(app, batch_id, n)
    with app.engine.connect() as conn:
        claimed_twice = conn.execute(text(
            "SELECT COUNT(*) FROM batch_items WHERE batch_id = :b AND attempts <> 1"), {"b": batch_id}).scalar()
    assert claimed_twice == 0, "no item was claimed by both workers"
