"""Variants: ask a model for variants of one template, or of every template of an industry, after seeing the cost.

Layout only: generation, the checks a variant must pass and the cost estimate are `core.experiments.variants`'.
Model-written variants are model output, so they appear only in dataframes and `st.text`, never as Markdown.
"""

from __future__ import annotations

import asyncio

import streamlit as st

from console import enter, get_app, plural, sidebar
from console.experiment_views import problem, show_estimate
from core.batches.creation import create_batch
from core.batches.kinds.variants import bulk_report
from core.batches.lifecycle import BatchError, start_batch
from core.batches.lifecycle import status as batch_status
from core.costs.money import md_usd, usd
from core.costs.prices import UnknownModelPrice
from core.experiments.variants import (
    VariantReport,
    estimate_bulk,
    estimate_variants,
    generate_variants,
    industries,
)
from core.llm.errors import LLMError
from core.messages.library import list_templates
from core.messages.library import steps as step_specs
from core.store.models import BatchKind

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
steps = step_specs(app.settings.data_dir)

st.title("Variants")
st.caption("A model (the optimize_template route) proposes variants. A variant is kept only when it keeps exactly "
           "the template's variables and markers and a sample rendering passes every guard; kept ones are added "
           "to the library with their lineage, ready to compete in an experiment.")


def show_report(report: VariantReport) -> None:
    st.text(f"{report.base}: {len(report.kept)} kept, {len(report.discarded)} discarded; "
            f"{report.model or 'no model'} {report.input_tokens}+{report.output_tokens} tokens, "
            f"{usd(report.cost_usd)}")
    if report.problem:
        st.text(f"Problem: {report.problem}")
    if report.candidates:
        st.dataframe([{"kept": c.kept, "name": c.name or "", "why discarded": c.reason, "variant": c.text}
                      for c in report.candidates], hide_index=True, width="stretch")


sequence_templates = [t for t in list_templates(app) if t.step in steps]
st.subheader("One template")
if not sequence_templates:
    st.info("The library has no templates yet.", icon="📭")
else:
    v1, v2 = st.columns([3, 1])
    base = v1.selectbox("Template", [t.name for t in sequence_templates], key="exp_var_base")
    count = int(v2.number_input("Variants", 1, 10, 3, key="exp_var_count"))
    try:
        show_estimate(estimate_variants(app, base, count))
    except (ValueError, LookupError, UnknownModelPrice) as exc:
        problem("No estimate.", str(exc))
    if st.button(f"Generate {count} variant{'s' if count != 1 else ''}", key="exp_var_go"):
        try:
            with st.spinner("Asking the model…"):
                report = asyncio.run(generate_variants(app, base, count))
        except (LLMError, ValueError, LookupError) as exc:
            problem("No variants.", str(exc))
        else:
            show_report(report)

st.subheader("Every template of an industry")
options = ["", *industries(app)]
industry = st.selectbox("Industry", options, format_func=lambda i: i or "(untargeted templates)",
                        key="exp_bulk_industry")
bulk_count = int(st.number_input("Variants per template", 1, 10, 2, key="exp_bulk_count"))
try:
    estimate = estimate_bulk(app, industry or None, bulk_count)
except (ValueError, UnknownModelPrice) as exc:
    problem("No estimate.", str(exc))
    estimate = None
if estimate is not None:
    show_estimate(estimate)
    if not estimate.templates:
        st.info("No templates to work on for this choice (generated variants and safe templates are skipped).",
                icon="📭")
    else:
        st.dataframe([{"template": r["name"], "step": r["step"], "prompt tokens": r["prompt_tokens"],
                       "max output tokens": r["max_output_tokens"], "at most (USD)": r["worst_case_usd"]}
                      for r in estimate.templates], hide_index=True, width="stretch")
        if st.button(f"Generate for {plural(len(estimate.templates), 'template')}, at most "
                     f"{md_usd(estimate.worst_case_usd)}", key="exp_bulk_go"):
            # A batch: the background worker makes the calls under the budget; closing the tab does not stop
            # it, and it can be cancelled or resumed on the Batches page.
            try:
                bulk_batch = create_batch(app, [], kind=BatchKind.VARIANTS,
                                          subjects=[r["name"] for r in estimate.templates],
                                          options={"n": bulk_count, "industry": industry or None},
                                          name=f"variants for {industry or 'untargeted'} templates")
            except (BatchError, ValueError, LookupError) as exc:
                problem("Bulk generation could not start.", str(exc))
            else:
                start_batch(app, bulk_batch.id)  # type: ignore[arg-type]
                st.session_state["exp_bulk_batch"] = bulk_batch.id

bulk_batch_id = st.session_state.get("exp_bulk_batch")
if bulk_batch_id is not None:

    @st.fragment(run_every=2)
    def bulk_progress(batch_id: int) -> None:
        s = batch_status(app, batch_id)
        st.progress(s.fraction, text=f"{s.done:,} of {plural(s.items, 'template')} — {s.label}, "
                    f"{md_usd(s.cost_usd)} so far")
        if s.active:
            return
        bulk = bulk_report(app, batch_id)
        kept = sum(len(r.kept) for r in bulk.reports)
        st.text(f"Spent {usd(bulk.cost_usd)}; kept {plural(kept, 'variant')}.")
        if bulk.stopped:
            st.text(bulk.stopped)
        for report in bulk.reports:
            show_report(report)

    bulk_progress(bulk_batch_id)
