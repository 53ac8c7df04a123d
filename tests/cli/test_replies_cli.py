"""The reply commands: `classify`, `replies import`, `replies classify`, `replies eval`.

One test runs the real subprocess (the command is wired into `python -m core`); the rest call `main()` in
process against this test's database, which is much faster."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from core.__main__ import main
from core.app import App
from core.cli import base as cli
from core.config import PROJECT_ROOT
from core.people.identity import normalize_linkedin_url
from core.people.prospects import import_prospects
from core.replies.categories import CATEGORIES


@pytest.fixture
def in_process(app: App, monkeypatch: pytest.MonkeyPatch) -> App:
    monkeypatch.setattr(cli, "_app", app)
    return app


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    try:
        code = main(list(args))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_classify_json_from_the_real_command_line(db_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": db_url, "LLM_PROVIDER": "simulator"}
    env.pop("OPENROUTER_API_KEY", None)
    out = subprocess.run([sys.executable, "-m", "core", "classify", "--json", "Please unsubscribe me from this."],
                         capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["category"] == "do_not_contact" and data["next_action"] == "suppress"
    assert 0.6 <= data["confidence"] <= 1 and data["status"] == "ok" and Decimal(data["cost_usd"]) > 0


def test_classify_reads_stdin_and_anchors_the_received_day(
    in_process: App, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("Out of the office, back on Monday."))
    code, out, _ = run_main(capsys, "classify", "-", "--received", "2025-03-05", "--json")
    data = json.loads(out)
    assert code == 0 and data["category"] == "out_of_office" and data["return_date"] == "2025-03-10"
    assert data["next_action"] == "pause_until_return" and "2025-03-10" in data["detail"]


def test_classify_empty_reply_needs_no_model(in_process: App, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, "classify", "   ", "--json")
    data = json.loads(out)
    assert code == 0 and data["category"] == "unclear" and data["calls"] == 0 and data["next_action"] == "to_person"


def test_bad_received_date_is_one_line(in_process: App, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_main(capsys, "classify", "hello", "--received", "14/03/2025")
    assert code == 2 and out == "" and err.strip() == "error: --received takes a date like 2025-03-14; got '14/03/2025'"


def test_eval_prints_accuracy_precision_recall_and_confusion(
    in_process: App, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_main(capsys, "replies", "eval", "--json")
    data = json.loads(out)
    assert code == 0 and data["n"] == 170 and 0.5 < data["accuracy"] <= 1
    assert set(data["per_category"]) == set(CATEGORIES)
    for scores in data["per_category"].values():
        assert 0 <= scores["precision"] <= 1 and 0 <= scores["recall"] <= 1
    assert set(data["confusion"]) == set(CATEGORIES)
    assert sum(sum(row.values()) for row in data["confusion"].values()) == 170
    correct = sum(data["confusion"][c][c] for c in CATEGORIES)
    assert data["accuracy"] == pytest.approx(correct / 170)


def test_eval_of_a_broken_labelled_file_names_the_line(
    in_process: App, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("text,category,received\nhello,interested,\nbye,maybe,\n")
    code, _, err = run_main(capsys, "replies", "eval", "--file", str(path))
    assert code == 2 and "line 3" in err and "unknown category 'maybe'" in err


def test_import_and_classify_a_reply_file(
    in_process: App, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    import_prospects(in_process, b"first_name,company_name,email\nAna,Nimbus,ana@nimbus.example\n")
    path = tmp_path / "replies.csv"
    path.write_text("email,reply,received\n"
                    "ana@nimbus.example,Please remove me from your list,2025-03-04\n"
                    "zoe@else.example,\"Sounds interesting, tell me more\",2025-03-04\n"
                    "zoe@else.example,,2025-03-05\n")
    code, out, _ = run_main(capsys, "replies", "import", str(path), "--classify", "--json")
    data = json.loads(out)
    assert code == 0 and data["rows"] == 3 and data["stored"] == 2
    assert data["rejected"] == [{"line": 4, "reason": "the reply text is empty"}]
    assert data["unknown_prospects"] == [{"line": 3, "identity": "email:zoe@else.example"}]
    assert data["classification"] == {"total": 2, "classified": 2, "pending": 0, "failed": [], "stopped": ""}
    code, out, _ = run_main(capsys, "replies", "classify", "--json")
    assert code == 0 and json.loads(out)["total"] == 0, "nothing is left pending"


def test_import_refuses_missing_and_unreadable_files(
    in_process: App, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, _, err = run_main(capsys, "replies", "import", str(tmp_path / "nope.csv"))
    assert code == 2 and "no such file" in err
    path = tmp_path / "replies.xlsx"
    path.write_bytes(b"PK\x03\x04" + b"\x00" * 30 + b"[Content_Types].xml")
    code, _, err = run_main(capsys, "replies", "import", str(path))
    assert code == 2 and "Excel workbook" in err and err.count("\n") == 1


def test_budget_stop_prints_the_report_and_exits_3(
    in_process: App, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = normalize_linkedin_url("linkedin.com/in/someone")
    path = tmp_path / "replies.csv"
    path.write_text("linkedin_url,text\n" + "".join(f"{url},No thanks ({i})\n" for i in range(5)))
    in_process.set_budget_cap(Decimal(0))
    code, out, err = run_main(capsys, "replies", "import", str(path), "--classify", "--json")
    data = json.loads(out)
    assert code == 3 and data["stored"] == 5
    assert data["classification"]["stopped"] == "budget reached: 0 of 5 classified; the rest are pending"
    assert err.strip() == "warning: budget reached: 0 of 5 classified; the rest are pending"
