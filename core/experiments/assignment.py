"""Who gets which arm: sticky, deterministic assignment of prospects to an experiment's templates.

A prospect enters an experiment when the selection rules would otherwise give it the control template, so the
variants compete for exactly the traffic the control gets today. sha256 of experiment id, sender account (the
stratum) and prospect identity gives a uniform number that picks an arm by weight: a pure function, so every
process agrees, stored on first use, so later edits of a prospect cannot move it. Hashing within the sender
stratum randomizes each sender's prospects independently, so no sender (with its own acceptance habits) is
over-represented in one arm beyond chance. Prospects on the do-not-contact list never enter.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.app import App
from core.experiments.catalog import ExperimentStatus, arms_of, segment_key
from core.messages.library import to_spec
from core.messages.templates import TemplateSpec, select_template
from core.people import identity as idm
from core.store.db import session_scope
from core.store.models import Assignment, Experiment, Prospect, Template, UTCDateTime, utcnow

CHUNK = 500


def bucket(experiment_id: int, identity: str, stratum: str, weights: Sequence[float]) -> int:
    """The arm index for one prospect: a pure function of its inputs (same answer in every process)."""
    if not weights or any(not (w > 0) for w in weights):
        raise ValueError(f"weights must be positive numbers: {list(weights)}")
    key = f"{experiment_id}\x1f{stratum}\x1f{identity}".encode()
    digest = hashlib.sha256(key).digest()
    u = int.from_bytes(digest[:8], "big") / 2**64  # uniform on [0, 1)
    total = float(sum(weights))
    acc = 0.0
    for index, weight in enumerate(weights):
        acc += weight / total
        if u < acc:
            return index
    return len(weights) - 1  # float rounding left u above the last boundary


def stratum_of(sender_account: str | None) -> str:
    return segment_key(sender_account)


def _library(s: Session, step: str) -> list[TemplateSpec]:
    return [to_spec(t) for t in s.exec(select(Template).where(Template.step == step, Template.archived == False)  # noqa: E712
                                       .order_by(Template.name))]


@dataclass
class AssignmentPlan:
    """Assignments for a chunk of prospects, worked out by reading only: the stored ones and the arms of the
    rest (`rows`, still to be written, by `store_assignments_on` or by `_assign_in`'s session)."""

    known: dict[int, tuple[str, str]] = field(default_factory=dict)  # prospect id -> (template, arm)
    rows: list[dict[str, Any]] = field(default_factory=list)  # assignments rows to insert
    names: dict[int, tuple[str, str]] = field(default_factory=dict)  # arm id -> (template, arm)


def _plan_in(s: Session, prospect_ids: Sequence[int], step: str) -> AssignmentPlan:
    plan = AssignmentPlan()
    running = s.exec(select(Experiment).where(Experiment.step == step, Experiment.status == ExperimentStatus.RUNNING)
                     .order_by(col(Experiment.id))).all()
    if not running:
        return plan
    exp_ids = [int(e.id) for e in running if e.id is not None]
    arms = {eid: arms_of(s, eid) for eid in exp_ids}
    plan.names = {int(a.id or 0): (t.name, a.name) for rows in arms.values() for a, t in rows}
    out = plan.known
    for i in range(0, len(prospect_ids), CHUNK):
        chunk = prospect_ids[i:i + CHUNK]
        for pid, arm_id in s.exec(select(Assignment.prospect_id, Assignment.arm_id)
                                  .where(col(Assignment.experiment_id).in_(exp_ids),
                                         col(Assignment.prospect_id).in_(chunk))):
            out[int(pid)] = plan.names[int(arm_id)]
    todo = [pid for pid in prospect_ids if pid not in out]
    # A prospect enters the experiment whose control the selection rules would give it.
    by_control = {arms[eid][0][1].name: eid for eid in exp_ids if arms[eid]}
    library = _library(s, step)
    found: set[int] = set(out)
    do_not_contact = idm.suppressed_prospects(s, todo) if todo else {}
    now = utcnow()
    for i in range(0, len(todo), CHUNK):
        for prospect in s.exec(select(Prospect).where(col(Prospect.id).in_(todo[i:i + CHUNK]))):
            assert prospect.id is not None
            found.add(prospect.id)
            if prospect.id in do_not_contact:  # never enters an experiment: nobody will message them
                continue
            usual, _ = select_template(step, prospect.industry or None, prospect.company_size, library)
            eid = by_control.get(usual.name)
            if eid is None:
                continue
            choices = arms[eid]
            index = bucket(eid, prospect.identity, stratum_of(prospect.sender_account), [a.weight for a, _ in choices])
            arm, tpl = choices[index]
            assert arm.id is not None
            plan.rows.append({"experiment_id": eid, "prospect_id": prospect.id, "arm_id": arm.id, "assigned_at": now})
            out[prospect.id] = (tpl.name, arm.name)
    missing = [pid for pid in prospect_ids if pid not in found]
    if missing:
        shown = ", ".join(str(pid) for pid in missing[:10]) + (" …" if len(missing) > 10 else "")
        raise LookupError(f"no prospect with id {shown}")
    return plan


def _assign_in(s: Session, prospect_ids: Sequence[int], step: str) -> dict[int, tuple[str, str]]:
    plan = _plan_in(s, prospect_ids, step)
    for row in plan.rows:
        s.add(Assignment(**row))
    return plan.known


def plan_assignments(app: App, prospect_ids: Iterable[int], step: str) -> AssignmentPlan:
    """`assigned_templates` without writing: reads only, so a batch worker can hand the new rows to its group
    committer (`store_assignments_on`) instead of opening a second write transaction beside it."""
    ids = list(dict.fromkeys(int(pid) for pid in prospect_ids))
    with session_scope(app.engine) as s:
        return _plan_in(s, ids, step)


_INSERT_ASSIGNMENT = text(
    "INSERT INTO assignments (experiment_id, prospect_id, arm_id, assigned_at) "
    "VALUES (:experiment_id, :prospect_id, :arm_id, :assigned_at) ON CONFLICT (experiment_id, prospect_id) DO NOTHING"
).bindparams(bindparam("assigned_at", type_=UTCDateTime()))


def store_assignments_on(conn: Connection, plan: AssignmentPlan) -> dict[int, tuple[str, str]]:
    """Write a plan's new assignments inside the caller's transaction (see `core.store.commits`); one another worker
    stored first wins. Returns prospect id -> (template, arm) as stored, for every prospect of the plan."""
    out = dict(plan.known)
    if not plan.rows:
        return out
    conn.execute(_INSERT_ASSIGNMENT, plan.rows)
    by_exp: dict[int, list[int]] = {}
    for row in plan.rows:
        by_exp.setdefault(int(row["experiment_id"]), []).append(int(row["prospect_id"]))
    for eid, pids in by_exp.items():
        for i in range(0, len(pids), CHUNK):
            stored = conn.execute(select(Assignment.prospect_id, Assignment.arm_id).where(  # type: ignore[call-overload]
                Assignment.experiment_id == eid, col(Assignment.prospect_id).in_(pids[i:i + CHUNK])))
            for pid, arm_id in stored:
                if int(arm_id) in plan.names:
                    out[int(pid)] = plan.names[int(arm_id)]
    return out


def assigned_templates(app: App, prospect_ids: Iterable[int], step: str) -> dict[int, tuple[str, str]]:
    """prospect id -> (template name, arm name) in the running experiment on `step`, for many prospects.

    A prospect enters an experiment when, without it, the selection rules would give it the experiment's
    control template: the variants compete for exactly the traffic the control gets today. Prospects in
    no experiment are left out of the result. New assignments are stored in one transaction; stored ones
    are returned as they are, even if the prospect's fields changed since. While an experiment runs on the
    step, an unknown prospect id raises LookupError (nothing stored); with none running this answers {}
    without touching the prospects, so the batch runner's common case costs one query.
    """
    ids = list(dict.fromkeys(int(pid) for pid in prospect_ids))
    for attempt in range(2):
        try:
            with session_scope(app.engine) as s:
                return _assign_in(s, ids, step)
        except IntegrityError:
            if attempt:  # another worker stored some of the same assignments first; the retry reads them
                raise
    return {}


def assigned_template(app: App, prospect_id: int, step: str) -> tuple[str, str] | None:
    """(template name, arm name) for one prospect in the running experiment on `step`, or None.

    The batch runner and template selection call this; see `assigned_templates` for who enters.
    """
    return assigned_templates(app, [prospect_id], step).get(prospect_id)
