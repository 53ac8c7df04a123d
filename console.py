"""Shared pieces of the Streamlit console: the shell (layout, navigation, access gate), the engine handle, the
sidebar, and safe text display.

Layout only: every figure and decision comes from `core`. Prospect data and model output are shown with
`st.text`, `st.code` or dataframes, never as Markdown or HTML.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit import runtime
from streamlit.runtime.scriptrunner import get_script_run_ctx

from core.access import (
    CLIENT_COOKIE,
    UNLOCKED,
    access_mode,
    allowed_emails,
    email_allowed,
    password_hash,
    verify_password,
)
from core.app import App
from core.batches.worker import WorkerSupervisor
from core.config import ConfigError, Settings, load_settings
from core.demo import open_demo_app


def _all_secrets() -> dict[str, Any]:
    try:
        return {k: (dict(v) if isinstance(v, Mapping) else v) for k, v in st.secrets.items()}
    except Exception:  # no secrets.toml, or a malformed one: the configuration errors say the rest
        return {}


def _secrets() -> dict[str, Any]:
    """Top-level secrets (settings like OPENROUTER_API_KEY); sections such as [auth] are not settings."""
    return {k: v for k, v in _all_secrets().items() if not isinstance(v, Mapping)}


# The console's pages: file, title, icon, URL path (None: from the file name). The first is the default page,
# served at "/". One list for every entry path, so the navigation is the same whichever address is opened first.
PAGE_TABLE: tuple[tuple[str, str, str, str | None], ...] = (
    ("pages/home.py", "Home", "🏠", None),
    ("pages/preview.py", "Preview", "🔍", "preview"),
    ("pages/batches.py", "Batches", "📦", "batches"),
    ("pages/review.py", "Review", "✅", "review"),
    ("pages/experiments.py", "Experiments", "🧪", "experiments"),
    ("pages/replies.py", "Replies", "💬", "replies"),
    ("pages/spend.py", "Spend", "📈", "spend"),
    ("pages/scenarios.py", "Scenarios", "🧮", "scenarios"),
    ("pages/settings.py", "Settings", "⚙️", "settings"),
)
_ROOT = Path(__file__).resolve().parent
_IN_SHELL: ContextVar[bool] = ContextVar("sam_console_in_shell", default=False)


def pages() -> list[st.Page]:
    """The navigation, built on each run (an st.Page needs the run's context); absolute paths, so the same list
    works when the run started at app.py and when Streamlit started it at a file in pages/."""
    return [st.Page(_ROOT / path, title=title, icon=icon, url_path=url_path, default=i == 0)
            for i, (path, title, icon, url_path) in enumerate(PAGE_TABLE)]


@dataclass(frozen=True)
class _Decision:
    mode: str
    granted: bool
    email: str = ""


def _decide(secrets_map: Mapping[str, Any]) -> _Decision:
    mode = access_mode(secrets_map, os.environ)
    if mode == "oidc":
        if not st.user.is_logged_in:
            return _Decision(mode, False)
        access = secrets_map.get("access") or {}
        allow = allowed_emails(access.get("allowed_emails") or os.environ.get("CONSOLE_ALLOWED_EMAILS", ""))
        email = str(st.user.get("email") or "")
        return _Decision(mode, email_allowed(email, allow), email)
    if mode == "password":
        return _Decision(mode, bool(st.session_state.get("console_unlocked")))
    return _Decision(mode, True)


def _remember(granted: bool) -> None:
    """Tell the HTTP layer (serve.py) whether this browser session may upload and download."""
    ctx = get_script_run_ctx()
    if ctx is None:
        return
    if granted:
        UNLOCKED.grant(ctx.session_id, st.context.cookies.get(CLIENT_COOKIE))
        if len(UNLOCKED) > 256 and runtime.exists():
            UNLOCKED.prune(runtime.get_instance().is_active_session)
    else:
        UNLOCKED.revoke(ctx.session_id)


def _gate(decision: _Decision, secrets_map: Mapping[str, Any]) -> None:
    """Access control before any page: OIDC login with an allow-list, else a password, else an open banner."""
    _remember(decision.granted)
    if decision.mode == "oidc":
        if not st.user.is_logged_in:
            st.title("Sam Funnel cost console")
            st.text("Sign in to continue.")
            st.button("Log in", on_click=st.login, type="primary")
            st.stop()
        if not decision.granted:
            st.error("This account is not on the console's allow-list. Ask an administrator to add it.")
            st.button("Log out", on_click=st.logout)
            st.stop()
        st.sidebar.text(f"Signed in as {decision.email}")
        st.sidebar.button("Log out", on_click=st.logout)
    elif decision.mode == "password":
        if not decision.granted:
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


def _frame() -> st.Page:
    """Layout, navigation, gate: the same on every run, whichever file Streamlit started the run at.

    `st.navigation` comes before the gate so that every run registers it, even one the gate stops: the first
    registration switches Streamlit off its `pages/` fallback (which runs a page file without app.py). Until
    unlocked, the navigation is hidden; it still knows every page, so the address asked for is kept.
    """
    st.set_page_config(page_title="Sam Funnel cost console", page_icon="💸", layout="wide")
    secrets_map = _all_secrets()
    decision = _decide(secrets_map)
    page = st.navigation(pages(), position="sidebar" if decision.granted else "hidden")
    _gate(decision, secrets_map)
    return page


def shell() -> None:
    """The whole of app.py: the frame, then the page the navigation chose."""
    page = _frame()
    token = _IN_SHELL.set(True)
    try:
        page.run()
    finally:
        _IN_SHELL.reset(token)


def enter() -> None:
    """The first statement of every page file, before it draws anything.

    Run from the shell, it does nothing. Run directly (Streamlit does so for a page address on a server where
    no session has called `st.navigation` yet, and tests do so), it draws the same frame, stopping at the gate
    until the session unlocks; then the page's own code goes on, inside the same layout and sidebar.
    """
    if _IN_SHELL.get():
        return
    _frame()


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
