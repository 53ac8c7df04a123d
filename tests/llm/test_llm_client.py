"""The client against the simulator on a real loopback port, with injected faults."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from decimal import Decimal

import httpx2
import pytest

from core.costs.prices import current_book
from core.llm import errors as e
from core.llm.client import Attempt, ChatRequest, LLMClient, RetryPolicy, parse_retry_after
from core.sim.simulator import Faults, Scripted, Simulator, SimulatorServer

MODEL = "mistralai/mistral-7b-instruct"
REQ = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=50)


@pytest.fixture
def sim() -> Simulator:
    return Simulator(current_book())


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with sim.serve() as srv:
        yield srv


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def client_for(url: str, sleeps: Sleeps | None = None, **policy: float) -> LLMClient:
    return LLMClient(url, "sk-test", policy=RetryPolicy(**policy), price_book=current_book(),
                     sleep=sleeps or Sleeps())


class Recorder:
    def __init__(self) -> None:
        self.before: list[int] = []
        self.after: list[Attempt] = []

    async def before_(self, number: int, request: ChatRequest) -> None:
        self.before.append(number)

    async def after_(self, attempt: Attempt) -> None:
        self.after.append(attempt)


class Hooks:
    def __init__(self) -> None:
        self.rec = Recorder()

    async def before(self, number: int, request: ChatRequest) -> None:
        await self.rec.before_(number, request)

    async def after(self, attempt: Attempt) -> None:
        await self.rec.after_(attempt)


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _chat(url: str, sleeps: Sleeps | None = None, hooks: Hooks | None = None, **policy: float):  # type: ignore[no-untyped-def]
    async with client_for(url, sleeps, **policy) as client:
        return await client.chat(REQ, hooks)


def test_success_carries_usage_cost_and_model(server: SimulatorServer, sim: Simulator) -> None:
    result = run(_chat(server.url))
    assert result.content == "OK"
    assert result.model == MODEL
    assert result.prompt_tokens > 0 and result.completion_tokens > 0
    assert result.cost_source == "provider"
    assert result.cost_usd == current_book().cost(MODEL, result.prompt_tokens, result.completion_tokens)
    assert result.request_id.startswith("gen-sim-")
    assert sim.requests["POST completions"] == 1


def test_429_waits_as_long_as_retry_after_asks(server: SimulatorServer, sim: Simulator) -> None:
    sim.script(Scripted(429, retry_after=3))
    sleeps = Sleeps()
    hooks = Hooks()
    result = run(_chat(server.url, sleeps, hooks))
    assert result.content == "OK"
    assert sleeps.waits == [3.0]
    assert [a.status for a in hooks.rec.after] == ["http_429", "ok"]
    assert hooks.rec.before == [1, 2]


def test_retry_after_beyond_cap_fails_fast_as_rate_limited(server: SimulatorServer, sim: Simulator) -> None:
    sim.script(Scripted(429, retry_after=600))
    sleeps = Sleeps()
    with pytest.raises(e.RateLimitedError, match="600s"):
        run(_chat(server.url, sleeps, retry_after_cap_s=20))
    assert sleeps.waits == []
    assert sim.requests["POST completions"] == 1


def test_run_of_503s_then_success_backs_off_exponentially(server: SimulatorServer, sim: Simulator) -> None:
    sim.script(Scripted(503), Scripted(503), Scripted(502))
    sleeps = Sleeps()
    result = run(_chat(server.url, sleeps, max_attempts=4, backoff_base_s=0.5, backoff_cap_s=8))
    assert result.attempts == 4
    assert sim.requests["POST completions"] == 4
    assert len(sleeps.waits) == 3
    for i, wait in enumerate(sleeps.waits):  # full jitter within [ceiling/2, ceiling]
        ceiling = 0.5 * 2**i
        assert ceiling / 2 <= wait <= ceiling


def test_retries_exhausted_raise_unavailable(server: SimulatorServer, sim: Simulator) -> None:
    sim.script(*[Scripted(500)] * 3)
    with pytest.raises(e.ProviderUnavailableError, match="gave up after 3 attempts") as info:
        run(_chat(server.url, max_attempts=3))
    assert info.value.attempts == 3


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, e.BadRequestError), (401, e.AuthError), (403, e.ModerationError), (402, e.OutOfCreditsError)],
)
def test_never_retries_what_cannot_succeed(
    server: SimulatorServer, sim: Simulator, status: int, error: type[e.LLMError]
) -> None:
    sim.script(Scripted(status))
    sleeps = Sleeps()
    with pytest.raises(error):
        run(_chat(server.url, sleeps))
    assert sim.requests["POST completions"] == 1
    assert sleeps.waits == []


def test_in_flight_budget_402_is_retried(server: SimulatorServer, sim: Simulator) -> None:
    sim.script(Scripted(402, retry_after=1, metadata={"limit_source": "openrouter_in_flight_budget"}))
    sleeps = Sleeps()
    assert run(_chat(server.url, sleeps)).content == "OK"
    assert sleeps.waits == [1.0]


def test_stalled_server_hits_the_overall_deadline(server: SimulatorServer, sim: Simulator) -> None:
    sim.script(Scripted("stall"))
    sim.faults.stall_s = 5
    hooks = Hooks()
    started = time.monotonic()
    with pytest.raises(e.DeadlineExceededError):
        run(_chat(server.url, hooks=hooks, deadline_s=0.6, request_timeout_s=30))
    assert time.monotonic() - started < 2.5
    assert hooks.rec.after and hooks.rec.after[-1].status in {"deadline", "timeout"}


def test_malformed_body_is_a_typed_error(server: SimulatorServer, sim: Simulator) -> None:
    sim.script(Scripted("malformed"))
    hooks = Hooks()
    with pytest.raises(e.MalformedResponseError):
        run(_chat(server.url, hooks=hooks))
    assert [a.status for a in hooks.rec.after] == ["malformed"]


def test_connection_refused_is_retried_then_unavailable() -> None:
    with Simulator(current_book()).serve() as srv:
        url = srv.url
    sleeps = Sleeps()
    with pytest.raises(e.ProviderUnavailableError, match="connect error"):
        run(_chat(url, sleeps, max_attempts=2))
    assert len(sleeps.waits) == 1


def test_cost_is_estimated_when_server_sends_none() -> None:
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={
            "id": "x1", "model": MODEL,
            "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100},
        })

    async def go():  # type: ignore[no-untyped-def]
        async with LLMClient("http://x/api/v1", transport=httpx2.MockTransport(handler),
                             price_book=current_book()) as client:
            return await client.chat(REQ)

    result = run(go())
    assert result.cost_source == "estimated"
    assert result.cost_usd == Decimal("0.028") * 1000 / 10**6 + Decimal("0.054") * 100 / 10**6


def test_a_model_the_price_book_does_not_know_costs_nothing_marked_none() -> None:
    """The client takes any `cost` function (it imports no price book); one raising LookupError means unknown."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, json={
            "id": "x2", "model": "someone/unpriced-model",
            "choices": [{"finish_reason": "stop", "message": {"role": "assistant", "content": "hello"}}],
            "usage": {"prompt_tokens": 1000, "completion_tokens": 100},
        })

    async def go():  # type: ignore[no-untyped-def]
        async with LLMClient("http://x/api/v1", transport=httpx2.MockTransport(handler),
                             price_book=current_book()) as client:
            return await client.chat(REQ)

    result = run(go())
    assert (result.model, result.cost_source, result.cost_usd) == ("someone/unpriced-model", "none", Decimal(0))


@pytest.mark.parametrize(
    "body", [b"not json", b"[]", b'{"choices": []}', b'{"choices": [{"message": {"content": 5}}]}']
)
def test_bodies_that_are_not_completions(body: bytes) -> None:
    transport = httpx2.MockTransport(lambda r: httpx2.Response(200, content=body))

    async def go():  # type: ignore[no-untyped-def]
        async with LLMClient("http://x/api/v1", transport=transport) as client:
            return await client.chat(REQ)

    with pytest.raises(e.MalformedResponseError):
        run(go())


def test_request_payload_follows_the_wire_format() -> None:
    seen: list[dict] = []

    def handler(request: httpx2.Request) -> httpx2.Response:
        import json

        seen.append(json.loads(request.content))
        assert request.headers["Authorization"] == "Bearer sk-abc"
        return httpx2.Response(200, json={"model": MODEL, "choices": [{"message": {"content": "{}"}}],
                                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.0001}})

    req = ChatRequest(model=MODEL, messages=[{"role": "user", "content": "x"}], max_tokens=10, temperature=0.2,
                      models=[MODEL, "mistralai/mistral-nemo"], provider={"require_parameters": True},
                      response_format={"type": "json_schema", "json_schema": {"name": "n", "strict": True,
                                                                             "schema": {}}})

    async def go():  # type: ignore[no-untyped-def]
        async with LLMClient("http://x/api/v1", "sk-abc", transport=httpx2.MockTransport(handler)) as client:
            return await client.chat(req)

    assert run(go()).cost_usd == Decimal("0.0001")
    assert seen[0]["models"] == [MODEL, "mistralai/mistral-nemo"]
    assert seen[0]["provider"] == {"require_parameters": True}
    assert seen[0]["response_format"]["type"] == "json_schema"
    assert seen[0]["max_tokens"] == 10 and seen[0]["temperature"] == 0.2


def test_parse_retry_after() -> None:
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_random_faults_under_load_are_all_accounted(sim: Simulator) -> None:
    sim.faults = Faults(error_rates={503: 0.2, 429: 0.1}, retry_after=0, seed=7)
    hooks = Hooks()

    async def go() -> list[object]:
        async with LLMClient("http://sim/api/v1", transport=sim.transport(), sleep=Sleeps(),
                             policy=RetryPolicy(max_attempts=6)) as client:
            return await asyncio.gather(*[client.chat(REQ, hooks) for _ in range(50)], return_exceptions=True)

    results = run(go())
    ok = [r for r in results if not isinstance(r, Exception)]
    assert len(ok) + sum(isinstance(r, e.LLMError) for r in results) == 50
    assert len(hooks.rec.after) == sim.requests["POST completions"]
    assert sum(a.status == "ok" for a in hooks.rec.after) == len(ok)


def test_max_in_flight_caps_requests_on_the_wire_and_latency_excludes_the_wait() -> None:
    on_wire = {"now": 0, "peak": 0}

    async def handler(request: httpx2.Request) -> httpx2.Response:
        on_wire["now"] += 1
        on_wire["peak"] = max(on_wire["peak"], on_wire["now"])
        await asyncio.sleep(0.05)
        on_wire["now"] -= 1
        return httpx2.Response(200, json={"model": MODEL, "choices": [{"message": {"content": "hi"}}],
                                         "usage": {"prompt_tokens": 1, "completion_tokens": 1, "cost": 0.0001}})

    async def go():  # type: ignore[no-untyped-def]
        async with LLMClient("http://x/api/v1", transport=httpx2.MockTransport(handler), max_in_flight=3) as client:
            started = time.monotonic()
            results = await asyncio.gather(*(client.chat(REQ) for _ in range(9)))
            return results, time.monotonic() - started

    results, seconds = run(go())
    assert on_wire["peak"] == 3, "never more than max_in_flight requests at once, and all of them used"
    assert seconds >= 0.15, "9 calls of 50 ms three at a time take three rounds"
    waited = sorted(r.latency_ms for r in results)
    assert waited[-1] < seconds * 1000 - 50, "a call's latency is its time on the wire, not in the queue"


def test_time_queued_for_a_slot_does_not_count_against_the_deadline() -> None:
    async def handler(request: httpx2.Request) -> httpx2.Response:
        await asyncio.sleep(0.2)
        return httpx2.Response(200, json={"model": MODEL, "choices": [{"message": {"content": "hi"}}],
                                          "usage": {"prompt_tokens": 1, "completion_tokens": 1}})

    async def go():  # type: ignore[no-untyped-def]
        async with LLMClient("http://x/api/v1", transport=httpx2.MockTransport(handler), max_in_flight=1,
                             policy=RetryPolicy(deadline_s=0.35, max_attempts=1)) as client:
            return await asyncio.gather(*(client.chat(REQ) for _ in range(3)), return_exceptions=True)

    results = run(go())
    assert all(not isinstance(r, Exception) for r in results), results  # the third waited 0.4 s for its slot
