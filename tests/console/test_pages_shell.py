"""AppTest of the console shell: home and settings render on a fresh database with demo data."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from core.config import PROJECT_ROOT as ROOT
from core.config import Settings


def _run(page: str | None = None) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    at.run()
    if page:
        at.switch_page(page)
        at.run()
    return at


def test_home_shows_simulator_badge_and_budget(console_env: Settings) -> None:
    at = _run()
    assert not at.exception
    texts = " ".join(i.value for i in at.info)
    assert "Simulator: no model is called" in texts
    labels = [m.label for m in at.metric]
    assert "Spent this month" in labels and "Monthly budget" in labels
    assert any("anthropic/claude-sonnet-4.5" in w.value for w in at.warning)


def test_settings_never_show_the_key(console_env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    at = _run("pages/settings.py")
    assert not at.exception
    assert len(at.dataframe) == 3
    config = at.dataframe[0].value
    assert "OPENROUTER_API_KEY" in set(config["variable"])
    prices = at.dataframe[2].value
    assert "anthropic/claude-sonnet-4.5" in set(prices["model"])
