"""An async client for chat completions in the OpenRouter wire format, over an injected httpx2 transport.

It speaks to OpenRouter, to any OpenAI-compatible server, and to the offline simulator alike; tests swap the
wire (an `httpx2` transport or a loopback server), never the code. What it promises:
- one overall deadline per call (time queued for a slot not counted), besides httpx2's per-request timeouts;
- retries of 408/429/5xx and connection errors with exponential backoff and full jitter, honouring
  `Retry-After` up to a cap (a longer wait fails at once as rate limited instead of sleeping for minutes);
- never a retry of 400/401/403; 402 halts, except OpenRouter's transient in-flight-budget 402;
- every attempt reported to an optional hook (the ledger and the budget live there, not here);
- the cost of a call from `usage.cost`, or from the price book when the server sends none (marked estimated).

It imports nothing else of the product: the price book comes in as anything with a `cost` method (`Pricing`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any, Protocol

import httpx2

from core.llm import errors as e
from core.llm.secrets import remember_secret, scrub
from core.llm.transport import AsyncioTransport

RETRYABLE_STATUS = {408, 409, 425, 429, 500, 502, 503, 504, 520, 522, 524, 529}


@dataclass(frozen=True)
class ChatRequest:
    model: str
    messages: list[dict[str, str]]
    max_tokens: int
    temperature: float = 0.7
    models: list[str] | None = None
    response_format: dict[str, Any] | None = None
    provider: dict[str, Any] | None = None

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": self.messages,
            "max_tokens": self.max_tokens,
            "temperature": self.temperature,
        }
        if self.models:
            body["models"] = self.models
        if self.response_format:
            body["response_format"] = self.response_format
        if self.provider:
            body["provider"] = self.provider
        return body


@dataclass(frozen=True)
class ChatResult:
    content: str
    finish_reason: str
    model: str  # the model that answered: bill against it
    prompt_tokens: int
    completion_tokens: int
    cost_usd: Decimal
    cost_source: str  # "provider" | "estimated" | "none"
    latency_ms: int
    request_id: str
    attempts: int = 1
    usage: dict[str, Any] | None = None  # the provider's `usage` object as it came (checked at settlement)


@dataclass(frozen=True)
class Attempt:
    number: int
    request: ChatRequest
    status: str  # "ok" | "http_<code>" | "connect_error" | "timeout" | "deadline" | "malformed"
    http_status: int | None = None
    error: str = ""
    latency_ms: int = 0
    result: ChatResult | None = None
    # No answer, but the request went out (read timeout, deadline): the provider may have billed it, so the
    # ledger must not book it at $0 (see core.costs.settlement).
    maybe_billed: bool = False
    request_id: str = ""  # the generation id when known without a parsed answer (a broken 200's body)


class Pricing(Protocol):
    """What the client needs of a price book (`core.costs.prices.PriceBook` is one)."""

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> Decimal:
        """USD for one call; raises `LookupError` for a model it has no price for."""


class AttemptHooks(Protocol):
    async def before(self, number: int, request: ChatRequest) -> None:
        """Called before each attempt is sent; raising stops the call (e.g. BudgetExceededError)."""

    async def after(self, attempt: Attempt) -> None:
        """Called once per attempt, success or failure.

    A hook object may also have `async sending(number, request)`, called once the attempt has a place on the
    wire, just before it is sent; raising stops the call (e.g. the hold no longer covers the worst case)."""


@dataclass
class RetryPolicy:
    max_attempts: int = 4
    backoff_base_s: float = 0.5
    backoff_cap_s: float = 8.0
    retry_after_cap_s: float = 20.0
    deadline_s: float = 60.0
    request_timeout_s: float = 30.0

    def backoff(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.backoff_cap_s, self.backoff_base_s * (2 ** (attempt - 1)))
        return rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP date); None when absent or invalid."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _provider_text(response: httpx2.Response, text: str) -> str:
    """A text from the provider's answer, scrubbed of keys: the one the request carried and any key shape."""
    try:
        sent = response.request.headers.get("Authorization", "")
    except RuntimeError:  # a response built without a request
        sent = ""
    return scrub(text, sent.split(" ", 1)[-1] if sent else None)


def _error_body(response: httpx2.Response) -> tuple[str, dict[str, Any]]:
    try:
        body = response.json()
    except ValueError:
        return _provider_text(response, response.text[:300] or response.reason_phrase), {}
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        meta = err.get("metadata") if isinstance(err.get("metadata"), dict) else {}
        return _provider_text(response, str(err.get("message") or response.reason_phrase)), meta
    return response.reason_phrase, {}


def _is_in_flight_402(meta: dict[str, Any], retry_after: float | None) -> bool:
    return meta.get("limit_source") == "openrouter_in_flight_budget" or (
        retry_after is not None and "in_flight" in json.dumps(meta)
    )


class LLMClient:
    def __init__(
        self,
        base_url: str,
        api_key: str | None = None,
        *,
        http: httpx2.AsyncClient | None = None,
        transport: httpx2.AsyncBaseTransport | None = None,
        policy: RetryPolicy | None = None,
        price_book: Pricing | None = None,
        provider_name: str = "openrouter",
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        rng: random.Random | None = None,
        max_in_flight: int | None = None,
    ) -> None:
        """`max_in_flight` caps the requests on the wire at once (a batch's concurrency); callers beyond it wait
        for a slot, so work around the calls (reservations, ledger writes) can overlap them."""
        self.base_url = base_url.rstrip("/")
        self.policy = policy or RetryPolicy()
        self.price_book = price_book
        self.provider_name = provider_name
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
        headers = {"X-Title": "Sam Funnel cost console", "HTTP-Referer": "https://github.com/sam-funnel/console"}
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
            remember_secret(api_key)  # so log lines mask it too, wherever the key came from
        self._owns_http = http is None
        limits = httpx2.Limits(max_connections=max_in_flight or 256, max_keepalive_connections=max_in_flight or 64)
        self._http = http or httpx2.AsyncClient(
            transport=transport or AsyncioTransport(limits=limits),  # httpx2's pool on asyncio's own streams
            headers=headers,
            timeout=httpx2.Timeout(self.policy.request_timeout_s, connect=10.0),
            limits=limits,
        )
        if not self._owns_http:
            self._http.headers.update(headers)

    async def aclose(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> LLMClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get_json(self, path: str) -> Any:
        """GET a JSON resource under the base URL (e.g. `/models`, `/key`)."""
        response = await self._http.get(f"{self.base_url}{path}")
        if response.status_code >= 400:
            message, _ = _error_body(response)
            raise e.ProviderUnavailableError(f"GET {path} failed: {response.status_code} {message}",
                                             status=response.status_code)
        try:
            return response.json()
        except ValueError as exc:
            raise e.MalformedResponseError(f"GET {path} returned a body that is not JSON") from exc

    async def chat(self, request: ChatRequest, hooks: AttemptHooks | None = None) -> ChatResult:
        """Send one chat completion with retries; raises an `LLMError` subclass on failure."""
        state = _CallState(deadline=time.monotonic() + self.policy.deadline_s)
        try:
            async with asyncio.timeout(self.policy.deadline_s) as scope:
                state.scope = scope
                return await self._attempts(request, hooks, state)
        except TimeoutError:
            if state.open_attempt is not None and hooks is not None:
                number, sent_at = state.open_attempt
                await hooks.after(Attempt(number, request, "deadline", None,
                                          f"deadline of {self.policy.deadline_s:g}s passed",
                                          int((time.monotonic() - sent_at) * 1000), maybe_billed=state.on_wire))
            raise e.DeadlineExceededError(
                f"no answer within the {self.policy.deadline_s:g}s deadline "
                f"after {state.attempts} attempt{'s' if state.attempts != 1 else ''}",
                attempts=state.attempts,
            ) from None

    async def _attempts(self, request: ChatRequest, hooks: AttemptHooks | None, state: _CallState) -> ChatResult:
        policy = self.policy
        last_error: e.LLMError | None = None
        for number in range(1, policy.max_attempts + 1):
            state.attempts = number
            if hooks is not None:
                await hooks.before(number, request)
            sent_at = time.monotonic()
            state.open_attempt = (number, sent_at)  # from here on, the attempt is reported whatever happens
            wait: float | None = None
            try:
                async with self._slot(state):
                    sending = getattr(hooks, "sending", None)  # optional: a last word before the request goes out
                    if sending is not None:
                        await sending(number, request)
                    sent_at = time.monotonic()
                    state.open_attempt = (number, sent_at)
                    state.on_wire = True
                    response = await self._http.post(
                        f"{self.base_url}/chat/completions",
                        json=request.payload(),
                        timeout=max(0.1, min(policy.request_timeout_s, state.deadline - sent_at)),
                    )
                state.open_attempt, state.on_wire = None, False
            except (httpx2.TimeoutException, httpx2.TransportError) as exc:
                state.open_attempt, state.on_wire = None, False
                status = "timeout" if isinstance(exc, httpx2.TimeoutException) else "connect_error"
                last_error = e.ProviderUnavailableError(
                    f"{status.replace('_', ' ')} talking to {self.base_url}: {type(exc).__name__}", attempts=number
                )
                # A read or write timeout came after the request started going out: it may have been billed.
                sent = isinstance(exc, httpx2.ReadTimeout | httpx2.WriteTimeout)
                await self._report(hooks, Attempt(number, request, status, None, str(last_error), _ms(sent_at),
                                                  maybe_billed=sent))
            else:
                latency = _ms(sent_at)
                if response.status_code == 200:
                    try:
                        result = self._parse(response, request, latency, number)
                    except e.LLMError as exc:
                        exc.attempts = number
                        # A 200 whose body broke may still have been generated and billed.
                        await self._report(hooks, Attempt(number, request, exc.kind, 200, str(exc), latency,
                                                          maybe_billed=isinstance(exc, e.MalformedResponseError),
                                                          request_id=_loose_id(response)))
                        raise
                    await self._report(hooks, Attempt(number, request, "ok", 200, "", latency, result))
                    return result
                message, meta = _error_body(response)
                retry_after = parse_retry_after(response.headers.get("Retry-After"))
                status_code = response.status_code
                await self._report(
                    hooks, Attempt(number, request, f"http_{status_code}", status_code, message, latency)
                )
                error = self._classify(status_code, message, meta, retry_after, number)
                if not error.retryable:
                    raise error
                last_error = error
                if retry_after is not None:
                    if retry_after > policy.retry_after_cap_s:
                        raise e.RateLimitedError(
                            f"rate limited: the provider asks to wait {retry_after:g}s, "
                            f"more than the {policy.retry_after_cap_s:g}s this client waits",
                            status=status_code, attempts=number,
                        )
                    wait = retry_after
            if number == policy.max_attempts:
                break
            wait = policy.backoff(number, self._rng) if wait is None else wait
            if time.monotonic() + wait > state.deadline:
                break
            await self._sleep(wait)
        assert last_error is not None
        last_error.attempts = state.attempts
        if isinstance(last_error, e.RateLimitedError | e.ProviderUnavailableError):
            last_error.message = f"{last_error.message} (gave up after {state.attempts} attempts)"
        raise last_error

    @contextlib.asynccontextmanager
    async def _slot(self, state: _CallState) -> AsyncIterator[None]:
        """A place on the wire; time queued for it counts neither against the deadline nor as latency."""
        if self._slots is None:
            yield
            return
        paused = state.pause()
        async with self._slots:
            state.resume(paused)
            yield

    @staticmethod
    async def _report(hooks: AttemptHooks | None, attempt: Attempt) -> None:
        if hooks is not None:
            await hooks.after(attempt)

    def _classify(
        self, status: int, message: str, meta: dict[str, Any], retry_after: float | None, number: int
    ) -> e.LLMError:
        detail = f"{status} from provider: {message}"
        if status == 400:
            return e.BadRequestError(detail, status=status, attempts=number)
        if status == 401:
            return e.AuthError("the API key was refused (401); check OPENROUTER_API_KEY",
                               status=status, attempts=number)
        if status == 402:
            if _is_in_flight_402(meta, retry_after):
                err: e.LLMError = e.RateLimitedError(
                    f"in-flight budget full (402): {message}", status=status, attempts=number
                )
                err.retryable = True
                return err
            return e.OutOfCreditsError(f"out of credits (402): {message}; add credits or raise the key limit",
                                       status=status, attempts=number)
        if status == 403:
            return e.ModerationError(f"input flagged by moderation (403): {message}", status=status,
                                     attempts=number)
        if status == 429:
            err = e.RateLimitedError(f"rate limited (429): {message}", status=status, attempts=number)
            err.retryable = True
            return err
        if status in RETRYABLE_STATUS or status >= 500:
            err = e.ProviderUnavailableError(detail, status=status, attempts=number)
            err.retryable = True
            return err
        return e.BadRequestError(detail, status=status, attempts=number)

    def _parse(self, response: httpx2.Response, request: ChatRequest, latency: int, number: int) -> ChatResult:
        try:
            body = response.json()
        except ValueError:
            raise e.MalformedResponseError(
                f"the provider's answer is not JSON: {_provider_text(response, response.text[:80])!r}", status=200
            ) from None
        if not isinstance(body, dict):
            raise e.MalformedResponseError("the provider's answer is not a JSON object", status=200)
        if "error" in body and not body.get("choices"):
            err = body["error"] if isinstance(body["error"], dict) else {"message": str(body["error"])}
            code = err.get("code")
            status = code if isinstance(code, int) else 502
            message = _provider_text(response, str(err.get("message")))
            raise e.ProviderUnavailableError(f"provider error in a 200 answer ({status}): {message}", status=status)
        try:
            choice = body["choices"][0]
            content = choice["message"]["content"]
            if content is None:
                content = ""
            if not isinstance(content, str):
                raise TypeError("content is not a string")
            raw_usage = body.get("usage")
            usage = raw_usage if isinstance(raw_usage, dict) else {}
            prompt_tokens = int(usage.get("prompt_tokens", 0))
            completion_tokens = int(usage.get("completion_tokens", 0))
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise e.MalformedResponseError(f"the provider's answer is not a chat completion ({exc})",
                                           status=200) from None
        model = str(body.get("model") or request.model)
        cost, source = self._cost(usage.get("cost"), model, prompt_tokens, completion_tokens)
        request_id = str(body.get("id") or response.headers.get("x-request-id", ""))
        return ChatResult(
            content=content,
            finish_reason=str(choice.get("finish_reason") or ""),
            model=model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
            cost_usd=cost,
            cost_source=source,
            latency_ms=latency,
            request_id=request_id,
            attempts=number,
            usage=raw_usage if isinstance(raw_usage, dict) else None,
        )

    def _cost(self, reported: Any, model: str, prompt: int, completion: int) -> tuple[Decimal, str]:
        if reported is not None and not isinstance(reported, bool):
            try:
                value = Decimal(str(reported))
                if value.is_finite() and value >= 0:
                    return value, "provider"
            except InvalidOperation:
                pass
        if self.price_book is not None:
            try:
                return self.price_book.cost(model, prompt, completion), "estimated"
            except LookupError:  # the book has no price for this model (UnknownModelPrice)
                pass
        return Decimal(0), "none"


@dataclass
class _CallState:
    deadline: float  # monotonic
    scope: asyncio.Timeout | None = None
    attempts: int = 0
    open_attempt: tuple[int, float] | None = field(default=None)
    on_wire: bool = False  # the open attempt's request is being sent or answered (not queued for a slot)

    _stopped_at: float | None = None  # the scope's deadline (loop time) while the clock is stopped

    def pause(self) -> float:
        """Stop the deadline clock (while queued for a slot); returns when it stopped."""
        scope = self.scope
        if scope is not None and not scope.expired() and scope.when() is not None:
            self._stopped_at = scope.when()
            scope.reschedule(None)
        return time.monotonic()

    def resume(self, paused: float) -> None:
        waited = time.monotonic() - paused
        self.deadline += waited
        if self.scope is not None and self._stopped_at is not None:
            self.scope.reschedule(self._stopped_at + waited)
            self._stopped_at = None


_ID_RE = re.compile(r'"id"\s*:\s*"([A-Za-z0-9_.:-]{1,120})"')


def _loose_id(response: httpx2.Response) -> str:
    """The generation id of an answer whose body is broken (for the reconcile lookup), or ""."""
    match = _ID_RE.search(response.text[:2000])
    return match.group(1) if match else response.headers.get("x-request-id", "")[:120]


def _ms(since: float) -> int:
    return int((time.monotonic() - since) * 1000)
