"""Every model call the product makes goes through here: route, reserve, call, record, settle.

The gateway turns a task ("personalize", "review", ...) into a request using the routing table, reserves
the call's worst-case cost before each attempt (so retries reserve again), and writes one ledger row per
attempt, failures included, in the same transaction that settles the reservation. If the ledger cannot be
written, the reservation fails first and nothing is sent. Those writes go through the gateway's group
committer (`core.store.commits`), so concurrent calls share transactions instead of queueing for the write lock.

What a call is booked at is decided here (`core.costs.settlement`): the provider's figures when believable, else the
hold (`refused_usage`); a call that timed out after it was sent is booked at its hold as `unreconciled`. A
provider that reports more than the worst case teaches a per-model factor that later holds are multiplied by.
A first hold that does not fit only because other holds are in flight waits for them to settle.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Connection, Engine
from sqlmodel import select

from core.costs import budget, settlement
from core.costs.money import usd
from core.costs.prices import PriceBook, UnknownModelPrice
from core.costs.routing import Route, RoutingTable
from core.llm.client import Attempt, ChatRequest, ChatResult, LLMClient
from core.llm.errors import BudgetExceededError
from core.llm.tokens import count_messages
from core.store.commits import GroupCommitter
from core.store.db import session_scope
from core.store.models import StageResult, month_of, utcnow

log = logging.getLogger("sam.gateway")

# How long a call waits for holds in flight to settle when its own hold does not fit beside them (the first
# attempt, outside the call's deadline; a retry waits a little, inside it), and how often it looks again for
# holds of other processes.
HOLD_WAIT_S = 30.0
RETRY_HOLD_WAIT_S = 1.0
HOLD_POLL_S = 0.25


@dataclass
class CallContext:
    batch_id: int | None = None
    prospect_id: int | None = None
    item_id: int | None = None  # a batch item: answers are stored per stage and replayed after a crash
    replay: bool = True  # False for an item's first attempt: nothing can be stored yet, skip the lookup
    owner: str | None = None  # the batch worker making the call: its holds go back if it dies (core.batches.heartbeat)


def build_request(route: Route, messages: list[dict[str, str]], *, response_format: dict[str, Any] | None = None,
                  max_tokens: int | None = None) -> ChatRequest:
    """The request a call of `route` sends (the gateway's, and the one the pre-flight estimate prices)."""
    provider = {"require_parameters": True} if response_format else None
    return ChatRequest(
        model=route.model,
        messages=messages,
        max_tokens=max_tokens or route.max_tokens,
        temperature=route.temperature,
        models=route.models if len(route.models) > 1 else None,
        response_format=response_format,
        provider=provider,
    )


class Gateway:
    def __init__(
        self,
        engine: Engine,
        client: LLMClient,
        routing: RoutingTable,
        price_book: PriceBook,
        *,
        cap: Callable[[], Decimal],
        provider: str,
        writes: GroupCommitter,
        today: Callable[[], date] | None = None,
    ) -> None:
        self.engine = engine
        self.writes = writes
        self.client = client
        self.routing = routing
        self.price_book = price_book
        self.cap = cap
        self.provider = provider
        self._today = today or (lambda: utcnow().date())
        self.factors: dict[str, Decimal] = budget.cost_factors(engine)
        self.known: set[str] = budget.known_models(engine)  # models with a settled call: no probe needed
        self._probes: dict[str, asyncio.Lock] = {}
        self._settled = asyncio.Event()  # set (and replaced) at every settlement: wakes calls waiting for room

    def base_worst_case(self, model: str, prompt_tokens: int, max_tokens: int) -> Decimal | None:
        """The worst case of one model by its price list alone (None without a price)."""
        try:
            return self.price_book.cost(model, prompt_tokens, max_tokens)
        except UnknownModelPrice:
            return None

    async def reserve(self, amount: Decimal, task: str, wait_s: float,
                      owner: str | None = None) -> tuple[int, str]:
        """Hold `amount`; while it does not fit only because of holds in flight, wait up to `wait_s` for them to
        settle. Returns (reservation id, month)."""
        now, cap = utcnow(), self.cap()

        def hold(conn: Connection) -> int:
            return budget.reserve_on(conn, amount, cap=cap, task=task, now=now, owner=owner)

        return await self._with_room(hold, wait_s), month_of(now)

    async def top_up(self, reservation_id: int, extra: Decimal, wait_s: float) -> None:
        await self._with_room(lambda conn: budget.top_up_on(conn, reservation_id, extra), wait_s)

    async def _with_room(self, write: Callable[[Connection], Any], wait_s: float) -> Any:
        give_up = time.monotonic() + wait_s
        while True:
            woken = self._settled
            try:
                return await self.writes(write)
            except budget.BudgetBusyError as exc:
                left = give_up - time.monotonic()
                if left <= 0:
                    raise BudgetExceededError(f"{exc} Waited {wait_s:g}s; they did not settle.") from None
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout=min(HOLD_POLL_S, left))

    def settled(self) -> None:
        self._settled.set()
        self._settled = asyncio.Event()

    def learn(self, model: str, reported: Decimal, worst: Decimal) -> Decimal | None:
        """A provider reported more than the worst case of `model`: raise its factor (never lower it).
        Returns the new factor when it changed."""
        if worst <= 0 or reported <= worst:
            return None
        ratio = min(settlement.ABSURD_COST_FACTOR, reported / worst)
        if ratio <= self.factors.get(model, Decimal(1)):
            return None
        self.factors[model] = ratio
        return ratio

    def route(self, task: str) -> Route:
        return self.routing.route(task, self._today())

    def worst_case(self, route: Route, prompt_tokens: int, max_tokens: int | None = None) -> Decimal:
        """The most this call can cost (`PriceBook.worst_case` with the factors this gateway learned)."""
        try:
            return self.price_book.worst_case(route.models, prompt_tokens, max_tokens or route.max_tokens,
                                              self.factors)
        except UnknownModelPrice:
            raise UnknownModelPrice(f"no price for any model routed for {route.task}: "
                                    f"{', '.join(route.models)}") from None

    def build_request(
        self,
        task: str,
        messages: list[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> tuple[Route, ChatRequest]:
        route = self.route(task)
        return route, build_request(route, messages, response_format=response_format, max_tokens=max_tokens)

    async def call(
        self,
        task: str,
        messages: list[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
        context: CallContext | None = None,
        stage: str | None = None,
    ) -> ChatResult:
        """Call the model for `task`. With a batch item in `context` and a `stage` name, an answer already
        recorded for that stage is replayed instead (no second payment) and a new one is stored with its cost."""
        context = context or CallContext()
        key = (context.item_id, stage) if context.item_id is not None and stage else None
        if key is not None and context.replay:
            replay = await asyncio.to_thread(self._stored, *key)
            if replay is not None:
                return replay
        route, request = self.build_request(task, messages, response_format=response_format, max_tokens=max_tokens)
        if request.model in self.known:
            return await self._call(task, route, request, messages, context, stage)
        # A model this database has never settled a call of goes out alone first: if its provider bills above the
        # worst case, only that one call's difference can pass the cap before the factor is learned.
        async with self._probes.setdefault(request.model, asyncio.Lock()):
            if request.model not in self.known:
                return await self._call(task, route, request, messages, context, stage)
        return await self._call(task, route, request, messages, context, stage)

    async def _call(self, task: str, route: Route, request: ChatRequest, messages: list[dict[str, str]],
                    context: CallContext, stage: str | None) -> ChatResult:
        hooks = _LedgerHooks(self, task, route, context, count_messages(messages), stage)
        # The first hold is taken before the call's deadline starts, so waiting for room does not eat into it.
        await hooks.hold(1, request, HOLD_WAIT_S)
        try:
            result = await self.client.chat(request, hooks)
        except asyncio.CancelledError:
            raise  # an attempt may be on the wire: its hold stays until the sweep, never returned as unspent
        except BaseException:
            await hooks.release_unsent()
            raise
        booked = hooks.booked.get(result.attempts)
        if booked is not None:  # refused figures: the caller sees what was booked, not what was reported
            result = replace(result, cost_usd=booked, cost_source=settlement.COST_SOURCE_HOLD)
        return result

    def _stored(self, item_id: int, stage: str) -> ChatResult | None:
        with session_scope(self.engine) as s:
            row = s.exec(select(StageResult).where(StageResult.batch_item_id == item_id,
                                                   StageResult.stage == stage)).first()
        if row is None:
            return None
        return ChatResult(content=row.content, finish_reason="stop", model=row.model, prompt_tokens=row.input_tokens,
                          completion_tokens=row.output_tokens, cost_usd=row.cost_usd, cost_source="replayed",
                          latency_ms=0, request_id="", attempts=0)


class _LedgerHooks:
    def __init__(self, gateway: Gateway, task: str, route: Route, context: CallContext, prompt_tokens: int,
                 stage: str | None) -> None:
        self.gateway = gateway
        self.stage = stage
        self.task = task
        self.route = route
        self.context = context
        self.prompt_tokens = prompt_tokens
        self.holds: dict[int, tuple[int, Decimal]] = {}  # attempt -> (reservation id, amount held)
        self.months: dict[int, str] = {}  # a call is charged to the month its hold was taken in
        self.booked: dict[int, Decimal] = {}  # attempts booked at their hold because the figures were refused

    async def hold(self, number: int, request: ChatRequest, wait_s: float) -> None:
        amount = self.gateway.worst_case(self.route, self.prompt_tokens, request.max_tokens)
        rid, month = await self.gateway.reserve(amount, self.task, wait_s, self.context.owner)
        self.holds[number] = (rid, amount)
        self.months[number] = month

    async def before(self, number: int, request: ChatRequest) -> None:
        if number not in self.holds:  # the first attempt's hold was taken by Gateway.call
            await self.hold(number, request, RETRY_HOLD_WAIT_S)

    async def sending(self, number: int, request: ChatRequest) -> None:
        """Just before the request goes out: a model's factor learned since the hold was taken (the hold waited
        for a slot) raises the hold first, so no call leaves held below what its model is known to bill."""
        if number not in self.holds:
            return
        rid, held = self.holds[number]
        now_worst = self.gateway.worst_case(self.route, self.prompt_tokens, request.max_tokens)
        if now_worst > held:
            await self.gateway.top_up(rid, now_worst - held, RETRY_HOLD_WAIT_S)
            self.holds[number] = (rid, now_worst)

    async def release_unsent(self) -> None:
        """Holds of attempts never sent (the call failed before them) go back at once."""
        for number in list(self.holds):
            rid, _ = self.holds.pop(number)
            await self.gateway.writes(lambda conn, rid=rid: budget.release_on(conn, rid))
            self.gateway.settled()

    def _booking(self, attempt: Attempt, held: Decimal | None) -> tuple[Decimal, str, str, str, int, int]:
        """(cost, cost_source, status, error, input tokens, output tokens) to book for an attempt."""
        result = attempt.result
        request = attempt.request
        hold = held if held is not None else self.gateway.worst_case(self.route, self.prompt_tokens,
                                                                     request.max_tokens)
        if result is None:
            if attempt.maybe_billed:
                return (hold, settlement.COST_SOURCE_HOLD, settlement.Booking.UNRECONCILED,
                        f"{attempt.status}: {attempt.error} | no answer, but the request went out and may be billed: "
                        f"booked at its {usd(hold)} hold until reconciled", self.prompt_tokens, request.max_tokens)
            return Decimal(0), "none", attempt.status, attempt.error, 0, 0
        verdict = settlement.check_usage(result.usage, prompt_counted=self.prompt_tokens,
                                         max_tokens=request.max_tokens, worst_case=hold,
                                         expect_cost=self.gateway.provider != "openai")
        if not verdict.accepted:
            self.booked[attempt.number] = hold
            return (hold, settlement.COST_SOURCE_HOLD, settlement.Booking.REFUSED_USAGE,
                    f"refused the provider's usage ({verdict.reason}); booked at the {usd(hold)} hold; provider "
                    f"reported {settlement.raw_figures(result.usage)}", self.prompt_tokens, request.max_tokens)
        return (result.cost_usd, result.cost_source, attempt.status, attempt.error, result.prompt_tokens,
                result.completion_tokens)

    async def after(self, attempt: Attempt) -> None:
        result = attempt.result
        now = utcnow()
        context = self.context
        hold_id, held = self.holds.pop(attempt.number, (None, None))
        cost, source, status, error, tokens_in, tokens_out = self._booking(attempt, held)
        entry = {  # a usage_ledger row
            "created_at": now,
            "month": self.months.pop(attempt.number, month_of(now)),
            "task": self.task,
            "model_requested": attempt.request.model,
            "model_answered": result.model if result else "",
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cost_usd": cost,
            "cost_source": source,
            "status": str(status),
            "error": error[:500],
            "latency_ms": attempt.latency_ms,
            "attempt": attempt.number,
            "batch_id": context.batch_id,
            "prospect_id": context.prospect_id,
            "request_id": result.request_id if result else attempt.request_id,
            "provider": self.gateway.provider,
        }
        if result is None:
            log.warning("model call attempt failed", extra={"fields": {
                "task": self.task, "model": attempt.request.model, "status": status,
                "attempt": attempt.number, "latency_ms": attempt.latency_ms, "batch_id": context.batch_id}})
        elif status == settlement.Booking.REFUSED_USAGE:
            log.warning("provider usage refused", extra={"fields": {
                "task": self.task, "model": result.model, "error": error[:300], "batch_id": context.batch_id}})
        learned = None
        first = False  # the first believable settlement of these models in this database: remember them
        if result is not None and status == attempt.status:
            if held is not None and cost > held:
                base = self.gateway.base_worst_case(result.model, self.prompt_tokens, attempt.request.max_tokens)
                learned = self.gateway.learn(result.model, cost, base if base is not None else held)
            models = {result.model, attempt.request.model}
            first = not models <= self.gateway.known
            self.gateway.known |= models
        stage = None
        if result is not None and self.stage and context.item_id is not None:
            stage = {"batch_item_id": context.item_id, "stage": self.stage, "content": result.content,
                     "model": result.model, "input_tokens": tokens_in,
                     "output_tokens": tokens_out, "cost_usd": cost, "created_at": now}
        cap = self.gateway.cap()

        def write(conn: Connection) -> None:
            budget.settle_on(conn, hold_id, entry, cap=cap, stage=stage)
            if learned is not None and result is not None:
                budget.learn_factor_on(conn, result.model, learned, reported=cost, worst=held or cost, now=now)
            if first and result is not None:
                for model in {result.model, attempt.request.model}:
                    budget.note_model_on(conn, model, now=now)

        try:
            await self.gateway.writes(write)
        except Exception:
            # The call went out (and may be billed) but cannot be recorded: say so loudly, with the figures an
            # operator needs to reconcile it by hand. The hold stays until the sweep returns it.
            log.error("ledger write failed after a model call", extra={"fields": {
                "task": self.task, "model": entry["model_answered"] or entry["model_requested"],
                "status": entry["status"], "cost_usd": str(entry["cost_usd"]), "request_id": entry["request_id"],
                "batch_id": entry["batch_id"]}})
            raise
        finally:
            self.gateway.settled()
