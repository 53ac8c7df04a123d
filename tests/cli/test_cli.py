"""The command line as a user runs it: a subprocess, JSON on stdout, one-line errors on stderr."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from core.config import PROJECT_ROOT


def run_cli(db_url: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "DATABASE_URL": db_url, "LLM_PROVIDER": "simulator", **(env or {})}
    full_env.pop("OPENROUTER_API_KEY", None)
    return subprocess.run([sys.executable, "-m", "core", *args], capture_output=True, text=True,
                          cwd=PROJECT_ROOT, env=full_env, timeout=120)


def test_help() -> None:
    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True, cwd=PROJECT_ROOT)
    assert out.returncode == 0 and "spend" in out.stdout and "simulator" in out.stdout


def test_spend_json_fields(db_url: str) -> None:
    out = run_cli(db_url, "spend", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in ("month", "budget_usd", "spent_usd", "reserved_usd", "remaining_usd", "throttled", "calls",
                "projected_month_usd", "projected_annual_usd", "by_model", "by_task"):
        assert key in data
    assert data["budget_usd"] == "12000" and data["calls"] == 0 and data["throttled"] is False


def test_bad_configuration_is_one_line(db_url: str) -> None:
    out = run_cli(db_url, "spend", "--json", env={"MONTHLY_BUDGET_USD": "a lot"})
    assert out.returncode == 2
    assert out.stderr.strip().count("\n") == 0 and "MONTHLY_BUDGET_USD" in out.stderr
    assert "Traceback" not in out.stderr


def test_prices_refresh_from_simulator_models(db_url: str, tmp_path: Path) -> None:
    out = run_cli(db_url, "prices", "refresh", "--json")
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    models = {u["model"]: u for u in data["updated"]}
    assert models["mistralai/mistral-7b-instruct"]["input_per_mtok"] == "0.028"
    listed = json.loads(run_cli(db_url, "prices", "list", "--json").stdout)
    sources = {p["model"]: p["source"] for p in listed["prices"]}
    assert sources["mistralai/mistral-7b-instruct"].startswith("simulator /models")
