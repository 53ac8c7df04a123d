"""Ending an experiment: promote an arm's template to the default of its step and segment, or stop without one.

Either way the experiment stops and the record says who decided, when, and the numbers they saw. Promotion is
refused while the verdict is withheld or favours another arm, unless forced (and the record says so).
"""

from __future__ import annotations

from sqlmodel import select

from core.app import App
from core.experiments.catalog import (
    ArmSnapshot,
    Decision,
    DecisionAction,
    ExperimentStatus,
    arms_of,
    clean_text,
    experiment_in,
    same_segment,
)
from core.experiments.results import ExperimentResult, experiment_stats
from core.experiments.stats import VerdictKind
from core.store.db import session_scope
from core.store.models import Template, utcnow


def _decided_by(name: str) -> str:
    who = clean_text(name)
    if not who or len(who) > 100:
        raise ValueError("say who decides (1 to 100 characters), so the record shows it")
    return who


def _snapshot(result: ExperimentResult) -> list[ArmSnapshot]:
    return [ArmSnapshot(name=a.name, template=a.template, sends=a.sends, successes=a.successes, rate=a.rate,
                        ci_low=a.ci_low, ci_high=a.ci_high, p_value=a.p_value, p_holm=a.p_holm,
                        chance_to_beat_control=a.chance_to_beat_control, expected_loss=a.expected_loss)
            for a in result.arms]


def promotion_blocker(result: ExperimentResult, arm_name: str) -> str:
    """Why promoting `arm_name` needs force, from the current results; "" when the evidence supports it."""
    verdict = result.verdict
    if verdict.withheld:
        return f"the verdict is withheld ({verdict.text.rstrip('.')})"
    if verdict.kind == VerdictKind.WINNER and verdict.winner != arm_name:
        return f"the evidence favours {verdict.winner!r}, not {arm_name!r}"
    if verdict.kind == VerdictKind.CONTROL_BEST and arm_name != result.control:
        return f"the control {result.control!r} is best; {arm_name!r} is not"
    return ""


def promote(app: App, experiment_id: int, arm_name: str, decided_by: str, *, force: bool = False) -> Decision:
    """Make an arm's template the default of the experiment's step and segment, and stop the experiment.

    Refused (ValueError) when the experiment is not running, or when the verdict is withheld or favours
    another arm, unless `force` (recorded in the decision). Returns the decision record.
    """
    who = _decided_by(decided_by)
    result = experiment_stats(app, experiment_id)
    if result.status != ExperimentStatus.RUNNING:
        raise ValueError(f"experiment #{experiment_id} is already {result.status}; nothing to promote")
    result.arm(arm_name)  # LookupError naming the arms
    blocker = promotion_blocker(result, arm_name)
    if blocker and not force:
        raise ValueError(f"not promoted: {blocker}. Promote with force to override, and the record will say so")

    with session_scope(app.engine) as s:
        exp = experiment_in(s, experiment_id)
        if exp.status != ExperimentStatus.RUNNING:  # another decision landed since the stats were read
            raise ValueError(f"experiment #{experiment_id} is already {exp.status}; nothing to promote")
        arm, winner = next((a, t) for a, t in arms_of(s, experiment_id) if a.name == arm_name)
        previous = []
        for tpl in s.exec(select(Template).where(Template.step == exp.step, Template.is_default == True)):  # noqa: E712
            if same_segment(tpl.industry, exp.segment) and tpl.id != winner.id:
                tpl.is_default = False
                previous.append(tpl.name)
                s.add(tpl)
        winner.is_default = True
        s.add(winner)
        decision = Decision(
            action=DecisionAction.PROMOTE, arm=arm.name, template=winner.name, decided_by=who, decided_at=utcnow(),
            forced=bool(blocker) and force, override_reason=blocker, verdict=result.verdict.code,
            verdict_text=result.verdict.text, metric=exp.metric, planned_per_arm=exp.planned_per_arm,
            srm_p=result.srm_p, arms=_snapshot(result), previous_default=previous,
        )
        exp.decision = decision.as_json()
        exp.status = ExperimentStatus.STOPPED
        s.add(exp)
    return decision


def stop_experiment(app: App, experiment_id: int, decided_by: str, reason: str = "") -> Decision:
    """Stop without promoting (templates unchanged); records who, when, why and the numbers."""
    who = _decided_by(decided_by)
    result = experiment_stats(app, experiment_id)
    with session_scope(app.engine) as s:
        exp = experiment_in(s, experiment_id)
        if exp.status != ExperimentStatus.RUNNING:
            raise ValueError(f"experiment #{experiment_id} is already {exp.status}")
        decision = Decision(action=DecisionAction.STOP, decided_by=who, decided_at=utcnow(),
                            reason=clean_text(reason)[:500], verdict=result.verdict.code,
                            verdict_text=result.verdict.text, metric=exp.metric, arms=_snapshot(result))
        exp.decision = decision.as_json()
        exp.status = ExperimentStatus.STOPPED
        s.add(exp)
    return decision
