"""Widgets every page shares: the sidebar with the provider badge, the budget left and the engine's warnings.

Why it exists: each page draws the same sidebar; drawn once here, it says the same thing on every page.
Figures come from `core` (the budget state, the settings); this module only lays them out.
"""

from __future__ import annotations

import streamlit as st

from console.text import plain
from core.app import App
from core.costs.money import md_usd, usd


def provider_name(app: App) -> str:
    """The active provider in words: "Simulator", "OpenRouter (live, billed)", "OpenAI-compatible server at …"."""
    s = app.settings
    if s.is_simulated:
        return "Simulator"
    if s.llm_provider == "openrouter":
        return "OpenRouter (live, billed)"
    return f"OpenAI-compatible server at {s.base_url}"


def provider_badge(app: App) -> None:
    """Which provider answers: the simulator, OpenRouter (billed), or a local OpenAI-compatible server."""
    s = app.settings
    if s.is_simulated:
        st.sidebar.info("Simulator: no model is called", icon="🧪")
    else:
        st.sidebar.success(f"Provider: {plain(provider_name(app))}",
                           icon="🌐" if s.llm_provider == "openrouter" else "🖥️")


def sidebar(app: App) -> None:
    """The provider badge, this month's budget left and used, and the engine's warnings."""
    provider_badge(app)
    state = app.budget_state()
    st.sidebar.metric("Budget left this month", usd(state.remaining_usd),
                      help=f"of {md_usd(state.cap_usd)}; {state.describe_level()}")
    st.sidebar.progress(min(1.0, float(state.used_fraction)), text=f"{float(state.used_fraction):.1%} used")
    for warning in app.warnings():
        st.sidebar.warning(plain(warning), icon="⚠️")
