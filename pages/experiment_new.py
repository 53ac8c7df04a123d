"""New experiment: pick a step, the control and its variants, plan the sample, start.

Layout only: which templates may compete with the control (its segment) is `catalog.variant_candidates`, the
plan is `planning.plan`, and every check on the experiment is `catalog.create_experiment`'s. Template names and
texts are user text, shown with selectboxes, `st.text` and `st.code` only.
"""

from __future__ import annotations

import streamlit as st

from console import enter, get_app, sidebar
from console.experiment_views import flash, link, problem, show_flash
from core.experiments.catalog import METRICS, create_experiment, variant_candidates
from core.experiments.planning import plan
from core.messages.library import list_templates
from core.messages.library import steps as step_specs
from core.store.models import utcnow

enter()  # the shell and the access gate, whichever address Streamlit started this run at

app = get_app()
sidebar(app)
steps = step_specs(app.settings.data_dir)

st.title("New experiment")
st.caption("The variants compete for the traffic the control gets today: a prospect enters when it would otherwise "
           "get the control template. Plan the sample first; the verdict is withheld until every arm reaches it.")
show_flash()

step = st.selectbox("Sequence step", list(steps), format_func=lambda s: steps[s].label, key="exp_new_step")
templates = list_templates(app, step)
if len(templates) < 2:
    st.info("This step needs at least two templates (a control and a variant). Generate variants on the Variants "
            "page or add templates to the library.", icon="📭")
    link("experiment_variants.py", "Generate variants", "🧬")
    st.stop()

names = [t.name for t in templates]
default = next((i for i, t in enumerate(templates) if t.is_default), 0)
control = st.selectbox("Control (what prospects get today)", names, index=default, key="exp_new_control")
chosen = next(t for t in templates if t.name == control)
variants = st.multiselect("Variants", variant_candidates(templates, control), key="exp_new_variants",
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
        flash("success", f"Experiment #{exp.id} started.",
              f"{exp.name}: {len(variants) + 1} arms, {exp.planned_per_arm:,} sends planned per arm.")
        st.rerun()
link("experiments.py", "See every experiment and its results", "🧪")
