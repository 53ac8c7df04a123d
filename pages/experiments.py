"""Experiments: every experiment, and one experiment's results, outcomes upload and decision.

Layout only: statistics, the verdict, what needs force and the decisions themselves come from
`core.experiments` (results, outcomes, decisions). Starting an experiment and generating variants have their own
pages. Template names and uploaded cells are user text, so they appear only in dataframes, `st.text` or escaped
chart labels, never as Markdown.
"""

from __future__ import annotations

import html

import plotly.graph_objects as go
import streamlit as st

from console import enter, get_app, sidebar
from console.experiment_views import flash, link, pct, problem, pval, show_flash
from core.experiments.catalog import Decision, DecisionAction, ExperimentStatus, list_experiments, metric_label
from core.experiments.decisions import promote, promotion_blocker, stop_experiment
from core.experiments.outcomes import OutcomeImportError, import_outcomes
from core.experiments.results import ArmResult, DailyRate, ExperimentResult, cumulative_rates, experiment_stats
from core.experiments.stats import VerdictKind
from core.messages.library import steps as step_specs

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
steps = step_specs(app.settings.data_dir)

st.title("Experiments")
st.caption("Test template variants against the template prospects get today. Plan the sample first; the verdict "
           "is withheld until every arm reaches it. A prospect enters an experiment when it would otherwise get "
           "the control template, and keeps its arm for good.")
show_flash()

experiments = list_experiments(app)
st.subheader("All experiments")
if not experiments:
    st.info("No experiments yet. Start one on the New experiment page: pick a step, the control template and one "
            "or more variants (write them in the template library, or generate them on the Variants page).",
            icon="🧪")
    link("experiment_new.py", "Start an experiment", "➕")
else:
    st.dataframe(
        [{"id": e.id, "name": e.name, "step": e.step, "segment": e.segment or "(general)",
          "metric": metric_label(e.metric),
          "status": str(e.status), "arms": ", ".join(e.arms), "planned per arm": e.planned_per_arm,
          "sends": e.sends, "started": e.created_at.date().isoformat()}
         for e in experiments],
        hide_index=True, width="stretch",
    )


def rate_chart(arms: list[ArmResult], label: str, level: str) -> go.Figure:
    shown = [a for a in arms if a.rate is not None and a.ci_low is not None and a.ci_high is not None]
    fig = go.Figure(go.Bar(
        x=[html.escape(a.name) for a in shown],
        y=[a.rate for a in shown],
        error_y={"type": "data", "symmetric": False,
                 "array": [(a.ci_high or 0) - (a.rate or 0) for a in shown],
                 "arrayminus": [(a.rate or 0) - (a.ci_low or 0) for a in shown]},
        marker_color=["#636efa" if a.is_control else "#00cc96" for a in shown],
    ))
    fig.update_layout(title=f"{label.capitalize()} per arm (bars: {level} Wilson interval)", yaxis_tickformat=".0%",
                      yaxis_title=label, margin={"t": 40})
    return fig


def cumulative_chart(rows: list[DailyRate], label: str) -> go.Figure:
    fig = go.Figure()
    for arm in dict.fromkeys(r.arm for r in rows):
        mine = [r for r in rows if r.arm == arm]
        fig.add_trace(go.Scatter(x=[r.date.isoformat() for r in mine], y=[r.rate for r in mine],
                                 mode="lines+markers", name=html.escape(arm),
                                 customdata=[[r.sends, r.successes] for r in mine],
                                 hovertemplate="%{x}: %{y:.1%} (%{customdata[1]} of %{customdata[0]})"))
    fig.update_layout(title=f"Cumulative {label} over time", yaxis_tickformat=".0%", xaxis_title="Send date (UTC)",
                      margin={"t": 40}, legend={"orientation": "h"})
    return fig


def results_table(arms: list[ArmResult], level: str) -> None:
    st.dataframe(
        [{"arm": a.name + (" (control)" if a.is_control else ""), "sends": a.sends, "successes": a.successes,
          "rate": pct(a.rate),
          f"{level} interval": "—" if a.ci_low is None else f"{pct(a.ci_low)} – {pct(a.ci_high)}",
          "lift (points)": "—" if a.lift_abs is None else f"{100 * a.lift_abs:+.1f}",
          "lift interval": "—" if a.lift_abs_ci_low is None or a.lift_abs_ci_high is None
          else f"{100 * a.lift_abs_ci_low:+.1f} to {100 * a.lift_abs_ci_high:+.1f}",
          "p": pval(a.p_value), "p (Holm)": pval(a.p_holm),
          "chance to beat control": pct(a.chance_to_beat_control),
          "expected loss": pct(a.expected_loss, 2)}
         for a in arms],
        hide_index=True, width="stretch",
    )


def show_verdict(result: ExperimentResult) -> None:
    kind = result.verdict.kind
    if result.withheld:
        st.warning("Verdict withheld" if kind != VerdictKind.SRM else "Verdict withheld: check the assignment",
                   icon="⏳")
    elif kind == VerdictKind.WINNER:
        st.success("A variant beats the control", icon="🏆")
    elif kind == VerdictKind.CONTROL_BEST:
        st.info("The control is best", icon="🛡️")
    else:
        st.info("No significant difference", icon="⚖️")
    st.text(result.verdict.text)


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
        flash("success", f"Stored {report.rows:,} outcome(s): {report.inserted:,} new, {report.updated:,} updated.",
              f"Per arm: {by_arm}")
        st.rerun()


def decide(result: ExperimentResult) -> None:
    exp_id = result.id
    st.markdown("**Decide**")
    names = [a.name for a in result.arms]
    arm = st.selectbox("Arm to promote", names, index=names.index(result.suggested_arm), key=f"exp_arm_{exp_id}")
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
        forced = " (forced)" if decision.forced else ""
        flash("success", f"Promoted{forced}; the experiment is stopped.",
              f"{decision.template} is now the default for {result.step}.")
        st.rerun()
    with st.expander("Stop without promoting"):
        reason = st.text_input("Reason", key=f"exp_stop_reason_{exp_id}", max_chars=500)
        if st.button("Stop the experiment", key=f"exp_stop_{exp_id}"):
            try:
                stop_experiment(app, exp_id, who, reason)
            except (ValueError, LookupError) as exc:
                problem("Not stopped.", str(exc))
                return
            flash("success", "The experiment is stopped; templates are unchanged.")
            st.rerun()


def show_decision(decision: Decision) -> None:
    when = decision.decided_at.strftime("%Y-%m-%d %H:%M")
    if decision.action == DecisionAction.PROMOTE:
        forced = f" It was forced: {decision.override_reason}" if decision.forced else ""
        st.text(f"Promoted {decision.template} by {decision.decided_by} on {when} UTC. "
                f"Verdict then: {decision.verdict_text}{forced}")
    else:
        st.text(f"Stopped by {decision.decided_by} on {when} UTC. Reason: {decision.reason or '(none given)'}")
    st.caption("The numbers at the time of the decision")
    st.dataframe([{"arm": a.name, "sends": a.sends, "successes": a.successes, "rate": pct(a.rate),
                   "p (Holm)": pval(a.p_holm)} for a in decision.arms], hide_index=True, width="stretch")


st.subheader("Results")
if not experiments:
    st.info("Results appear here once an experiment exists.", icon="📭")
else:
    labels = {e.id: f"#{e.id} {e.name} ({e.status})" for e in experiments}
    exp_id = st.selectbox("Experiment", list(labels), format_func=lambda i: labels[i], key="exp_pick")
    result = experiment_stats(app, exp_id)
    label = result.metric_label
    st.text(f"Step: {steps[result.step].label if result.step in steps else result.step}   "
            f"Segment: {result.segment or '(general)'}   Metric: {label}   Status: {result.status}")
    cols = st.columns(4)
    cols[0].metric("Sends recorded", f"{result.total_sends:,}")
    cols[1].metric("Planned per arm", f"{result.planned_per_arm:,}" if result.planned_per_arm else "—",
                   help=f"To detect {pct(result.baseline_rate)} → {pct(result.baseline_rate + result.mde_abs)} at "
                        f"{result.power:.0%} power, alpha {result.alpha:g} (Holm-adjusted for several variants).")
    cols[2].metric("Progress (smallest arm)", pct(result.progress, 0))
    cols[3].metric("Sample-ratio check p", pval(result.srm_p),
                   help="Chi-square of sends against the planned split; below 0.001 means the assignment is "
                        "broken and the verdict is withheld.")
    show_verdict(result)
    if result.total_sends == 0:
        st.info("No sends recorded yet. Upload outcomes below (or let the reply classifier record them); "
                "charts and statistics appear with the first sends.", icon="📭")
    else:
        level = f"{100 * (1 - result.alpha):g}%"
        results_table(result.arms, level)
        left, right = st.columns(2)
        left.plotly_chart(rate_chart(result.arms, label, level), width="stretch")
        right.plotly_chart(cumulative_chart(cumulative_rates(app, exp_id), label), width="stretch")
    upload_outcomes(exp_id)
    if result.status == ExperimentStatus.RUNNING:
        decide(result)
    elif result.decision:
        st.markdown("**Decision**")
        show_decision(result.decision)
