"""`python -m core experiment ...`: JSON output and one-line errors (in process, plus one real subprocess)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from core.__main__ import main
from core.app import App
from core.cli import base as cli
from core.config import PROJECT_ROOT
from core.experiments.assignment import assigned_templates
from core.experiments.stats import analyze_csv
from core.messages.library import add_template
from core.people.prospects import list_prospects

TEXT_B = "Hello {{ first_name }}, {{ recent_achievement }} Would be glad to connect with {{ company_name }}."


@pytest.fixture
def engine_app(demo_app: App, monkeypatch: pytest.MonkeyPatch) -> App:
    """Point the CLI's engine handle at this test's database."""
    monkeypatch.setattr(cli, "_app", demo_app)
    add_template(demo_app, "cr_b", "connection_request", TEXT_B)
    return demo_app


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Any:
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
    assert caught.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err and "Traceback" not in err
    return err


def _create(capsys: pytest.CaptureFixture[str]) -> int:
    out = run(capsys, "experiment", "create", "--name", "cli test", "--step", "connection_request",
              "--control", "connection_request_default", "--variant", "cr_b", "--weekly-sends", "400", "--json")
    return int(out["created"]["id"])


def test_plan_create_list_and_empty_stats(engine_app: App, capsys: pytest.CaptureFixture[str]) -> None:
    planned = run(capsys, "experiment", "plan", "--baseline", "0.1", "--mde", "0.03", "--weekly-sends", "400",
                  "--json")
    assert planned == {"per_arm": 1769, "arms": 2, "total": 3538, "weeks": 8.85}
    created = run(capsys, "experiment", "create", "--name", "cli test", "--step", "connection_request",
                  "--control", "connection_request_default", "--variant", "cr_b", "--weekly-sends", "400", "--json")
    assert created["created"]["planned_per_arm"] == 1769 and created["created"]["plan"]["weeks"] == 8.85
    assert created["created"]["arms"] == ["connection_request_default", "cr_b"]
    listed = run(capsys, "experiment", "list", "--json")["experiments"]
    assert [e["name"] for e in listed] == ["cli test"] and listed[0]["status"] == "running"
    stats = run(capsys, "experiment", "stats", str(created["created"]["id"]), "--json")
    for key in ("arms", "srm_p", "planned_per_arm", "verdict"):
        assert key in stats
    assert stats["verdict"] == "no_data" and [a["sends"] for a in stats["arms"]] == [0, 0]
    assert "already running" in fails(capsys, "experiment", "create", "--name", "again", "--step",
                                      "connection_request", "--control", "connection_request_default",
                                      "--variant", "cr_b")
    assert "no experiment with id 99" in fails(capsys, "experiment", "stats", "99", "--json")


def test_import_outcomes_then_stats(engine_app: App, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    exp_id = _create(capsys)
    people = list_prospects(engine_app, limit=1000)
    assigned = assigned_templates(engine_app, [p.id for p in people if p.id is not None], "connection_request")
    chosen = [p for p in people if p.id in assigned][:8]
    good = tmp_path / "outcomes_good.csv"
    good.write_text("identity,sent_at,replied,positive\n"
                    + "".join(f"{p.identity},2026-01-0{i + 1},{i % 2},{i % 2}\n" for i, p in enumerate(chosen)))
    report = run(capsys, "experiment", "import-outcomes", str(exp_id), str(good), "--json")
    assert (report["rows"], report["inserted"], report["updated"]) == (8, 8, 0)
    stats = run(capsys, "experiment", "stats", str(exp_id), "--json")
    assert sum(a["sends"] for a in stats["arms"]) == 8 and sum(a["successes"] for a in stats["arms"]) == 4
    assert stats["verdict"] == "collecting"

    bad = tmp_path / "outcomes_bad.csv"
    bad.write_text(f"identity,sent_at,replied,positive\n{chosen[0].identity},2026-01-01,1,perhaps\n"
                   "email:ghost@example.com,2026-01-01,0,0\n")
    err = fails(capsys, "experiment", "import-outcomes", str(exp_id), str(bad))
    assert "line 2:" in err and "perhaps" in err and "line 3:" in err and "nothing was stored" in err
    assert "file not found" in fails(capsys, "experiment", "import-outcomes", str(exp_id), str(tmp_path / "no.csv"))
    assert run(capsys, "experiment", "stats", str(exp_id), "--json")["total_sends"] == 8


def test_analyze_a_summary_csv_without_storing(engine_app: App, capsys: pytest.CaptureFixture[str],
                                              tmp_path: Path) -> None:
    data = b"arm,sends,successes\nA,1000,100\nB,1000,145\nC,1000,104\n"
    path = tmp_path / "summary.csv"
    path.write_bytes(data)
    out = run(capsys, "experiment", "analyze", str(path), "--control", "A", "--planned-per-arm", "900", "--json")
    expected = analyze_csv(data, "A", planned_per_arm=900)
    assert out["verdict"] == expected.verdict.code == "winner:B"
    assert [a["p_holm"] for a in out["arms"]] == pytest.approx([a.p_holm for a in expected.arms])
    assert out["arms"][1]["lift_abs_ci"] == pytest.approx(list(expected.arms[1].lift_abs_ci or ()))
    assert run(capsys, "experiment", "list", "--json")["experiments"] == []

    path.write_bytes(b"arm,sends,successes\nA,10,20\nB,x,1\n")
    err = fails(capsys, "experiment", "analyze", str(path), "--control", "A")
    assert "line 2" in err and "line 3" in err


def test_promote_and_variants(engine_app: App, capsys: pytest.CaptureFixture[str]) -> None:
    exp_id = _create(capsys)
    assert "withheld" in fails(capsys, "experiment", "promote", str(exp_id), "cr_b", "--by", "sam")
    decision = run(capsys, "experiment", "promote", str(exp_id), "cr_b", "--by", "sam", "--force", "--json")
    assert decision["decision"]["forced"] is True and decision["decision"]["decided_by"] == "sam"
    variants = run(capsys, "experiment", "variants", "connection_request_plain", "--count", "2", "--json")
    assert variants["kept"] == ["connection_request_plain_v1", "connection_request_plain_v2"]
    assert "JSON object" in fails(capsys, "experiment", "variants", "connection_request_plain", "--performance", "[1]")
    estimate = run(capsys, "experiment", "estimate", "--industry", "Fintech", "--count", "2", "--json")
    assert estimate["calls"] == 1 and float(estimate["worst_case_usd"]) > 0


def test_subprocess_analyze(db_url: str, tmp_path: Path) -> None:
    path = tmp_path / "summary.csv"
    path.write_text("arm,sends,successes\ncontrol,1800,180\nnew,1800,234\n")
    env = {**os.environ, "DATABASE_URL": db_url, "LLM_PROVIDER": "simulator"}
    env.pop("OPENROUTER_API_KEY", None)
    out = subprocess.run([sys.executable, "-m", "core", "experiment", "analyze", str(path), "--control", "control",
                          "--json"], capture_output=True, text=True, cwd=PROJECT_ROOT, env=env, timeout=120)
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    assert data["verdict"] == "winner:new" and data["arms"][0]["name"] == "control"
