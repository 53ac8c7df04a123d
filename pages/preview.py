"""Preview: one prospect through the pipeline, step by step, with tokens and cost per step.

Prospect data and model text are shown with st.text / st.code / dataframes only, never as Markdown.
"""

from __future__ import annotations

import asyncio

import streamlit as st

from console import enter, get_app, plain, readable, sidebar
from core.costs.money import usd
from core.llm.errors import LLMError
from core.messages.library import list_templates
from core.messages.library import steps as step_specs
from core.messages.personalize import Result, options_for, personalize_one, preview_sequence
from core.people.prospects import PROSPECT_TEXT_FIELDS, list_prospects, prospect_fields
from core.store.models import MessageState

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
st.title("Preview a message")
st.caption("Pick a prospect and a template; watch every step with its tokens and cost. Calls are real calls to "
           "the active provider and are recorded in the ledger.")

steps = step_specs(app.settings.data_dir)
prospects = list_prospects(app, limit=1000)

source = st.radio("Prospect", ["Demo or stored prospect", "Type one"], horizontal=True)
if source == "Demo or stored prospect" and prospects:
    labels = {p.id: f"{p.first_name} {p.last_name} — {p.company_name} ({p.industry}, {p.company_size or '?'})"
              for p in prospects}
    chosen = st.selectbox("Prospect", list(labels), format_func=lambda i: labels[i])
    prospect = next(p for p in prospects if p.id == chosen)
    fields = prospect_fields(prospect)
    if prospect.flags:
        st.warning("This prospect's fields are flagged for prompt injection; no model will see them.", icon="🛡️")
else:
    fields = {}
    cols = st.columns(3)
    for i, name in enumerate((*PROSPECT_TEXT_FIELDS, "company_size")):
        fields[name] = cols[i % 3].text_input(readable(name), key=f"typed_{name}")
st.caption("Prospect fields")
st.dataframe([{"field": readable(k), "value": v} for k, v in fields.items() if v], hide_index=True, width="stretch")

c1, c2, c3 = st.columns(3)
step = c1.selectbox("Sequence step", list(steps), format_func=lambda s: steps[s].label)
templates = [t.name for t in list_templates(app, step)]
template_a = c2.selectbox("Template", ["(choose by rule)", *templates])
template_b = c3.selectbox("Compare with", ["(none)", *templates])
free = st.checkbox("Free LinkedIn account (200-character connection notes)")


def run(template: str | None) -> Result | None:
    try:
        options = options_for(app, step=step, template_name=template, free_account=free)
        return asyncio.run(personalize_one(app, fields, options))
    except (LLMError, LookupError, ValueError) as exc:
        st.error(f"Could not run the pipeline: {plain(exc)}")
        return None


def show(result: Result) -> None:
    st.subheader(MessageState.label_of(result.state))
    st.text(f"Template: {result.template}\nWhy: {result.selection_reason}\nLadder: {readable(result.rung)}")
    if result.reason:
        st.text(f"Reason: {result.reason}")
    m1, m2, m3 = st.columns(3)
    m1.metric("Input tokens", f"{result.input_tokens:,}")
    m2.metric("Output tokens", f"{result.output_tokens:,}")
    m3.metric("Cost", usd(result.cost_usd))
    st.caption("Final message")
    st.code(result.message or "(no message)", language=None, wrap_lines=True)
    if result.message:
        st.caption(f"{len(result.message)} characters")
    st.caption("Trace")
    for i, step_ in enumerate(result.trace, 1):
        cost = f" — {step_.model}, {step_.input_tokens}+{step_.output_tokens} tokens, {usd(step_.cost_usd)}" \
            if step_.model else ""
        with st.expander(f"{i}. {readable(step_.name)}{cost}", expanded=step_.name in ("render", "final")):
            st.code(step_.text, language=None, wrap_lines=True)
    st.caption("Guards")
    st.dataframe(result.guards_json(), hide_index=True, width="stretch")


if st.button("Run preview", type="primary"):
    chosen = None if template_a == "(choose by rule)" else template_a
    if template_b == "(none)":
        result = run(chosen)
        if result:
            show(result)
    else:
        left, right = st.columns(2)
        with left:
            result = run(chosen)
            if result:
                show(result)
        with right:
            result = run(template_b)
            if result:
                show(result)

with st.expander("Whole sequence for this prospect"):
    if st.button("Preview every step"):
        try:
            results = asyncio.run(preview_sequence(app, fields, free_account=free))
        except (LLMError, LookupError, ValueError) as exc:
            st.error(f"Could not run the sequence: {plain(exc)}")
            results = []
        st.dataframe([{"step": steps[r.step].label if r.step in steps else readable(r.step),
                       "state": MessageState.label_of(r.state), "template": r.template, "message": r.message,
                       "cost": usd(r.cost_usd)} for r in results],
                     hide_index=True, width="stretch")
