"""A/B/n experiments on templates: plan, assign, record outcomes, analyze honestly, promote the winner.

An experiment compares a control template with one or more variants on one sequence step. Its segment is
the industry its templates are aimed at (empty for untargeted templates); at most one experiment runs per
step and segment. A prospect enters an experiment when the selection rules would otherwise give it the
control template, so the variants compete for exactly the traffic the control gets today. The math lives
in `core.experiments.stats`; this module stores what it needs and applies it:

- **Plan** before starting: sends per arm from baseline rate, minimum detectable effect (absolute), power
  and alpha, with the Holm (Bonferroni first step) alpha for A/B/n, and the weeks that takes at a weekly
  send volume. The verdict is withheld until every arm reaches the planned sample.
- **Assignment** is sticky and deterministic: sha256 of experiment id, sender account (the stratum) and
  prospect identity gives a uniform number that picks an arm by weight. It is a pure function, so every
  process agrees, and it is stored on first use, so later edits of a prospect cannot move it. Hashing
  within the sender stratum randomizes each sender's prospects independently, so no sender (with its own
  acceptance habits) is over-represented in one arm beyond chance.
- **Outcomes** (one row per prospect per experiment: sent date, accepted, replied, positive) come from
  an uploaded CSV, refused whole with line numbers when any row is wrong, and from classified replies.
- **Results** count an outcome row as a send and the metric's flag as a success, and go through
  `stats.analyze` (Wilson intervals, pooled z-test, Holm, Beta chance to beat control, SRM check).
- **Promotion** makes the winner the default template of its step and segment, stops the experiment and
  records who decided, when, and the numbers they saw. It is refused while the verdict is withheld or
  points elsewhere, unless forced (and the record says so).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import Integer, bindparam, cast, func, text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from core.app import App
from core.dates import parse_moment
from core.messages.library import steps, to_spec
from core.messages.templates import TemplateSpec, select_template
from core.people import identity as idm
from core.people.columns import header_key
from core.people.reading import read_table
from core.store.db import session_scope
from core.store.lookup import get_or_raise
from core.store.models import Assignment, Experiment, ExperimentArm, Outcome, Prospect, Template, UTCDateTime, utcnow

METRICS: dict[str, tuple[str, str]] = {
    # metric -> (Outcome flag counted as a success, label for people)
    "positive_rate": ("positive", "positive-reply rate"),
    "reply_rate": ("replied", "reply rate"),
    "acceptance_rate": ("accepted", "acceptance rate"),
}
MAX_ARMS = 8
NAME_LIMIT = 80
MAX_OUTCOME_BYTES = 20 * 1024 * 1024
MAX_PROBLEMS_SHOWN = 5
CHUNK = 500
POSITIVE_CATEGORIES = frozenset({"interested", "schedule_call", "request_info"})

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f", ""})
# Keys of core.people.columns.header_key: "Sent At", "sent_at" and "sentAt" are all "sentat".
_IDENTITY_COLUMNS = {"identity": "identity", "linkedinurl": "linkedin_url", "linkedin": "linkedin_url",
                     "linkedinprofile": "linkedin_url", "profileurl": "linkedin_url", "email": "email",
                     "emailaddress": "email"}
_SENT_COLUMNS = ("sentat", "sentdate", "sent", "datesent", "senton")
_FLAG_COLUMNS = ("accepted", "replied", "positive")


# --------------------------------------------------------------------------------------------------
# Planning
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    per_arm: int
    arms: int
    total: int
    weeks: float | None  # None when no weekly volume was given

    def as_json(self) -> dict[str, Any]:
        return {"per_arm": self.per_arm, "arms": self.arms, "total": self.total,
                "weeks": None if self.weeks is None else round(self.weeks, 2)}


def plan(baseline_rate: float, mde_abs: float, power: float = 0.8, alpha: float = 0.05, arms: int = 2,
         sends_per_week: int | None = None) -> Plan:
    """Sends per arm (Holm-adjusted for A/B/n) and the weeks they take at sends_per_week in total."""
    from core.experiments import stats  # statsmodels takes over a second to import; assignment alone does not need it

    if arms < 2 or arms > MAX_ARMS:
        raise ValueError(f"an experiment has 2 to {MAX_ARMS} arms (control included), got {arms}")
    per_arm = stats.sample_size_per_arm(baseline_rate, mde_abs, power, alpha, n_treatments=arms - 1)
    weeks = None if sends_per_week is None else stats.weeks_to_sample(per_arm, arms, sends_per_week)
    return Plan(per_arm=per_arm, arms=arms, total=per_arm * arms, weeks=weeks)


# --------------------------------------------------------------------------------------------------
# Creating and listing
# --------------------------------------------------------------------------------------------------


def _clean(text: str | None) -> str:
    return " ".join((text or "").split())


def _segment_key(text: str | None) -> str:
    return _clean(text).casefold()


def _label(metric: str) -> str:
    return METRICS[metric][1]


def _get(s: Session, experiment_id: int) -> Experiment:
    exp = get_or_raise(s, Experiment, experiment_id)
    return exp


def _arms(s: Session, experiment_id: int) -> list[tuple[ExperimentArm, Template]]:
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
    name = _clean(name)
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
        segment = _clean(templates[0].industry if segment is None else segment)
        for tpl in templates:
            if tpl.archived:
                raise ValueError(f"template {tpl.name!r} is archived")
            if tpl.step != step:
                raise ValueError(f"template {tpl.name!r} is for step {tpl.step!r}, not {step!r}")
            if _segment_key(tpl.industry) != _segment_key(segment):
                aimed = f"industry {tpl.industry!r}" if tpl.industry else "no particular industry"
                where = f"segment {segment!r}" if segment else "the general segment (no industry)"
                raise ValueError(f"template {tpl.name!r} is aimed at {aimed}; an experiment in {where} "
                                 "compares templates of that segment")
        if s.exec(select(Experiment.id).where(Experiment.name == name)).first() is not None:
            raise ValueError(f"an experiment named {name!r} already exists")
        for other in s.exec(select(Experiment).where(Experiment.step == step, Experiment.status == "running")):
            if _segment_key(other.segment) == _segment_key(segment):
                where = f"segment {segment!r}" if segment else "the general segment"
                raise ValueError(f"experiment #{other.id} {other.name!r} is already running on {step} for {where}; "
                                 "promote a winner or stop it before starting another")
        exp = Experiment(name=name, step=step, segment=segment, metric=metric, baseline_rate=baseline_rate,
                         mde_abs=mde_abs, power=power, alpha=alpha, planned_per_arm=planned, status="running")
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
        return _get(s, experiment_id)


def list_experiments(app: App) -> list[dict[str, Any]]:
    """Every experiment, newest first, with its arms and how many sends are recorded."""
    with session_scope(app.engine) as s:
        exps = s.exec(select(Experiment).order_by(col(Experiment.id).desc())).all()
        sends = dict(s.exec(select(Outcome.experiment_id, func.count()).group_by(Outcome.experiment_id)).all())
        out = []
        for e in exps:
            assert e.id is not None
            arms = _arms(s, e.id)
            out.append({
                "id": e.id, "name": e.name, "step": e.step, "segment": e.segment, "metric": e.metric,
                "status": e.status, "arms": [a.name for a, _ in arms],
                "control": next((a.name for a, _ in arms if a.is_control), None),
                "planned_per_arm": e.planned_per_arm, "sends": int(sends.get(e.id, 0)),
                "created_at": e.created_at.isoformat(),
                "decision": e.decision or None,
            })
        return out


# --------------------------------------------------------------------------------------------------
# Assignment
# --------------------------------------------------------------------------------------------------


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
    return _segment_key(sender_account)


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
    running = s.exec(select(Experiment).where(Experiment.step == step, Experiment.status == "running")
                     .order_by(col(Experiment.id))).all()
    if not running:
        return plan
    exp_ids = [int(e.id) for e in running if e.id is not None]
    arms = {eid: _arms(s, eid) for eid in exp_ids}
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


# --------------------------------------------------------------------------------------------------
# Outcomes
# --------------------------------------------------------------------------------------------------


class OutcomeImportError(ValueError):
    """The outcomes file is refused whole; `problems` lists every (line, reason)."""

    def __init__(self, problems: list[tuple[int | None, str]]) -> None:
        self.problems = problems
        shown = "; ".join(f"line {line}: {reason}" if line else reason
                          for line, reason in problems[:MAX_PROBLEMS_SHOWN])
        more = f" (and {len(problems) - MAX_PROBLEMS_SHOWN} more)" if len(problems) > MAX_PROBLEMS_SHOWN else ""
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        super().__init__(f"the outcomes file has {count}, so nothing was stored: {shown}{more}")

    def as_rows(self) -> list[dict[str, Any]]:
        return [{"line": line, "problem": reason} for line, reason in self.problems]


@dataclass
class OutcomeImportReport:
    experiment_id: int
    rows: int
    inserted: int
    updated: int
    by_arm: dict[str, int] = field(default_factory=dict)
    encoding: str = ""
    delimiter: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"experiment_id": self.experiment_id, "rows": self.rows, "inserted": self.inserted,
                "updated": self.updated, "by_arm": self.by_arm, "encoding": self.encoding,
                "delimiter": self.delimiter}


def parse_flag(raw: str) -> bool | None:
    """1/0, true/false, yes/no, y/n (any case); an empty cell is "no". None when not understood."""
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    return None


def parse_sent(raw: str, now: datetime | None = None) -> tuple[datetime | None, str]:
    """(UTC datetime, "") or (None, why): a moment as `core.dates.parse_moment` reads it, not in the future."""
    value = raw.strip()
    if not value:
        return None, "sent date is empty"
    try:
        moment = parse_moment(value)
    except ValueError:
        return None, f"sent date {value[:40]!r} is not a date; use YYYY-MM-DD (or an ISO date-time)"
    if moment > (now or utcnow()) + timedelta(days=1):
        return None, f"sent date {value[:40]!r} is in the future"
    return moment, ""


@dataclass
class _Keys:
    identity: dict[str, int]
    email: dict[str, int]
    linkedin: dict[str, int]

    def find(self, kind: str, value: str) -> int | None:
        if kind == "identity":
            return self.identity.get(value)
        if kind == "email":
            return self.identity.get(f"email:{value}") or self.email.get(value)
        return self.identity.get(f"li:{value}") or self.linkedin.get(value)


def _keys_of(prospects: Iterable[tuple[int, str, str, str]]) -> _Keys:
    keys = _Keys({}, {}, {})
    for pid, key, email, linkedin in prospects:
        keys.identity[key] = pid
        keys.identity.setdefault(idm.canonical(key) or key, pid)
        mail = idm.normalize_email(email)
        if mail:
            keys.email.setdefault(mail, pid)
        url = idm.normalize_linkedin_url(linkedin or "")
        if url:
            keys.linkedin.setdefault(url, pid)
    return keys


def _row_key(cells: dict[str, str]) -> tuple[str, str] | str:
    """(kind, normalized value) for the row's prospect, or the reason it has none (keys from `core.people.identity`)."""
    raw_identity = cells.get("identity", "")
    if raw_identity:
        if raw_identity.startswith(("li:", "email:", "name:")):
            return "identity", idm.canonical(raw_identity) or raw_identity
        url = idm.normalize_linkedin_url(raw_identity)
        if url:
            return "linkedin_url", url
        if "@" in raw_identity:
            return "email", idm.normalize_email(raw_identity) or raw_identity
        return "identity", raw_identity
    raw_url = cells.get("linkedin_url", "")
    if raw_url:
        url = idm.normalize_linkedin_url(raw_url)
        if url:
            return "linkedin_url", url
        if not cells.get("email"):
            return f"{raw_url[:60]!r} is not a LinkedIn profile URL (https://www.linkedin.com/in/...)"
    email = cells.get("email", "")
    if email:
        return "email", idm.normalize_email(email) or email
    return "no prospect identity (fill identity, linkedin_url or email)"


def _outcome_columns(headers: Sequence[str], metric_flag: str, metric: str) -> dict[str, int]:
    """Canonical column -> index in the outcomes file; raises OutcomeImportError for a header it cannot use."""
    columns: dict[str, int] = {}
    problems: list[tuple[int | None, str]] = []
    for index, header in enumerate(headers):
        key = header_key(header)
        canonical = _IDENTITY_COLUMNS.get(key) or ("sent_at" if key in _SENT_COLUMNS else None) or (
            key if key in _FLAG_COLUMNS else None)
        if canonical is None:
            continue
        if canonical in columns:
            problems.append((None, f"header: two columns give {canonical} ({headers[columns[canonical]]!r} and "
                                   f"{header!r}); keep one"))
        else:
            columns[canonical] = index
    found = ", ".join(headers[:20])
    if not any(c in columns for c in ("identity", "linkedin_url", "email")):
        problems.append((None, f"header: no prospect column; add identity, linkedin_url or email (found: {found})"))
    if "sent_at" not in columns:
        problems.append((None, f"header: no sent date column; add sent_at with YYYY-MM-DD dates (found: {found})"))
    if metric_flag not in columns:
        problems.append((None, f"header: no {metric_flag} column, which the experiment's metric ({metric}) "
                               f"counts (found: {found})"))
    if problems:
        raise OutcomeImportError(problems)
    return columns


def import_outcomes(app: App, experiment_id: int, data: bytes) -> OutcomeImportReport:
    """Store outcomes from a CSV for prospects assigned in this experiment; upsert per prospect.

    Columns (header names are case-insensitive): the prospect as `identity`, `linkedin_url` or `email`;
    the send date as `sent_at` (or `sent_date`, `sent`); flags `accepted`, `replied`, `positive` as
    1/0, true/false, yes/no (empty means no). The flag the experiment's metric counts is required; a
    missing other flag keeps its stored value. The whole file is refused (OutcomeImportError, nothing
    stored) when any row is wrong: unknown prospect, prospect not assigned in this experiment, bad date or
    flag, a prospect twice, a positive outcome without a reply.
    """
    table = read_table(data, max_bytes=MAX_OUTCOME_BYTES)
    with session_scope(app.engine) as s:
        exp = _get(s, experiment_id)
        metric_flag = METRICS[exp.metric][0]

    columns = _outcome_columns(table.headers, metric_flag, exp.metric)
    problems: list[tuple[int | None, str]] = [(e.line, e.reason) for e in table.errors]
    if not table.rows and not table.errors:
        problems.append((None, "the file has a header but no rows"))

    with session_scope(app.engine) as s:
        assigned = s.exec(
            select(Assignment.prospect_id, Assignment.arm_id, Prospect.identity, Prospect.email, Prospect.linkedin_url)
            .join(Prospect, col(Prospect.id) == col(Assignment.prospect_id))
            .where(Assignment.experiment_id == experiment_id)
        ).all()
        arm_names = {a.id: a.name for a, _ in _arms(s, experiment_id)}
    arm_of = {pid: arm_id for pid, arm_id, *_ in assigned}
    keys = _keys_of((pid, ident, email, url) for pid, _, ident, email, url in assigned)

    now = utcnow()
    parsed: list[tuple[int, int, datetime, dict[str, bool]]] = []  # line, prospect id, sent, flags
    unresolved: list[tuple[int, str, str]] = []  # line, kind, value
    first_line: dict[int, int] = {}
    for line, cells_list in table.rows:
        cells = {name: cells_list[i] for name, i in columns.items()}
        row_problems: list[str] = []
        key = _row_key(cells)
        sent, why = parse_sent(cells["sent_at"], now)
        if why:
            row_problems.append(why)
        flags: dict[str, bool] = {}
        for flag in _FLAG_COLUMNS:
            if flag in columns:
                value = parse_flag(cells[flag])
                if value is None:
                    row_problems.append(f"{flag} {cells[flag][:40]!r} is not a yes/no value "
                                        "(use 1/0, true/false, yes/no)")
                else:
                    flags[flag] = value
        if flags.get("positive") and "replied" in flags and not flags["replied"]:
            row_problems.append("positive is 1 but replied is 0; a positive outcome is a reply")
        pid = None
        if isinstance(key, str):
            row_problems.append(key)
        else:
            pid = keys.find(*key)
            if pid is None:
                unresolved.append((line, *key))
            elif pid in first_line:
                row_problems.append(f"the same prospect is already on line {first_line[pid]}")
            else:
                first_line[pid] = line
        problems.extend((line, p) for p in row_problems)
        if not row_problems and pid is not None and sent is not None:
            parsed.append((line, pid, sent, flags))

    if unresolved:
        problems.extend(_unresolved_problems(app, experiment_id, unresolved))
    if problems:
        problems.sort(key=lambda p: (p[0] or 0))
        raise OutcomeImportError(problems)

    report = OutcomeImportReport(experiment_id=experiment_id, rows=len(parsed), inserted=0, updated=0,
                                 encoding=table.encoding, delimiter=table.delimiter)
    with session_scope(app.engine) as s:
        pids = [pid for _, pid, _, _ in parsed]
        existing: dict[int, Outcome] = {}
        for i in range(0, len(pids), CHUNK):
            chunk = pids[i:i + CHUNK]
            for row in s.exec(select(Outcome).where(Outcome.experiment_id == experiment_id,
                                                    col(Outcome.prospect_id).in_(chunk))):
                existing[row.prospect_id] = row
        for _, pid, sent, flags in parsed:
            if flags.get("positive") and "replied" not in flags:
                flags["replied"] = True
            row = existing.get(pid)
            if row is None:
                row = Outcome(experiment_id=experiment_id, prospect_id=pid, arm_id=arm_of[pid], sent_at=sent,
                              source="import", **flags)
                report.inserted += 1
            else:
                row.sent_at = sent
                row.arm_id = arm_of[pid]
                row.source = "import"
                for flag, value in flags.items():
                    setattr(row, flag, value)
                report.updated += 1
            s.add(row)
            arm = arm_names.get(arm_of[pid], str(arm_of[pid]))
            report.by_arm[arm] = report.by_arm.get(arm, 0) + 1
    return report


def _unresolved_problems(app: App, experiment_id: int,
                         unresolved: list[tuple[int, str, str]]) -> list[tuple[int | None, str]]:
    """Say, for rows whose prospect is not assigned here, whether the prospect exists at all."""
    def key_of(kind: str, value: str) -> str:
        return value if kind == "identity" else f"email:{value}" if kind == "email" else f"li:{value}"

    with session_scope(app.engine) as s:
        found = idm.find_prospects(s, {key_of(kind, v) for _, kind, v in unresolved})
    out: list[tuple[int | None, str]] = []
    for line, kind, value in unresolved:
        shown = value if len(value) <= 80 else value[:79] + "…"
        if key_of(kind, value) not in found:
            out.append((line, f"unknown prospect {shown!r}; import the prospect before its outcomes"))
        else:
            out.append((line, f"prospect {shown!r} is not assigned in experiment #{experiment_id} (no arm); "
                              "only prospects that were sent one of its templates have outcomes here"))
    return out


def _upsert_for_prospect(s: Session, assignment: Assignment, when: datetime) -> Outcome:
    row = s.exec(select(Outcome).where(Outcome.experiment_id == assignment.experiment_id,
                                       Outcome.prospect_id == assignment.prospect_id)).first()
    if row is None:
        row = Outcome(experiment_id=assignment.experiment_id, prospect_id=assignment.prospect_id,
                      arm_id=assignment.arm_id, sent_at=min(assignment.assigned_at, when), source="reply")
    return row


def record_reply_outcome(app: App, prospect_id: int, positive: bool, when: datetime,
                         *, replace: bool = False) -> list[int]:
    """A classified reply: the prospect replied (and so accepted) in every experiment it is assigned in.

    `positive` is whether the reply was interested, schedule_call or request_info (see
    POSITIVE_CATEGORIES). A positive outcome stays positive when a later reply is not (an out-of-office
    after "let's talk" does not undo the interest) unless `replace` is set, as for an operator's correction.
    Returns the ids of the experiments updated.
    """
    if when.tzinfo is None:
        raise ValueError("the reply time must be timezone-aware (UTC)")
    updated: list[int] = []
    with session_scope(app.engine) as s:
        for assignment in s.exec(select(Assignment).where(Assignment.prospect_id == prospect_id)
                                 .order_by(col(Assignment.experiment_id))):
            row = _upsert_for_prospect(s, assignment, when)
            row.replied = True
            row.accepted = True
            row.positive = positive if replace else (row.positive or positive)
            s.add(row)
            updated.append(assignment.experiment_id)
    return updated


def record_send(app: App, prospect_id: int, step: str, when: datetime) -> int | None:
    """A message of `step` was sent to the prospect: count it in the running experiment that assigned it.

    Returns the experiment id, or None when no running experiment on that step has this prospect.
    """
    if when.tzinfo is None:
        raise ValueError("the send time must be timezone-aware (UTC)")
    with session_scope(app.engine) as s:
        row = s.exec(select(Assignment).join(Experiment, col(Experiment.id) == col(Assignment.experiment_id))
                     .where(Assignment.prospect_id == prospect_id, Experiment.step == step,
                            Experiment.status == "running")).first()
        if row is None:
            return None
        outcome = _upsert_for_prospect(s, row, when)
        outcome.sent_at = when  # the real send time beats the estimate a reply recorded first
        s.add(outcome)
        return row.experiment_id


# --------------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------------


def _counts(s: Session, exp: Experiment) -> dict[int, tuple[int, int]]:
    flag = getattr(Outcome, METRICS[exp.metric][0])
    rows = s.exec(select(Outcome.arm_id, func.count(), func.coalesce(func.sum(cast(flag, Integer)), 0))
                  .where(Outcome.experiment_id == exp.id).group_by(Outcome.arm_id)).all()
    return {int(arm_id): (int(n), int(k)) for arm_id, n, k in rows}


def _verdict_text(text: str, metric: str) -> str:
    # core.experiments.stats words every verdict as a "reply rate"; name the metric this experiment counts.
    return text.replace("reply rate", _label(metric))


def experiment_stats(app: App, experiment_id: int) -> dict[str, Any]:
    """Counts and statistics per arm (control first), the SRM check, the plan and the verdict.

    An experiment without sends is an empty state (verdict "no_data"), not an error.
    """
    from core.experiments import stats

    with session_scope(app.engine) as s:
        exp = _get(s, experiment_id)
        arms = _arms(s, experiment_id)
        counts = _counts(s, exp)
    arm_counts = [stats.ArmCounts(a.name, *counts.get(int(a.id or 0), (0, 0))) for a, _ in arms]
    control = arms[0][0].name
    analysis = stats.analyze(arm_counts, control, planned_per_arm=exp.planned_per_arm,
                             weights=[a.weight for a, _ in arms], alpha=exp.alpha)
    by_name = {a.name: (a, t) for a, t in arms}
    rows = []
    for st in analysis.arms:
        arm, tpl = by_name[st.name]
        rows.append({
            "name": st.name, "template": tpl.name, "is_control": arm.is_control, "weight": arm.weight,
            "sends": st.sends, "successes": st.successes, "rate": st.rate, "ci_low": st.ci_low,
            "ci_high": st.ci_high, "lift_abs": st.lift_abs,
            "lift_abs_ci_low": st.lift_abs_ci[0] if st.lift_abs_ci else None,
            "lift_abs_ci_high": st.lift_abs_ci[1] if st.lift_abs_ci else None,
            "lift_rel": st.lift_rel, "p_value": st.p_value, "p_holm": st.p_holm,
            "chance_to_beat_control": st.chance_to_beat_control, "expected_loss": st.expected_loss,
        })
    total = sum(r["sends"] for r in rows)
    fewest = min(r["sends"] for r in rows)
    return {
        "id": exp.id, "name": exp.name, "step": exp.step, "segment": exp.segment, "status": exp.status,
        "metric": exp.metric, "metric_label": _label(exp.metric), "success": METRICS[exp.metric][0],
        "alpha": exp.alpha, "power": exp.power, "baseline_rate": exp.baseline_rate, "mde_abs": exp.mde_abs,
        "control": control, "arms": rows, "total_sends": total, "srm_p": analysis.srm_p,
        "srm_flag": analysis.srm_flag, "planned_per_arm": exp.planned_per_arm,
        "progress": None if not exp.planned_per_arm else min(1.0, fewest / exp.planned_per_arm),
        "verdict": analysis.verdict, "verdict_text": _verdict_text(analysis.verdict_text, exp.metric),
        "withheld": analysis.verdict in ("no_data", "collecting", "srm"),
        "decision": exp.decision or None,
    }


def cumulative_rates(app: App, experiment_id: int) -> list[dict[str, Any]]:
    """Per arm and UTC day with sends: cumulative sends, successes and rate (for a chart over time)."""
    with session_scope(app.engine) as s:
        exp = _get(s, experiment_id)
        names = {a.id: a.name for a, _ in _arms(s, experiment_id)}
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
        out.append({"arm": names.get(arm_id, str(arm_id)), "date": day.isoformat(), "sends": total[0],
                    "successes": total[1], "rate": total[1] / total[0]})
    return out


# --------------------------------------------------------------------------------------------------
# Decisions
# --------------------------------------------------------------------------------------------------


def _decided_by(name: str) -> str:
    who = _clean(name)
    if not who or len(who) > 100:
        raise ValueError("say who decides (1 to 100 characters), so the record shows it")
    return who


def _snapshot(result: dict[str, Any]) -> list[dict[str, Any]]:
    keep = ("name", "template", "sends", "successes", "rate", "ci_low", "ci_high", "p_value", "p_holm",
            "chance_to_beat_control", "expected_loss")
    return [{k: arm[k] for k in keep} for arm in result["arms"]]


def promotion_blocker(result: dict[str, Any], arm_name: str) -> str:
    """Why promoting `arm_name` needs force, from the current results; "" when the evidence supports it."""
    verdict = result["verdict"]
    if result["withheld"]:
        return f"the verdict is withheld ({result['verdict_text'].rstrip('.')})"
    if verdict.startswith("winner:") and verdict.removeprefix("winner:") != arm_name:
        return f"the evidence favours {verdict.removeprefix('winner:')!r}, not {arm_name!r}"
    if verdict == "control_best" and arm_name != result["control"]:
        return f"the control {result['control']!r} is best; {arm_name!r} is not"
    return ""


def promote(app: App, experiment_id: int, arm_name: str, decided_by: str, *, force: bool = False) -> dict[str, Any]:
    """Make an arm's template the default of the experiment's step and segment, and stop the experiment.

    Refused (ValueError) when the experiment is not running, or when the verdict is withheld or favours
    another arm, unless `force` (recorded in the decision). Returns the decision record.
    """
    who = _decided_by(decided_by)
    result = experiment_stats(app, experiment_id)
    if result["status"] != "running":
        raise ValueError(f"experiment #{experiment_id} is already {result['status']}; nothing to promote")
    names = [a["name"] for a in result["arms"]]
    if arm_name not in names:
        raise LookupError(f"experiment #{experiment_id} has no arm {arm_name!r}; arms: {', '.join(names)}")
    blocker = promotion_blocker(result, arm_name)
    if blocker and not force:
        raise ValueError(f"not promoted: {blocker}. Promote with force to override, and the record will say so")

    with session_scope(app.engine) as s:
        exp = _get(s, experiment_id)
        if exp.status != "running":  # another decision landed since the stats were read
            raise ValueError(f"experiment #{experiment_id} is already {exp.status}; nothing to promote")
        arm, winner = next((a, t) for a, t in _arms(s, experiment_id) if a.name == arm_name)
        segment = _segment_key(exp.segment)
        previous = []
        for tpl in s.exec(select(Template).where(Template.step == exp.step, Template.is_default == True)):  # noqa: E712
            if _segment_key(tpl.industry) == segment and tpl.id != winner.id:
                tpl.is_default = False
                previous.append(tpl.name)
                s.add(tpl)
        winner.is_default = True
        s.add(winner)
        decision = {
            "action": "promote", "arm": arm.name, "template": winner.name, "decided_by": who,
            "decided_at": utcnow().isoformat(), "forced": bool(blocker) and force, "override_reason": blocker,
            "verdict": result["verdict"], "verdict_text": result["verdict_text"], "metric": exp.metric,
            "planned_per_arm": exp.planned_per_arm, "srm_p": result["srm_p"], "arms": _snapshot(result),
            "previous_default": previous,
        }
        exp.decision = decision
        exp.status = "stopped"
        s.add(exp)
    return decision


def stop_experiment(app: App, experiment_id: int, decided_by: str, reason: str = "") -> dict[str, Any]:
    """Stop without promoting (templates unchanged); records who, when, why and the numbers."""
    who = _decided_by(decided_by)
    result = experiment_stats(app, experiment_id)
    with session_scope(app.engine) as s:
        exp = _get(s, experiment_id)
        if exp.status != "running":
            raise ValueError(f"experiment #{experiment_id} is already {exp.status}")
        decision = {"action": "stop", "decided_by": who, "decided_at": utcnow().isoformat(),
                    "reason": _clean(reason)[:500], "verdict": result["verdict"],
                    "verdict_text": result["verdict_text"], "metric": exp.metric, "arms": _snapshot(result)}
        exp.decision = decision
        exp.status = "stopped"
        s.add(exp)
    return decision


__all__ = [
    "METRICS",
    "AssignmentPlan",
    "OutcomeImportError",
    "OutcomeImportReport",
    "Plan",
    "assigned_template",
    "assigned_templates",
    "bucket",
    "create_experiment",
    "cumulative_rates",
    "experiment_stats",
    "get_experiment",
    "import_outcomes",
    "list_experiments",
    "plan",
    "plan_assignments",
    "promote",
    "promotion_blocker",
    "record_reply_outcome",
    "record_send",
    "stop_experiment",
    "store_assignments_on",
]
