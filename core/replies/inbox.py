"""Prospects' replies: import them, classify each with a small model, and route it to its funnel step.

A reply is untrusted text twice over: the prospect wrote it, and the model's verdict on it is model output.
So the reply is cleaned and cut (`reply_rules.clean_reply`) before any model sees it, the verdict must be
strict JSON that validates (`Classification`), an invalid verdict gets exactly one re-ask, and anything still
invalid, or below the confidence threshold, becomes `unclear`, which routes to a person. An empty reply is
`unclear` without a model call.

Routing (`apply_routing`) reads `data/reply_routing.json` (category -> action). Any reply stops the
automatic sequence for its prospect, and an out-of-office reply pauses it instead; the state is recorded
in each Reply's `details["sequence"]`, and the batch runner asks `sequence_stopped` and `paused_until`.
An opt-out adds every identity the prospect is known by to the do-not-contact list (the `Suppression`
rows `prospects.suppress` writes), so later imports skip them. A person's `override` keeps the model's
answer beside theirs and routes again, undoing a suppression this reply made when the override says it
was not an opt-out. After routing, `core.experiments.lifecycle.record_reply_outcome` (when present) learns whether
the prospect has replied positively.

The lead's batch worker calls `classify_and_route` per reply; the page and CLI use `classify_replies`,
which works through a list in chunks under the month's budget and stops cleanly when the budget is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import func
from sqlmodel import Session, select

from core import datafiles
from core.app import App
from core.config import DATA_DIR
from core.costs.gateway import CallContext, Gateway
from core.dates import parse_moment
from core.llm.errors import BudgetExceededError, LLMError, ModerationError
from core.llm.tokens import count_messages
from core.messages import prompts
from core.messages.structured import VerdictError, ask_json, extract_json_object
from core.people import identity as idm
from core.people.columns import find_column, suggest_mapping
from core.people.reading import UnreadableFile, quoted, read_table
from core.replies.rules import CATEGORIES, Evaluation, clean_reply, evaluate, extract_return_date, load_labelled
from core.store.db import immediate, session_scope
from core.store.lookup import get_or_raise
from core.store.models import Prospect, Reply, Suppression, Template, utcnow

ROUTING_FILE = "reply_routing.json"
LABELLED_FILE = "replies_labelled.csv"
TASK = "classify_reply"

ACTION_KINDS = ("booking", "send_template", "pause_until_return", "suppress", "stop", "record_referral",
                "next_step_and_person", "to_person")
SEQUENCE_STOPPED, SEQUENCE_PAUSED = "stopped", "paused"
STATUS_OK, STATUS_UNCLEAR = "ok", "unclear_fallback"

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_STORED_CHARS = 20_000  # longer replies are stored cut (with a warning); the model sees 4,000 at most
MAX_REFERRAL_CHARS = 200
CHUNK = 10  # replies classified concurrently, and how often progress is reported
_DB_CHUNK = 500


@contextmanager
def _writing(app: App) -> Iterator[Session]:
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
# Classification
# --------------------------------------------------------------------------------------------------------


class _Answer(BaseModel):
    """The model's verdict as the strict schema asks for it; a string confidence is not a number."""

    model_config = ConfigDict(extra="ignore")
    category: str
    confidence: Annotated[float, Field(strict=True, ge=0, le=1, allow_inf_nan=False)]
    return_date: str | None = None
    referral: str | None = None


def parse_answer(text: str) -> tuple[str, float, date | None, str | None]:
    """(category, confidence, return_date, referral) from a model's answer, or VerdictError saying what is wrong.

    JSON inside code fences or prose and trailing commas are recovered (`review.extract_json_object`);
    the category is matched ignoring case and surrounding spaces; anything else must be as the schema says.
    """
    value = extract_json_object(text)
    if not isinstance(value, dict):
        raise VerdictError("the JSON is not an object")
    if isinstance(value.get("category"), str):
        value = {**value, "category": value["category"].strip().lower()}
    try:
        answer = _Answer.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
                             for err in exc.errors())
        raise VerdictError(f"the answer has the wrong shape: {problems}") from None
    if answer.category not in CATEGORIES:
        raise VerdictError(f"category {answer.category[:40]!r} is not one of {', '.join(CATEGORIES)}")
    returned: date | None = None
    if answer.return_date is not None and answer.return_date.strip():
        raw = answer.return_date.strip()
        try:
            returned = date.fromisoformat(raw[:10])
        except ValueError:
            raise VerdictError(f"return_date {raw[:40]!r} is not a date like 2025-03-14 (or null)") from None
    referral = clean_reply(answer.referral)[:MAX_REFERRAL_CHARS] if answer.referral else ""
    return answer.category, float(answer.confidence), returned, referral or None


@dataclass
class Classification:
    """One reply's verdict. `status` is "ok", or "unclear_fallback" when the category was forced to unclear
    (empty reply, no valid answer after the re-ask, confidence under the threshold, provider refusal);
    `problem` then says why and `model_said` keeps what the model answered, if anything valid."""

    category: str
    confidence: float
    return_date: date | None = None
    referral: str | None = None
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    status: str = STATUS_OK
    problem: str = ""
    model_said: str | None = None
    calls: int = 0
    raw: list[str] = field(default_factory=list)

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def as_json(self) -> dict[str, Any]:
        return {
            "category": self.category,
            "confidence": self.confidence,
            "return_date": self.return_date.isoformat() if self.return_date else None,
            "referral": self.referral,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "status": self.status,
            "problem": self.problem,
            "model_said": self.model_said,
            "calls": self.calls,
        }


def _as_text(text: str | bytes) -> str:
    if isinstance(text, bytes | bytearray):
        return bytes(text).decode("utf-8", errors="replace")
    return text if isinstance(text, str) else str(text)


async def classify(
    gw: Gateway,
    text: str | bytes,
    received: date | None,
    context: CallContext | None = None,
    *,
    config: RoutingConfig | None = None,
) -> Classification:
    """Classify one reply through the `classify_reply` route (reserved and logged by the gateway).

    At most two calls (one re-ask after an invalid answer). Raises BudgetExceededError when the budget
    cannot cover a call, and other LLMErrors the client gave up on; a moderation refusal is `unclear`.
    """
    config = config or load_routing_config()
    cleaned = clean_reply(_as_text(text))
    if not cleaned:
        return Classification("unclear", 0.0, status=STATUS_UNCLEAR, problem="the reply is empty; no model was asked")
    messages = prompts.classify_messages(cleaned, received.isoformat() if received else None)
    fmt = prompts.response_format(TASK, prompts.CLASSIFY_SCHEMA)
    outcome = Classification("unclear", 0.0, status=STATUS_UNCLEAR)
    try:
        answer = await ask_json(gw, TASK, messages, parse_answer, response_format=fmt, context=context)
    except ModerationError as exc:
        outcome.problem = f"the provider refused to read the reply (moderation: {exc}); a person reads it"
        return outcome
    outcome.calls = len(answer.calls)
    outcome.raw.extend(answer.raw)
    outcome.model = answer.model
    outcome.input_tokens += answer.input_tokens
    outcome.output_tokens += answer.output_tokens
    outcome.cost_usd += answer.cost_usd
    parsed = answer.value
    if parsed is None:
        outcome.problem = f"no valid answer after one re-ask: {answer.problem}"
        return outcome

    category, confidence, returned, referral = parsed
    outcome.model_said = category
    outcome.confidence = confidence
    outcome.problem = ""
    if category == "out_of_office":
        if returned is None or (received is not None and returned < received):
            # The model named no date, or one before the reply arrived (a misreading): the text may say.
            returned = extract_return_date(cleaned, received)
        outcome.return_date = returned if received is None or (returned and returned >= received) else None
    if category == "wrong_person":
        outcome.referral = referral
    if confidence < config.min_confidence:
        outcome.problem = (f"confidence {confidence:.2f} is below {config.min_confidence:.2f}; the model said "
                           f"{category}, a person should check")
        outcome.return_date = None
        outcome.referral = None
        return outcome
    outcome.category = category
    outcome.status = STATUS_OK
    return outcome


# --------------------------------------------------------------------------------------------------------
# Sequence state, as the batch runner sees it
# --------------------------------------------------------------------------------------------------------


def _sequence_of(reply: Reply) -> tuple[str, date | None]:
    sequence = (reply.details or {}).get("sequence") or {}
    state = sequence.get("state") if isinstance(sequence, dict) else None
    if state != SEQUENCE_PAUSED:
        return SEQUENCE_STOPPED, None  # a reply not yet routed stops the sequence too
    try:
        return SEQUENCE_PAUSED, date.fromisoformat(str(sequence.get("until")))
    except ValueError:
        return SEQUENCE_STOPPED, None


def sequence_stopped(app: App, prospect_id: int) -> bool:
    """True when the automatic sequence must not send to this prospect again: any reply from them that is
    not an out-of-office pause (pending replies included), or any of their identities is suppressed."""
    with session_scope(app.engine) as s:
        replies = s.exec(select(Reply).where(Reply.prospect_id == prospect_id)).all()
        if any(_sequence_of(r)[0] == SEQUENCE_STOPPED for r in replies):
            return True
        return idm.is_suppressed(s, prospect_id)


def paused_until(app: App, prospect_id: int, today: date | None = None) -> date | None:
    """The day the sequence may resume for this prospect after an out-of-office reply, while that day is
    still ahead of `today` (UTC today by default); None when no pause is running. Check `sequence_stopped`
    first: a stop outlasts any pause."""
    today = today or utcnow().date()
    with session_scope(app.engine) as s:
        replies = s.exec(select(Reply).where(Reply.prospect_id == prospect_id)).all()
    pauses = [until for state, until in map(_sequence_of, replies) if state == SEQUENCE_PAUSED and until]
    latest = max(pauses, default=None)
    return latest if latest is not None and latest > today else None


# --------------------------------------------------------------------------------------------------------
# Routing
# --------------------------------------------------------------------------------------------------------


@dataclass
class RouteResult:
    reply_id: int
    category: str
    action: str
    detail: str
    sequence: str  # stopped | paused
    paused_until: date | None = None
    suppressed: list[str] = field(default_factory=list)
    unsuppressed: list[str] = field(default_factory=list)
    referral: str | None = None
    outcome: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {"reply_id": self.reply_id, "category": self.category, "action": self.action, "detail": self.detail,
                "sequence": self.sequence,
                "paused_until": self.paused_until.isoformat() if self.paused_until else None,
                "suppressed": self.suppressed, "unsuppressed": self.unsuppressed, "referral": self.referral,
                "outcome": self.outcome}


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
    """Carry out the configured action for a classified reply and record it in the reply's details.

    Idempotent: routing the same reply again gives the same state. When the category changed since the
    last routing (an override), suppressions this reply added are removed unless it is still an opt-out.
    The reply, its details and the suppressions change in one transaction. `corrected` (a person's
    override) lets the experiment outcome become negative again.
    """
    config = routing_config(app)
    with _writing(app) as s:
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
                             sequence=SEQUENCE_STOPPED)

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
            result.sequence, result.paused_until = SEQUENCE_PAUSED, until
            result.detail = f"{result.detail} Paused until {until.isoformat()} ({why})."
        elif spec.kind == "record_referral":
            referral = classification.get("referral") if category == classification.get("category") else None
            result.referral = referral or None
            details["referral"] = result.referral
            result.detail += (f" Referred to: {referral}." if referral
                              else " The reply names no one; a person looks for the right contact.")

        details["sequence"] = {"state": result.sequence,
                               "until": result.paused_until.isoformat() if result.paused_until else None,
                               "reason": f"reply #{reply_id} ({category})"}
        details["routing"] = {"action": spec.action, "detail": result.detail, "routed_at": utcnow().isoformat()}
        reply.next_action = spec.action
        reply.details = details
        s.add(reply)
        prospect_id, when = reply.prospect_id, reply.received_at

    if prospect_id is not None:  # after the commit: the hook writes through its own transaction
        result.outcome = _record_outcome(app, prospect_id, config, when, corrected)
        with _writing(app) as s:
            reply = s.get(Reply, reply_id)
            if reply is not None:
                reply.details = {**(reply.details or {}), "outcome": result.outcome}
                s.add(reply)
    return result


def _record_outcome(
    app: App, prospect_id: int, config: RoutingConfig, when: datetime, corrected: bool
) -> dict[str, Any]:
    """Tell the experiments module whether this prospect has replied positively (any of their replies).

    The module is optional here (imported lazily); a person's correction is passed as `replace=True`, so a
    wrongly positive outcome can be taken back.
    """
    with session_scope(app.engine) as s:
        categories = s.exec(select(Reply.category).where(Reply.prospect_id == prospect_id)).all()
    positive = any(c in config.positive for c in categories)
    try:
        from core.experiments import lifecycle as experiments

        hook = experiments.record_reply_outcome  # type: ignore[attr-defined]
    except (ImportError, AttributeError):
        return {"recorded": False, "positive": positive, "note": "experiments outcome hook not available"}
    try:
        if corrected:
            hook(app, prospect_id, positive, when, replace=True)
        else:
            hook(app, prospect_id, positive, when)
    except Exception as exc:  # a failing hook must not undo the routing; the error is kept on the reply
        return {"recorded": False, "positive": positive, "note": f"experiments hook failed: {exc}"[:300]}
    return {"recorded": True, "positive": positive}


# --------------------------------------------------------------------------------------------------------
# Classify stored replies
# --------------------------------------------------------------------------------------------------------


def _store_classification(app: App, reply_id: int, verdict: Classification, batch_id: int | None) -> None:
    with _writing(app) as s:
        reply = get_or_raise(s, Reply, reply_id)
        reply.model_category = verdict.category
        reply.confidence = verdict.confidence
        if reply.override_category is None:  # a person's decision outranks a later model run
            reply.category = verdict.category
        if batch_id is not None:
            reply.batch_id = batch_id
        reply.details = {**(reply.details or {}),
                         "classification": {**verdict.as_json(), "classified_at": utcnow().isoformat()}}
        s.add(reply)


def _load_reply(app: App, reply_id: int) -> Reply:
    with session_scope(app.engine) as s:
        reply = get_or_raise(s, Reply, reply_id)
    return reply


async def classify_and_route(app: App, gw: Gateway, reply_id: int, context: CallContext | None = None) -> None:
    """Classify one stored reply and route it (the batch worker's unit of work for kind "classify").

    BudgetExceededError and provider errors propagate with nothing stored, so the item can be retried.
    """
    reply = await asyncio.to_thread(_load_reply, app, reply_id)
    ctx = context or CallContext()
    if ctx.prospect_id is None:
        ctx = dataclasses.replace(ctx, prospect_id=reply.prospect_id)  # keeps batch and item ids
    verdict = await classify(gw, reply.text, reply.received_at.date(), ctx, config=routing_config(app))
    await asyncio.to_thread(_store_classification, app, reply_id, verdict, ctx.batch_id)
    await asyncio.to_thread(apply_routing, app, reply_id)


@dataclass
class ClassifyRun:
    total: int
    classified: int = 0
    failed: list[dict[str, Any]] = field(default_factory=list)
    stopped: str = ""  # why the run ended early, "" when it went through the list

    @property
    def pending(self) -> int:
        return self.total - self.classified

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "classified": self.classified, "pending": self.pending,
                "failed": self.failed, "stopped": self.stopped}


def pending_reply_ids(app: App) -> list[int]:
    with session_scope(app.engine) as s:
        ids = s.exec(select(Reply.id).where(Reply.category == "").order_by(Reply.id)).all()  # type: ignore[arg-type]
    return [int(i) for i in ids if i is not None]


def classify_replies(
    app: App,
    reply_ids: Sequence[int] | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
) -> ClassifyRun:
    """Classify and route stored replies (default: every pending one) now, `chunk` at a time.

    Stops when the month's budget is reached ("budget reached: N of M classified; the rest are pending"),
    or when every reply of a chunk failed at the provider. `progress(done, total)` runs after each chunk.
    """
    ids = list(pending_reply_ids(app) if reply_ids is None else reply_ids)
    return asyncio.run(_classify_replies(app, ids, progress, max(1, chunk)))


async def _classify_replies(
    app: App, ids: list[int], progress: Callable[[int, int], None] | None, chunk: int
) -> ClassifyRun:
    run = ClassifyRun(total=len(ids))
    done = 0
    async with app.gateway() as gw:
        for start in range(0, len(ids), chunk):
            part = ids[start:start + chunk]
            outcomes = await asyncio.gather(*(classify_and_route(app, gw, i) for i in part), return_exceptions=True)
            budget_hit = False
            failed_here = 0
            for reply_id, outcome in zip(part, outcomes, strict=True):
                if outcome is None:
                    run.classified += 1
                elif isinstance(outcome, BudgetExceededError):
                    budget_hit = True
                elif isinstance(outcome, LLMError | LookupError | ValueError):
                    run.failed.append({"reply_id": reply_id, "error": str(outcome)[:300]})
                    failed_here += 1
                else:
                    raise outcome
            done += len(part)
            if progress is not None:
                progress(done, run.total)
            if budget_hit:
                run.stopped = f"budget reached: {run.classified} of {run.total} classified; the rest are pending"
                break
            if failed_here == len(part):
                run.stopped = (f"the provider failed on every reply of the last chunk ({run.failed[-1]['error']}); "
                               f"{run.classified} of {run.total} classified; the rest are pending")
                break
    return run


@dataclass
class TextResult:
    """A pasted reply's verdict and what routing would do with it (nothing is stored or routed)."""

    classification: Classification
    next_action: str
    detail: str

    def as_json(self) -> dict[str, Any]:
        return {**self.classification.as_json(), "next_action": self.next_action, "detail": self.detail}


def classify_text(app: App, text: str, received: date | None = None) -> TextResult:
    """Classify one pasted reply with the active provider (logged and billed like any call)."""
    config = routing_config(app)

    async def run() -> Classification:
        async with app.gateway() as gw:
            return await classify(gw, text, received, config=config)

    verdict = asyncio.run(run())
    spec = config.routes[verdict.category]
    detail = describe_action(app, spec)
    if spec.kind == "pause_until_return":
        until, why = pause_until_for(received or utcnow().date(), verdict.return_date, config)
        detail = f"{detail} Would pause until {until.isoformat()} ({why})."
    elif spec.kind == "record_referral":
        detail += f" Referred to: {verdict.referral}." if verdict.referral else " The reply names no one."
    return TextResult(verdict, spec.action, detail)


def worst_case_cost(app: App, reply_ids: Sequence[int]) -> Decimal:
    """The most classifying these replies can cost: each prompt at input price plus every allowed output
    token, for one call each (a re-ask can double a reply's share)."""
    route = app.routing.route(TASK, utcnow().date())
    book = app.price_book()
    priced = [m for m in route.models if book.has(m)]
    if not priced or not reply_ids:
        return Decimal(0)
    total = Decimal(0)
    with session_scope(app.engine) as s:
        for start in range(0, len(reply_ids), _DB_CHUNK):
            part = list(reply_ids[start:start + _DB_CHUNK])
            rows = s.exec(select(Reply.text, Reply.received_at).where(Reply.id.in_(part))).all()  # type: ignore[union-attr]
            for text, received in rows:
                tokens = count_messages(prompts.classify_messages(clean_reply(text), received.date().isoformat()))
                total += max(book.cost(m, tokens, route.max_tokens) for m in priced)
    return total


# --------------------------------------------------------------------------------------------------------
# Import
# --------------------------------------------------------------------------------------------------------

_TEXT_SPELLINGS = ("text", "reply", "replytext", "replybody", "message", "messagetext", "messagebody", "body",
                   "content", "response")
_RECEIVED_SPELLINGS = ("received", "receivedat", "receivedon", "replydate", "repliedat", "repliedon", "date",
                       "datetime", "timestamp", "time")
_IDENTITY_SPELLINGS = ("identity", "prospectidentity")
_IDENTITY_PREFIXES = ("li:", "email:", "name:")
_FUTURE_SLACK = timedelta(days=1)


def parse_received(raw: str) -> datetime:
    """An ISO date or date-time as aware UTC (`core.dates.parse_moment`); ValueError says how to write it."""
    try:
        return parse_moment(raw)
    except ValueError:
        raise ValueError(f"received {quoted(raw.strip())} is not a date like 2025-03-14 or a time like "
                         "2025-03-14T09:30:00Z") from None


def _identity_cell(value: str) -> str | None:
    """An identity column value: a stored identity (li:/email:/name:), a LinkedIn URL or an email."""
    text = value.strip()
    if text.lower().startswith("email:"):
        return idm.email_key(text[6:]) if idm.is_email_address(text[6:].strip()) else None
    if not text.lower().startswith(("li:", "name:")) and "@" in text:
        return idm.email_key(text) if idm.is_email_address(text) else None
    return idm.canonical(text)


@dataclass
class ReplyImportReport:
    rows: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)
    duplicate_lines: list[dict[str, Any]] = field(default_factory=list)
    unknown_prospects: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[dict[str, Any]] = field(default_factory=list)
    reply_ids: list[int] = field(default_factory=list)
    encoding: str = ""
    delimiter: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "stored": self.stored, "duplicates": self.duplicates, "rejected": self.rejected,
                "duplicate_lines": self.duplicate_lines, "unknown_prospects": self.unknown_prospects,
                "warnings": self.warnings, "reply_ids": self.reply_ids, "encoding": self.encoding,
                "delimiter": self.delimiter}


@dataclass
class _ReplyRow:
    line: int
    identity: str
    candidates: list[str]  # every identity the row names, for matching a stored prospect
    linkedin: str | None
    email: str | None
    text: str
    received: datetime | None


def _parse_reply_row(line: int, cells: list[str], columns: Mapping[str, int | None],
                     now: datetime) -> tuple[_ReplyRow | None, str]:
    def cell(name: str) -> str:
        index = columns.get(name)
        return cells[index] if index is not None else ""

    problems: list[str] = []
    text = cell("text")
    if not text.strip():
        problems.append("the reply text is empty")
    linkedin_raw, email_raw, identity_raw = cell("linkedin_url"), cell("email"), cell("identity")
    linkedin = idm.normalize_linkedin_url(linkedin_raw) if linkedin_raw else None
    if linkedin_raw and linkedin is None:
        problems.append(f"linkedin_url {quoted(linkedin_raw)} is not a LinkedIn profile address "
                        "(expected linkedin.com/in/...)")
    email = idm.normalize_email(email_raw) if email_raw and idm.is_email_address(email_raw) else None
    if email_raw and email is None:
        problems.append(f"email {quoted(email_raw)} is not a valid email address")
    identity = _identity_cell(identity_raw) if identity_raw else None
    if identity_raw and identity is None:
        problems.append(f"identity {quoted(identity_raw)} is not li:<profile URL>, email:<address>, "
                        "name:<name>|<company>, a LinkedIn URL or an email")
    if not (linkedin_raw or email_raw or identity_raw):
        problems.append("no prospect identity: linkedin_url, email and identity are all empty")
    received: datetime | None = None
    raw_received = cell("received")
    if raw_received:
        try:
            received = parse_received(raw_received)
        except ValueError as exc:
            problems.append(str(exc))
        else:
            if received > now + _FUTURE_SLACK:
                problems.append(f"received {quoted(raw_received)} is in the future")
    if problems:
        return None, "; ".join(problems)
    candidates = [c for c in (f"li:{linkedin}" if linkedin else None, f"email:{email}" if email else None, identity)
                  if c]
    # An identity column naming a profile or an email also matches a prospect stored under another identity.
    if identity and identity.startswith("li:") and linkedin is None:
        linkedin = identity[3:]
    if identity and identity.startswith("email:") and email is None:
        email = identity[6:]
    return _ReplyRow(line=line, identity=candidates[0], candidates=candidates, linkedin=linkedin, email=email,
                     text=text, received=received), ""


def _match_prospects(app: App, rows: Sequence[_ReplyRow]) -> dict[int, int]:
    """Row line -> prospect id, by any identity the row names (`core.people.identity`: primary identities, and every
    profile and e-mail a prospect is known by)."""
    with session_scope(app.engine) as s:
        found = idm.find_prospects(s, {c for r in rows for c in r.candidates})
    matched: dict[int, int] = {}
    for row in rows:
        pid = next((found[c] for c in row.candidates if c in found), None)
        if pid is not None:
            matched[row.line] = pid
    return matched


def _stored_keys(app: App, identities: Sequence[str]) -> tuple[set[tuple[str, str, datetime]], set[tuple[str, str]]]:
    with_time: set[tuple[str, str, datetime]] = set()
    without_time: set[tuple[str, str]] = set()
    with session_scope(app.engine) as s:
        for start in range(0, len(identities), _DB_CHUNK):
            part = list(identities[start:start + _DB_CHUNK])
            for identity, text, received in s.exec(select(Reply.prospect_identity, Reply.text, Reply.received_at)
                                                   .where(Reply.prospect_identity.in_(part))).all():  # type: ignore[attr-defined]
                with_time.add((identity, text, received))
                without_time.add((identity, text))
    return with_time, without_time


def import_replies(app: App, data: bytes) -> ReplyImportReport:
    """Read a CSV of replies (prospect identity, text, received) and store them, pending classification.

    Columns, matched by common spellings: linkedin_url and/or email and/or identity; the reply text (text,
    reply, message, body...); received (received, date, timestamp...; ISO date or time, UTC when no offset;
    optional: the import time is used when empty). Same reading rules as the prospect import; refused whole
    (UnreadableFile, nothing written) without a text or identity column. Rows with errors are reported with
    their line; replies from unknown prospects are stored and listed; a reply already stored (same identity,
    text and time) is a duplicate. Counts add up: stored + duplicates + rejected == rows.
    """
    table = read_table(data, max_bytes=MAX_UPLOAD_BYTES, max_cell_chars=MAX_UPLOAD_BYTES)
    mapping = suggest_mapping(table.headers)
    index = {h: i for i, h in enumerate(table.headers)}
    columns: dict[str, int | None] = {
        "text": find_column(table.headers, _TEXT_SPELLINGS),
        "received": find_column(table.headers, _RECEIVED_SPELLINGS),
        "identity": find_column(table.headers, _IDENTITY_SPELLINGS),
        "linkedin_url": index[mapping["linkedin_url"]] if "linkedin_url" in mapping else None,
        "email": index[mapping["email"]] if "email" in mapping else None,
    }
    shown = ", ".join(table.headers[:20]) + (" …" if len(table.headers) > 20 else "")
    if columns["text"] is None:
        raise UnreadableFile(f"the file has no column for the reply text (name it text, reply or message); "
                             f"columns found: {shown}")
    if all(columns[k] is None for k in ("identity", "linkedin_url", "email")):
        raise UnreadableFile(f"the file has no column that says who replied (linkedin_url, email or identity); "
                             f"columns found: {shown}")

    now = utcnow()
    report = ReplyImportReport(rows=table.total_records, encoding=table.encoding, delimiter=table.delimiter)
    rejected = [{"line": e.line, "reason": e.reason} for e in table.errors]
    rows: list[_ReplyRow] = []
    for line, cells in table.rows:
        row, problem = _parse_reply_row(line, cells, columns, now)
        if row is None:
            rejected.append({"line": line, "reason": problem})
        else:
            rows.append(row)
    report.rejected = sorted(rejected, key=lambda r: r["line"])

    matched = _match_prospects(app, rows)
    with_time, without_time = _stored_keys(app, sorted({r.identity for r in rows}))
    first_seen: dict[tuple[str, str, datetime | None], int] = {}
    to_store: list[Reply] = []
    for row in rows:
        key = (row.identity, row.text, row.received)
        if key in first_seen:
            report.duplicate_lines.append({"line": row.line, "reason": f"duplicate of line {first_seen[key]}"})
            continue
        first_seen[key] = row.line
        stored = (row.identity, row.text, row.received) in with_time if row.received else \
            (row.identity, row.text) in without_time
        if stored:
            report.duplicate_lines.append({"line": row.line, "reason": "this reply is already stored"})
            continue
        text = row.text
        if len(text) > MAX_STORED_CHARS:
            report.warnings.append({"line": row.line, "reason": f"the reply is {len(text):,} characters; "
                                                                f"stored cut to {MAX_STORED_CHARS:,}"})
            text = text[:MAX_STORED_CHARS]
        if row.received is None:
            report.warnings.append({"line": row.line, "reason": "received is empty; the import time is used"})
        prospect_id = matched.get(row.line)
        if prospect_id is None:
            report.unknown_prospects.append({"line": row.line, "identity": row.identity})
        to_store.append(Reply(
            prospect_id=prospect_id,
            prospect_identity=row.identity,
            text=text,
            received_at=row.received or now,
            details={"sequence": {"state": SEQUENCE_STOPPED, "until": None,
                                  "reason": "reply received; not classified yet"},
                     "source": {"line": row.line}},
            created_at=now,
        ))
    report.duplicates = len(report.duplicate_lines)
    with session_scope(app.engine) as s:
        s.add_all(to_store)
        s.flush()
        report.reply_ids = [int(r.id) for r in to_store if r.id is not None]
    report.stored = len(to_store)
    assert report.stored + report.duplicates + len(report.rejected) == report.rows
    return report


# --------------------------------------------------------------------------------------------------------
# Review: override, listing, counts
# --------------------------------------------------------------------------------------------------------


def override(app: App, reply_id: int, category: str, by: str) -> RouteResult:
    """A person's category for a reply, stored beside the model's (kept in model_category), then routed."""
    if category not in CATEGORIES:
        raise ValueError(f"unknown category {category!r}; expected one of {', '.join(CATEGORIES)}")
    who = " ".join(str(by or "").split())[:100]
    if not who:
        raise ValueError("say who is overriding (a name or initials), so the decision can be traced")
    with _writing(app) as s:
        reply = get_or_raise(s, Reply, reply_id)
        history = list((reply.details or {}).get("overrides", []))
        history.append({"from": reply.category, "to": category, "by": who, "at": utcnow().isoformat()})
        reply.override_category = category
        reply.overridden_by = who
        reply.category = category
        reply.details = {**(reply.details or {}), "overrides": history}
        s.add(reply)
    return apply_routing(app, reply_id, corrected=True)


def review_rows(app: App, category: str | None = None, limit: int = 500) -> list[dict[str, Any]]:
    """The newest replies for the review table, with who sent them and what routing did."""
    with session_scope(app.engine) as s:
        query = select(Reply, Prospect).join(Prospect, Reply.prospect_id == Prospect.id, isouter=True)  # type: ignore[arg-type]
        if category == "pending":
            query = query.where(Reply.category == "")
        elif category:
            query = query.where(Reply.category == category)
        found = s.exec(query.order_by(Reply.received_at.desc(), Reply.id.desc()).limit(limit)).all()  # type: ignore[attr-defined]
    rows = []
    for reply, prospect in found:
        details = reply.details or {}
        state, until = _sequence_of(reply)
        rows.append({
            "id": reply.id,
            "received": reply.received_at.strftime("%Y-%m-%d %H:%M"),
            "prospect": (f"{prospect.first_name} {prospect.last_name}".strip() + f" ({prospect.company_name})"
                         if prospect else f"unknown: {reply.prospect_identity}"),
            "text": reply.text if len(reply.text) <= 300 else reply.text[:299] + "…",
            "category": reply.category or "pending",
            "confidence": round(reply.confidence, 2),
            "model_category": reply.model_category,
            "override": reply.override_category or "",
            "overridden_by": reply.overridden_by,
            "next_action": reply.next_action,
            "detail": (details.get("routing") or {}).get("detail", ""),
            "sequence": f"paused until {until.isoformat()}" if state == SEQUENCE_PAUSED and until else state,
            "problem": (details.get("classification") or {}).get("problem", ""),
        })
    return rows


def category_counts(app: App) -> dict[str, int]:
    """Replies per effective category, every category present, plus "pending" for unclassified ones."""
    with session_scope(app.engine) as s:
        found = s.exec(select(Reply.category, func.count()).group_by(Reply.category)).all()  # type: ignore[arg-type]
    counts = dict.fromkeys((*CATEGORIES, "pending"), 0)
    for category, n in found:
        counts[category or "pending"] = counts.get(category or "pending", 0) + int(n)
    return counts


# --------------------------------------------------------------------------------------------------------
# Evaluation of the active provider
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderEvaluation(Evaluation):
    """`reply_rules.Evaluation` of the active provider on the labelled replies, with what it cost.

    Predictions are the routed categories (low confidence counts as unclear). Replies the provider failed
    on are left out (`errors`); `stopped` says why a run ended early (the budget)."""

    provider: str = ""
    labelled: int = 0
    models: dict[str, int] = field(default_factory=dict)
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    fallbacks: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "labelled": self.labelled, "accuracy": self.accuracy,
                "per_category": self.per_category, "confusion": self.confusion, "provider": self.provider,
                "models": self.models, "cost_usd": str(self.cost_usd), "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "unclear_fallbacks": self.fallbacks, "errors": self.errors,
                "stopped": self.stopped}


def evaluate_provider(
    app: App,
    path: Path | None = None,
    *,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = CHUNK,
) -> ProviderEvaluation:
    """Run the labelled replies (default `data/replies_labelled.csv`) through the active provider and score
    them with `reply_rules.evaluate`. Calls are real calls: they are reserved, logged and billed."""
    labelled = load_labelled(path or app.settings.data_dir / LABELLED_FILE)
    return asyncio.run(_evaluate(app, labelled, progress, max(1, chunk)))


async def _evaluate(
    app: App,
    labelled: list[tuple[str, str, date | None]],
    progress: Callable[[int, int], None] | None,
    chunk: int,
) -> ProviderEvaluation:
    config = routing_config(app)
    pairs: list[tuple[str, str]] = []
    verdicts: list[Classification] = []
    errors: list[str] = []
    stopped = ""
    async with app.gateway() as gw:
        for start in range(0, len(labelled), chunk):
            part = labelled[start:start + chunk]
            outcomes = await asyncio.gather(*(classify(gw, text, received, config=config)
                                              for text, _, received in part), return_exceptions=True)
            for offset, ((_, truth, _), outcome) in enumerate(zip(part, outcomes, strict=True)):
                if isinstance(outcome, Classification):
                    verdicts.append(outcome)
                    pairs.append((truth, outcome.category))
                elif isinstance(outcome, BudgetExceededError):
                    stopped = f"budget reached: {len(pairs)} of {len(labelled)} classified; the rest were not"
                elif isinstance(outcome, LLMError):
                    errors.append(f"labelled row {start + offset + 1}: {outcome}"[:300])
                else:
                    raise outcome
            if progress is not None:
                progress(min(start + chunk, len(labelled)), len(labelled))
            if stopped:
                break
    scored = evaluate(pairs)
    return ProviderEvaluation(
        n=scored.n, accuracy=scored.accuracy, per_category=scored.per_category, confusion=scored.confusion,
        provider=app.settings.llm_provider, labelled=len(labelled),
        models=dict(Counter(v.model for v in verdicts if v.model)),
        cost_usd=sum((v.cost_usd for v in verdicts), Decimal(0)),
        input_tokens=sum(v.input_tokens for v in verdicts), output_tokens=sum(v.output_tokens for v in verdicts),
        fallbacks=sum(1 for v in verdicts if v.status == STATUS_UNCLEAR), errors=errors, stopped=stopped,
    )

