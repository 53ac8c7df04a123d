"""Entry point of the Sam Funnel cost console: `streamlit run app.py` (or `make run`)."""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="Sam Funnel cost console", page_icon="💸", layout="wide")

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/settings.py", title="Settings", icon="⚙️", url_path="settings"),
]

st.navigation(PAGES).run()
