"""Entry point of the Sam Funnel cost console: `streamlit run app.py` (or `make run`)."""

from __future__ import annotations

import streamlit as st

from console import gate

st.set_page_config(page_title="Sam Funnel cost console", page_icon="💸", layout="wide")
gate()

PAGES = [
    st.Page("pages/home.py", title="Home", icon="🏠", default=True),
    st.Page("pages/preview.py", title="Preview", icon="🔍", url_path="preview"),
    st.Page("pages/batches.py", title="Batches", icon="📦", url_path="batches"),
    st.Page("pages/review.py", title="Review", icon="✅", url_path="review"),
    st.Page("pages/experiments.py", title="Experiments", icon="🧪", url_path="experiments"),
    st.Page("pages/replies.py", title="Replies", icon="💬", url_path="replies"),
    st.Page("pages/spend.py", title="Spend", icon="📈", url_path="spend"),
    st.Page("pages/scenarios.py", title="Scenarios", icon="🧮", url_path="scenarios"),
    st.Page("pages/settings.py", title="Settings", icon="⚙️", url_path="settings"),
]

st.navigation(PAGES).run()
