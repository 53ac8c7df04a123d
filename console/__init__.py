"""The Streamlit console's shared code, beside `pages/`: the shell (`shell()` for app.py, `enter()` first in
every page, `PAGE_TABLE`), the engine handle (`get_app`), the shared sidebar, and formatting.

Why it exists: pages hold layout only; what they share (entry path, access gate, engine, sidebar, words)
lives here once. Every figure and decision comes from `core`. Prospect data and model output are shown with
`st.text`, `st.code` or dataframes, never as Markdown or HTML.
"""

from __future__ import annotations

from console.engine import get_app
from console.shell import PAGE_TABLE, enter, pages, shell
from console.text import batch_label, noun_for, plain, plural, readable
from console.widgets import provider_badge, provider_name, sidebar

__all__ = ["PAGE_TABLE", "batch_label", "enter", "get_app", "noun_for", "pages", "plain", "plural", "provider_badge",
           "provider_name", "readable", "shell", "sidebar"]
