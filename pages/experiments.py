"""Experiments: A/B tests of templates, from planning to promoting the winner, with honest statistics.

Layout only: planning, assignment, outcomes, statistics and decisions are made in `core.experiments.lifecycle`
(which uses its `stats`), variant generation and its cost estimate in its `variants`. Template names,
model-written variants and uploaded cells are user or model text, so they appear only in dataframes,
`st.text`, `st.code` or escaped chart labels, never as Markdown.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

import plotly.graph_objects as go
import streamlit as st

from console import enter, get_app, sidebar, usd
from core.batches.kinds.variants import bulk_report
from core.batches.lifecycle import BatchError, create_batch, start_batch
from core.batches.lifecycle import status as batch_status
from core.costs.prices import UnknownModelPrice
from core.experiments.lifecycle import (
    METRICS,
    OutcomeImportError,
    create_experiment,
    cumulative_rates,
    experiment_stats,
    import_outcomes,
    list_experiments,
    plan,
    promote,
    promotion_blocker,
    stop_experiment,
)
from core.experiments.variants import (
    BulkEstimate,
    VariantReport,
    estimate_bulk,
    estimate_variants,
    generate_variants,
    industries,
)
from core.llm.errors import LLMError
from core.messages.library import list_templates
from core.messages.library import steps as step_specs
from core.store.models import BatchKind, utcnow

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
steps = step_specs(app.settings.data_dir)

st.title("Experiments")
st.caption("Test template variants against the template prospects get today. Plan the sample first; the verdict "
           "is withheld until every arm reaches it. A prospect enters an experiment when it would otherwise get "
           "the control template, and keeps its arm for good.")

for kind, title, detail in st.session_state.pop("exp_flash", []):
    (st.success if kind == "success" else st.warning)(title, icon="✅" if kind == "success" else "⚠️")
    if detail:
        st.text(detail)


def problem(title: str, detail: str) -> None:
    """An error whose detail may quote names or file cells: the detail is plain text."""
    st.error(title, icon="🚫")
    st.text(detail)


def md_usd(value: object, places: int = 2) -> str:
    """`usd` for labels that render Markdown, where two bare `$` would start LaTeX."""
    return usd(value, places).replace("$", "\\$")


def pct(value: float | None, places: int = 1) -> str:
    return "—" if value is None else f"{100 * value:.{places}f}%"


def pval(value: float | None) -> str:
    if value is None:
        return "—"
    return "< 0.0001" if value < 0.0001 else f"{value:.4f}"


# ---- the list ----
experiments = list_experiments(app)
st.subheader("All experiments")
if not experiments:
    st.info("No experiments yet. Start one under “New experiment” below: pick a step, the control template and "
            "one or more variants (write them yourself in the template library or generate them here).", icon="🧪")
else:
    st.dataframe(
        [{"id": e["id"], "name": e["name"], "step": e["step"], "segment": e["segment"] or "(general)",
          "metric": e["metric"], "status": e["status"], "arms": ", ".join(e["arms"]),
          "planned per arm": e["planned_per_arm"], "sends": e["sends"], "started": e["created_at"][:10]}
         for e in experiments],
        hide_index=True, width="stretch",
    )

tab_results, tab_new, tab_variants = st.tabs(["Results", "New experiment", "Generate variants"])


# ---- results ----
def rate_chart(arms: list[dict[str, Any]], label: str, level: str) -> go.Figure:
    shown = [a for a in arms if a["rate"] is not None]
    fig = go.Figure(go.Bar(
        x=[html.escape(a["name"]) for a in shown],
        y=[a["rate"] for a in shown],
        error_y={"type": "data", "symmetric": False, "array": [a["ci_high"] - a["rate"] for a in shown],
                 "arrayminus": [a["rate"] - a["ci_low"] for a in shown]},
        marker_color=["#636efa" if a["is_control"] else "#00cc96" for a in shown],
    ))
    fig.update_layout(title=f"{label.capitalize()} per arm (bars: {level} Wilson interval)", yaxis_tickformat=".0%",
                      yaxis_title=label, margin={"t": 40})
    return fig


def cumulative_chart(rows: list[dict[str, Any]], label: str) -> go.Figure:
    fig = go.Figure()
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        fig.add_trace(go.Scatter(x=[r["date"] for r in mine], y=[r["rate"] for r in mine], mode="lines+markers",
                                 name=html.escape(arm),
                                 customdata=[[r["sends"], r["successes"]] for r in mine],
                                 hovertemplate="%{x}: %{y:.1%} (%{customdata[1]} of %{customdata[0]})"))
    fig.update_layout(title=f"Cumulative {label} over time", yaxis_tickformat=".0%", xaxis_title="Send date (UTC)",
                      margin={"t": 40}, legend={"orientation": "h"})
    return fig


def results_table(arms: list[dict[str, Any]], level: str) -> None:
    st.dataframe(
        [{"arm": a["name"] + (" (control)" if a["is_control"] else ""), "sends": a["sends"],
          "successes": a["successes"], "rate": pct(a["rate"]),
          f"{level} interval": "—" if a["ci_low"] is None else f"{pct(a['ci_low'])} – {pct(a['ci_high'])}",
          "lift (points)": "—" if a["lift_abs"] is None else f"{100 * a['lift_abs']:+.1f}",
          "lift interval": "—" if a["lift_abs_ci_low"] is None
          else f"{100 * a['lift_abs_ci_low']:+.1f} to {100 * a['lift_abs_ci_high']:+.1f}",
          "p": pval(a["p_value"]), "p (Holm)": pval(a["p_holm"]),
          "chance to beat control": pct(a["chance_to_beat_control"]),
          "expected loss": pct(a["expected_loss"], 2)}
         for a in arms],
        hide_index=True, width="stretch",
    )


def show_verdict(result: dict[str, Any]) -> None:
    verdict = result["verdict"]
    if result["withheld"]:
        st.warning("Verdict withheld" if verdict != "srm" else "Verdict withheld: check the assignment", icon="⏳")
    elif verdict.startswith("winner:"):
        st.success("A variant beats the control", icon="🏆")
    elif verdict == "control_best":
        st.info("The control is best", icon="🛡️")
    else:
        st.info("No significant difference", icon="⚖️")
    st.text(result["verdict_text"])


def upload_outcomes(exp_id: int) -> None:
    st.markdown("**Upload outcomes**")
    st.caption("CSV with one row per prospect sent a template of this experiment: `identity`, `linkedin_url` or "
               "`email`; `sent_at` (YYYY-MM-DD); `accepted`, `replied`, `positive` as 1/0, true/false or yes/no "
               "(empty means no). A prospect already stored is updated. Any bad row refuses the whole file.")
    file = st.file_uploader("Outcomes CSV", type=["csv", "txt"], key=f"exp_outcomes_{exp_id}")
    if file is not None and st.button("Store these outcomes", key=f"exp_store_{exp_id}"):
        try:
            report = import_outcomes(app, exp_id, file.getvalue())
        except OutcomeImportError as exc:
            st.error(f"The file was refused: {len(exc.problems)} problem(s). Nothing was stored.", icon="🚫")
            st.dataframe(exc.as_rows(), hide_index=True, width="stretch")
            return
        except (ValueError, LookupError) as exc:
            problem("The file was refused. Nothing was stored.", str(exc))
            return
        by_arm = ", ".join(f"{arm}: {n}" for arm, n in report.by_arm.items())
        st.session_state["exp_flash"] = [("success", f"Stored {report.rows:,} outcome(s): {report.inserted:,} new, "
                                                     f"{report.updated:,} updated.", f"Per arm: {by_arm}")]
        st.rerun()


def decide(result: dict[str, Any]) -> None:
    exp_id = result["id"]
    st.markdown("**Decide**")
    names = [a["name"] for a in result["arms"]]
    suggested = result["verdict"].removeprefix("winner:") if result["verdict"].startswith("winner:") \
        else result["control"]
    arm = st.selectbox("Arm to promote", names, index=names.index(suggested), key=f"exp_arm_{exp_id}")
    blocker = promotion_blocker(result, arm)
    if blocker:
        st.warning("The evidence does not support promoting this arm yet; promoting needs “force”, and the record "
                   "will say it was forced.", icon="⚠️")
        st.text(f"Why: {blocker}")
    who = st.text_input("Decided by", key=f"exp_by_{exp_id}", max_chars=100,
                        placeholder="your name, recorded with the decision")
    force = st.checkbox("Force: promote although the verdict is withheld or points elsewhere",
                        key=f"exp_force_{exp_id}", disabled=not blocker)
    if st.button("Promote to default and stop the experiment", key=f"exp_promote_{exp_id}", type="primary"):
        try:
            decision = promote(app, exp_id, arm, who, force=force)
        except (ValueError, LookupError) as exc:
            problem("Not promoted.", str(exc))
            return
        forced = " (forced)" if decision["forced"] else ""
        st.session_state["exp_flash"] = [("success", f"Promoted{forced}; the experiment is stopped.",
                                          f"{decision['template']} is now the default for {result['step']}.")]
        st.rerun()
    with st.expander("Stop without promoting"):
        reason = st.text_input("Reason", key=f"exp_stop_reason_{exp_id}", max_chars=500)
        if st.button("Stop the experiment", key=f"exp_stop_{exp_id}"):
            try:
                stop_experiment(app, exp_id, who, reason)
            except (ValueError, LookupError) as exc:
                problem("Not stopped.", str(exc))
                return
            st.session_state["exp_flash"] = [("success", "The experiment is stopped; templates are unchanged.", "")]
            st.rerun()


def show_decision(decision: dict[str, Any]) -> None:
    if decision.get("action") == "promote":
        forced = " It was forced: " + decision["override_reason"] if decision.get("forced") else ""
        st.text(f"Promoted {decision['template']} by {decision['decided_by']} on {decision['decided_at'][:16]} UTC. "
                f"Verdict then: {decision['verdict_text']}{forced}")
    else:
        st.text(f"Stopped by {decision.get('decided_by')} on {str(decision.get('decided_at'))[:16]} UTC. "
                f"Reason: {decision.get('reason') or '(none given)'}")
    st.caption("The numbers at the time of the decision")
    st.dataframe([{"arm": a["name"], "sends": a["sends"], "successes": a["successes"], "rate": pct(a["rate"]),
                   "p (Holm)": pval(a["p_holm"])} for a in decision.get("arms", [])], hide_index=True, width="stretch")


with tab_results:
    if not experiments:
        st.info("Results appear here once an experiment exists.", icon="📭")
    else:
        labels = {e["id"]: f"#{e['id']} {e['name']} ({e['status']})" for e in experiments}
        exp_id = st.selectbox("Experiment", list(labels), format_func=lambda i: labels[i], key="exp_pick")
        result = experiment_stats(app, exp_id)
        label = result["metric_label"]
        st.text(f"Step: {steps[result['step']].label if result['step'] in steps else result['step']}   "
                f"Segment: {result['segment'] or '(general)'}   Metric: {label}   Status: {result['status']}")
        cols = st.columns(4)
        cols[0].metric("Sends recorded", f"{result['total_sends']:,}")
        cols[1].metric("Planned per arm", f"{result['planned_per_arm']:,}" if result["planned_per_arm"] else "—",
                       help=f"To detect {pct(result['baseline_rate'])} → "
                            f"{pct(result['baseline_rate'] + result['mde_abs'])} at {result['power']:.0%} power, "
                            f"alpha {result['alpha']:g} (Holm-adjusted for several variants).")
        cols[2].metric("Progress (smallest arm)", pct(result["progress"], 0))
        cols[3].metric("Sample-ratio check p", pval(result["srm_p"]),
                       help="Chi-square of sends against the planned split; below 0.001 means the assignment is "
                            "broken and the verdict is withheld.")
        show_verdict(result)
        if result["total_sends"] == 0:
            st.info("No sends recorded yet. Upload outcomes below (or let the reply classifier record them); "
                    "charts and statistics appear with the first sends.", icon="📭")
        else:
            level = f"{100 * (1 - result['alpha']):g}%"
            results_table(result["arms"], level)
            left, right = st.columns(2)
            left.plotly_chart(rate_chart(result["arms"], label, level), width="stretch")
            right.plotly_chart(cumulative_chart(cumulative_rates(app, exp_id), label), width="stretch")
        upload_outcomes(exp_id)
        if result["status"] == "running":
            decide(result)
        elif result["decision"]:
            st.markdown("**Decision**")
            show_decision(result["decision"])


# ---- new experiment ----
with tab_new:
    step = st.selectbox("Sequence step", list(steps), format_func=lambda s: steps[s].label, key="exp_new_step")
    templates = list_templates(app, step)
    if len(templates) < 2:
        st.info("This step needs at least two templates (a control and a variant). Generate variants in the "
                "next tab or add templates to the library.", icon="📭")
    else:
        names = [t.name for t in templates]
        default = next((i for i, t in enumerate(templates) if t.is_default), 0)
        control = st.selectbox("Control (what prospects get today)", names, index=default, key="exp_new_control")
        chosen = next(t for t in templates if t.name == control)
        same_segment = [t.name for t in templates
                        if t.name != control and (t.industry or "").casefold() == (chosen.industry or "").casefold()]
        variants = st.multiselect("Variants", same_segment, key="exp_new_variants",
                                  help="Templates of the control's segment (its industry, or untargeted).")
        st.text(f"Segment: {chosen.industry or '(general: untargeted templates)'}")
        st.code(chosen.text, language=None, wrap_lines=True)
        c1, c2, c3 = st.columns(3)
        metric = c1.selectbox("Metric", list(METRICS), format_func=lambda m: METRICS[m][1], key="exp_new_metric")
        baseline = c2.number_input("Baseline rate", 0.001, 0.999, 0.10, 0.01, format="%.3f", key="exp_new_baseline",
                                   help="The control's current rate for this metric.")
        mde = c3.number_input("Minimum detectable effect (absolute)", 0.001, 0.5, 0.03, 0.005, format="%.3f",
                              key="exp_new_mde", help="0.03 means 10% → 13%.")
        c4, c5, c6 = st.columns(3)
        power = c4.number_input("Power", 0.5, 0.99, 0.8, 0.05, key="exp_new_power")
        alpha = c5.number_input("Alpha", 0.001, 0.2, 0.05, 0.01, format="%.3f", key="exp_new_alpha")
        weekly = c6.number_input("Sends per week (all arms)", 1, 1_000_000, 400, 50, key="exp_new_weekly",
                                 help="About 100 invitations a week per LinkedIn account.")
        st.markdown("**Plan**")
        arms = 1 + max(1, len(variants))
        try:
            planned = plan(baseline, mde, power, alpha, arms=arms, sends_per_week=int(weekly))
        except ValueError as exc:
            problem("These settings cannot be planned.", str(exc))
            planned = None
        if planned is not None:
            p1, p2, p3 = st.columns(3)
            p1.metric("Sends per arm", f"{planned.per_arm:,}")
            p2.metric(f"Total sends ({arms} arms)", f"{planned.total:,}")
            p3.metric("Weeks at this volume", f"{planned.weeks:,.1f}" if planned.weeks is not None else "—")
            if not variants:
                st.caption("Shown for one variant; choose variants to plan A/B/n (Holm-adjusted).")
        name = st.text_input("Name", value=f"{step} {utcnow().date().isoformat()}", max_chars=80, key="exp_new_name")
        if st.button("Start the experiment", key="exp_new_start", type="primary", disabled=not variants):
            try:
                exp = create_experiment(app, name, step, control, variants, metric=metric, mde_abs=mde, power=power,
                                        alpha=alpha, baseline_rate=baseline)
            except (ValueError, LookupError) as exc:
                problem("Not started.", str(exc))
            else:
                st.session_state["exp_flash"] = [("success", f"Experiment #{exp.id} started.",
                                                  f"{exp.name}: {len(variants) + 1} arms, "
                                                  f"{exp.planned_per_arm:,} sends planned per arm.")]
                st.rerun()


# ---- variants ----
def show_estimate(estimate: BulkEstimate) -> None:
    e1, e2, e3 = st.columns(3)
    e1.metric("Model calls", f"{len(estimate.templates):,}")
    e2.metric("Typical cost", usd(estimate.typical_usd, 6), help="Prompt plus variants as long as the template.")
    e3.metric("At most", usd(estimate.worst_case_usd, 6),
              help="Every allowed output token at the dearest routed model: what the budget reserves.")


def show_report(report: VariantReport) -> None:
    st.text(f"{report.base}: {len(report.kept)} kept, {len(report.discarded)} discarded; "
            f"{report.model or 'no model'} {report.input_tokens}+{report.output_tokens} tokens, "
            f"{usd(report.cost_usd, 6)}")
    if report.problem:
        st.text(f"Problem: {report.problem}")
    if report.candidates:
        st.dataframe([{"kept": c.kept, "name": c.name or "", "why discarded": c.reason, "variant": c.text}
                      for c in report.candidates], hide_index=True, width="stretch")


with tab_variants:
    st.caption("A model (the optimize_template route) proposes variants. A variant is kept only when it keeps "
               "exactly the template's variables and markers and a sample rendering passes every guard; kept "
               "ones are added to the library with their lineage.")
    sequence_templates = [t for t in list_templates(app) if t.step in steps]
    st.markdown("**One template**")
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
        if st.button(f"Generate {count} variant(s)", key="exp_var_go"):
            try:
                with st.spinner("Asking the model…"):
                    report = asyncio.run(generate_variants(app, base, count))
            except (LLMError, ValueError, LookupError) as exc:
                problem("No variants.", str(exc))
            else:
                show_report(report)

    st.markdown("**Bulk: every template of an industry**")
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
            if st.button(f"Generate for {len(estimate.templates)} template(s), at most "
                         f"{md_usd(estimate.worst_case_usd, 6)}", key="exp_bulk_go"):
                # A batch: the background worker makes the calls under the budget; closing the tab does not
                # stop it, and it can be cancelled or resumed on the Batches page.
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
            st.progress(s.fraction, text=f"{s.done:,} of {s.items:,} templates — {s.label}, "
                        f"{usd(s.cost_usd, 6)} so far")
            if s.active:
                return
            bulk = bulk_report(app, batch_id)
            kept = sum(len(r.kept) for r in bulk.reports)
            st.text(f"Spent {usd(bulk.cost_usd, 6)}; kept {kept} variant{'s' if kept != 1 else ''}.")
            if bulk.stopped:
                st.text(bulk.stopped)
            for report in bulk.reports:
                show_report(report)

        bulk_progress(bulk_batch_id)
