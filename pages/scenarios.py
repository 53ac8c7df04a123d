"""Scenarios: the original cost plan's cost figures recomputed, and "what does a year cost at this volume?".

Layout only: every figure comes from `core.costs.original_plan`, `core.costs.planner` and
`core.costs.scenarios`. Scenario names are typed by users, so they are shown in dataframes, widgets and
`st.text`, never in Markdown.
"""

from __future__ import annotations

from dataclasses import asdict
from decimal import Decimal

import plotly.graph_objects as go
import streamlit as st

from console import enter, get_app, plain, sidebar
from core.costs.money import md_usd, usd
from core.costs.original_plan import (
    DEFAULT_INPUT_SHARE,
    QUALITY_REVIEW,
    TASK_LABELS,
    TASKS,
    all_premium_comparison,
    hybrid_headlines,
    hybrid_table,
    primary_table_claims,
    split_bounds,
    unit_slip_check,
)
from core.costs.planner import (
    DEFAULT_SENSITIVITY_RATES,
    ScenarioInput,
    TaskPlan,
    annual_cost,
    default_scenario,
    review_rate_sensitivity,
    routed_models,
)
from core.costs.prices import seed_book
from core.costs.scenarios import book_for, compare, delete_scenario, list_scenarios, load_scenario, save_scenario
from core.store.models import utcnow

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
today = utcnow().date()

BOOK_LABELS = {"seed": "The original cost plan's own rates", "current": "Current prices"}


def _ratio(value: Decimal | None) -> str:
    return "n/a" if value is None else f"{value:,.0f}x"


def _failed(what: str, exc: Exception) -> None:
    st.error(what, icon="⛔")
    st.text(str(exc))


def _put_in_state(scenario: ScenarioInput) -> None:
    st.session_state["sc_messages"] = scenario.messages_per_month
    st.session_state["sc_templates"] = scenario.template_calls_per_month
    st.session_state["sc_rate_pct"] = float(scenario.review_rate * 100)
    st.session_state["sc_book"] = scenario.book
    for task in TASKS:
        plan = scenario.tasks[task]
        st.session_state[f"sc_model_{task}"] = plan.model
        st.session_state[f"sc_in_{task}"] = plan.input_tokens
        st.session_state[f"sc_out_{task}"] = plan.output_tokens


def _load_saved() -> None:
    name = st.session_state.get("sc_pick")
    if not name:
        return
    try:
        _put_in_state(load_scenario(app, name))
        st.session_state["sc_flash"] = ("ok", "Scenario loaded into the planner.", name)
    except ValueError as exc:
        st.session_state["sc_flash"] = ("error", "Could not load the scenario.", str(exc))


def _delete_saved() -> None:
    name = st.session_state.get("sc_pick")
    if not name:
        return
    try:
        delete_scenario(app, name)
        st.session_state["sc_compare"] = [n for n in st.session_state.get("sc_compare", []) if n != name]
        st.session_state["sc_flash"] = ("ok", "Scenario deleted.", name)
    except ValueError as exc:
        st.session_state["sc_flash"] = ("error", "Could not delete the scenario.", str(exc))


if "sc_messages" not in st.session_state:
    _put_in_state(default_scenario(routed_models(app.routing, today)))

st.title("Scenarios")
st.caption("Are the original cost plan's figures right, and what does a year of outreach cost at a given volume?")

# ---------------------------------------------------------------------------------------------------------
st.header("The original cost plan's figures, recomputed")
hybrid_book_name = st.radio("Price book", ["seed", "current"], format_func=BOOK_LABELS.__getitem__,
                            horizontal=True, key="sc_hybrid_book")
hybrid_book = book_for(app, hybrid_book_name)

with st.expander("Assumption: input / output split of the original cost plan's token totals"):
    st.caption("The original cost plan gives total tokens per task, not how many are prompt (input) and how many are "
               "completion (output). Choose the share of input tokens per task.")
    share_cols = st.columns(len(TASKS))
    shares: dict[str, Decimal] = {}
    for col, task in zip(share_cols, TASKS, strict=True):
        pct = col.slider(f"{TASK_LABELS[task]}: input %", 0, 100, int(DEFAULT_INPUT_SHARE[task] * 100),
                         step=5, key=f"sc_share_{task}")
        shares[task] = Decimal(pct) / 100

table = hybrid_table(hybrid_book, shares)
rows = [
    {
        "task": r.task,
        "model": r.model,
        "tokens per year": f"{r.tokens:,}",
        "computed": usd(r.computed_usd),
        "claimed in the original cost plan": usd(r.claimed_usd),
        "claimed ÷ computed": _ratio(r.ratio),
    }
    for r in table.rows
]
rows.append({"task": "Total", "model": "", "tokens per year": f"{table.total_tokens:,}",
             "computed": usd(table.total_computed_usd),
             "claimed in the original cost plan": usd(table.total_claimed_usd),
             "claimed ÷ computed": _ratio(table.ratio)})
st.dataframe(rows, hide_index=True, width="stretch")
for sentence in hybrid_headlines(table):
    st.caption(plain(sentence))

total_bounds = split_bounds(hybrid_book)[-1]
st.caption(
    f"For any input/output split the computed total lies between {md_usd(total_bounds.low_usd)} and "
    f"{md_usd(total_bounds.high_usd)}, so the plan's {md_usd(total_bounds.claimed_usd)} is at least "
    f"{_ratio(total_bounds.min_ratio)} too high whatever the split."
)

premium = all_premium_comparison(hybrid_book, input_share=shares)
st.subheader("All-premium vs hybrid")
pcols = st.columns(3)
pcols[0].metric("All-premium, computed", usd(premium.all_premium_computed_usd),
                help=f"All {premium.tokens:,} tokens on {premium.premium_model}")
pcols[0].caption(f"The original cost plan claims {md_usd(premium.all_premium_claimed_usd)}.")
pcols[1].metric("Hybrid, computed", usd(premium.hybrid_computed_usd))
pcols[1].caption(f"The original cost plan claims {md_usd(premium.hybrid_claimed_usd)}.")
pcols[2].metric("Reduction, computed", f"{premium.reduction_computed_pct}%")
pcols[2].caption(f"The original cost plan claims {premium.reduction_claimed_pct}% "
                 f"(its own figures give {premium.reduction_implied_by_claims_pct}%).")

st.subheader("The original cost plan's per-model annual costs")
st.caption("The original cost plan's primary-models table gives an annual cost per model but no volume, so these "
           "claims cannot be recomputed. The last columns show the yearly volume each claim would imply at the "
           "selected book's rates.")
st.dataframe(
    [
        {
            "model": r.model,
            "use case": r.use_case,
            "claimed per year": usd(r.claimed_annual_usd),
            "volume in the plan": "none given",
            "computed": "not computable",
            "implied tokens per year (low)": f"{r.implied_tokens_low:,}" if r.implied_tokens_low else "",
            "implied tokens per year (high)": f"{r.implied_tokens_high:,}" if r.implied_tokens_high else "",
        }
        for r in primary_table_claims(hybrid_book)
    ],
    hide_index=True,
    width="stretch",
)
slips = unit_slip_check(seed_book(app.settings.data_dir))
explained = [s.task for s in slips if s.matches]
if explained:
    st.caption(plain(
        f"Where the claims come from: {' and '.join(explained)} equal tokens × (input rate + output rate) with "
        "the per-1K rate charged per token, a 1,000x unit slip plus a 2x double count."
    ))

# ---------------------------------------------------------------------------------------------------------
st.header("What does a year cost?")
st.caption("Monthly volumes and tokens per call; the premium reviewer sees a share of the personalized messages. "
           "Defaults follow the original cost plan's volumes (about 55M tokens a year) with the models routed today.")

plan_book = st.radio("Price book for the plan", ["current", "seed"], format_func=BOOK_LABELS.__getitem__,
                     horizontal=True, key="sc_book")
vcols = st.columns(3)
messages = vcols[0].number_input("Personalized messages per month", min_value=0, step=500, key="sc_messages")
templates = vcols[1].number_input("Template generations per month", min_value=0, step=100, key="sc_templates")
rate_pct = vcols[2].slider("Premium review rate (% of messages)", 0.0, 100.0, step=0.5, format="%.1f%%",
                           key="sc_rate_pct")

models = app.routing.models()
tasks: dict[str, TaskPlan] = {}
for task in TASKS:
    chosen = st.session_state.get(f"sc_model_{task}")
    options = models + ([chosen] if chosen and chosen not in models else [])
    tcols = st.columns([2, 1, 1])
    model = tcols[0].selectbox(f"{TASK_LABELS[task]}: model", options, key=f"sc_model_{task}")
    tokens_in = tcols[1].number_input("input tokens per call", min_value=0, step=25, key=f"sc_in_{task}")
    tokens_out = tcols[2].number_input("output tokens per call", min_value=0, step=25, key=f"sc_out_{task}")
    tasks[task] = TaskPlan(str(model), int(tokens_in), int(tokens_out))

try:
    scenario = ScenarioInput(
        messages_per_month=int(messages),
        template_calls_per_month=int(templates),
        review_rate=Decimal(str(rate_pct)) / 100,
        tasks=tasks,
        book=str(plan_book),
    )
    plan_prices = book_for(app, scenario.book)
    result = annual_cost(scenario, plan_prices)
except ValueError as exc:
    _failed("This scenario cannot be priced.", exc)
    st.stop()

mcols = st.columns(3)
mcols[0].metric("Annual total", usd(result.annual_usd), help=f"Priced with the {result.book} book")
mcols[1].metric("Per month", usd(result.monthly_usd))
mcols[2].metric("Tokens per year", f"{result.annual_tokens:,.0f}")


def _plain(value: Decimal) -> str:
    return f"{value:,.2f}".rstrip("0").rstrip(".")


st.dataframe(
    [
        {
            "task": r.task,
            "model": r.model,
            "calls per month": _plain(r.calls_per_month),
            "tokens per year": f"{r.tokens_per_year:,.0f}",
            "cost per call": "" if r.cost_per_call_usd is None else usd(r.cost_per_call_usd),
            "per month": usd(r.monthly_usd),
            "per year": usd(r.annual_usd),
            "price source": r.price_source,
        }
        for r in result.rows()
    ],
    hide_index=True,
    width="stretch",
)

st.subheader("The review rate drives the bill")
rates = sorted({*DEFAULT_SENSITIVITY_RATES, scenario.review_rate})
sensitivity = review_rate_sensitivity(scenario, plan_prices, rates)
labels = [f"{float(r.review_rate) * 100:g}%" for r in sensitivity]
figure = go.Figure(
    data=[
        go.Bar(name="Everything else", x=labels, y=[float(r.other_annual_usd) for r in sensitivity]),
        go.Bar(name=f"Premium review ({TASK_LABELS[QUALITY_REVIEW].lower()})", x=labels,
               y=[float(r.review_annual_usd) for r in sensitivity]),
    ]
)
figure.update_layout(barmode="stack", xaxis_title="Share of messages reviewed", yaxis_title="USD per year",
                     yaxis_tickprefix="$", legend_orientation="h", margin={"t": 30})
st.plotly_chart(figure, width="stretch")
st.dataframe(
    [
        {
            "review rate": label,
            "reviews per month": _plain(r.reviews_per_month),
            "review per year": usd(r.review_annual_usd),
            "everything else per year": usd(r.other_annual_usd),
            "total per year": usd(r.total_annual_usd),
            "review share of the bill": f"{float(r.review_share):.1%}",
        }
        for label, r in zip(labels, sensitivity, strict=True)
    ],
    hide_index=True,
    width="stretch",
)

# ---------------------------------------------------------------------------------------------------------
st.subheader("Save and compare")
flash = st.session_state.pop("sc_flash", None)
if flash:
    kind, message, detail = flash
    (st.success if kind == "ok" else st.error)(message)
    st.text(detail)

scols = st.columns([3, 1])
name = scols[0].text_input("Scenario name", max_chars=80, key="sc_name", placeholder="e.g. Q1 plan, 5% review")
if scols[1].button("Save scenario", key="sc_save"):
    try:
        stored = save_scenario(app, name, scenario)
        st.success("Scenario saved.")
        st.text(f"Saved as: {stored}")
    except ValueError as exc:
        _failed("Not saved.", exc)

saved = list_scenarios(app)
if not saved:
    st.caption("No saved scenarios yet.")
else:
    st.dataframe([asdict(s) for s in saved], hide_index=True, width="stretch")
    names = [s.name for s in saved]
    picked = st.multiselect("Compare saved scenarios", names, key="sc_compare")
    if picked:
        try:
            compared = compare(app, picked)
        except ValueError as exc:
            _failed("Could not compare these scenarios.", exc)
        else:
            st.dataframe(
                [
                    {
                        "scenario": r.scenario,
                        "book": r.book,
                        "messages per month": f"{r.messages_per_month:,}",
                        "review rate": f"{float(r.review_rate):.1%}",
                        "tokens per year": f"{r.annual_tokens:,.0f}",
                        **{TASK_LABELS[t]: usd(r.annual_by_task[t]) for t in TASKS},
                        "total per year": usd(r.annual_usd),
                    }
                    for r in compared
                ],
                hide_index=True,
                width="stretch",
            )
    lcols = st.columns([3, 1, 1])
    lcols[0].selectbox("Saved scenario", names, key="sc_pick")
    lcols[1].button("Load into planner", key="sc_load", on_click=_load_saved)
    lcols[2].button("Delete", key="sc_delete", on_click=_delete_saved)
