"""Reconciliation of the ledger with the provider's usage_monthly: simulator, OpenRouter shape, failures."""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal

import httpx2
import pytest

from core.app import App
from core.costs.reconcile import Reconciliation, reconcile, scrub
from core.llm.client import LLMClient
from core.store.db import session_scope
from core.store.models import UsageEntry, month_of, utcnow

SECRET = "sk-or-v1-0123456789abcdef0123456789abcdef"
BASE = "https://openrouter.ai/api/v1"


def _calls(app: App, n: int) -> None:
    async def go() -> None:
        async with app.gateway() as gw:
            for i in range(n):
                await gw.call("personalize", [{"role": "user", "content": f"hi number {i}"}])
            await gw.call("review", [{"role": "user", "content": "please review this"}])

    asyncio.run(go())


def _openrouter(app: App) -> App:
    settings = dataclasses.replace(app.settings, llm_provider="openrouter", openrouter_api_key=SECRET)
    return dataclasses.replace(app, settings=settings, simulator=None)


def _client(handler: httpx2.MockTransport) -> LLMClient:
    return LLMClient(BASE, SECRET, transport=handler)


def _run(app: App, client: LLMClient | None = None) -> Reconciliation:
    async def go() -> Reconciliation:
        try:
            return await reconcile(app, client)
        finally:
            if client is not None:
                await client.aclose()

    return asyncio.run(go())


def _insert(app: App, cost: str, provider: str) -> None:
    now = utcnow()
    with session_scope(app.engine) as s:
        s.add(UsageEntry(created_at=now, month=month_of(now), task="personalize", model_requested="m",
                         cost_usd=Decimal(cost), provider=provider))


def test_simulator_matches_the_ledger_after_real_calls(app: App) -> None:
    _calls(app, 3)
    result = _run(app)
    assert result.provider == "simulator" and result.period == "month" and result.month == month_of(utcnow())
    assert result.ledger_usd > 0
    assert result.provider_usd == result.ledger_usd
    assert result.difference_usd == 0 and result.matches
    assert "matches the ledger" in result.note


def test_ledger_side_counts_only_the_active_provider(app: App) -> None:
    _calls(app, 1)
    _insert(app, "5", provider="openrouter")  # e.g. earlier in the month with a live key
    result = _run(app)
    assert result.difference_usd == 0 and result.ledger_usd < 1


def test_simulator_restart_shows_as_ledger_above_provider(app: App) -> None:
    _insert(app, "0.25", provider="simulator")  # recorded before this simulator instance started
    result = _run(app)
    assert result.provider_usd == 0 and result.difference_usd == Decimal("-0.25")
    assert not result.matches
    assert "ledger records $0.25 more" in result.note and "since this console process started" in result.note


def test_openrouter_usage_monthly_is_read_and_compared(app: App) -> None:
    live = _openrouter(app)
    _insert(live, "1.5", provider="openrouter")
    seen: list[httpx2.Request] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        seen.append(request)
        return httpx2.Response(200, json={"data": {"label": "sk-or-v1-012...def", "usage": 40.25, "usage_daily": 0.5,
                                                  "usage_weekly": 3.0, "usage_monthly": 2.0, "limit": 100,
                                                  "limit_remaining": 59.75}})

    result = _run(live, _client(httpx2.MockTransport(handler)))
    assert [str(r.url) for r in seen] == [f"{BASE}/key"]
    assert result.provider_usd == Decimal("2") and result.ledger_usd == Decimal("1.5")
    assert result.difference_usd == Decimal("0.5")
    assert "provider reports $0.50 more" in result.note and "share the key" in result.note
    assert SECRET not in repr(result)


def test_failing_key_endpoint_gives_none_and_a_note(app: App) -> None:
    _calls(app, 1)

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise httpx2.ConnectError("connection refused", request=request)

    result = _run(app, _client(httpx2.MockTransport(handler)))
    assert result.provider_usd is None and result.difference_usd is None and not result.matches
    assert result.ledger_usd > 0
    assert result.note.startswith("Could not reach /key: connection refused")


def test_error_answer_never_leaks_the_key(app: App) -> None:
    live = _openrouter(app)

    def handler(request: httpx2.Request) -> httpx2.Response:
        echoed = request.headers["Authorization"]  # a hostile or buggy server echoing the credential
        return httpx2.Response(401, json={"error": {"code": 401, "message": f"invalid key {echoed} ({SECRET[:20]}x)"}})

    result = _run(live, _client(httpx2.MockTransport(handler)))
    assert result.provider_usd is None
    assert "401" in result.note and "Could not reach /key" in result.note
    assert SECRET not in result.note and SECRET[:20] not in result.note


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ({"data": {"usage": 3.0}}, "no usage_monthly figure (fields present: usage)"),
        ({"data": {"usage_monthly": "lots"}}, "usage_monthly is not a number"),
        ({"data": {"usage_monthly": -1}}, "not a non-negative amount"),
        ({"data": {"usage_monthly": True}}, "usage_monthly is not a number"),
        (["not", "an", "object"], "no `data` object"),
    ],
)
def test_unreadable_answers_give_none_and_say_why(app: App, payload: object, fragment: str) -> None:
    live = _openrouter(app)
    result = _run(live, _client(httpx2.MockTransport(lambda r: httpx2.Response(200, json=payload))))
    assert result.provider_usd is None and fragment in result.note


def test_openai_compatible_server_has_no_usage_endpoint(app: App) -> None:
    settings = dataclasses.replace(app.settings, llm_provider="openai", llm_base_url="http://127.0.0.1:9/v1")
    local = dataclasses.replace(app, settings=settings, simulator=None)
    _insert(local, "0.01", provider="openai")

    def handler(request: httpx2.Request) -> httpx2.Response:
        raise AssertionError("no request should be sent")

    result = _run(local, LLMClient("http://127.0.0.1:9/v1", transport=httpx2.MockTransport(handler)))
    assert result.provider_usd is None and result.ledger_usd == Decimal("0.01")
    assert "no usage endpoint" in result.note


def test_scrub_removes_configured_and_key_shaped_secrets() -> None:
    text = f"bad {SECRET}; header Bearer abc.def; other sk-ant-api03-XYZXYZXYZ; custom-token-123"
    cleaned = scrub(text, "custom-token-123")
    assert SECRET not in cleaned and "abc.def" not in cleaned and "XYZXYZXYZ" not in cleaned
    assert "custom-token-123" not in cleaned and "Bearer ***" in cleaned
