"""`batch run` refuses an unknown template before anything runs, and its progress line tells the truth: no
huge first rate from a near-zero elapsed time, no resumed items counted as this run's, and off a terminal at
most one line a second."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from sqlalchemy import create_engine, text

from core.cli.batches import ProgressBar
from tests.cli.test_cli import run_cli


def _csv(tmp_path: Path, rows: int = 6) -> Path:
    path = tmp_path / "prospects.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["First Name", "Company", "Industry", "Employees", "Email", "Recent News"])
        for i in range(rows):
            w.writerow([f"Pat{i}", f"Co{i}", "SaaS", str(100 + i * 300), f"pat{i}@example.com", f"Co{i} hired."])
    return path


def test_unknown_template_is_refused_before_any_item_runs(db_url: str, tmp_path: Path) -> None:
    out = run_cli(db_url, "batch", "run", str(_csv(tmp_path)), "--template", "no_such_template", "--json")
    assert out.returncode == 2, (out.stdout, out.stderr)
    assert out.stderr.startswith("error: ") and out.stderr.strip().count("\n") == 0, out.stderr
    assert "no_such_template" in out.stderr and "Traceback" not in out.stderr
    engine = create_engine(db_url)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT COUNT(*) FROM batch_items")).scalar() == 0, "no item was created"
        assert conn.execute(text("SELECT COUNT(*) FROM usage_ledger")).scalar() == 0, "no call was made"
    engine.dispose()


def test_a_template_of_another_step_is_refused_too(db_url: str, tmp_path: Path) -> None:
    listed = json.loads(run_cli(db_url, "templates", "list", "--step", "follow_up_1", "--json").stdout)
    name = listed["templates"][0]["name"] if isinstance(listed, dict) else listed[0]["name"]
    out = run_cli(db_url, "batch", "run", str(_csv(tmp_path)), "--template", name, "--json")
    assert out.returncode == 2 and "follow_up_1" in out.stderr, out.stderr


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class _Log(io.StringIO):
    def isatty(self) -> bool:
        return False


def _rates(text_: str) -> list[str]:
    return [line.rsplit(" ", 1)[-1] for line in text_.splitlines() if line.startswith("[")]


def test_first_rate_is_not_huge_and_counts_only_this_runs_items() -> None:
    clock, stream = _Clock(), _Log()
    bar = ProgressBar(1000, stream=stream, clock=clock)
    bar(500)  # a resume: 500 items were done before this run started
    clock.now += 0.002
    bar(501)
    assert all(rate == "—/s" for rate in _rates(stream.getvalue())), stream.getvalue()
    clock.now += 2.0
    bar(520)
    last = stream.getvalue().splitlines()[-1]
    assert last.endswith("10.0/s"), last  # 20 items of this run in 2.002 s, not 520 / 2 s


def test_off_a_terminal_it_prints_at_most_once_a_second() -> None:
    clock, stream = _Clock(), _Log()
    bar = ProgressBar(10_000, stream=stream, clock=clock)
    for done in range(3000):  # 3000 items over 2.999 s
        bar(done)
        clock.now += 0.001
    bar.close()
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue(), "no carriage returns in a log file"
    assert 3 <= len(lines) <= 5, lines  # t = 0, 1, 2 s and the final state
    assert lines[-1].startswith("[") and " 2999/10000 " in lines[-1]
