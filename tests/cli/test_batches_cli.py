"""The batch verbs as a user runs them: JSON on stdout, progress on stderr, one-line errors, exit codes."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from tests.cli.test_cli import run_cli


def _csv(tmp_path: Path, rows: int = 12) -> Path:
    path = tmp_path / "prospects.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["First Name", "Company", "Industry", "Employees", "Email", "Recent News"])
        for i in range(rows):
            w.writerow([f"Pat{i}", f"Co{i}", "SaaS", str(100 + i * 300), f"pat{i}@example.com", f"Co{i} hired."])
        w.writerow(["", "NoName", "", "", "x@example.com", ""])
    return path


def test_import_then_batch_run_approve_export(db_url: str, tmp_path: Path) -> None:
    path = _csv(tmp_path)
    out = run_cli(db_url, "import", str(path), "--json")
    assert out.returncode == 0, out.stderr
    imported = json.loads(out.stdout)
    assert imported["rows"] == 13 and imported["accepted"] == 12 and imported["rejected"][0]["line"] == 14

    run = run_cli(db_url, "batch", "run", str(path), "--json", "--concurrency", "4")
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout)
    assert result["status"] == "done" and result["items"] == 12
    assert sum(result["counts"].values()) == 12 and float(result["cost_usd"]) > 0
    assert result["input_tokens"] > 0 and "12/12" in run.stderr

    approved = json.loads(run_cli(db_url, "batch", "approve", str(result["batch_id"]), "--passed", "--json").stdout)
    assert approved["approved"] > 0
    out_file = tmp_path / "approved.csv"
    exp = run_cli(db_url, "export", str(result["batch_id"]), "--out", str(out_file), "--json")
    assert exp.returncode == 0 and json.loads(exp.stdout)["rows"] == approved["approved"]
    assert out_file.read_bytes().startswith(b"\xef\xbb\xbf")
    js = tmp_path / "approved.json"
    assert run_cli(db_url, "export", str(result["batch_id"]), "--out", str(js), "--format", "json").returncode == 0
    assert len(json.loads(js.read_text())) == approved["approved"]

    listing = json.loads(run_cli(db_url, "batch", "list", "--json").stdout)
    assert listing["batches"][0]["batch_id"] == result["batch_id"]
    st = json.loads(run_cli(db_url, "batch", "status", str(result["batch_id"]), "--json").stdout)
    assert st["done"] == 12

    again = run_cli(db_url, "batch", "run", str(path), "--json")
    assert again.returncode == 2 and "nothing to run" in again.stderr, "a re-run never pays twice"


def test_errors_are_one_line_without_traceback(db_url: str, tmp_path: Path) -> None:
    binary = tmp_path / "photo.csv"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    for args in (("import", str(binary)), ("import", str(tmp_path / "missing.csv")), ("batch", "status", "42"),
                 ("batch", "approve", "1"), ("export", "7", "--out", str(tmp_path / "x.csv")),
                 ("batch", "resume", "5")):
        out = run_cli(db_url, *args, "--json")
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert out.stderr.startswith("error: ") and out.stderr.strip().count("\n") == 0, out.stderr
        assert "Traceback" not in out.stderr


def test_cancel_and_worker_once(db_url: str, tmp_path: Path) -> None:
    from core.batches.creation import create_batch
    from core.batches.lifecycle import start_batch
    from core.config import Settings
    from core.demo import open_demo_app
    from core.people.prospects import list_prospects

    app = open_demo_app(Settings(database_url=db_url, llm_provider="simulator"))
    ids = [p.id for p in list_prospects(app)][:5]
    b1 = create_batch(app, ids)  # type: ignore[arg-type]
    b2 = create_batch(app, ids, step="follow_up_1")  # type: ignore[arg-type]
    start_batch(app, b1.id)  # type: ignore[arg-type]
    start_batch(app, b2.id)  # type: ignore[arg-type]
    cancelled = json.loads(run_cli(db_url, "batch", "cancel", str(b2.id), "--json").stdout)
    assert cancelled["status"] == "cancelled"
    worker = run_cli(db_url, "worker", "--once", "--json")
    assert worker.returncode == 0, worker.stderr
    done = json.loads(worker.stdout)["batches"]
    assert [d["batch_id"] for d in done] == [b1.id]


def test_batch_estimate_prints_the_range_and_tiles_for_scripts(db_url: str, tmp_path: Path) -> None:
    path = _csv(tmp_path)
    out = run_cli(db_url, "batch", "estimate", str(path), "--json")
    assert out.returncode == 0, out.stderr
    est = json.loads(out.stdout)
    assert est["prospects"] == 12 and sum(t["prospects"] for t in est["tiles"]) == 12
    assert 0 < float(est["cost_low_usd"]) < float(est["cost_high_usd"])
    assert [t["key"] for t in est["tiles"]] == ["template_only", "model_written", "reviewed", "needs_data"]
    listed = json.loads(run_cli(db_url, "batch", "list", "--json").stdout)
    assert listed["batches"] == [], "an estimate stores no batch"
    plain = run_cli(db_url, "batch", "estimate", str(path), "--template", "connection_request_plain")
    assert plain.returncode == 0, plain.stderr
    assert "Template only" in plain.stdout and "Total" in plain.stdout and "$0.00" in plain.stdout
    bad = run_cli(db_url, "batch", "estimate", str(path), "--template", "no_such_template")
    assert bad.returncode == 2 and "no_such_template" in bad.stderr and "Traceback" not in bad.stderr
