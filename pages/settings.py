"""Settings: configuration (key presence only), the routing table, and the price book with sources."""

from __future__ import annotations

import streamlit as st

from console import enter, get_app, plain, sidebar
from core.costs.prices import retirement_notes
from core.store.models import utcnow

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
today = utcnow().date()

st.title("Settings")

st.subheader("Configuration")
st.caption("From the environment or .streamlit/secrets.toml. Keys are shown as set / not set, never their value.")
st.dataframe(app.settings.describe(), hide_index=True, width="stretch")

st.subheader("Routing table")
st.caption("data/routing.json: which model serves each task. Retired models are skipped for their fallbacks.")
st.dataframe([{"task": r.task, "model": r.model, "configured": r.configured_model, "fallbacks": ", ".join(r.fallbacks),
               "max_tokens": str(r.max_tokens), "temperature": str(r.temperature)} for r in app.routing.routes(today)],
             hide_index=True, width="stretch")

st.subheader("Price book")
st.caption("USD per million tokens. Provider-reported usage.cost is what the ledger records; these prices are "
           "for estimates, reservations and forecasts.")
models = app.routing.models()
warnings = retirement_notes(models, today, app.settings.data_dir)
st.dataframe([{**r.as_json(), "retirement": warnings.get(r.model, "")} for r in app.price_book().rows(models)],
             hide_index=True, width="stretch")
for w in warnings.values():
    st.warning(plain(w), icon="⚠️")
