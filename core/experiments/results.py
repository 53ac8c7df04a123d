"""An experiment's results: counts per arm, the statistics of `core.experiments.stats`, and the verdict.

An outcome row counts as a send and the metric's flag as a success; `stats.analyze` gives Wilson intervals,
the pooled z-test, Holm, the Beta chance to beat control and the sample-ratio check. An experiment without
sends is an empty state (verdict "no_data"), not an error.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date
from typing import Any

from sqlalchemy import Integer, cast, func
from sqlmodel import Session, col, select

from core.app import App
from core.experiments import stats
from core.experiments.catalog import (
    METRICS,
    Decision,
    ExperimentStatus,
    arms_of,
    experiment_in,
    metric_label,
    stored_decision,
)
from core.experiments.stats import Verdict
from core.store.db import session_scope
from core.store.models import Experiment, Outcome


@dataclass(frozen=True)
class ArmResult:
    """One arm's figures (rates and intervals None while it has no sends; lifts None for the control)."""

    name: str
    template: str
    is_control: bool
    weight: float
    sends: int
    successes: int
    rate: float | None
    ci_low: float | None
    ci_high: float | None
    lift_abs: float | None
    lift_abs_ci_low: float | None
    lift_abs_ci_high: float | None
    lift_rel: float | None
    p_value: float | None
    p_holm: float | None
    chance_to_beat_control: float | None
    expected_loss: float | None

    def as_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class ExperimentResult:
    """Counts and statistics per arm (control first), the sample-ratio check, the plan and the verdict."""

    id: int
    name: str
    step: str
    segment: str
    status: ExperimentStatus
    metric: str
    metric_label: str
    success: str  # the outcome flag the metric counts
    alpha: float
    power: float
    baseline_rate: float
    mde_abs: float
    control: str
    arms: list[ArmResult]
    total_sends: int
    srm_p: float | None
    srm_flag: bool
    planned_per_arm: int | None
    progress: float | None  # the smallest arm's share of the planned sample
    verdict: Verdict
    decision: Decision | None

    @property
    def withheld(self) -> bool:
        return self.verdict.withheld

    @property
    def suggested_arm(self) -> str:
        """The arm a person is offered to promote: the one the evidence favours, else the control."""
        return self.verdict.favoured_arm(self.control) or self.control

    def arm(self, name: str) -> ArmResult:
        found = next((a for a in self.arms if a.name == name), None)
        if found is None:
            raise LookupError(f"experiment #{self.id} has no arm {name!r}; arms: "
                              f"{', '.join(a.name for a in self.arms)}")
        return found

    def as_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "step": self.step, "segment": self.segment, "status": str(self.status),
            "metric": self.metric, "metric_label": self.metric_label, "success": self.success, "alpha": self.alpha,
            "power": self.power, "baseline_rate": self.baseline_rate, "mde_abs": self.mde_abs,
            "control": self.control, "arms": [a.as_json() for a in self.arms], "total_sends": self.total_sends,
            "srm_p": self.srm_p, "srm_flag": self.srm_flag, "planned_per_arm": self.planned_per_arm,
            "progress": self.progress, "verdict": self.verdict.code, "verdict_text": self.verdict.text,
            "withheld": self.withheld, "decision": self.decision.as_json() if self.decision else None,
        }


def _counts(s: Session, exp: Experiment) -> dict[int, tuple[int, int]]:
    flag = getattr(Outcome, METRICS[exp.metric][0])
    rows = s.exec(select(Outcome.arm_id, func.count(), func.coalesce(func.sum(cast(flag, Integer)), 0))
                  .where(Outcome.experiment_id == exp.id).group_by(Outcome.arm_id)).all()
    return {int(arm_id): (int(n), int(k)) for arm_id, n, k in rows}


def experiment_stats(app: App, experiment_id: int) -> ExperimentResult:
    """Counts and statistics per arm (control first), the SRM check, the plan and the verdict."""
    with session_scope(app.engine) as s:
        exp = experiment_in(s, experiment_id)
        arms = arms_of(s, experiment_id)
        counts = _counts(s, exp)
    arm_counts = [stats.ArmCounts(a.name, *counts.get(int(a.id or 0), (0, 0))) for a, _ in arms]
    control = arms[0][0].name
    analysis = stats.analyze(arm_counts, control, planned_per_arm=exp.planned_per_arm,
                             weights=[a.weight for a, _ in arms], alpha=exp.alpha)
    by_name = {a.name: (a, t) for a, t in arms}
    rows = []
    for st in analysis.arms:
        arm, tpl = by_name[st.name]
        rows.append(ArmResult(
            name=st.name, template=tpl.name, is_control=arm.is_control, weight=arm.weight, sends=st.sends,
            successes=st.successes, rate=st.rate, ci_low=st.ci_low, ci_high=st.ci_high, lift_abs=st.lift_abs,
            lift_abs_ci_low=st.lift_abs_ci[0] if st.lift_abs_ci else None,
            lift_abs_ci_high=st.lift_abs_ci[1] if st.lift_abs_ci else None,
            lift_rel=st.lift_rel, p_value=st.p_value, p_holm=st.p_holm,
            chance_to_beat_control=st.chance_to_beat_control, expected_loss=st.expected_loss,
        ))
    fewest = min(r.sends for r in rows)
    label = metric_label(exp.metric)
    # core.experiments.stats words every verdict as a "reply rate"; name the metric this experiment counts.
    verdict = analysis.verdict.with_text(analysis.verdict.text.replace("reply rate", label))
    return ExperimentResult(
        id=int(exp.id or 0), name=exp.name, step=exp.step, segment=exp.segment, status=ExperimentStatus(exp.status),
        metric=exp.metric, metric_label=label, success=METRICS[exp.metric][0], alpha=exp.alpha, power=exp.power,
        baseline_rate=exp.baseline_rate, mde_abs=exp.mde_abs, control=control, arms=rows,
        total_sends=sum(r.sends for r in rows), srm_p=analysis.srm_p, srm_flag=analysis.srm_flag,
        planned_per_arm=exp.planned_per_arm,
        progress=None if not exp.planned_per_arm else min(1.0, fewest / exp.planned_per_arm),
        verdict=verdict, decision=stored_decision(exp),
    )


@dataclass(frozen=True)
class DailyRate:
    """One arm's cumulative figures up to and including one UTC day with sends."""

    arm: str
    date: date
    sends: int
    successes: int
    rate: float

    def as_json(self) -> dict[str, Any]:
        return {"arm": self.arm, "date": self.date.isoformat(), "sends": self.sends, "successes": self.successes,
                "rate": self.rate}


def cumulative_rates(app: App, experiment_id: int) -> list[DailyRate]:
    """Per arm and UTC day with sends: cumulative sends, successes and rate (for a chart over time)."""
    with session_scope(app.engine) as s:
        exp = experiment_in(s, experiment_id)
        names = {a.id: a.name for a, _ in arms_of(s, experiment_id)}
        flag = getattr(Outcome, METRICS[exp.metric][0])
        rows = s.exec(select(Outcome.arm_id, Outcome.sent_at, flag)
                      .where(Outcome.experiment_id == experiment_id).order_by(col(Outcome.sent_at))).all()
    daily: dict[tuple[int, date], list[int]] = {}
    for arm_id, sent_at, success in rows:
        entry = daily.setdefault((arm_id, sent_at.astimezone(UTC).date()), [0, 0])
        entry[0] += 1
        entry[1] += int(bool(success))
    out = []
    totals: dict[int, list[int]] = {}
    for (arm_id, day), (n, k) in sorted(daily.items(), key=lambda item: (item[0][1], item[0][0])):
        total = totals.setdefault(arm_id, [0, 0])
        total[0] += n
        total[1] += k
        out.append(DailyRate(arm=names.get(arm_id, str(arm_id)), date=day, sends=total[0], successes=total[1],
                             rate=total[1] / total[0]))
    return out
