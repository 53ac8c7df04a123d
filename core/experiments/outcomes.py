"""What happened to each prospect of an experiment: one outcome row per prospect (sent date, accepted, replied,
positive), from an uploaded CSV and from the replies the classifier routes.

An uploaded file is refused whole, with line numbers, when any row is wrong. A classified reply records that
the prospect replied (and so accepted) in every experiment it is assigned in (`record_reply_outcome`, called
by `core.replies.routing`); a send is counted by the batch runner (`record_send`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from core.app import App
from core.dates import parse_moment
from core.experiments.catalog import METRICS, ExperimentStatus, arms_of, experiment_in
from core.people import identity as idm
from core.people.columns import header_key
from core.people.reading import read_table
from core.store.db import session_scope
from core.store.models import Assignment, Experiment, Outcome, Prospect, utcnow

MAX_OUTCOME_BYTES = 20 * 1024 * 1024
MAX_PROBLEMS_SHOWN = 5
CHUNK = 500

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f", ""})
# Keys of core.people.columns.header_key: "Sent At", "sent_at" and "sentAt" are all "sentat".
_IDENTITY_COLUMNS = {"identity": "identity", "linkedinurl": "linkedin_url", "linkedin": "linkedin_url",
                     "linkedinprofile": "linkedin_url", "profileurl": "linkedin_url", "email": "email",
                     "emailaddress": "email"}
_SENT_COLUMNS = ("sentat", "sentdate", "sent", "datesent", "senton")
_FLAG_COLUMNS = ("accepted", "replied", "positive")


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
        exp = experiment_in(s, experiment_id)
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
        arm_names = {a.id: a.name for a, _ in arms_of(s, experiment_id)}
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

    `positive` is whether any reply of the prospect is in the routing table's positive categories
    (`core.replies.routing`). A positive outcome stays positive when a later reply is not (an out-of-office
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
                            Experiment.status == ExperimentStatus.RUNNING)).first()
        if row is None:
            return None
        outcome = _upsert_for_prospect(s, row, when)
        outcome.sent_at = when  # the real send time beats the estimate a reply recorded first
        s.add(outcome)
        return row.experiment_id
