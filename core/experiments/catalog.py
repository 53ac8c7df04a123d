"""What experiments exist: create one (with every check that keeps it honest), look one up, list them all.

An experiment compares a control template with one or more variants on one sequence step. Its segment is the
industry its templates are aimed at (empty for untargeted templates); at most one experiment runs per step and
segment. The segment rule ("templates of the control's segment") lives here, in `same_segment`, for the
engine and the pages alike.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from core.app import App
from core.experiments.planning import plan
from core.messages.library import steps
from core.store.db import session_scope
from core.store.lookup import get_or_raise
from core.store.models import Experiment, ExperimentArm, Outcome, Template

METRICS: dict[str, tuple[str, str]] = {
    # metric -> (Outcome flag counted as a success, label for people)
    "positive_rate": ("positive", "positive-reply rate"),
    "reply_rate": ("replied", "reply rate"),
    "acceptance_rate": ("accepted", "acceptance rate"),
}
NAME_LIMIT = 80


class ExperimentStatus(StrEnum):
    RUNNING = "running"
    STOPPED = "stopped"


class DecisionAction(StrEnum):
    PROMOTE = "promote"  # an arm's template became the default, and the experiment stopped
    STOP = "stop"  # stopped without promoting; templates unchanged


_SNAPSHOT_FIELDS = ("name", "template", "sends", "successes", "rate", "ci_low", "ci_high", "p_value", "p_holm",
                    "chance_to_beat_control", "expected_loss")


@dataclass(frozen=True)
class ArmSnapshot:
    """One arm's numbers as they stood when the decision was taken."""

    name: str
    template: str
    sends: int
    successes: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    p_holm: float | None
    chance_to_beat_control: float | None
    expected_loss: float | None

    def as_json(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in _SNAPSHOT_FIELDS}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ArmSnapshot:
        return cls(**{k: data.get(k) for k in _SNAPSHOT_FIELDS})


@dataclass(frozen=True)
class Decision:
    """Who decided an experiment's end, when, on what evidence (the verdict's code and words, the arms' numbers),
    and, for a promotion, which template won, what it replaced and whether the promotion was forced."""

    action: DecisionAction
    decided_by: str
    decided_at: datetime
    verdict: str  # the verdict's code at the time ("winner:<arm>", "collecting", ...)
    verdict_text: str
    metric: str
    arms: list[ArmSnapshot]
    arm: str = ""
    template: str = ""
    forced: bool = False
    override_reason: str = ""
    planned_per_arm: int | None = None
    srm_p: float | None = None
    previous_default: list[str] = field(default_factory=list)
    reason: str = ""  # a stop's reason, as given

    def as_json(self) -> dict[str, Any]:
        """The record as stored on the experiment (and printed by the CLI)."""
        common = {"action": str(self.action), "decided_by": self.decided_by,
                  "decided_at": self.decided_at.isoformat(), "verdict": self.verdict,
                  "verdict_text": self.verdict_text, "metric": self.metric, "arms": [a.as_json() for a in self.arms]}
        if self.action == DecisionAction.STOP:
            return {**common, "reason": self.reason}
        return {**common, "arm": self.arm, "template": self.template, "forced": self.forced,
                "override_reason": self.override_reason, "planned_per_arm": self.planned_per_arm,
                "srm_p": self.srm_p, "previous_default": self.previous_default}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Decision:
        return cls(
            action=DecisionAction(data.get("action", DecisionAction.STOP)),
            decided_by=str(data.get("decided_by") or ""),
            decided_at=datetime.fromisoformat(str(data.get("decided_at"))),
            verdict=str(data.get("verdict") or ""), verdict_text=str(data.get("verdict_text") or ""),
            metric=str(data.get("metric") or ""),
            arms=[ArmSnapshot.from_json(a) for a in data.get("arms", []) if isinstance(a, dict)],
            arm=str(data.get("arm") or ""), template=str(data.get("template") or ""),
            forced=bool(data.get("forced")), override_reason=str(data.get("override_reason") or ""),
            planned_per_arm=data.get("planned_per_arm"), srm_p=data.get("srm_p"),
            previous_default=[str(n) for n in data.get("previous_default", [])], reason=str(data.get("reason") or ""),
        )


def stored_decision(exp: Experiment) -> Decision | None:
    """The experiment's decision record, typed; None while it runs."""
    return Decision.from_json(exp.decision) if exp.decision else None


def clean_text(text: str | None) -> str:
    """Names, segments and reasons on one line, runs of spaces squeezed."""
    return " ".join((text or "").split())


def segment_key(text: str | None) -> str:
    """How segments (industries) and sender strata compare: spacing and case do not matter."""
    return clean_text(text).casefold()


def same_segment(a: str | None, b: str | None) -> bool:
    """Whether two templates' industries are one segment (both untargeted counts as one, the general segment)."""
    return segment_key(a) == segment_key(b)


def variant_candidates(templates: Sequence[Template], control: str) -> list[str]:
    """The templates that may compete with `control` in an experiment: those of its segment, besides itself."""
    chosen = next((t for t in templates if t.name == control), None)
    if chosen is None:
        return []
    return [t.name for t in templates if t.name != control and same_segment(t.industry, chosen.industry)]


def metric_label(metric: str) -> str:
    """The metric in a person's words ("positive-reply rate")."""
    return METRICS[metric][1]


def experiment_in(s: Session, experiment_id: int) -> Experiment:
    exp = get_or_raise(s, Experiment, experiment_id)
    return exp


def arms_of(s: Session, experiment_id: int) -> list[tuple[ExperimentArm, Template]]:
    """Arms with their templates, control first, then in creation order."""
    rows = s.exec(
        select(ExperimentArm, Template)
        .join(Template, col(Template.id) == col(ExperimentArm.template_id))
        .where(ExperimentArm.experiment_id == experiment_id)
        .order_by(col(ExperimentArm.is_control).desc(), col(ExperimentArm.id))
    ).all()
    return [(arm, tpl) for arm, tpl in rows]


def create_experiment(
    app: App,
    name: str,
    step: str,
    control: str,
    variants: Sequence[str],
    *,
    metric: str = "positive_rate",
    mde_abs: float = 0.03,
    power: float = 0.8,
    alpha: float = 0.05,
    baseline_rate: float = 0.10,
    segment: str | None = None,
    weights: Sequence[float] | None = None,
) -> Experiment:
    """Start an experiment on `step`: control template vs variant templates (arms are named after them).

    Refused (ValueError / LookupError, nothing stored) for an unknown step, metric or template, a template
    of another step or segment, repeated templates, fewer than 2 or more than MAX_ARMS arms, planning
    inputs stats cannot plan with, or a second running experiment on the same step and segment.
    """
    name = clean_text(name)
    if not name or len(name) > NAME_LIMIT:
        raise ValueError(f"an experiment name must be 1 to {NAME_LIMIT} characters")
    step_names = list(steps(app.settings.data_dir))
    if step not in step_names:
        raise ValueError(f"unknown step {step!r}; steps: {', '.join(step_names)}")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; metrics: {', '.join(METRICS)}")
    names = [control, *variants]
    if not variants:
        raise ValueError("an experiment needs at least one variant besides the control")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"template(s) {', '.join(repeated)} appear more than once; each arm needs its own template")
    if weights is not None and len(weights) != len(names):
        raise ValueError(f"got {len(weights)} weights for {len(names)} arms")
    weights = list(weights or [1.0] * len(names))
    if any(not (w > 0) for w in weights):
        raise ValueError(f"arm weights must be positive numbers: {weights}")
    planned = plan(baseline_rate, mde_abs, power, alpha, arms=len(names)).per_arm

    with session_scope(app.engine) as s:
        templates: list[Template] = []
        for template_name in names:
            tpl = s.exec(select(Template).where(Template.name == template_name)).first()
            if tpl is None:
                raise LookupError(f"no template named {template_name!r}")
            templates.append(tpl)
        # The segment is the control's industry unless given: the variants compete for the control's traffic.
        segment = clean_text(templates[0].industry if segment is None else segment)
        for tpl in templates:
            if tpl.archived:
                raise ValueError(f"template {tpl.name!r} is archived")
            if tpl.step != step:
                raise ValueError(f"template {tpl.name!r} is for step {tpl.step!r}, not {step!r}")
            if not same_segment(tpl.industry, segment):
                aimed = f"industry {tpl.industry!r}" if tpl.industry else "no particular industry"
                where = f"segment {segment!r}" if segment else "the general segment (no industry)"
                raise ValueError(f"template {tpl.name!r} is aimed at {aimed}; an experiment in {where} "
                                 "compares templates of that segment")
        if s.exec(select(Experiment.id).where(Experiment.name == name)).first() is not None:
            raise ValueError(f"an experiment named {name!r} already exists")
        running = select(Experiment).where(Experiment.step == step, Experiment.status == ExperimentStatus.RUNNING)
        for other in s.exec(running):
            if same_segment(other.segment, segment):
                where = f"segment {segment!r}" if segment else "the general segment"
                raise ValueError(f"experiment #{other.id} {other.name!r} is already running on {step} for {where}; "
                                 "promote a winner or stop it before starting another")
        exp = Experiment(name=name, step=step, segment=segment, metric=metric, baseline_rate=baseline_rate,
                         mde_abs=mde_abs, power=power, alpha=alpha, planned_per_arm=planned,
                         status=ExperimentStatus.RUNNING)
        s.add(exp)
        s.flush()
        assert exp.id is not None
        for i, (tpl, weight) in enumerate(zip(templates, weights, strict=True)):
            assert tpl.id is not None
            s.add(ExperimentArm(experiment_id=exp.id, name=tpl.name, template_id=tpl.id, is_control=i == 0,
                                weight=float(weight)))
        return exp


def get_experiment(app: App, experiment_id: int) -> Experiment:
    with session_scope(app.engine) as s:
        return experiment_in(s, experiment_id)


@dataclass(frozen=True)
class ExperimentSummary:
    """One experiment in the list: what it compares and how far it got."""

    id: int
    name: str
    step: str
    segment: str
    metric: str
    status: ExperimentStatus
    arms: list[str]
    control: str | None
    planned_per_arm: int | None
    sends: int
    created_at: datetime
    decision: Decision | None

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "step": self.step, "segment": self.segment, "metric": self.metric,
                "status": str(self.status), "arms": self.arms, "control": self.control,
                "planned_per_arm": self.planned_per_arm, "sends": self.sends,
                "created_at": self.created_at.isoformat(),
                "decision": self.decision.as_json() if self.decision else None}


def list_experiments(app: App) -> list[ExperimentSummary]:
    """Every experiment, newest first, with its arms and how many sends are recorded."""
    with session_scope(app.engine) as s:
        exps = s.exec(select(Experiment).order_by(col(Experiment.id).desc())).all()
        sends = dict(s.exec(select(Outcome.experiment_id, func.count()).group_by(Outcome.experiment_id)).all())
        out = []
        for e in exps:
            assert e.id is not None
            arms = arms_of(s, e.id)
            out.append(ExperimentSummary(
                id=e.id, name=e.name, step=e.step, segment=e.segment, metric=e.metric,
                status=ExperimentStatus(e.status), arms=[a.name for a, _ in arms],
                control=next((a.name for a, _ in arms if a.is_control), None),
                planned_per_arm=e.planned_per_arm, sends=int(sends.get(e.id, 0)),
                created_at=e.created_at, decision=stored_decision(e),
            ))
        return out
