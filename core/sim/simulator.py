"""The offline simulator: a deterministic provider that speaks the OpenRouter wire format.

It answers every task the product has (personalization snippets, the seed's whole-message prompt, context
summaries, template variants, reviews and reply classification as JSON) from the prompt alone, counts
tokens with a real tokenizer, prices them with the price book and reports `usage.cost` like OpenRouter.
Knobs add latency and inject faults (an error rate per status code, `Retry-After`, stalls, malformed
bodies), and `script()` queues exact faults for tests.

It runs in-process as an `httpx2` transport (the embedded default: no network, no key) or on a loopback
port (`python -m core simulator --port N`) for integration tests and benchmarks; both paths share
`Simulator.handle`, so they answer identically. Nothing here calls a model.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

import httpx2

from core.costs.prices import PriceBook, UnknownModelPrice, is_retired, load_lifecycle
from core.llm.tokens import count_messages, count_text
from core.messages import prompts


@dataclass
class Faults:
    latency_ms: float = 0.0
    jitter_ms: float = 0.0
    error_rates: dict[int, float] = field(default_factory=dict)  # status -> probability per request
    retry_after: float | None = None  # sent with injected 429/503
    malformed_rate: float = 0.0
    stall_rate: float = 0.0
    stall_s: float = 120.0
    seed: int = 0


@dataclass
class Scripted:
    """One queued response: an error status (with optional Retry-After), 'malformed', 'stall', or
    'billed_stall' (the call is generated and billed, then the answer never comes: a timed-out paid call)."""

    status: int | str
    retry_after: float | None = None
    message: str = ""
    metadata: dict[str, Any] | None = None


@dataclass
class SimResponse:
    status: int
    body: bytes
    headers: dict[str, str]
    delay_s: float = 0.0


INDUSTRY_TRENDS = {
    "saas": "the shift to usage-based pricing",
    "fintech": "real-time payments going mainstream",
    "healthcare": "AI-assisted clinical documentation",
    "manufacturing": "predictive maintenance on the shop floor",
    "retail": "retail media networks",
    "logistics": "near-shoring and warehouse automation",
    "education": "skills-based hiring and micro-credentials",
    "cybersecurity": "identity-first security",
}

_SENTENCE_RE = re.compile(r"(?<=[.!?])\s+")
_TAG_RE = re.compile(r"{{\s*([a-zA-Z_][\w]*)\s*(?:\|[^}]*)?}}")


def _first_sentence(text: str, limit: int) -> str:
    text = " ".join(str(text or "").split())
    first = _SENTENCE_RE.split(text, maxsplit=1)[0] if text else ""
    return prompts.cap(first.rstrip("."), limit)


def write_marker(marker: str, fields: Mapping[str, Any], limit: int = 110) -> str:
    """A deterministic one-sentence snippet for a writing marker, built from the prospect's own fields."""
    company = str(fields.get("company_name") or "your team")
    industry = str(fields.get("industry") or "your market")
    news = str(fields.get("recent_news") or "")
    title = str(fields.get("job_title") or "")
    if marker == "recent_achievement":
        first = _first_sentence(news, 10_000)
        if news and len(first) <= limit - 30:
            text = f"Congrats on the recent news: {first}."
        elif news:
            text = f"Congrats on the recent news at {company}."
        elif title:
            text = f"Your work as {title} at {company} caught my eye."
        else:
            text = f"What you are building at {company} caught my eye."
    elif marker == "company_insight":
        text = f"{company} is clearly moving fast in {industry}." if news else f"{company} stands out in {industry}."
    elif marker == "industry_trend":
        trend = INDUSTRY_TRENDS.get(industry.strip().lower(), "automation")
        text = f"{trend[:1].upper()}{trend[1:]} is reshaping {industry}."
    else:
        text = f"{company} keeps coming up in {industry} conversations."
    return prompts.cap(text, limit)


def review_verdict(message: str, prospect: Mapping[str, Any], max_chars: int) -> dict[str, Any]:
    issues: list[str] = []
    suggestions: list[str] = []
    score = 8.5
    if len(message) > max_chars:
        score -= 3
        issues.append(f"message is {len(message)} characters; the limit is {max_chars}")
        suggestions.append("shorten the message")
    first = str(prospect.get("first_name") or "")
    if first and first not in message:
        score -= 1.5
        issues.append("the prospect is not addressed by name")
        suggestions.append(f"open with {first}'s name")
    if message.count("!") > 1 or re.search(r"\b[A-Z]{4,}\b", message):
        score -= 2
        issues.append("shouting: several exclamation marks or capitalised words")
    if len(message) < 60:
        score -= 2
        issues.append("too short to be personal")
    if "?" not in message:
        score -= 0.5
        suggestions.append("end with a light question")
    score = max(0.0, min(10.0, score))
    return {"approved": score >= 6.0, "score": round(score, 1), "issues": issues, "suggestions": suggestions}


OPENERS = ("Hi", "Hello", "Hey")
CLOSERS = (
    "Would you be open to connecting?",
    "Happy to connect if useful.",
    "Open to a quick chat sometime?",
    "Worth connecting?",
)


def template_variants(template: str, count: int) -> list[str]:
    """Rephrase opener and closing line, keeping every Liquid tag exactly as written."""
    lines = template.strip()
    opener = next((o for o in OPENERS if lines.startswith(o)), None)
    variants: list[str] = []
    for i in range(count):
        text = lines
        if opener:
            text = OPENERS[(OPENERS.index(opener) + 1 + i) % len(OPENERS)] + text[len(opener):]
        sentences = _SENTENCE_RE.split(text)
        if len(sentences) > 1 and not _TAG_RE.search(sentences[-1]):
            sentences[-1] = CLOSERS[i % len(CLOSERS)]
        text = " ".join(sentences)
        if text != lines and text not in variants:
            variants.append(text)
    return variants


def classify(reply: str, received: str | None) -> dict[str, Any]:
    from core.replies.rules import classify_by_rules

    when = None
    if received:
        try:
            when = date.fromisoformat(str(received)[:10])
        except ValueError:
            when = None
    verdict = classify_by_rules(reply, when)
    return {
        "category": verdict.category,
        "confidence": round(float(verdict.confidence), 3),
        "return_date": verdict.return_date.isoformat() if verdict.return_date else None,
        "referral": verdict.referral,
    }


def seed_fill(user: str) -> str:
    """Answer the seed's prompt: the whole template back, tags replaced from the prospect JSON."""
    template, _, prospect_json = user.partition("\nProspect: ")
    template = template.removeprefix("Template: ")
    try:
        prospect = json.loads(prospect_json)
    except ValueError:
        prospect = {}
    if not isinstance(prospect, dict):
        prospect = {}

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if prospect.get(name):
            return str(prospect[name])
        return write_marker(name, prospect)

    return "Sure! Here is the personalized message:\n\n" + _TAG_RE.sub(fill, template).strip()


def answer(messages: list[dict[str, Any]]) -> str:
    """The answer the simulator gives a conversation, from the prompt alone (also the pre-flight estimate's
    typical answer: `core.costs.estimate`)."""
    task = prompts.task_of(messages)
    user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
    data = prompts.read_data(user)
    if task == "personalize":
        asked = user.split("\n", 1)[0].removeprefix("Snippets: ")
        names = [part.split("(", 1)[0].strip() for part in asked.split(";") if part.strip()]
        return json.dumps({name: write_marker(name, data) for name in names}, ensure_ascii=False)
    if task == "seed":
        return seed_fill(user)
    if task == "context":
        summary = _first_sentence(str(data.get("text", "")), 200)
        return json.dumps({"summary": summary}, ensure_ascii=False)
    if task == "review":
        verdict = review_verdict(str(data.get("message", "")), data.get("prospect") or {},
                                 int(data.get("max_chars") or 300))
        return json.dumps(verdict)
    if task == "classify_reply":
        return json.dumps(classify(str(data.get("reply", "")), data.get("received")), ensure_ascii=False)
    if task == "optimize_template":
        count = int(data.get("count") or 3)
        return json.dumps({"variants": template_variants(str(data.get("template", "")), count)},
                          ensure_ascii=False)
    return "OK"


class Simulator:
    """A deterministic OpenRouter stand-in. Thread-safe; share one per process or per test."""

    def __init__(self, price_book: PriceBook, faults: Faults | None = None, today: date | None = None) -> None:
        self.price_book = price_book
        self.faults = faults or Faults()
        self.today = today
        self._rng = random.Random(self.faults.seed)
        self._script: deque[Scripted] = deque()
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self.requests: Counter[str] = Counter()
        self.billed_usd = Decimal(0)
        self.generations: dict[str, dict[str, Any]] = {}  # id -> what GET /generation?id= answers

    def script(self, *responses: Scripted) -> None:
        with self._lock:
            self._script.extend(responses)

    # ---- the one request handler both the transport and the HTTP server call ----
    def handle(self, method: str, path: str, body: bytes) -> SimResponse:
        route = path.split("?", 1)[0].rstrip("/")
        with self._lock:
            self.requests[f"{method} {route.rsplit('/', 1)[-1]}"] += 1
        if method == "GET" and route.endswith("/models"):
            return self._json(200, self.models())
        if method == "GET" and route.endswith("/key"):
            billed = float(self.billed_usd)
            return self._json(200, {"data": {"label": "simulator", "usage": billed, "usage_monthly": billed,
                                             "limit": None, "is_free_tier": False}})
        if method == "GET" and route.endswith("/generation"):
            return self._generation(path)
        if method == "POST" and route.endswith("/chat/completions"):
            return self._chat(body)
        return self._error(404, f"no such endpoint: {method} {route}")

    def _generation(self, path: str) -> SimResponse:
        """OpenRouter's `GET /generation?id=`: `{"data": {"id", "total_cost", "model", "tokens_prompt", ...}}`."""
        query = parse_qs(path.split("?", 1)[1]) if "?" in path else {}
        gen_id = (query.get("id") or [""])[0]
        with self._lock:
            data = self.generations.get(gen_id)
        if data is None:
            return self._error(404, f"Generation {gen_id or '(no id)'} not found")
        return self._json(200, {"data": dict(data)})

    def models(self) -> dict[str, Any]:
        lifecycle, _ = load_lifecycle()
        from core.costs.routing import load_routing

        data = []
        for model in load_routing().models():
            try:
                price = self.price_book.price(model)
            except UnknownModelPrice:
                continue
            mtok = Decimal(1_000_000)
            entry: dict[str, Any] = {
                "id": model,
                "name": model,
                "pricing": {"prompt": format(price.input_per_mtok / mtok, "f"),
                            "completion": format(price.output_per_mtok / mtok, "f")},
            }
            if model in lifecycle:
                entry["expiration_date"] = lifecycle[model].retires_on.isoformat()
            data.append(entry)
        return {"data": data}

    def _today(self) -> date:
        return self.today or datetime.now(UTC).date()

    def _draw_fault(self) -> Scripted | None:
        with self._lock:
            if self._script:
                return self._script.popleft()
            f = self.faults
            if f.stall_rate and self._rng.random() < f.stall_rate:
                return Scripted("stall")
            for status, rate in f.error_rates.items():
                if rate and self._rng.random() < rate:
                    return Scripted(status, f.retry_after if status in (429, 503) else None)
            if f.malformed_rate and self._rng.random() < f.malformed_rate:
                return Scripted("malformed")
        return None

    def _delay(self) -> float:
        f = self.faults
        if not f.latency_ms and not f.jitter_ms:
            return 0.0
        with self._lock:
            jitter = self._rng.uniform(-f.jitter_ms, f.jitter_ms) if f.jitter_ms else 0.0
        return max(0.0, (f.latency_ms + jitter) / 1000)

    def _chat(self, raw: bytes) -> SimResponse:
        fault = self._draw_fault()
        delay = self._delay()
        billed_stall = fault is not None and fault.status == "billed_stall"
        if billed_stall:
            fault = None
        if fault is not None:
            if fault.status == "stall":
                return SimResponse(200, b"", {}, delay_s=self.faults.stall_s)
            if fault.status == "malformed":
                return SimResponse(200, b'{"choices": [{"message": ', {"content-type": "application/json"}, delay)
            headers = {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            resp = self._error(int(fault.status), fault.message or f"simulated {fault.status}", fault.metadata)
            resp.headers.update(headers)
            resp.delay_s = delay
            return resp
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            return self._error(400, "request body is not JSON")
        if not isinstance(body, dict):
            return self._error(400, "request body must be a JSON object")
        messages = body.get("messages")
        model = body.get("model")
        if not isinstance(model, str) or not isinstance(messages, list) or not messages:
            return self._error(400, "model (string) and messages (non-empty list) are required")
        if not all(isinstance(m, dict) and isinstance(m.get("content", ""), str) for m in messages):
            return self._error(400, "each message must be an object with string content")
        max_tokens = body.get("max_tokens", 512)
        if not isinstance(max_tokens, int) or max_tokens <= 0:
            return self._error(400, "max_tokens must be a positive integer")
        answered = self._pick_model([model, *[m for m in body.get("models") or [] if isinstance(m, str)]])
        if answered is None:
            return self._error(404, f"No endpoints found for {model} (unknown or retired model)")
        content = self._answer(messages)
        prompt_tokens = count_messages(messages)
        completion_tokens = count_text(content)
        finish = "stop"
        if completion_tokens > max_tokens:
            content = content[: max(1, int(len(content) * max_tokens / completion_tokens))]
            completion_tokens = count_text(content)
            finish = "length"
        cost = self.price_book.cost(answered, prompt_tokens, completion_tokens)
        with self._lock:
            self.billed_usd += cost
            gen = next(self._ids)
            self.generations[f"gen-sim-{gen}"] = {
                "id": f"gen-sim-{gen}", "model": answered, "total_cost": float(cost), "usage": float(cost),
                "tokens_prompt": prompt_tokens, "tokens_completion": completion_tokens,
                "native_tokens_prompt": prompt_tokens, "native_tokens_completion": completion_tokens,
                "finish_reason": finish, "provider_name": "Simulator"}
        if billed_stall:
            return SimResponse(200, b"", {}, delay_s=self.faults.stall_s)
        payload = {
            "id": f"gen-sim-{gen}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": answered,
            "provider": "Simulator",
            "choices": [{"index": 0, "finish_reason": finish,
                         "message": {"role": "assistant", "content": content}}],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                      "total_tokens": prompt_tokens + completion_tokens, "cost": float(cost)},
        }
        resp = self._json(200, payload)
        resp.delay_s = delay
        return resp

    def _pick_model(self, candidates: list[str]) -> str | None:
        for model in candidates:
            if self.price_book.has(model) and not is_retired(model, self._today()):
                return model
        return None

    def _answer(self, messages: list[dict[str, Any]]) -> str:
        """This simulator's answer (tests replace it per instance to queue exact answers)."""
        return answer(messages)

    @staticmethod
    def _json(status: int, payload: Any) -> SimResponse:
        return SimResponse(status, json.dumps(payload).encode(), {"content-type": "application/json"})

    def _error(self, status: int, message: str, metadata: dict[str, Any] | None = None) -> SimResponse:
        err: dict[str, Any] = {"code": status, "message": message}
        if metadata:
            err["metadata"] = metadata
        return self._json(status, {"error": err})

    # ---- in-process transport ----
    def transport(self) -> SimulatorTransport:
        return SimulatorTransport(self)

    # ---- loopback HTTP server ----
    def serve(self, host: str = "127.0.0.1", port: int = 0) -> SimulatorServer:
        return SimulatorServer(self, host, port)


class SimulatorTransport(httpx2.AsyncBaseTransport):
    def __init__(self, simulator: Simulator) -> None:
        self.simulator = simulator

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        body = await request.aread()
        resp = self.simulator.handle(request.method, request.url.raw_path.decode("ascii"), body)
        if resp.delay_s:
            await asyncio.sleep(resp.delay_s)
        return httpx2.Response(resp.status, headers=resp.headers, content=resp.body, request=request)


class SimulatorServer:
    """The simulator on a loopback port, in a background thread; `close()` stops it."""

    def __init__(self, simulator: Simulator, host: str, port: int) -> None:
        sim = simulator

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # otherwise keep-alive answers wait ~40 ms for a delayed ACK

            def _reply(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                resp = sim.handle(method, self.path, body)
                if resp.delay_s:
                    time.sleep(resp.delay_s)
                try:
                    self.send_response(resp.status)
                    for key, value in resp.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(resp.body)))
                    self.end_headers()
                    self.wfile.write(resp.body)
                except (BrokenPipeError, ConnectionResetError):
                    return  # the client gave up (deadline tests do this on purpose)

            def do_POST(self) -> None:
                self._reply("POST")

            def do_GET(self) -> None:
                self._reply("GET")

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

        self.httpd = Server((host, port), Handler)
        self.host, self.port = self.httpd.server_address[:2]
        self.url = f"http://{self.host}:{self.port}/api/v1"
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="simulator-http", daemon=True
        )
        self._thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> SimulatorServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
