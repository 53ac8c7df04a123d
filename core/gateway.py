"""Every model call the product makes goes through here: route, reserve, call, record, settle.

The gateway turns a task ("personalize", "review", ...) into a request using the routing table, reserves
the call's worst-case cost before each attempt (so retries reserve again), and writes one ledger row per
attempt, failures included, in the same transaction that settles the reservation. If the ledger cannot be
written, the reservation fails first and nothing is sent. Those writes go through the gateway's group
committer (`core.commits`), so concurrent calls share transactions instead of queueing for the write lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import select

from core import budget
from core.commits import GroupCommitter
from core.db import session_scope
from core.llm.client import Attempt, ChatRequest, ChatResult, LLMClient
from core.llm.tokens import count_messages
from core.models import StageResult, month_of, utcnow
from core.prices import PriceBook, UnknownModelPrice
from core.routing import Route, RoutingTable

log = logging.getLogger("sam.gateway")


@dataclass
class CallContext:
    batch_id: int | None = None
    prospect_id: int | None = None
    item_id: int | None = None  # a batch item: answers are stored per stage and replayed after a crash
    replay: bool = True  # False for an item's first attempt: nothing can be stored yet, skip the lookup
    owner: str | None = None  # the batch worker making the call: its holds go back if it dies (core.heartbeat)


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

    def route(self, task: str) -> Route:
        return self.routing.route(task, self._today())

    def worst_case(self, route: Route, prompt_tokens: int, max_tokens: int | None = None) -> Decimal:
        """The most this call can cost: prompt at input price plus every allowed output token."""
        out = max_tokens or route.max_tokens
        costs = []
        for model in route.models:
            try:
                costs.append(self.price_book.cost(model, prompt_tokens, out))
            except UnknownModelPrice:
                continue
        if not costs:
            raise UnknownModelPrice(f"no price for any model routed for {route.task}: {', '.join(route.models)}")
        return max(costs)

    def build_request(
        self,
        task: str,
        messages: list[dict[str, str]],
        *,
        response_format: dict[str, Any] | None = None,
        max_tokens: int | None = None,
    ) -> tuple[Route, ChatRequest]:
        route = self.route(task)
        provider = {"require_parameters": True} if response_format else None
        request = ChatRequest(
            model=route.model,
            messages=messages,
            max_tokens=max_tokens or route.max_tokens,
            temperature=route.temperature,
            models=route.models if len(route.models) > 1 else None,
            response_format=response_format,
            provider=provider,
        )
        return route, request

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
        hooks = _LedgerHooks(self, task, route, context, count_messages(messages), stage)
        return await self.client.chat(request, hooks)

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
        self.holds: dict[int, int] = {}
        self.months: dict[int, str] = {}  # a call is charged to the month its hold was taken in

    async def before(self, number: int, request: ChatRequest) -> None:
        amount = self.gateway.worst_case(self.route, self.prompt_tokens, request.max_tokens)
        now = utcnow()
        cap = self.gateway.cap()
        rid = await self.gateway.writes(lambda conn: budget.reserve_on(conn, amount, cap=cap, task=self.task, now=now,
                                                                       owner=self.context.owner))
        self.holds[number] = rid
        self.months[number] = month_of(now)

    async def after(self, attempt: Attempt) -> None:
        result = attempt.result
        now = utcnow()
        context = self.context
        entry = {  # a usage_ledger row
            "created_at": now,
            "month": self.months.pop(attempt.number, month_of(now)),
            "task": self.task,
            "model_requested": attempt.request.model,
            "model_answered": result.model if result else "",
            "input_tokens": result.prompt_tokens if result else 0,
            "output_tokens": result.completion_tokens if result else 0,
            "cost_usd": result.cost_usd if result else Decimal(0),
            "cost_source": result.cost_source if result else "none",
            "status": attempt.status,
            "error": attempt.error[:500],
            "latency_ms": attempt.latency_ms,
            "attempt": attempt.number,
            "batch_id": context.batch_id,
            "prospect_id": context.prospect_id,
            "request_id": result.request_id if result else "",
            "provider": self.gateway.provider,
        }
        if result is None:
            log.warning("model call attempt failed", extra={"fields": {
                "task": self.task, "model": attempt.request.model, "status": attempt.status,
                "attempt": attempt.number, "latency_ms": attempt.latency_ms, "batch_id": context.batch_id}})
        stage = None
        if result is not None and self.stage and context.item_id is not None:
            stage = {"batch_item_id": context.item_id, "stage": self.stage, "content": result.content,
                     "model": result.model, "input_tokens": result.prompt_tokens,
                     "output_tokens": result.completion_tokens, "cost_usd": result.cost_usd, "created_at": now}
        hold, cap = self.holds.pop(attempt.number, None), self.gateway.cap()
        try:
            await self.gateway.writes(lambda conn: budget.settle_on(conn, hold, entry, cap=cap, stage=stage))
        except Exception:
            # The call went out (and may be billed) but cannot be recorded: say so loudly, with the figures an
            # operator needs to reconcile it by hand. The hold stays until the sweep returns it.
            log.error("ledger write failed after a model call", extra={"fields": {
                "task": self.task, "model": entry["model_answered"] or entry["model_requested"],
                "status": entry["status"], "cost_usd": str(entry["cost_usd"]), "request_id": entry["request_id"],
                "batch_id": entry["batch_id"]}})
            raise
