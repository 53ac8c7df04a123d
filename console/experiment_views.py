"""Layout pieces the three experiment pages share (results, new experiment, variants): the flash of the last
action, a plain-text error, percentages and p-values, the cost estimate of variant generation.

Layout only, and never Markdown for names or model text: details go through `st.text`. Kept in the
`console` package so that every file in `pages/` stays a page of the navigation.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from core.costs.money import usd
from core.experiments.variants import BulkEstimate

FLASH_KEY = "exp_flash"
_PAGES = Path(__file__).resolve().parent.parent / "pages"


def link(page_file: str, label: str, icon: str) -> None:
    """A link to another page of the console by its file in pages/ (absolute, so it resolves whichever file
    Streamlit started the run at)."""
    st.page_link(str(_PAGES / page_file), label=label, icon=icon)


def flash(kind: str, title: str, detail: str = "") -> None:
    """Remember a message for the next run of whichever experiment page shows it."""
    st.session_state[FLASH_KEY] = [(kind, title, detail)]


def show_flash() -> None:
    for kind, title, detail in st.session_state.pop(FLASH_KEY, []):
        (st.success if kind == "success" else st.warning)(title, icon="✅" if kind == "success" else "⚠️")
        if detail:
            st.text(detail)


def problem(title: str, detail: str) -> None:
    """An error whose detail may quote names or file cells: the detail is plain text."""
    st.error(title, icon="🚫")
    st.text(detail)


def pct(value: float | None, places: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{places}f}%"


def pval(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


def show_estimate(estimate: BulkEstimate) -> None:
    e1, e2, e3 = st.columns(3)
    e1.metric("Model calls", f"{len(estimate.templates):,}")
    e2.metric("Typical cost", usd(estimate.typical_usd), help="Prompt plus variants as long as the template.")
    e3.metric("At most", usd(estimate.worst_case_usd),
              help="Every allowed output token at the dearest routed model: what the budget reserves.")
