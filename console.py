"""Shared pieces of the Streamlit console: the engine handle, the sidebar, and safe text display.

Layout only: every figure and decision comes from `core`. Prospect data and model output are shown with
`st.text`, `st.code` or dataframes, never as Markdown or HTML.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from typing import Any

import streamlit as st

from core.access import access_mode, allowed_emails, email_allowed, password_hash, verify_password
from core.app import App, open_app
from core.config import ConfigError, Settings, load_settings
from core.worker import WorkerSupervisor


def _all_secrets() -> dict[str, Any]:
    try:
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in st.secrets.items()}
    except Exception:  # no secrets.toml, or a malformed one: the configuration errors say the rest
        return {}


def _secrets() -> dict[str, Any]:
    """Top-level secrets (settings like OPENROUTER_API_KEY); sections such as [auth] are not settings."""
    return {k: v for k, v in _all_secrets().items() if not isinstance(v, Mapping)}


def gate() -> None:
    """Access control before any page: OIDC login with an allow-list, else a password, else an open banner."""
    secrets_map = _all_secrets()
    mode = access_mode(secrets_map, os.environ)
    if mode == "oidc":
        if not st.user.is_logged_in:
            st.title("Sam Funnel cost console")
            st.text("Sign in to continue.")
            st.button("Log in", on_click=st.login, type="primary")
            st.stop()
        access = secrets_map.get("access") or {}
        allow = allowed_emails(access.get("allowed_emails") or os.environ.get("CONSOLE_ALLOWED_EMAILS", ""))
        email = str(st.user.get("email") or "")
        if not email_allowed(email, allow):
            st.error("This account is not on the console's allow-list. Ask an administrator to add it.")
            st.button("Log out", on_click=st.logout)
            st.stop()
        st.sidebar.text(f"Signed in as {email}")
        st.sidebar.button("Log out", on_click=st.logout)
    elif mode == "password":
        if not st.session_state.get("console_unlocked"):
            st.title("Sam Funnel cost console")
            with st.form("unlock"):
                password = st.text_input("Password", type="password")
                entered = st.form_submit_button("Enter", type="primary")
            if entered:
                if verify_password(password, password_hash(secrets_map, os.environ)):
                    st.session_state["console_unlocked"] = True
                    st.rerun()
                time.sleep(1)  # slow down guessing
                st.error("Wrong password.")
            st.stop()
    else:
        st.sidebar.warning("Open console: anyone who can reach this address can use it. Configure a login or a "
                           "password (see the README, Access control).", icon="🔓")


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
