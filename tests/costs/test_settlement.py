"""Settlement trusts no provider blindly (issue 12, money).

HTTP-level: an httpx2 MockTransport speaks OpenRouter's wire format through the real gateway, client, budget
and ledger. Negative, missing or absurd figures are refused and booked at the call's hold; a provider that
bills above the worst case teaches a per-model factor so the month stops at its cap.
"""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal
from typing import Any

import httpx2
import pytest
from sqlmodel import select

from core.app import App
from core.costs import budget
from core.costs.gateway import Gateway
from core.costs.spend import summary
from core.llm.client import LLMClient, RetryPolicy
from core.llm.errors import BudgetExceededError
from core.llm.tokens import count_messages
from core.store.commits import GroupCommitter
from core.store.db import session_scope
from core.store.models import Reservation, UsageEntry

FAST = RetryPolicy(backoff_base_s=0.001, backoff_cap_s=0.002)
TASK = "personalize"
MESSAGES = [{"role": "user", "content": "Write one short opener for a founder in logistics."}]
MODEL = "mistralai/mistral-7b-instruct"


def _completion(usage: Any, model: str = MODEL) -> dict[str, Any]:
    body: dict[str, Any] = {"id": "gen-test-1", "object": "chat.completion", "model": model, "provider": "Test",
                            "choices": [{"index": 0, "finish_reason": "stop",
                                         "message": {"role": "assistant", "content": "Hello there."}}]}
    if usage is not ...:
        body["usage"] = usage
    return body


def _gateway(app: App, handler: Any, max_in_flight: int | None = None) -> tuple[Gateway, LLMClient, GroupCommitter]:
    client = LLMClient("https://openrouter.test/api/v1", "sk-or-test-0000000", transport=httpx2.MockTransport(handler),
                       policy=FAST, price_book=app.price_book(), provider_name="openrouter",
                       max_in_flight=max_in_flight)
    writes = GroupCommitter(app.engine)
    gw = Gateway(app.engine, client, app.routing, app.price_book(), cap=app.recent_budget_cap, provider="openrouter",
                 writes=writes)
    return gw, client, writes


def _run(app: App, handler: Any, calls: int = 1, max_in_flight: int | None = None) -> list[Any]:
    async def go() -> list[Any]:
        gw, client, writes = _gateway(app, handler, max_in_flight)
        try:
            return await asyncio.gather(*[gw.call(TASK, MESSAGES) for _ in range(calls)], return_exceptions=True)
        finally:
            await client.aclose()
            await writes.aclose()

    return asyncio.run(go())


def _ledger(app: App) -> list[UsageEntry]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(UsageEntry).order_by(UsageEntry.id)).all())


def _holds(app: App) -> list[Decimal]:
    with session_scope(app.engine) as s:
        return [r.amount_usd for r in s.exec(select(Reservation).order_by(Reservation.id)).all()]


BAD_USAGE = [
    pytest.param({"prompt_tokens": 12, "completion_tokens": 4, "cost": -0.01}, "cost is negative", id="negative-cost"),
    pytest.param({"prompt_tokens": -5, "completion_tokens": 4, "cost": 0.00001}, "prompt_tokens is negative",
                 id="negative-prompt"),
    pytest.param({"prompt_tokens": 12, "completion_tokens": 900_000, "cost": 0.00001}, "far above",
                 id="completion-far-above-max"),
    pytest.param({"prompt_tokens": 12, "completion_tokens": 4, "cost": 50.0}, "times the", id="cost-far-above-hold"),
    pytest.param({"prompt_tokens": 12, "completion_tokens": 4}, "cost is missing", id="missing-cost"),
    pytest.param(..., "no usage", id="missing-usage"),
]


@pytest.mark.parametrize(("usage", "why"), BAD_USAGE)
def test_unbelievable_usage_is_refused_booked_at_the_hold_and_listed(app: App, usage: Any, why: str) -> None:
    [result] = _run(app, lambda request: httpx2.Response(200, json=_completion(usage)))
    [row] = _ledger(app)
    [hold] = _holds(app)
    assert row.status == "refused_usage", (row.status, row.cost_usd)
    assert why in row.error
    assert row.cost_usd == hold and row.cost_source == "hold"  # booked at the worst case reserved for the call
    assert row.input_tokens >= 0 and row.output_tokens >= 0
    if usage is not ...:
        assert json.dumps(usage, sort_keys=True)[:60] in row.error, "the provider's raw figures are kept"
    assert result.cost_usd == hold, "the caller (message, stage result) is charged what was booked"
    state = app.budget_state()
    assert state.spent_usd == hold and state.reserved_usd == 0
    from core.costs.spend import refused_settlements

    refused = refused_settlements(app, state.month)
    assert refused.calls == 1 and refused.booked_usd == hold and why in refused.latest[0].why
    figures = summary(app).as_json()
    assert figures["refused_settlements"] == 1 and Decimal(figures["refused_settlements_usd"]) == hold


def test_believable_usage_is_booked_as_reported(app: App) -> None:
    usage = {"prompt_tokens": 12, "completion_tokens": 4, "cost": 0.0000123}
    _run(app, lambda request: httpx2.Response(200, json=_completion(usage)))
    [row] = _ledger(app)
    assert row.status == "ok" and row.cost_usd == Decimal("0.0000123") and row.cost_source == "provider"


def test_a_provider_billing_above_the_worst_case_stops_at_the_cap(app: App) -> None:
    """Every call is billed three times its worst case, 16 at a time. Without learning, the calls in flight near
    the cap are held at a third of what they cost and the month ends far past its cap."""
    book = app.price_book()
    route = app.routing.route(TASK, __import__("datetime").date.today())
    prompt = count_messages(MESSAGES)
    worst = book.cost(MODEL, prompt, route.max_tokens)
    assert route.models[0] == MODEL and worst == max(book.cost(m, prompt, route.max_tokens)
                                                     for m in route.models if book.has(m))
    billed = worst * 3
    cap = worst * 200
    app.set_budget_cap(cap)

    async def handler(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(0.005)  # keep 16 calls in flight together
        return httpx2.Response(200, json=_completion({"prompt_tokens": prompt, "completion_tokens": 40,
                                                      "cost": float(billed)}))

    results = _run(app, handler, calls=120, max_in_flight=16)

    assert any(isinstance(r, BudgetExceededError) for r in results), "the cap stops the run"
    assert not [r for r in results if isinstance(r, Exception) and not isinstance(r, BudgetExceededError)]
    state = app.budget_state()
    one_difference = billed - worst
    assert state.spent_usd <= cap + one_difference, (
        f"spent ${state.spent_usd} of a ${cap} cap: "
        f"{(state.spent_usd - cap) / one_difference:.1f} calls' difference over")
    # The factor is kept per model: a new gateway (another run, another process) holds the model at what it bills.
    assert budget.cost_factors(app.engine)[MODEL] == Decimal(3)

    async def fresh_hold() -> Decimal:
        gw, client, writes = _gateway(app, handler)
        try:
            return gw.worst_case(route, prompt)
        finally:
            await client.aclose()
            await writes.aclose()

    assert asyncio.run(fresh_hold()) == billed


def test_a_new_model_near_the_cap_goes_out_alone_until_its_bill_is_known(app: App) -> None:
    """The first wave: 16 calls of a model never settled here, with room for 20 worst cases. Sent together, each
    billed three times its hold, they would end 28 worst cases past the cap before anything could be learned."""
    book = app.price_book()
    route = app.routing.route(TASK, __import__("datetime").date.today())
    prompt = count_messages(MESSAGES)
    worst = book.cost(MODEL, prompt, route.max_tokens)
    billed = worst * 3
    cap = worst * 20
    app.set_budget_cap(cap)
    in_flight = peak = 0

    async def handler(request: httpx2.Request) -> httpx2.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.005)
        in_flight -= 1
        return httpx2.Response(200, json=_completion({"prompt_tokens": prompt, "completion_tokens": 40,
                                                      "cost": float(billed)}))

    results = _run(app, handler, calls=16, max_in_flight=16)
    state = app.budget_state()
    assert state.spent_usd <= cap + (billed - worst), f"spent ${state.spent_usd} of a ${cap} cap"
    assert any(isinstance(r, BudgetExceededError) for r in results)
    assert peak > 1, "once the model's bill is known, calls go out together again"
