"""Shared pieces of the Streamlit console: the engine handle, the sidebar, and safe text display.

Layout only: every figure and decision comes from `core`. Prospect data and model output are shown with
`st.text`, `st.code` or dataframes, never as Markdown or HTML.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.app import App, open_app
from core.config import ConfigError, Settings, load_settings
from core.worker import WorkerSupervisor


def _secrets() -> dict[str, Any]:
    try:
        return {k: v for k, v in st.secrets.items() if not isinstance(v, Mapping)}
    except (FileNotFoundError, st.errors.StreamlitSecretNotFoundError):
        return {}
    except Exception:  # a malformed secrets.toml must not hide the real configuration error
        return {}


@st.cache_resource(show_spinner="Starting the engine…")
def _open(key: str, _settings: Settings) -> App:
    app = open_app(_settings)
    if os.environ.get("SAM_INPROCESS_WORKER", "1") != "0":
        _worker(key, app).start()
    return app


@st.cache_resource
def _worker(key: str, _app: App) -> WorkerSupervisor:
    """The in-process batch worker (one per console process); it never calls st.*."""
    return WorkerSupervisor(_app)


def get_app() -> App:
    """The process-wide engine; stops the page with an actionable message when configuration is wrong."""
    try:
        settings = load_settings(secrets=_secrets())
        return _open(repr(settings), settings)
    except ConfigError as exc:
        st.error(f"Configuration error: {exc}")
        st.caption("Fix the variable (environment or .streamlit/secrets.toml) and restart the console.")
        st.stop()
        raise


def provider_badge(app: App) -> None:
    s = app.settings
    if s.is_simulated:
        st.sidebar.info("Simulator: no model is called", icon="🧪")
    elif s.llm_provider == "openrouter":
        st.sidebar.success("Provider: OpenRouter (live, billed)", icon="🌐")
    else:
        st.sidebar.success(f"Provider: OpenAI-compatible server at {s.base_url}", icon="🖥️")


def sidebar(app: App) -> None:
    provider_badge(app)
    state = app.budget_state()
    st.sidebar.metric("Budget left this month", f"${state.remaining_usd:,.2f}",
                      help=f"of ${state.cap_usd:,.2f}; {state.describe_level()}")
    st.sidebar.progress(min(1.0, float(state.used_fraction)), text=f"{float(state.used_fraction):.1%} used")
    for warning in app.warnings():
        st.sidebar.warning(warning, icon="⚠️")


def usd(value: object, places: int = 2) -> str:
    return f"${float(value):,.{places}f}"  # type: ignore[arg-type]
