"""Classify a prospect's reply with a small model, strictly, and work through stored replies under the budget.

A reply is untrusted text twice over: the prospect wrote it, and the model's verdict on it is model output.
So the reply is cleaned and cut (`cleaning.clean_reply`) before any model sees it, the verdict must be
strict JSON that validates (`parse_answer`), an invalid verdict gets exactly one re-ask, and anything still
invalid, or below the confidence threshold, becomes `unclear`, which routes to a person. An empty reply is
`unclear` without a model call.

The batch worker calls `classify_and_route` per reply; the CLI uses `classify_replies`, which works through a
list in chunks under the month's budget and stops cleanly when the budget is gone.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import select

from core.app import App
from core.costs import budget
from core.costs.gateway import CallContext, Gateway
from core.llm.errors import BudgetExceededError, LLMError, ModerationError
from core.llm.tokens import count_messages
from core.messages import prompts
from core.messages.structured import VerdictError, ask_json, extract_json_object
from core.replies.categories import CATEGORIES
from core.replies.cleaning import clean_reply
from core.replies.dates import extract_return_date
from core.replies.routing import (
    RoutingConfig,
    apply_routing,
    describe_action,
    load_routing_config,
    pause_until_for,
    routing_config,
    writing,
)
from core.store.db import session_scope
from core.store.lookup import get_or_raise
from core.store.models import Reply, utcnow

TASK = "classify_reply"
MAX_REFERRAL_CHARS = 200
CHUNK = 10  # replies classified concurrently, and how often progress is reported
_DB_CHUNK = 500


class VerdictStatus(StrEnum):
    """Whether the model's category stands ("ok") or was forced to unclear for a person ("unclear_fallback")."""

    OK = "ok"
    UNCLEAR = "unclear_fallback"

    @property
    def label(self) -> str:
        return "the model's answer stands" if self is VerdictStatus.OK else "unclear: a person reads it"


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
    status: VerdictStatus = VerdictStatus.OK
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
            "status": str(self.status),
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
        return Classification("unclear", 0.0, status=VerdictStatus.UNCLEAR,
                              problem="the reply is empty; no model was asked")
    messages = prompts.classify_messages(cleaned, received.isoformat() if received else None)
    fmt = prompts.response_format(TASK, prompts.CLASSIFY_SCHEMA)
    outcome = Classification("unclear", 0.0, status=VerdictStatus.UNCLEAR)
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
    outcome.status = VerdictStatus.OK
    return outcome



# --------------------------------------------------------------------------------------------------------
# Classify stored replies
# --------------------------------------------------------------------------------------------------------


def _store_classification(app: App, reply_id: int, verdict: Classification, batch_id: int | None) -> None:
    with writing(app) as s:
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


@dataclass(frozen=True)
class ClassifyFailure:
    reply_id: int
    error: str


@dataclass
class ClassifyRun:
    total: int
    classified: int = 0
    failed: list[ClassifyFailure] = field(default_factory=list)
    stopped: str = ""  # why the run ended early, "" when it went through the list

    @property
    def pending(self) -> int:
        return self.total - self.classified

    def as_json(self) -> dict[str, Any]:
        return {"total": self.total, "classified": self.classified, "pending": self.pending,
                "failed": [{"reply_id": f.reply_id, "error": f.error} for f in self.failed], "stopped": self.stopped}


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
                    run.failed.append(ClassifyFailure(reply_id, str(outcome)[:300]))
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
                run.stopped = (f"the provider failed on every reply of the last chunk ({run.failed[-1].error}); "
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
    if not reply_ids or not any(book.has(m) for m in route.models):
        return Decimal(0)
    factors = budget.cost_factors(app.engine)
    total = Decimal(0)
    with session_scope(app.engine) as s:
        for start in range(0, len(reply_ids), _DB_CHUNK):
            part = list(reply_ids[start:start + _DB_CHUNK])
            rows = s.exec(select(Reply.text, Reply.received_at).where(Reply.id.in_(part))).all()  # type: ignore[union-attr]
            for text, received in rows:
                tokens = count_messages(prompts.classify_messages(clean_reply(text), received.date().isoformat()))
                total += book.worst_case(route.models, tokens, route.max_tokens, factors)
    return total

