"""Spend: the cost meeting's page. This month against the budget, where the money went, and what comes next.

Layout only: figures come from `core.costs.spend` (aggregated in SQL), the budget from `App`, the provider check from
`core.costs.reconcile` and the CSV from `core.messages.exports`. Model names and provider messages are shown
as plain text or escaped chart labels, never as Markdown.
"""

from __future__ import annotations

import asyncio
import calendar
import html
from datetime import date
from decimal import Decimal

import plotly.graph_objects as go
import streamlit as st

from console import enter, get_app, sidebar
from core.costs.money import md_usd, usd
from core.costs.reconcile import reconcile, settle_unreconciled
from core.costs.spend import (
    Breakdown,
    by_batch,
    by_model,
    by_task,
    daily_spend,
    month_totals,
    projection,
    refused_settlements,
    unreconciled,
)
from core.messages.exports import ledger_csv
from core.store.models import month_of, utcnow

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)

now = utcnow()
today = now.date()
month = month_of(now)
month_start = today.replace(day=1)
month_end = today.replace(day=calendar.monthrange(today.year, today.month)[1])


st.title("Spend")
st.caption(f"{month} (UTC calendar month). Every figure is summed from the usage ledger: one row per model call "
           "attempt, failures included.")

# Set by the budget form's callback, which runs before this rerun, so the figures below already use the new cap.
for kind, message in st.session_state.pop("spend_flash", []):
    (st.success if kind == "success" else st.warning)(message, icon="✅" if kind == "success" else "⚠️")

state = app.budget_state(month)
totals = month_totals(app, month)
spent, calls = totals.spent_usd, totals.calls
proj = projection(app, today, spent)
remaining = state.cap_usd - spent - state.reserved_usd
throttle_line = state.cap_usd * (1 - state.throttle_at)

row1 = st.columns(3)
row1[0].metric("Spent this month", usd(spent), help=f"{calls:,} calls, {totals.input_tokens:,} input and "
               f"{totals.output_tokens:,} output tokens")
row1[1].metric("Monthly budget", usd(state.cap_usd))
row1[2].metric("Reserved in flight", usd(state.reserved_usd),
               help="Worst-case cost held for calls that are running now; released when they settle.")
row2 = st.columns(3)
row2[0].metric("Remaining", usd(remaining), help="Budget minus spent minus reserved.")
row2[1].metric("Projected month-end", usd(proj.month_end_usd),
               help=f"95% band {md_usd(proj.month_end_low_usd)} – {md_usd(proj.month_end_high_usd)}, from the "
               f"mean daily spend over the last {proj.days_observed} day(s) and {proj.days_left} day(s) left.")
row2[2].metric("Projected year at this rate", usd(proj.annual_usd),
               help=f"Mean daily spend {md_usd(proj.daily_mean_usd)} × 365.")
st.caption(f"Projected month-end band (95%): {md_usd(proj.month_end_low_usd)} to "
           f"{md_usd(proj.month_end_high_usd)}.")
cap_info = app.cap_info(month)
if cap_info.env_applies or cap_info.cap_usd == cap_info.env_usd:
    st.caption(cap_info.message.replace("$", "\\$"))
else:
    st.info(cap_info.message.replace("$", "\\$"), icon="ℹ️")

open_booked = unreconciled(app)
open_calls, open_usd = open_booked.calls, open_booked.booked_usd
refused_calls = refused_settlements(app, month)
refused, refused_usd = refused_calls.calls, refused_calls.booked_usd
row3 = st.columns(2)
row3[0].metric("Unreconciled calls", f"{open_calls:,}", help=f"Booked at their hold: {md_usd(open_usd)}. Calls "
               "that timed out after they were sent may still be billed; each stays booked at its worst case until "
               "Reconcile with provider asks what it cost.")
row3[1].metric("Refused provider figures", f"{refused:,}", help=f"Booked at their hold: {md_usd(refused_usd)}.")
if open_calls:
    st.warning(f"{open_calls:,} call(s) timed out after they were sent and may have been billed: booked at their "
               f"hold, {md_usd(open_usd)} in all, until reconciled (button below).", icon="⏳")
if refused:
    st.warning(f"{refused:,} call(s) this month came back with usage figures that cannot be right (negative, "
               f"missing or far above the worst case). Each is booked at its hold, {md_usd(refused_usd)} in all; "
               "the provider's raw figures are in the table and the ledger CSV.", icon="🧾")
    st.dataframe([{"when": r.when, "task": r.task, "model": r.model, "booked": usd(r.booked_usd),
                   "request_id": r.request_id, "why": r.why} for r in refused_calls.latest],
                 hide_index=True, width="stretch")  # provider text shown as plain cells

st.subheader("Budget ladder")
level_text = state.describe_level()
if state.throttled:
    st.warning(level_text, icon="🚦")
else:
    st.success(level_text, icon="🟢")
for alert in state.alerts:
    st.warning(alert, icon="⚠️")


def _label(key: str, empty: str) -> str:
    # Plotly reads a few HTML tags in labels; escaping keeps a provider-chosen model name as plain text.
    return html.escape(key) if key else empty


def _cumulative_chart(series: list[tuple[date, Decimal]], zoom: bool) -> go.Figure:
    days = [d for d, _ in series]
    running: list[float] = []
    total = Decimal(0)
    for _, value in series:
        total += value
        running.append(float(total))
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=days, y=running, mode="lines+markers", name="Spent (cumulative)"))
    if month_end > today:
        ends = [today, month_end]
        start = float(spent)
        fig.add_trace(go.Scatter(x=ends, y=[start, float(proj.month_end_high_usd)], mode="lines",
                                 line={"width": 0}, showlegend=False, hoverinfo="skip"))
        fig.add_trace(go.Scatter(x=ends, y=[start, float(proj.month_end_low_usd)], mode="lines", line={"width": 0},
                                 fill="tonexty", fillcolor="rgba(99,110,250,0.15)", name="95% band"))
        fig.add_trace(go.Scatter(x=ends, y=[start, float(proj.month_end_usd)], mode="lines",
                                 line={"dash": "dash"}, name="Projection"))
    if not zoom:
        fig.add_hline(y=float(state.cap_usd), line_color="crimson", annotation_text="Budget")
        fig.add_hline(y=float(throttle_line), line_color="orange", line_dash="dot",
                      annotation_text=f"Throttle ({int(state.throttle_at * 100)}% left)")
    fig.update_layout(xaxis_title="Day (UTC)", yaxis_title="USD", xaxis_range=[month_start, month_end],
                      margin={"t": 30}, legend={"orientation": "h"})
    return fig


def _bars(rows: list[Breakdown], empty: str, title: str) -> None:
    labels = [_label(b.key, empty) for b in rows]
    cost = go.Figure(go.Bar(x=labels, y=[float(b.cost_usd) for b in rows], name="USD"))
    cost.update_layout(title=f"Spend by {title}", yaxis_title="USD", margin={"t": 40})
    tokens = go.Figure([
        go.Bar(x=labels, y=[b.input_tokens for b in rows], name="input"),
        go.Bar(x=labels, y=[b.output_tokens for b in rows], name="output"),
    ])
    tokens.update_layout(title=f"Tokens by {title}", barmode="stack", yaxis_title="tokens", margin={"t": 40})
    left, right = st.columns(2)
    left.plotly_chart(cost, width="stretch")
    right.plotly_chart(tokens, width="stretch")
    st.dataframe(
        [{title: b.key or empty, "calls": b.calls, "input tokens": b.input_tokens, "output tokens": b.output_tokens,
          "cost": usd(b.cost_usd)} for b in rows],
        hide_index=True, width="stretch",
    )


st.subheader("This month, day by day")
if calls == 0:
    st.info(f"No model calls are recorded for {month} yet. Spend, charts and breakdowns appear here after the "
            "first personalization, review or batch.", icon="📭")
else:
    zoom = st.toggle("Zoom to spend (hide the budget and throttle lines)", value=False, key="spend_zoom")
    st.plotly_chart(_cumulative_chart(daily_spend(app, month_start, today), zoom), width="stretch")
    st.caption(f"Budget {md_usd(state.cap_usd)}; throttle line at {md_usd(throttle_line)} (premium review "
               f"narrows when {int(state.throttle_at * 100)}% or less is left). Dashed: projection to "
               f"{month_end.isoformat()}.")

    st.subheader("Where the money went")
    tab_model, tab_task, tab_batch = st.tabs(["By model", "By task", "By batch"])
    with tab_model:
        _bars(by_model(app, month), "(no answer)", "model")
    with tab_task:
        _bars(by_task(app, month), "(none)", "task")
    with tab_batch:
        _bars(by_batch(app, month), "(interactive)", "batch")

st.subheader("Budget")


def _apply_cap() -> None:
    raw = st.session_state.get("spend_new_cap")
    amount = Decimal(str(raw)).quantize(Decimal("0.01"))
    before = app.budget_cap()
    try:
        app.set_budget_cap(amount)
    except ValueError as exc:
        st.session_state["spend_flash"] = [("warning", f"The budget was not changed: {exc}.")]
        return
    messages = [("success", f"The {month} budget is now {md_usd(amount)} (was {md_usd(before)}).")]
    after = app.budget_state(month)
    if after.throttled:
        messages.append(("warning", f"At this budget the ladder is throttled. {after.describe_level()}"))
    st.session_state["spend_flash"] = messages


with st.form("spend_budget_form", border=False):
    st.number_input("New monthly budget (USD)", min_value=0.0, value=float(state.cap_usd), step=100.0,
                    format="%.2f", key="spend_new_cap",
                    help="Applies to this month from now on and is kept for the month even if MONTHLY_BUDGET_USD "
                    "changes (that value applies from the next month); reservations already held stay held.")
    st.form_submit_button("Set the budget", on_click=_apply_cap, key="spend_set_cap")

st.subheader("Reconcile with the provider")
st.caption("Settles calls that timed out after they were sent (GET /generation, else the /key usage), then compares "
           "this month's ledger total with the provider's own usage figure (usage_monthly from GET /key).")


def _settle_open_calls() -> None:
    # A callback runs before the rerun, so the figures at the top of the page already count the settled calls.
    st.session_state["spend_settled"] = asyncio.run(settle_unreconciled(app))


if st.button("Reconcile with provider", key="spend_reconcile", on_click=_settle_open_calls):
    settled = st.session_state.pop("spend_settled")
    with st.spinner("Asking the provider…"):
        check = asyncio.run(reconcile(app))
    if settled.open_before:
        st.text(f"Unreconciled calls: {settled.open_before} open, {settled.by_generation} settled by the generation "
                f"lookup, {settled.by_key} from /key, {settled.open_after} still open; booked spend changed by "
                f"{usd(settled.change_usd)}.")
        for note in settled.notes or []:
            st.text(note)
    cols = st.columns(3)
    cols[0].metric("Ledger", usd(check.ledger_usd))
    cols[1].metric("Provider", "not available" if check.provider_usd is None else usd(check.provider_usd))
    diff = check.difference_usd
    cols[2].metric("Difference (provider − ledger)", "—" if diff is None else usd(diff))
    st.text(check.note)  # may quote a provider error message: plain text only

st.subheader("Export")
if calls == 0:
    st.caption("The ledger CSV becomes available after the first model call of the month.")
else:
    st.download_button(
        f"Download the {month} ledger (CSV)",
        data=lambda: ledger_csv(app, month),
        file_name=f"usage-ledger-{month}.csv",
        mime="text/csv",
        on_click="ignore",
        help="One row per call attempt. Cells that a spreadsheet would run as formulas start with an apostrophe.",
    )

st.caption(f"Figures as of {now.strftime('%Y-%m-%d %H:%M')} UTC.")
