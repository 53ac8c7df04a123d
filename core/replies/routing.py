"""Where a classified reply goes: the routing table (`data/reply_routing.json`, category -> action) and the
actions it names.

Any reply holds the automatic sequence for its prospect (`core.replies.holds`): routing keeps the stop, turns
it into a pause until the return date for an out-of-office reply, or into a suppression for an opt-out, which
adds every identity the prospect is known by to the do-not-contact list (the `Suppression` rows
`prospects.suppress` writes), so later imports skip them. Routing a reply again (a person's override) undoes
a suppression this reply made when the new category is not an opt-out. After routing,
`core.experiments.outcomes.record_reply_outcome` learns whether the prospect has replied positively.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session, select

from core import datafiles
from core.app import App
from core.config import DATA_DIR
from core.experiments import outcomes as experiment_outcomes
from core.people import identity as idm
from core.replies.categories import CATEGORIES
from core.replies.dates import extract_return_date
from core.replies.holds import hold_reply
from core.store.db import immediate, session_scope
from core.store.lookup import get_or_raise
from core.store.models import HoldKind, Prospect, Reply, Suppression, Template, utcnow

ROUTING_FILE = "reply_routing.json"
_ACTION_LABELS = {
    "booking": "Send the booking link",
    "send_template": "Send template {argument}",
    "pause_until_return": "Pause until they are back",
    "suppress": "Do not contact again",
    "stop": "Stop the sequence",
    "record_referral": "Record who they point to",
    "next_step_and_person": "Next step, with a person",
    "to_person": "A person reads it",
}
ACTION_KINDS = tuple(_ACTION_LABELS)


@contextmanager
def writing(app: App) -> Iterator[Session]:
    """A session whose transaction takes the write lock up front (`db.immediate`), for read-then-write units:
    concurrent workers would otherwise fail SQLite's upgrade from a stale read snapshot ("database is locked")."""
    with immediate(app.engine) as conn, Session(bind=conn, expire_on_commit=False) as session:
        yield session
        session.flush()


# --------------------------------------------------------------------------------------------------------
# Routing configuration
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RouteSpec:
    action: str  # as configured, e.g. "send_template:info_follow_up"
    detail: str

    @property
    def kind(self) -> str:
        return self.action.split(":", 1)[0]

    @property
    def argument(self) -> str:
        return self.action.split(":", 1)[1] if ":" in self.action else ""


def action_label(action: str) -> str:
    """A configured action ("send_template:info_follow_up") in a person's words; "" for none."""
    if not action:
        return ""
    kind, _, argument = action.partition(":")
    return _ACTION_LABELS.get(kind, action).format(argument=argument).strip()


@dataclass(frozen=True)
class RoutingConfig:
    min_confidence: float
    default_pause_days: int
    max_pause_days: int
    positive: frozenset[str]
    routes: dict[str, RouteSpec]


def load_routing_config(data_dir: Path = DATA_DIR) -> RoutingConfig:
    """The reply routing table; ValueError names the file and what is wrong with it."""
    return datafiles.load(Path(data_dir) / ROUTING_FILE, _routing_config_from)  # read again when it changes


def _routing_config_from(path: Path, raw: Any) -> RoutingConfig:
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected a JSON object")

    def number(key: str, kind: type, low: float, high: float) -> Any:
        value = raw.get(key)
        wrong_type = not isinstance(value, int | float) or (kind is int and not isinstance(value, int))
        if isinstance(value, bool) or wrong_type:
            raise ValueError(f"{path}: {key} must be a{'n integer' if kind is int else ' number'}, got {value!r}")
        if not low <= value <= high:
            raise ValueError(f"{path}: {key} must be between {low:g} and {high:g}, got {value!r}")
        return kind(value)

    min_confidence = number("min_confidence", float, 0, 1)
    default_pause = number("default_pause_days", int, 1, 365)
    max_pause = number("max_pause_days", int, 1, 730)
    if default_pause > max_pause:
        raise ValueError(f"{path}: default_pause_days ({default_pause}) is longer than max_pause_days ({max_pause})")
    positive = raw.get("positive_categories", [])
    if not isinstance(positive, list) or any(c not in CATEGORIES for c in positive):
        raise ValueError(f"{path}: positive_categories must list categories from: {', '.join(CATEGORIES)}")
    routes_raw = raw.get("routes")
    if not isinstance(routes_raw, dict):
        raise ValueError(f"{path}: routes must be an object of category -> {{action, detail}}")
    unknown = sorted(set(routes_raw) - set(CATEGORIES))
    missing = [c for c in CATEGORIES if c not in routes_raw]
    if unknown or missing:
        raise ValueError(f"{path}: routes must name each category once; unknown: {', '.join(unknown) or 'none'}; "
                         f"missing: {', '.join(missing) or 'none'}")
    routes: dict[str, RouteSpec] = {}
    for category, entry in routes_raw.items():
        action = entry.get("action") if isinstance(entry, dict) else None
        if not isinstance(action, str) or action.split(":", 1)[0] not in ACTION_KINDS:
            raise ValueError(f"{path}: routes.{category}.action must be one of {', '.join(ACTION_KINDS)}; "
                             f"got {action!r}")
        spec = RouteSpec(action=action, detail=str(entry.get("detail") or ""))
        if spec.kind == "send_template" and not spec.argument.strip():
            raise ValueError(f"{path}: routes.{category}.action send_template needs a template name "
                             "(send_template:<name>)")
        routes[category] = spec
    return RoutingConfig(min_confidence=min_confidence, default_pause_days=default_pause,
                         max_pause_days=max_pause, positive=frozenset(positive), routes=routes)


def routing_config(app: App) -> RoutingConfig:
    return load_routing_config(app.settings.data_dir)



# --------------------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OutcomeNote:
    """Whether the experiments learnt this prospect's reply outcome, and why not when they did not."""

    recorded: bool
    positive: bool
    note: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"recorded": self.recorded, "positive": self.positive, **({"note": self.note} if self.note else {})}


@dataclass
class RouteResult:
    reply_id: int
    category: str
    action: str
    detail: str
    sequence: HoldKind
    paused_until: date | None = None
    suppressed: list[str] = field(default_factory=list)
    unsuppressed: list[str] = field(default_factory=list)
    referral: str | None = None
    outcome: OutcomeNote | None = None

    def as_json(self) -> dict[str, Any]:
        return {"reply_id": self.reply_id, "category": self.category, "action": self.action, "detail": self.detail,
                "sequence": str(self.sequence),
                "paused_until": self.paused_until.isoformat() if self.paused_until else None,
                "suppressed": self.suppressed, "unsuppressed": self.unsuppressed, "referral": self.referral,
                "outcome": self.outcome.as_json() if self.outcome else None}


def _prospect_identities(s: Session, prospect: Prospect) -> list[str]:
    """Every identity this person is known by (profiles, e-mails, name and company), from `core.people.identity`."""
    known = idm.known_keys(s, [int(prospect.id)]) if prospect.id is not None else {}
    return list(dict.fromkeys([*idm.prospect_keys(prospect), *sorted(known.get(int(prospect.id or 0), ()))]))


def _suppression_reason(reply_id: int) -> str:
    return f"opt-out in reply #{reply_id}"


def pause_until_for(received: date, return_date: date | None, config: RoutingConfig) -> tuple[date, str]:
    """The day an out-of-office pause ends, and why: the return date when it is after the reply and within
    max_pause_days, else capped, else default_pause_days after the reply."""
    longest = received + timedelta(days=config.max_pause_days)
    if return_date is not None and return_date > received:
        if return_date <= longest:
            return return_date, f"back on {return_date.isoformat()}"
        return longest, (f"back on {return_date.isoformat()}, capped at {config.max_pause_days} days "
                         f"({longest.isoformat()})")
    default = received + timedelta(days=config.default_pause_days)
    return default, f"no return date given; default pause of {config.default_pause_days} days"


def _action_detail(spec: RouteSpec, template: Template | None) -> str:
    if spec.kind != "send_template":
        return spec.detail
    if template is None or template.archived:
        return (f"{spec.detail} No template named {spec.argument!r} exists in the library yet: add one, or a "
                "person writes the answer.").strip()
    return f"{spec.detail} Template {spec.argument!r} (step {template.step}).".strip()


def _template_for(session: Session, spec: RouteSpec) -> Template | None:
    if spec.kind != "send_template":
        return None
    return session.exec(select(Template).where(Template.name == spec.argument)).first()


def describe_action(app: App, spec: RouteSpec) -> str:
    """The configured detail, plus what is missing for the action to be carried out."""
    with session_scope(app.engine) as s:
        return _action_detail(spec, _template_for(s, spec))


def apply_routing(app: App, reply_id: int, *, corrected: bool = False) -> RouteResult:
    """Carry out the configured action for a classified reply, record it in the reply's details and set the
    reply's sequence hold.

    Idempotent: routing the same reply again gives the same state. When the category changed since the
    last routing (an override), suppressions this reply added are removed unless it is still an opt-out.
    The reply, its details, its hold and the suppressions change in one transaction. `corrected` (a person's
    override) lets the experiment outcome become negative again.
    """
    config = routing_config(app)
    with writing(app) as s:
        reply = get_or_raise(s, Reply, reply_id)
        category = reply.category
        if not category:
            raise ValueError(f"reply #{reply_id} is not classified yet; classify it or override its category first")
        spec = config.routes[category]
        detail = _action_detail(spec, _template_for(s, spec))
        prospect = s.get(Prospect, reply.prospect_id) if reply.prospect_id is not None else None
        identities = [i for i in dict.fromkeys(
            [*(_prospect_identities(s, prospect) if prospect else []),
             idm.canonical(reply.prospect_identity) or reply.prospect_identity]) if i]
        received = reply.received_at.date()
        details = dict(reply.details or {})
        classification = details.get("classification") or {}
        result = RouteResult(reply_id=reply_id, category=category, action=spec.action, detail=detail,
                             sequence=HoldKind.STOPPED)

        reason = _suppression_reason(reply_id)
        previously = [i for i in details.get("suppressed", []) if isinstance(i, str)]
        if previously and spec.kind != "suppress":
            for key in previously:
                row = s.get(Suppression, key)
                if row is not None and row.reason == reason:  # another reason means another source: keep it
                    s.delete(row)
                    result.unsuppressed.append(key)
            details["suppressed"] = []
        if spec.kind == "suppress":
            # The same rows `prospects.suppress` writes (core.people.identity), inside this transaction.
            result.suppressed.extend(idm.add_suppressions(s, identities, reason))
            result.sequence = HoldKind.SUPPRESSED
            details["suppressed"] = sorted({*previously, *result.suppressed})
            if not identities:
                result.detail += " No identity is known for this reply, so nothing was suppressed: a person must."
        elif spec.kind == "pause_until_return":
            given = classification.get("return_date") if category == classification.get("category") else None
            try:
                returned = date.fromisoformat(given) if given else None
            except ValueError:
                returned = None
            if returned is None:  # e.g. a person's override of a low-confidence verdict: read the text itself
                returned = extract_return_date(reply.text, received)
            until, why = pause_until_for(received, returned, config)
            result.sequence, result.paused_until = HoldKind.PAUSED, until
            result.detail = f"{result.detail} Paused until {until.isoformat()} ({why})."
        elif spec.kind == "record_referral":
            referral = classification.get("referral") if category == classification.get("category") else None
            result.referral = referral or None
            details["referral"] = result.referral
            result.detail += (f" Referred to: {referral}." if referral
                              else " The reply names no one; a person looks for the right contact.")

        hold_reply(s, reply, result.sequence, result.paused_until, f"reply #{reply_id} ({category})")
        details.pop("sequence", None)  # the state lived here before the holds table (migration 007)
        details["routing"] = {"action": spec.action, "detail": result.detail, "routed_at": utcnow().isoformat()}
        reply.next_action = spec.action
        reply.details = details
        s.add(reply)
        prospect_id, when = reply.prospect_id, reply.received_at

    if prospect_id is not None:  # after the commit: the experiments write through their own transaction
        result.outcome = _record_outcome(app, prospect_id, config, when, corrected)
        with writing(app) as s:
            reply = s.get(Reply, reply_id)
            if reply is not None:
                reply.details = {**(reply.details or {}), "outcome": result.outcome.as_json()}
                s.add(reply)
    return result


def _record_outcome(
    app: App, prospect_id: int, config: RoutingConfig, when: datetime, corrected: bool
) -> OutcomeNote:
    """Tell the experiments whether this prospect has replied positively (any of their replies).

    A person's correction is passed as `replace=True`, so a wrongly positive outcome can be taken back.
    """
    with session_scope(app.engine) as s:
        categories = s.exec(select(Reply.category).where(Reply.prospect_id == prospect_id)).all()
    positive = any(c in config.positive for c in categories)
    try:
        if corrected:
            experiment_outcomes.record_reply_outcome(app, prospect_id, positive, when, replace=True)
        else:
            experiment_outcomes.record_reply_outcome(app, prospect_id, positive, when)
    except Exception as exc:  # a failing write must not undo the routing; the error is kept on the reply
        return OutcomeNote(False, positive, f"experiments outcome not recorded: {exc}"[:300])
    return OutcomeNote(True, positive)

