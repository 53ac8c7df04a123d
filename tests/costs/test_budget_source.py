"""The budget from the CLI, and MONTHLY_BUDGET_USD changed between starts (issue 12, money).

An environment cap is applied again at every start; a cap a person set (Spend page, `budget set`) is kept for
its month, and the Spend page and `budget show` say why the environment value is not used.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from decimal import Decimal

import pytest
from streamlit.testing.v1 import AppTest

from core.__main__ import main
from core.app import App, open_app
from core.cli import base as cli
from core.config import PROJECT_ROOT, Settings
from core.costs import budget
from core.store.models import month_of, utcnow


def _start(settings: Settings, env_cap: str) -> App:
    """A (re)start of the console or a worker with MONTHLY_BUDGET_USD=env_cap."""
    return open_app(dataclasses.replace(settings, monthly_budget_usd=Decimal(env_cap)))


def _next_month() -> str:
    return month_of(utcnow().replace(day=1) + timedelta(days=40))


def _cli(app: App, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], *argv: str) -> dict:
    monkeypatch.setattr(cli, "_app", app)
    capsys.readouterr()
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_a_changed_environment_cap_is_honoured_for_this_month(settings: Settings) -> None:
    assert _start(settings, "100").budget_state().cap_usd == Decimal("100")
    app = _start(settings, "250")
    assert app.budget_state().cap_usd == Decimal("250")
    assert app.cap_info().env_applies and "comes from MONTHLY_BUDGET_USD" in app.cap_info().message


def test_a_cap_set_on_the_spend_page_is_kept_for_the_month_and_the_reason_given(settings: Settings) -> None:
    _start(settings, "100").set_budget_cap(Decimal("500"))
    app = _start(settings, "250")
    assert app.budget_state().cap_usd == Decimal("500"), "a person's cap outlives a restart with another env value"
    info = app.cap_info()
    today = utcnow().date().isoformat()
    assert info.source == "spend_page" and not info.env_applies
    assert info.message == (f"This month's cap was set to $500.00 on the Spend page on {today} (UTC), so "
                            "MONTHLY_BUDGET_USD=250 is not used: it applies from next month.")
    # ... and the next month starts from the environment value, not from last month's hand-set cap.
    later = utcnow().replace(day=1) + timedelta(days=40)
    budget.reserve(app.engine, Decimal("0.01"), cap=app.recent_budget_cap(), now=later)
    assert app.budget_state(_next_month()).cap_usd == Decimal("250")


def test_budget_set_from_the_cli_prints_the_new_state(app: App, monkeypatch: pytest.MonkeyPatch,
                                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = _cli(app, monkeypatch, capsys, "budget", "set", "50", "--json")
    assert out["cap_usd"] == "50" and out["cap_source"] == "cli" and out["previous_cap_usd"] == "12000"
    assert out["month"] == month_of(utcnow()) and out["level"] == "normal" and out["remaining_usd"] == "50"
    assert app.budget_state().cap_usd == Decimal("50")
    ahead = _next_month()
    out = _cli(app, monkeypatch, capsys, "budget", "set", "75.5", "--month", ahead, "--json")
    assert out["month"] == ahead and out["cap_usd"] == "75.5"
    assert app.budget_state().cap_usd == Decimal("50"), "another month's cap leaves this one alone"


def test_budget_show_says_why_the_environment_value_is_not_used(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    _cli(_start(settings, "100"), monkeypatch, capsys, "budget", "set", "40", "--json")
    out = _cli(_start(settings, "90"), monkeypatch, capsys, "budget", "show", "--json")
    assert out["cap_usd"] == "40" and out["env_monthly_budget_usd"] == "90" and out["env_applies"] is False
    assert "set to $40.00 with `python -m core budget set`" in out["message"]
    assert "MONTHLY_BUDGET_USD=90 is not used: it applies from next month" in out["message"]


@pytest.mark.parametrize(("argv", "fragment"), [
    (["budget", "set", "-3"], "non-negative"),
    (["budget", "set", "lots"], "amount of USD"),
    (["budget", "set", "5", "--month", "2026-13"], "--month"),
    (["budget", "set", "5", "--month", "2001-01"], "is over"),
])
def test_budget_set_refuses_bad_input(app: App, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
                                      argv: list[str], fragment: str) -> None:
    monkeypatch.setattr(cli, "_app", app)
    with pytest.raises(SystemExit) as exit_:
        main(argv)
    assert exit_.value.code == 2 and fragment in capsys.readouterr().err
    assert app.budget_state().cap_usd == Decimal("12000")


def test_spend_page_says_why_the_environment_value_is_not_used(console_env: Settings, app: App,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    app.set_budget_cap(Decimal("500"))
    monkeypatch.setenv("MONTHLY_BUDGET_USD", "250")
    at = AppTest.from_file(str(PROJECT_ROOT / "pages/spend.py"), default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    [note] = [i.value for i in at.info if "MONTHLY_BUDGET_USD" in i.value]
    assert "set to \\$500.00 on the Spend page" in note and "MONTHLY_BUDGET_USD=250 is not used" in note
    assert next(m for m in at.metric if m.label == "Monthly budget").value == "$500.00"


def test_the_money_migration_keeps_a_cap_set_on_the_spend_page_before_it(db_url: str) -> None:
    """A database from before the migration: the Spend page's cap was one global setting."""
    from sqlalchemy import text

    from core.store.db import get_engine
    from core.store.migrations import migrate

    engine = get_engine(db_url)
    migrate(engine)
    month = month_of(utcnow())
    with engine.begin() as conn:  # back to the schema before 004_money
        conn.execute(text("DROP TABLE model_cost_factors"))
        for column in ("held_settled_usd", "cap_source", "cap_set_at"):
            conn.execute(text(f"ALTER TABLE budget_months DROP COLUMN {column}"))
        conn.execute(text("DELETE FROM schema_migrations WHERE name = '004_money'"))
        conn.execute(text("INSERT INTO settings (key, value, updated_at) VALUES ('monthly_budget_usd', :v, :at)"),
                     {"v": json.dumps({"usd": "500"}), "at": utcnow().replace(tzinfo=None)})
        conn.execute(text("INSERT INTO budget_months (month, cap_usd, spent_usd, reserved_usd) VALUES (:m, :c, 0, 0)"),
                     {"m": month, "c": 500 * 10**9})
        conn.execute(text("INSERT INTO budget_months (month, cap_usd, spent_usd, reserved_usd) VALUES ('2020-01', :c, "
                          "0, 0)"), {"c": 12000 * 10**9})
    assert migrate(engine) == ["004_money"]
    kept = budget.cap_info(engine, Decimal("250"), month)
    assert kept.source == "spend_page" and kept.cap_usd == Decimal("500") and kept.set_at is not None
    assert budget.cap_info(engine, Decimal("250"), "2020-01").source == "env"
    assert budget.cost_factors(engine) == {}
