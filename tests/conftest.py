"""Shared fixtures: every test gets its own database (SQLite file, or a fresh PostgreSQL schema when
TEST_DATABASE_URL is set) and an App wired to the offline simulator."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from core.app import App, open_app
from core.config import DATA_DIR, Settings
from core.demo import open_demo_app
from core.store.db import dispose_engine

PG_URL = os.environ.get("TEST_DATABASE_URL", "")


@pytest.fixture(autouse=True)
def _no_console_worker(monkeypatch: pytest.MonkeyPatch) -> None:
    """AppTests drive the batch worker themselves; a console thread would outlive its test's database."""
    monkeypatch.setenv("SAM_INPROCESS_WORKER", "0")


@pytest.fixture
def db_url(tmp_path: Path) -> Iterator[str]:
    if not PG_URL:
        url = f"sqlite:///{tmp_path / 'test.db'}"
        yield url
        dispose_engine(url)
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    with admin.begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in PG_URL else "?"
    url = f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
    yield url
    dispose_engine(url)
    with admin.begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
    admin.dispose()


@pytest.fixture
def settings(db_url: str) -> Settings:
    return Settings(database_url=db_url, llm_provider="simulator", data_dir=DATA_DIR)


@pytest.fixture
def app(settings: Settings) -> App:
    return open_app(settings)


@pytest.fixture
def demo_app(settings: Settings) -> App:
    return open_demo_app(settings)


@pytest.fixture
def console_env(monkeypatch: pytest.MonkeyPatch, settings: Settings) -> Settings:
    """Environment for AppTest runs: this test's database, the simulator, no key."""
    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    monkeypatch.setenv("LLM_PROVIDER", "simulator")
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.setenv("SAM_INPROCESS_WORKER", "0")  # tests drive the worker loop themselves
    return settings


def page_test(path: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    """An AppTest of one page file (run directly, without the navigation shell)."""
    from streamlit.testing.v1 import AppTest

    from core.config import PROJECT_ROOT

    return AppTest.from_file(str(PROJECT_ROOT / path), default_timeout=timeout)


def console_page(path: str, timeout: float = 60):  # type: ignore[no-untyped-def]
    """An AppTest of the whole console switched to one page (page links work this way)."""
    from streamlit.testing.v1 import AppTest

    from core.config import PROJECT_ROOT

    at = AppTest.from_file(str(PROJECT_ROOT / "app.py"), default_timeout=timeout)
    at.run()
    at.switch_page(path)
    return at


def sim_answers(app: App, task_answers: dict[str, list[str]]) -> list[list[dict]]:
    """Replace the simulator's answer for some tasks with queued raw contents; returns the prompts seen."""
    from core.messages import prompts

    assert app.simulator is not None
    original = app.simulator._answer
    seen: list[list[dict]] = []

    def answer(messages):  # type: ignore[no-untyped-def]
        seen.append(messages)
        queue = task_answers.get(prompts.task_of(messages))
        return queue.pop(0) if queue else original(messages)

    app.simulator._answer = answer  # type: ignore[method-assign]
    return seen
