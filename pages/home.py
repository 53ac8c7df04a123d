"""Home: which provider and database are in use, this month's spend against budget, and warnings."""

from __future__ import annotations

import streamlit as st

from console import enter, get_app, noun_for, plain, plural, provider_name, sidebar
from core.costs.money import usd
from core.costs.spend import summary
from core.logs import scrub
from core.people.prospects import count_prospects

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)

st.title("Sam Funnel cost console")
st.caption("Personalize LinkedIn outreach with cheap models, review the valuable ones, and keep the bill in view.")

if app.settings.is_simulated:
    st.info("Simulator: no model is called. Answers are generated offline and priced with the price book.", icon="🧪")

figures = summary(app)
cols = st.columns(4)
cols[0].metric("Spent this month", usd(figures.spent_usd), help="From the usage ledger")
cols[1].metric("Monthly budget", usd(figures.budget_usd))
cols[2].metric("Remaining", usd(figures.remaining_usd),
               help=f"Reserved in flight: {usd(figures.reserved_usd)}")
cols[3].metric("Model calls", f"{figures.totals.calls:,}")

state = app.budget_state()
st.progress(min(1.0, float(state.used_fraction)), text=f"{float(state.used_fraction):.1%} of the budget used — "
            f"{state.describe_level()}")

warnings = app.warnings()
if figures.unreconciled.calls:
    open_calls = figures.unreconciled.calls
    warnings.append(f"{plural(open_calls, 'call')} timed out after {noun_for(open_calls, 'it was', 'they were')} "
                    f"sent: booked at {noun_for(open_calls, 'its', 'their')} hold "
                    f"({usd(figures.unreconciled.booked_usd)}) until reconciled on the Spend page.")
if figures.refused.calls:
    refused = figures.refused.calls
    warnings.append(f"{plural(refused, 'call')} this month had provider usage figures that were refused and "
                    f"booked at {noun_for(refused, 'its', 'their')} hold: see the Spend page.")
cap_info = app.cap_info()
if not cap_info.env_applies and cap_info.cap_usd != cap_info.env_usd:
    warnings.append(cap_info.message)
if warnings:
    st.subheader("Warnings")
    for w in warnings:
        st.warning(plain(w), icon="⚠️")

st.subheader("This console")
st.dataframe(
    [
        {"what": "Provider", "value": provider_name(app)},
        {"what": "Database", "value": scrub(app.settings.database_url)},
        {"what": "Prospects stored", "value": f"{count_prospects(app):,}"},
        {"what": "Projected month-end", "value": usd(figures.projection.month_end_usd)},
        {"what": "Projected year at this rate", "value": usd(figures.projection.annual_usd)},
    ],
    hide_index=True,
    width="stretch",
)
