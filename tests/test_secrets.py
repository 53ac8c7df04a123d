"""The API key never lands in logs, the database, exports or the console, even through real HTTP calls."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text

from core.config import PROJECT_ROOT
from core.costs.prices import current_book
from core.logs import scrub
from core.sim.simulator import Scripted, Simulator, SimulatorServer

KEY = "sk-or-v1-0123456789abcdefTESTKEYdonotleak"


@pytest.fixture
def server() -> Iterator[tuple[Simulator, SimulatorServer]]:
    sim = Simulator(current_book())
    with sim.serve() as srv:
        yield sim, srv


def _cli(db_url: str, url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": db_url, "LLM_PROVIDER": "openrouter", "OPENROUTER_API_KEY": KEY,
           "OPENROUTER_BASE_URL": url, "LOG_LEVEL": "DEBUG"}
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True, cwd=PROJECT_ROOT,
                          env=env, timeout=300)


def _database_text(db_url: str) -> str:
    engine = create_engine(db_url)
    out = []
    with engine.connect() as conn:
        for table in inspect(engine).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):
                out.append(json.dumps([str(v) for v in row]))
    engine.dispose()
    return "\n".join(out)


def test_key_stays_out_of_logs_database_and_exports(
    db_url: str, tmp_path: Path, server: tuple[Simulator, SimulatorServer]
) -> None:
    sim, srv = server
    sim.script(Scripted(503), Scripted(429, retry_after=0), Scripted(400, message="bad request"))
    path = tmp_path / "p.csv"
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["first_name", "company_name", "company_size", "email", "recent_news"])
        for i in range(10):
            w.writerow([f"Pat{i}", f"Co{i}", str(200 + i * 300), f"p{i}@example.com", f"Co{i} raised a round."])
    run = _cli(db_url, srv.url, "batch", "run", str(path), "--json")
    assert run.returncode == 0, run.stderr
    batch_id = json.loads(run.stdout)["batch_id"]
    assert sim.requests["POST completions"] >= 10, "the batch really went over HTTP with the key"
    assert _cli(db_url, srv.url, "batch", "approve", str(batch_id), "--passed").returncode == 0
    out_csv, out_json = tmp_path / "a.csv", tmp_path / "a.json"
    assert _cli(db_url, srv.url, "export", str(batch_id), "--out", str(out_csv)).returncode == 0
    assert _cli(db_url, srv.url, "export", str(batch_id), "--out", str(out_json), "--format", "json").returncode == 0
    spend = _cli(db_url, srv.url, "spend", "--json")
    everything = "\n".join([run.stdout, run.stderr, spend.stdout, spend.stderr, out_csv.read_text("utf-8-sig"),
                            out_json.read_text(), _database_text(db_url)])
    assert '"level": "warning"' in run.stderr, "failed attempts are logged as structured lines"
    assert KEY not in everything
    assert KEY[:20] not in everything


def test_scrubber_masks_keys_and_bearer_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_API_KEY", "local-secret-123456")
    masked = scrub(f"Authorization: Bearer abc.def-123 and {KEY} and local-secret-123456")
    assert "abc.def" not in masked and KEY not in masked and "local-secret" not in masked


def test_console_pages_never_show_the_key(monkeypatch: pytest.MonkeyPatch, db_url: str) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    monkeypatch.setenv("LLM_PROVIDER", "openrouter")
    monkeypatch.setenv("SAM_INPROCESS_WORKER", "0")
    for page in ("pages/settings.py", "pages/home.py", "pages/spend.py"):
        at = AppTest.from_file(str(PROJECT_ROOT / page), default_timeout=60)
        at.run()
        assert not at.exception, page
        dump = str([e for e in at]) + "".join(str(df.value) for df in at.dataframe)
        assert KEY not in dump and KEY[:20] not in dump, page
