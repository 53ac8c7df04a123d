"""Provider error texts are scrubbed of keys and Authorization headers before they are stored or printed.

One scrubber (core.logs.scrub) serves the logs, the client's error texts, the ledger and reconciliation.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import re

import httpx2
import pytest
from sqlmodel import select

from core import logs
from core.app import App
from core.config import Settings
from core.costs import reconcile
from core.llm import errors as e
from core.llm.client import Attempt, ChatRequest, LLMClient, RetryPolicy
from core.sim.simulator import Scripted
from core.store.db import session_scope
from core.store.models import UsageEntry

KEY = "sk-or-v1-" + "0f3a9c4e7b21d8f6" * 4  # the shape of an OpenRouter key (64 hex digits)
CUSTOM = "local-secret-9f8e7d6c5b4a"  # a key of no known shape (LLM_API_KEY for a local server)
REQ = ChatRequest(model="mistralai/mistral-7b-instruct", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
FAST = RetryPolicy(max_attempts=1, backoff_base_s=0.001, backoff_cap_s=0.002)


def leaks(text: str, secret: str = KEY) -> list[str]:
    """Every 8-character piece of ``secret`` (past its public prefix) still readable in ``text``."""
    body = secret.removeprefix("sk-or-v1-")
    return sorted({body[i : i + 8] for i in range(len(body) - 7) if body[i : i + 8] in text})


@pytest.mark.parametrize(
    "text",
    [
        f"Invalid key {KEY}",
        f"key {KEY[:30]}... is not valid",  # the provider echoes the start of the key
        f"key sk-or-v1-0f3a...{KEY[-6:]} revoked",  # the provider's own shortened form
        f"key ending in {KEY[-20:]}",  # the end of the key, without its prefix
        f"headers: {{'Authorization': 'Bearer {KEY}'}}",
        f'{{"headers": {{"authorization": "Bearer {KEY}"}}}}',
        f"Authorization: Bearer {KEY}",
        f"authorization:{KEY}",
        f"x-api-key: {KEY}",
        f"https://api.example/v1?api_key={KEY}&x=1",
    ],
)
def test_scrub_removes_the_key_whole_or_in_part(text: str) -> None:
    cleaned = logs.scrub(text, KEY)
    assert leaks(cleaned) == [], cleaned
    assert "***" in cleaned


def test_scrub_removes_key_shaped_tokens_and_headers_without_knowing_the_key() -> None:
    text = ("Bearer abc+/def==.ghi; sk-ant-api03-XYZXYZXYZXYZ; sk-proj-AbCdEf0123456789xyz; "
            "Authorization: Basic dXNlcjpwYXNzd29yZA==; password=hunter2hunter2")
    cleaned = logs.scrub(text)
    for secret in ("abc+/def", "XYZXYZXYZ", "AbCdEf0123456789", "dXNlcjpwYXNz", "hunter2"):
        assert secret not in cleaned, cleaned
    assert "Bearer ***" in cleaned and "Authorization: ***" in cleaned


def test_scrub_removes_a_configured_key_of_any_shape_and_its_pieces(monkeypatch: pytest.MonkeyPatch) -> None:
    cleaned = logs.scrub(f"refused {CUSTOM}; tail {CUSTOM[-12:]}", CUSTOM)
    assert leaks(cleaned, CUSTOM) == [], cleaned
    monkeypatch.setenv("LLM_API_KEY", CUSTOM)  # from the environment when the caller does not pass it
    assert leaks(logs.scrub(f"refused {CUSTOM[:14]}"), CUSTOM) == []


def test_scrub_leaves_ordinary_text_alone() -> None:
    text = "429 from provider: rate limited, retry in 3s (model mistralai/mistral-7b-instruct, 1,200 tokens)"
    assert logs.scrub(text, KEY) == text
    assert logs.scrub("", KEY) == ""


def test_there_is_one_scrubber() -> None:
    assert reconcile.scrub is logs.scrub


def _echoing_client(status: int, body: object | str) -> LLMClient:
    """A client whose provider answers every request with ``status`` and ``body`` mentioning the key."""

    def handler(request: httpx2.Request) -> httpx2.Response:
        assert request.headers["Authorization"] == f"Bearer {KEY}"
        if isinstance(body, str):
            return httpx2.Response(status, text=body)
        return httpx2.Response(status, json=body)

    return LLMClient("http://127.0.0.1:9/v1", KEY, transport=httpx2.MockTransport(handler), policy=FAST,
                     sleep=lambda _: asyncio.sleep(0))


class Attempts:
    def __init__(self) -> None:
        self.seen: list[Attempt] = []

    async def before(self, number: int, request: ChatRequest) -> None:
        return None

    async def after(self, attempt: Attempt) -> None:
        self.seen.append(attempt)


ECHO = f"Invalid credentials: Authorization: Bearer {KEY} (key {KEY[:24]}...)"


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (401, {"error": {"message": ECHO, "code": 401}}, e.AuthError),
        (402, {"error": {"message": ECHO, "code": 402}}, e.OutOfCreditsError),
        (400, {"error": {"message": ECHO}}, e.BadRequestError),
        (503, ECHO, e.ProviderUnavailableError),  # a plain-text body
        (200, {"error": {"message": ECHO, "code": 500}}, e.ProviderUnavailableError),  # an error in a 200
        (200, ECHO, e.MalformedResponseError),  # a 200 that is not JSON
    ],
)
def test_provider_error_texts_reach_exceptions_and_attempts_scrubbed(status: int, body: object, kind: type) -> None:
    attempts = Attempts()

    async def go() -> None:
        async with _echoing_client(status, body) as client:
            await client.chat(REQ, attempts)

    with pytest.raises(kind) as caught:
        asyncio.run(go())
    texts = [str(caught.value), caught.value.message, *(a.error for a in attempts.seen)]
    assert attempts.seen and all(a.error for a in attempts.seen)
    for text in texts:
        assert leaks(text) == [], text
    # The provider's words are kept (only the secrets go), except where the client says it in its own words.
    assert all("Invalid credentials: Authorization: ***" in a.error for a in attempts.seen)
    assert kind is e.AuthError or "Invalid credentials: Authorization: ***" in str(caught.value)


def test_get_json_errors_are_scrubbed() -> None:
    async def go() -> None:
        async with _echoing_client(401, {"error": {"message": ECHO}}) as client:
            await client.get_json("/key")

    with pytest.raises(e.LLMError) as caught:
        asyncio.run(go())
    assert leaks(str(caught.value)) == []


def test_an_error_built_anywhere_is_scrubbed() -> None:
    err = e.ProviderUnavailableError(f"upstream said: Authorization: Bearer {KEY}")
    assert leaks(str(err)) == [] and leaks(err.message) == []


def test_the_ledger_stores_a_scrubbed_provider_error(app: App) -> None:
    assert app.simulator is not None
    app.simulator.script(Scripted(400, message=ECHO))

    async def go() -> None:
        async with app.gateway(FAST) as gw:
            await gw.call("personalize", [{"role": "user", "content": "hello"}])

    with pytest.raises(e.BadRequestError):
        asyncio.run(go())
    with session_scope(app.engine) as s:
        rows = s.exec(select(UsageEntry)).all()
    assert [r.status for r in rows] == ["http_400"]
    assert rows[0].error and leaks(rows[0].error) == [], rows[0].error


def test_log_lines_are_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENROUTER_API_KEY", KEY)
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("sam.test_scrub")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("call failed: %s", ECHO, extra={"fields": {"error": ECHO, "tail": KEY[-16:]}})
    finally:
        logger.removeHandler(handler)
    line = stream.getvalue()
    assert json.loads(line)["error"] and leaks(line) == [], line
    assert not re.search(r"Bearer (?!\*\*\*)", line)


def test_the_clients_key_is_masked_in_logs_even_when_it_is_not_in_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("LLM_API_KEY", raising=False)
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    key = "secrets-toml-key-5e6f7a8b9c0d"  # e.g. read from .streamlit/secrets.toml
    assert logs.scrub(f"boom {key}") == f"boom {key}"  # unknown until a client uses it
    LLMClient("http://127.0.0.1:9/v1", key)
    assert leaks(logs.scrub(f"boom {key}; tail {key[-10:]}"), key) == []


def test_a_password_in_a_url_is_masked() -> None:
    cleaned = logs.scrub("connect error talking to https://bob:hunter2pass@proxy.example:8080/v1")
    assert "hunter2pass" not in cleaned and "https://bob:***@proxy.example:8080/v1" in cleaned


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://u:pw@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
    ("postgresql+psycopg://u:p@ss@h:5432/db", "postgresql+psycopg://u:***@h:5432/db"),
    ("postgresql+psycopg://u@h/db", "postgresql+psycopg://u@h/db"),
    ("sqlite:///x.db", "sqlite:///x.db"),
])
def test_the_one_mask_shows_a_database_url_without_its_password(url: str, shown: str) -> None:
    """The settings table and the home page show DATABASE_URL through logs.scrub (config had its own mask)."""
    assert logs.scrub(url) == shown
    settings = Settings(database_url=url, llm_provider="simulator")
    described = {row["variable"]: row["value"] for row in settings.describe()}
    assert described["DATABASE_URL"] == shown
