"""The console's handle on the engine: one `App` (and one in-process batch worker) per console process.

Why it exists: every page needs the engine, opened once from the settings and kept across script runs
(`st.cache_resource`); a wrong setting must stop the page with a message saying what to fix, not a traceback.
"""

from __future__ import annotations

import os

import streamlit as st

from console.shell import setting_secrets
from core.app import App
from core.batches.worker import WorkerSupervisor
from core.config import ConfigError, Settings, load_settings
from core.demo import open_demo_app


@st.cache_resource(show_spinner="Starting the engine…")
def _open(key: str, _settings: Settings) -> App:
    app = open_demo_app(_settings)
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
        settings = load_settings(secrets=setting_secrets())
        return _open(repr(settings), settings)
    except ConfigError as exc:
        st.error(f"Configuration error: {exc}")
        st.caption("Fix the variable (environment or .streamlit/secrets.toml) and restart the console.")
        st.stop()
        raise
