"""Batch throughput over real HTTP against two servers, the ideal bound and a bare `openai` SDK loop; and peak memory.

Why: the batch worker wraps every model call in database work (lease, reservation, ledger, message) that a
bare SDK loop does not do. This measures what that costs when the model is slow, the realistic case, against
our own simulator and against a server we did not write (`llmock` from PyPI), whose answers are shaped
differently (no `usage.cost`, no request-id header, its own token estimates): a client tuned to the simulator
alone could hide its costs there.

Setup: each server runs on a loopback port in its own process, so its threads never compete with the client
for the GIL: the simulator (`python -m core simulator --latency-ms 100`) and `llmock serve --latency-ms 100`.
Each server's real round trip is measured and printed, since the bound assumes the server adds nothing to the
latency. For each server a fresh SQLite database (WAL) gets 6,000 synthetic prospects whose template has a
writing marker, whose company sizes stay at or below the high-value threshold (no premium review) and whose
news is short (no context summary): one personalize call per row, checked with the estimate before and
against the usage ledger after.

Runs against each server, each in a process of its own, timed from spawn to exit (start-up and imports
included) with the process's CPU time (user + system, all threads) from the parent's view:
- ours: `python -m core worker --once` at the batch's concurrency, 32, with the "openai" provider pointed at
  the server, exactly as an operator runs it;
- baseline: `python -m bench.bare_openai`, a bare `AsyncOpenAI` loop under `asyncio.Semaphore(32)` sending the
  same request bodies to the same server, one call per row (its prompt token total must equal the ledger's);
- the same loop with the engine's own `LLMClient` and nothing stored, to separate HTTP from the rest;
- memory (simulator only): `work_batch` on a 6,000-row and on a 50,000-row batch against a simulator at 5 ms
  latency, each for the first `--memory-items` items (default 4,000; 0 for all); the child samples its RSS
  along the way and reports its peak (`VmHWM` from /proc).

Targets (issue 13): at least 80% of the ideal bound (rows x latency / concurrency) and at most 1.15x the bare
loop against both servers; and a flat peak RSS: within 5% between the two batch sizes (items are claimed in
chunks, never loaded at once), with no steady growth per processed item. Other sessions loading the machine
move the absolute times; the ratio to the bare loop of the same run is the steadier figure.

`--phases` adds a run per server with every database step timed (wall and per-thread CPU), `--profile FILE` a
cProfile per server (FILE-simulator, FILE-llmock; CPU time across all threads), `--servers` picks the servers,
`--memory-items 0` memory runs over whole batches (slow), `--no-memory` none.
Usage: `python -m bench.batch_throughput [--phases] [--profile FILE] [--servers simulator,llmock]`.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import inspect
import io
import json
import math
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import text

from bench.common import print_table
from core.config import DATA_DIR, PROJECT_ROOT, Settings
from core.messages import prompts

ROWS = 6_000
MEMORY_ROWS = (6_000, 50_000)
LATENCY_MS = 100
MEMORY_LATENCY_MS = 5
CONCURRENCY = 32
TEMPLATE = "connection_request_default"  # "Hi {{ first_name }}, {{ recent_achievement }} ...": one writing marker
TARGET_OF_BOUND = 0.80
TARGET_RATIO = 1.15
FLAT_SHARE = 0.05  # the 50,000-row batch's peak RSS within 5% of the 6,000-row batch's
FLAT_DRIFT_B = 1024  # and under 1 KiB of resident memory gained per processed item once warm
CHILD_TIMEOUT_S = 600

FIRST = ("Ava", "Ben", "Chloe", "Dario", "Elif", "Femi", "Greta", "Hugo", "Ines", "Jonas", "Keiko", "Luis",
         "Mara", "Nils", "Olga", "Pavel", "Quinn", "Rhea", "Sami", "Tove")
LAST = ("Abbott", "Brandt", "Castillo", "Dube", "Eriksen", "Fontaine", "Gupta", "Holm", "Ivanova", "Jansen",
        "Kowalski", "Lindqvist", "Moreau", "Nakamura", "Okafor", "Petrov", "Quist", "Rossi", "Sato", "Tanaka")
INDUSTRIES = ("Logistics", "Retail", "Education", "Cybersecurity", "Healthcare", "SaaS", "Fintech")
TITLES = ("Head of Growth", "VP Sales", "Director of Operations", "Head of Partnerships", "COO")
NEWS = ("{c} opened a second office in Lisbon.", "{c} closed a seed round to expand its team.",
        "{c} launched a new analytics product.", "{c} signed a partnership with a regional distributor.")


# ---------------------------------------------------------------------------------------------------------
# Data and settings
# ---------------------------------------------------------------------------------------------------------

def synthetic_csv(rows: int) -> bytes:
    """`rows` distinct prospects that all take the model-writing rung and nothing more."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["first_name", "last_name", "company_name", "job_title", "industry", "company_size",
                     "linkedin_url", "email", "recent_news", "notes", "sender_account"])
    for i in range(rows):
        first, last = FIRST[i % len(FIRST)], LAST[(i // len(FIRST)) % len(LAST)]
        company = f"Northwind {i}"
        writer.writerow([first, last, company, TITLES[i % len(TITLES)], INDUSTRIES[i % len(INDUSTRIES)],
                         10 + (i * 37) % 991,  # 10..1000: never above the high-value threshold
                         f"https://www.linkedin.com/in/bench-{i}", f"bench{i}@example.com",
                         NEWS[i % len(NEWS)].format(c=company), "", "bench"])
    return out.getvalue().encode()


def bench_settings(db: Path, url: str) -> Settings:
    return Settings(database_url=f"sqlite:///{db}", llm_provider="openai", llm_base_url=url,
                    worker_concurrency=CONCURRENCY, data_dir=DATA_DIR)


def cpu_seconds() -> tuple[float, float]:
    """User and system CPU time of this process so far (all its threads)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


def cpu_since(start: tuple[float, float]) -> dict[str, float]:
    user, system = cpu_seconds()
    return {"cpu_user_s": user - start[0], "cpu_sys_s": system - start[1]}


def memory_kb(field: str) -> int:
    """A `VmRSS`/`VmHWM` line of /proc/self/status, in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise LookupError(f"{field} is not in /proc/self/status")


# ---------------------------------------------------------------------------------------------------------
# The simulator in its own process
# ---------------------------------------------------------------------------------------------------------

@contextmanager
def simulator_process(latency_ms: int) -> Iterator[str]:
    """`python -m core simulator` on a free loopback port in a child process; yields its base URL."""
    proc = subprocess.Popen([sys.executable, "-m", "core", "simulator", "--port", "0", "--latency-ms",
                             str(latency_ms)], cwd=PROJECT_ROOT, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        found = re.search(r"(http://\S+/api/v1)", line)
        if not found:
            raise RuntimeError(f"the simulator did not start: {line.strip() or 'no output'}")
        url = found.group(1)
        _warm_up(url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def free_port() -> int:
    """A loopback port nothing listens on now (for a server whose CLI cannot report the port it bound)."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def llmock_process(latency_ms: int) -> Iterator[str]:
    """`llmock serve` (the PyPI package, a FastAPI app on uvicorn) on a free loopback port in a child process,
    with a fixed latency before every answer; yields its OpenAI-compatible base URL once `/health` answers."""
    import httpx2

    port = free_port()
    with tempfile.TemporaryFile(mode="w+") as log:  # a pipe nobody reads could fill up and stall the server
        proc = subprocess.Popen([sys.executable, "-m", "llmock.cli", "serve", "--host", "127.0.0.1", "--port",
                                 str(port), "--latency-ms", str(latency_ms), "--log-level", "warning"],
                                cwd=PROJECT_ROOT, stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 60
            while True:
                try:
                    if httpx2.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except httpx2.TransportError:
                    pass
                if proc.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"llmock did not start: {log.read()[-2000:] or 'no output'}")
                time.sleep(0.2)
            url = f"http://127.0.0.1:{port}/v1"
            _warm_up(url)
            yield url
        finally:
            proc.terminate()
            proc.wait(timeout=10)


SERVERS: dict[str, Callable[[int], Any]] = {"simulator": simulator_process, "llmock": llmock_process}


def round_trip_ms(url: str, requests: int = 10) -> float:
    """Mean time of sequential requests on one keep-alive connection: the latency the bound may assume.
    (A server that adds to it, as Nagle's algorithm once did here with ~40 ms, caps both sides.)"""
    import httpx2

    with httpx2.Client(timeout=30) as client:
        client.post(f"{url}/chat/completions", json=WARM_UP).raise_for_status()
        t0 = time.perf_counter()
        for _ in range(requests):
            client.post(f"{url}/chat/completions", json=WARM_UP).raise_for_status()
    return (time.perf_counter() - t0) / requests * 1000


WARM_UP = {"model": "mistralai/mistral-7b-instruct", "max_tokens": 20, "messages": [{"role": "user", "content": "hi"}]}


def _warm_up(url: str) -> None:
    """One request before any timed run, so the server's tokenizer load is not charged to either side."""
    import httpx2

    httpx2.post(f"{url}/chat/completions", json=WARM_UP, timeout=30).raise_for_status()


# ---------------------------------------------------------------------------------------------------------
# Preparing a batch (parent process)
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    db: Path
    batch_id: int
    rows: int
    requests_file: Path | None


def prepare(folder: Path, rows: int, url: str, *, with_requests: bool, concurrency: int = CONCURRENCY) -> Prepared:
    """A fresh database with `rows` prospects and a queued batch over them; optionally the bare loop's
    request bodies, built exactly as the pipeline builds them."""
    from core.app import open_app
    from core.batches.creation import create_batch
    from core.batches.lifecycle import start_batch
    from core.costs.estimate import estimate
    from core.messages.library import seed_templates
    from core.people.prospects import import_prospects
    from core.store.db import dispose_engine

    folder = Path(tempfile.mkdtemp(prefix=f"rows-{rows}-", dir=folder))
    db = folder / "bench.db"
    settings = bench_settings(db, url)
    app = open_app(settings)
    seed_templates(app)
    report = import_prospects(app, synthetic_csv(rows), source="bench")
    if report.accepted != rows or report.flagged:
        raise RuntimeError(f"import accepted {report.accepted} of {rows} rows, {len(report.flagged)} flagged")
    ids = report.prospect_ids
    est = estimate(app, ids, template_name=TEMPLATE)
    if (est.model_written, est.reviewed, est.summaries, est.needs_data) != (rows, 0, 0, 0):
        raise RuntimeError(f"rows are not all plain model-written ones: {est.as_json()}")
    batch = create_batch(app, ids, concurrency=concurrency, template_name=TEMPLATE, name=f"bench {rows}")
    assert batch.id is not None
    start_batch(app, batch.id)
    requests_file = None
    if with_requests:
        requests_file = folder / f"requests-{rows}.json"
        requests_file.write_text(json.dumps(bare_requests(app, ids)))
    dispose_engine(settings.database_url)
    return Prepared(db, batch.id, rows, requests_file)


def bare_requests(app: Any, ids: Sequence[int]) -> list[dict[str, Any]]:
    """The chat-completion body the pipeline sends for each prospect (same builders as `Pipeline._write`
    and `Gateway.build_request`)."""
    from core.llm.client import ChatRequest
    from core.messages.library import markers, specs
    from core.messages.personalize import SNIPPET_CAP
    from core.messages.templates import render
    from core.people.prospects import get_prospect, prospect_fields
    from core.store.models import utcnow

    spec = next(t for t in specs(app) if t.name == TEMPLATE)
    descriptions = markers(app.settings.data_dir)
    route = app.routing.route("personalize", utcnow().date())
    bodies = []
    for pid in ids:
        prospect = get_prospect(app, pid)
        assert prospect is not None
        fields = prospect_fields(prospect)
        wanted = list(render(spec.text, fields, descriptions).markers)
        fmt = prompts.response_format("snippets", prompts.markers_schema(wanted))
        request = ChatRequest(model=route.model, max_tokens=route.max_tokens, temperature=route.temperature,
                              messages=prompts.personalize_messages(wanted, descriptions, fields,
                                                                    snippet_cap=SNIPPET_CAP),
                              models=route.models if len(route.models) > 1 else None, response_format=fmt,
                              provider={"require_parameters": True})
        bodies.append(request.payload())
    return bodies


def ledger_check(prepared: Prepared, url: str, processed: int) -> dict[str, Any]:
    """Every processed row made exactly one personalize call (no context or review call, none failed) and
    ended ready; the rest of the batch (a run stopped early) is still pending."""
    from core.store.db import dispose_engine, get_engine

    database_url = bench_settings(prepared.db, url).database_url
    b = {"b": prepared.batch_id}
    with get_engine(database_url).connect() as conn:
        by_task = dict(conn.execute(text(
            "SELECT task, COUNT(*) FROM usage_ledger WHERE batch_id = :b GROUP BY task"), b).all())
        not_one = conn.execute(text(
            "SELECT COUNT(*) FROM (SELECT prospect_id FROM usage_ledger WHERE batch_id = :b "
            "GROUP BY prospect_id HAVING COUNT(*) <> 1) AS t"), b).scalar()
        failed_calls = conn.execute(text(
            "SELECT COUNT(*) FROM usage_ledger WHERE batch_id = :b AND status <> 'ok'"), b).scalar()
        states = dict(conn.execute(text(
            "SELECT state, COUNT(*) FROM batch_items WHERE batch_id = :b GROUP BY state"), b).all())
        prompt_tokens = conn.execute(text(
            "SELECT COALESCE(SUM(input_tokens), 0) FROM usage_ledger WHERE batch_id = :b"), b).scalar()
    dispose_engine(database_url)
    problems = []
    if by_task != {"personalize": processed}:
        problems.append(f"ledger calls by task {by_task}, expected {{'personalize': {processed}}}")
    if not_one or failed_calls:
        problems.append(f"{not_one} prospects without exactly one call, {failed_calls} failed calls")
    expected = {"ready": processed, "pending": prepared.rows - processed}
    if {k: v for k, v in states.items() if v} != {k: v for k, v in expected.items() if v}:
        problems.append(f"item states {states}, expected {expected}")
    if problems:
        raise RuntimeError(f"batch of {prepared.rows:,} rows: " + "; ".join(problems))
    return {"prompt_tokens": int(prompt_tokens or 0), "states": states}


# ---------------------------------------------------------------------------------------------------------
# Child processes
# ---------------------------------------------------------------------------------------------------------

def run_child(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "bench.batch_throughput", *args], cwd=PROJECT_ROOT,
                          capture_output=True, text=True, timeout=CHILD_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"child {args[0]} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


@dataclass
class ProcessRun:
    """A process timed from the parent: spawn to exit, its CPU time, and the JSON it printed."""
    seconds: float
    cpu_s: float
    output: dict[str, Any]


def timed_process(args: Sequence[str], env: dict[str, str] | None = None) -> ProcessRun:
    """Run `python ARGS` to its end: wall time from spawn to exit (start-up and imports included) and its CPU
    time, user + system of all its threads, as the kernel accounts it to the parent once it is waited for."""
    import os

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=CHILD_TIMEOUT_S, check=False, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(args[:3])} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return ProcessRun(seconds, cpu, json.loads(done.stdout))


def worker_cli(prepared: Prepared, url: str) -> ProcessRun:
    """`python -m core worker --once` on the prepared database, the "openai" provider pointed at `url`."""
    run = timed_process(["-m", "core", "worker", "--once", "--json"], {
        "DATABASE_URL": bench_settings(prepared.db, url).database_url, "LLM_PROVIDER": "openai",
        "LLM_BASE_URL": url, "LLM_API_KEY": "", "OPENROUTER_API_KEY": "", "WORKER_CONCURRENCY": str(CONCURRENCY)})
    processed = sum(b["processed"] for b in run.output["batches"])
    if processed != prepared.rows:
        raise RuntimeError(f"the worker processed {processed} of {prepared.rows} rows: {run.output}")
    return run


def bare_process(url: str, requests_file: Path) -> ProcessRun:
    return timed_process(["-m", "bench.bare_openai", url, str(requests_file), str(CONCURRENCY)])


# What `--phases` times, in the child process only: (module[:class], attribute) -> label. Synchronous steps
# get wall and per-thread CPU time (so a wait for SQLite's write lock or the GIL shows as wall, not CPU); the
# async ones get wall time only. "(loop)" steps run on the event-loop thread and count only when called there
# (the budget cap is also read inside "options", which already includes it).
PHASES: dict[tuple[str, str], str] = {
    ("core.batches.runs", "get_batch"): "feeder: batch status",
    ("core.batches.kinds.personalize:PersonalizeKind", "prepare"): "feeder: read a claimed chunk",
    ("core.batches.claims", "renew_lease_on"): "renew lease (write)",
    ("core.batches.runs", "session_scope"): "(loop) read item + prospect",
    ("core.batches.kinds.personalize", "halt_reason"): "reply / do-not-contact check",
    ("core.batches.kinds.personalize", "options_for"): "options (budget state)",
    ("core.costs.gateway:Gateway", "_stored"): "replay lookup",
    ("core.app:App", "budget_cap"): "(loop) budget cap read",
    ("core.costs.gateway", "count_messages"): "(loop) count prompt tokens",
    ("core.messages.personalize", "count_messages"): "(loop) count prompt tokens",
    ("core.store.commits:GroupCommitter", "_commit"): "group commit: claims, reserves, ledger + settles, finishes",
    ("core.llm.client:LLMClient", "chat"): "HTTP call incl. latency (async)",
    ("core.batches.kinds.personalize:PersonalizeKind", "process"): "whole item (async)",
}


class PhaseTimer:
    """Wall time, CPU time and calls per wrapped function (worker threads included), for `--phases`."""

    def __init__(self) -> None:
        self.totals: dict[str, list[float]] = {}
        self._lock = threading.Lock()

    def _add(self, label: str, wall: float, cpu: float) -> None:
        with self._lock:
            entry = self.totals.setdefault(label, [0.0, 0.0, 0])
            entry[0] += wall
            entry[1] += cpu
            entry[2] += 1

    def wrap(self, label: str, func: Callable[..., Any]) -> Callable[..., Any]:
        loop_only = label.startswith("(loop)")

        if inspect.iscoroutinefunction(func):
            async def timed_async(*args: Any, **kwargs: Any) -> Any:
                t0 = time.perf_counter()
                try:
                    return await func(*args, **kwargs)
                finally:
                    self._add(label, time.perf_counter() - t0, float("nan"))
            return timed_async

        if func is session_scope_of_batches():
            @contextmanager
            def timed_scope(*args: Any, **kwargs: Any) -> Iterator[Any]:
                on_loop = threading.current_thread() is threading.main_thread()
                t0, c0 = time.perf_counter(), time.thread_time()
                try:
                    with func(*args, **kwargs) as session:
                        yield session
                finally:
                    if on_loop:
                        self._add(label, time.perf_counter() - t0, time.thread_time() - c0)
            return timed_scope

        def timed(*args: Any, **kwargs: Any) -> Any:
            if loop_only and threading.current_thread() is not threading.main_thread():
                return func(*args, **kwargs)
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                return func(*args, **kwargs)
            finally:
                self._add(label, time.perf_counter() - t0, time.thread_time() - c0)
        return timed

    def install(self) -> None:
        """Wrap every step in PHASES; a step the engine no longer has is left out of the table (and named on
        stderr), so the benchmark keeps working while core/ changes."""
        import importlib

        for (where, name), label in PHASES.items():
            module, _, cls = where.partition(":")
            target: Any = importlib.import_module(module)
            if cls:
                target = getattr(target, cls)
            if not hasattr(target, name):
                print(f"--phases: {where}.{name} no longer exists; not timed", file=sys.stderr)
                continue
            setattr(target, name, self.wrap(label, getattr(target, name)))

    def report(self) -> dict[str, dict[str, float]]:
        return {k: {"wall_s": v[0], "cpu_s": v[1], "calls": v[2]} for k, v in self.totals.items()}


def session_scope_of_batches() -> Any:
    from core.store.db import session_scope

    return session_scope


class ThreadProfiles:
    """cProfile for the event loop thread, every `asyncio.to_thread` worker and the group-commit thread
    (cProfile alone sees only the thread that enabled it), merged into one stats file. Timed in per-thread CPU
    time, so waiting for a lock, the GIL or the network counts for nothing: what remains is the work."""

    def __init__(self) -> None:
        import cProfile

        self._make = cProfile.Profile
        self.profiles: list[Any] = []
        self._lock = threading.Lock()

    def start_here(self) -> None:
        profile = self._make(time.thread_time)
        with self._lock:
            self.profiles.append(profile)
        profile.enable()

    def executor(self) -> ThreadPoolExecutor:
        return ThreadPoolExecutor(thread_name_prefix="profiled", initializer=self.start_here)

    def dump(self, path: str) -> None:
        import pstats

        stats = pstats.Stats(*self.profiles)
        stats.dump_stats(path)


SAMPLE_EVERY = 250  # items between RSS samples in a worker child


def child_work(db: str, url: str, batch_id: int, *, profile: str = "", phases: bool = False,
               stop_after: int = 0) -> dict[str, Any]:
    """Run one queued batch in this process (to the end, or until `stop_after` items are done): wall time,
    CPU time, resident memory sampled along the way and its peak."""
    from core.app import open_app
    from core.batches.claims import new_worker_id
    from core.batches.runs import work_batch
    from core.llm.tokens import warm_up

    app = open_app(bench_settings(Path(db), url))
    warm_up()  # the tokenizer, loaded once per process as `core.batches.worker` does when it starts
    timer = PhaseTimer()
    if phases:
        timer.install()
    profiles = ThreadProfiles() if profile else None
    if profiles is not None:
        from core.store.commits import GroupCommitter

        run_commits = GroupCommitter._run

        def profiled_run(self: GroupCommitter) -> None:
            profiles.start_here()
            run_commits(self)

        GroupCommitter._run = profiled_run  # type: ignore[method-assign]
    stop = threading.Event()
    samples: list[tuple[int, int]] = []

    def progress(done: int) -> None:
        if done % SAMPLE_EVERY == 0:
            samples.append((done, memory_kb("VmRSS")))
        if stop_after and done >= stop_after:
            stop.set()

    async def run() -> Any:
        if profiles is not None:
            asyncio.get_running_loop().set_default_executor(profiles.executor())
            profiles.start_here()
        return await work_batch(app, batch_id, new_worker_id(), stop=stop, progress=progress)

    start_kb = memory_kb("VmRSS")
    t0, cpu0 = time.perf_counter(), cpu_seconds()
    report = asyncio.run(run())
    seconds, cpu = time.perf_counter() - t0, cpu_since(cpu0)
    if profiles is not None:
        profiles.dump(profile)
    return {"seconds": seconds, **cpu, "processed": report.processed, "outcome": report.outcome,
            "start_kb": start_kb, "peak_kb": memory_kb("VmHWM"), "samples": samples, "phases": timer.report()}


async def client_loop(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    """The same loop with the engine's own `LLMClient` and no ledger, budget or database: what the HTTP
    client alone costs, to tell it apart from the work around it."""
    from core.costs.prices import current_book
    from core.llm.client import ChatRequest, LLMClient

    semaphore = asyncio.Semaphore(concurrency)
    async with LLMClient(url, price_book=current_book(DATA_DIR), provider_name="openai") as client:

        async def one(body: dict[str, Any]) -> int:
            request = ChatRequest(model=body["model"], messages=body["messages"], max_tokens=body["max_tokens"],
                                  temperature=body["temperature"], models=body.get("models"),
                                  response_format=body.get("response_format"), provider=body.get("provider"))
            async with semaphore:
                answer = await client.chat(request)
            return answer.prompt_tokens

        t0, cpu0 = time.perf_counter(), cpu_seconds()
        tokens = await asyncio.gather(*(one(b) for b in bodies))
        seconds, cpu = time.perf_counter() - t0, cpu_since(cpu0)
    return {"seconds": seconds, **cpu, "calls": len(tokens), "prompt_tokens": sum(tokens)}


# ---------------------------------------------------------------------------------------------------------
# The benchmark
# ---------------------------------------------------------------------------------------------------------

def _mb(kb: float) -> str:
    return f"{kb / 1024:.0f} MB"


def _cpu_ms_per_row(run: dict[str, Any], rows: int) -> float:
    return (run["cpu_user_s"] + run["cpu_sys_s"]) / rows * 1000


def rss_drift(samples: Sequence[Sequence[int]]) -> float:
    """Bytes of resident memory gained per processed item, fitted over the second half of the samples (the
    first half holds the warm-up: tokenizer, connection pool, compiled statements)."""
    import statistics

    tail = samples[len(samples) // 2:]
    if len(tail) < 3:
        return float("nan")
    slope, _ = statistics.linear_regression([float(d) for d, _ in tail], [float(kb) * 1024 for _, kb in tail])
    return slope


@dataclass
class BenchOptions:
    phases: bool = False
    profile: str = ""
    memory_items: int = 4_000
    memory: bool = True
    servers: tuple[str, ...] = tuple(SERVERS)


@dataclass
class ServerFigures:
    """One server's runs: ours and the bare loop timed as whole processes, the LLMClient loop in-process."""
    server: str
    rtt_ms: float
    ours: ProcessRun
    bare: ProcessRun
    client: dict[str, Any]
    phases: dict[str, Any] | None

    @property
    def of_bound(self) -> float:
        return ROWS * LATENCY_MS / 1000 / CONCURRENCY / self.ours.seconds

    @property
    def ratio(self) -> float:
        return self.ours.seconds / self.bare.seconds

    @property
    def met(self) -> bool:
        return self.of_bound >= TARGET_OF_BOUND and self.ratio <= TARGET_RATIO


def main(opts: BenchOptions | None = None) -> dict[str, float]:
    opts = opts or BenchOptions()
    folder = Path(tempfile.mkdtemp(prefix="sam-bench-throughput-"))
    try:
        return _measure(opts, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)  # the 50,000-row database alone is ~50 MB


def _profile_path(profile: str, server: str) -> str:
    if not profile:
        return ""
    path = Path(profile)
    return str(path.with_name(f"{path.stem}-{server}{path.suffix}"))


def measure_server(server: str, opts: BenchOptions, folder: Path) -> ServerFigures:
    with SERVERS[server](LATENCY_MS) as url:
        rtt = round_trip_ms(url)
        prepared = prepare(folder, ROWS, url, with_requests=True)
        assert prepared.requests_file is not None
        ours = worker_cli(prepared, url)
        sent = ledger_check(prepared, url, ROWS)["prompt_tokens"]
        bare = bare_process(url, prepared.requests_file)
        client = run_child("client", url, str(prepared.requests_file))
        for name, tokens in (("bare", bare.output["prompt_tokens"]), ("client", client["prompt_tokens"])):
            if tokens != sent:
                raise RuntimeError(f"against {server}, the {name} loop sent {tokens} prompt tokens, the pipeline "
                                   f"{sent}: not the same calls")
        phases = None
        if opts.phases:
            again = prepare(folder, ROWS, url, with_requests=False)
            phases = run_child("work", str(again.db), url, str(again.batch_id), "--phases")
            ledger_check(again, url, ROWS)
        if opts.profile:
            again = prepare(folder, ROWS, url, with_requests=False)
            run_child("work", str(again.db), url, str(again.batch_id), "--profile",
                      _profile_path(opts.profile, server))
            ledger_check(again, url, ROWS)
    return ServerFigures(server, rtt, ours, bare, client, phases)


def _measure(opts: BenchOptions, folder: Path) -> dict[str, float]:
    bound = ROWS * LATENCY_MS / 1000 / CONCURRENCY
    figures = [measure_server(server, opts, folder) for server in opts.servers]
    peaks: dict[int, dict[str, Any]] = {}
    if opts.memory:
        with simulator_process(MEMORY_LATENCY_MS) as url:
            for rows in MEMORY_ROWS:
                mem = prepare(folder, rows, url, with_requests=False)
                peaks[rows] = run_child("work", str(mem.db), url, str(mem.batch_id), "--stop-after",
                                        str(opts.memory_items))
                ledger_check(mem, url, peaks[rows]["processed"])

    small, large = (peaks[n]["peak_kb"] if n in peaks else math.nan for n in MEMORY_ROWS)
    growth = (large - small) * 1024 / (MEMORY_ROWS[1] - MEMORY_ROWS[0])
    drift = rss_drift(peaks[MEMORY_ROWS[1]]["samples"]) if peaks else math.nan

    table = [(f.server, f"{ROWS:,}", f"{f.ours.seconds:.1f} s", f"{bound:.2f} s", f"{f.of_bound:.0%}",
              f"{f.bare.seconds:.1f} s", f"{f.ratio:.2f}x", f"{f.rtt_ms:.1f} ms") for f in figures]
    print_table(f"Batch throughput: {ROWS:,} model-written rows, loopback servers at {LATENCY_MS} ms, concurrency "
                f"{CONCURRENCY}; `python -m core worker --once` and the bare loop timed from spawn to exit", table,
                ("server", "rows", "worker time", "ideal bound", "% of bound", "bare-loop time", "ratio",
                 "round trip"))
    flat = abs(large - small) <= FLAT_SHARE * small and not drift > FLAT_DRIFT_B
    memory = ("not measured (--no-memory)" if not peaks else f"{'met' if flat else 'MISSED'} ({growth:+,.0f} B of "
              f"peak per extra batch row, {drift:+,.0f} B of RSS per processed item)")
    for f in figures:
        print(f"\nTargets against {f.server}: >= {TARGET_OF_BOUND:.0%} of bound: "
              f"{'met' if f.of_bound >= TARGET_OF_BOUND else 'MISSED'}; <= {TARGET_RATIO:.2f}x the bare loop: "
              f"{'met' if f.ratio <= TARGET_RATIO else 'MISSED'}.", end="")
        if f.rtt_ms > LATENCY_MS * 1.1:
            print(f" (its round trip, {f.rtt_ms:.1f} ms sequential on one connection, adds more than 10%: "
                  "neither side can reach the bound)", end="")
    print(f"\nMemory flat: {memory}.")

    detail = []
    for f in figures:
        detail += [
            (f.server, "python -m core worker --once", f"{f.ours.seconds:.1f} s",
             f"{f.ours.cpu_s / ROWS * 1000:.2f} ms", "start-up, lease, budget reservation, ledger, message, state"),
            (f.server, "bare openai SDK loop", f"{f.bare.seconds:.1f} s", f"{f.bare.cpu_s / ROWS * 1000:.2f} ms",
             "start-up, AsyncOpenAI + Semaphore, nothing stored"),
            (f.server, "core LLMClient loop (in-process)", f"{f.client['seconds']:.1f} s",
             f"{_cpu_ms_per_row(f.client, ROWS):.2f} ms", "the engine's HTTP client alone, nothing stored"),
        ]
    print_table(f"Client CPU per row (user + system, all threads; the bound leaves "
                f"{LATENCY_MS / CONCURRENCY:.1f} ms of wall time per row)", detail,
                ("server", "run", "wall time", "CPU per row", "what it does"))
    for rows, run in peaks.items():
        print(f"Memory, {rows:,}-row batch at {MEMORY_LATENCY_MS} ms: {run['processed']:,} items in "
              f"{run['seconds']:.1f} s, RSS {_mb(run['start_kb'])} at start, peak {_mb(run['peak_kb'])}; samples "
              + ", ".join(f"{d:,}: {_mb(kb)}" for d, kb in run["samples"][:: max(1, len(run["samples"]) // 6)]))
    for f in figures:
        if f.phases is not None:
            print_phases(f.phases, f.server)
    out: dict[str, float] = {"peak_small_kb": small, "peak_large_kb": large, "growth_bytes_per_row": growth,
                             "drift_bytes_per_item": drift}
    for f in figures:
        out |= {f"{f.server}_seconds": f.ours.seconds, f"{f.server}_of_bound": f.of_bound,
                f"{f.server}_ratio": f.ratio, f"{f.server}_cpu_ms_per_row": f.ours.cpu_s / ROWS * 1000,
                f"{f.server}_bare_cpu_ms_per_row": f.bare.cpu_s / ROWS * 1000}
    return out


def print_phases(run: dict[str, Any], server: str) -> None:
    phases = run["phases"]
    total_cpu = _cpu_ms_per_row(run, ROWS)
    sync = {k: v for k, v in phases.items() if not math.isnan(v["cpu_s"])}
    timed_async = {k: v for k, v in phases.items() if math.isnan(v["cpu_s"])}
    sync_cpu = sum(v["cpu_s"] for v in sync.values()) / ROWS * 1000
    rows = [(label, f"{v['calls']:,}", f"{v['wall_s'] / v['calls'] * 1000:.2f} ms",
             f"{v['cpu_s'] / v['calls'] * 1000:.2f} ms", f"{v['cpu_s'] / ROWS * 1000:.2f} ms")
            for label, v in sorted(sync.items(), key=lambda kv: -kv[1]["cpu_s"])]
    rows.append(("everything else (HTTP client, pipeline, asyncio, thread hand-offs)", "", "", "",
                 f"{total_cpu - sync_cpu:.2f} ms"))
    rows.append(("total process CPU", "", "", "", f"{total_cpu:.2f} ms"))
    rows += [(label, f"{v['calls']:,}", f"{v['wall_s'] / v['calls'] * 1000:.2f} ms", "", "")
             for label, v in timed_async.items()]
    print_table(f"Where the time goes against {server}: a second {ROWS:,}-row run, {run['seconds']:.1f} s wall, "
                "every step wrapped (wall includes waiting for SQLite's write lock and the GIL; CPU is the "
                "thread's own)", rows,
                ("step", "calls", "wall per call", "CPU per call", "CPU per row"))


def cli(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.batch_throughput", description=__doc__.split("\n")[0])
    parser.add_argument("--phases", action="store_true", help="time every database step in an extra run")
    parser.add_argument("--profile", default="", help="write a cProfile (CPU time, all threads) of the main run")
    parser.add_argument("--memory-items", type=int, default=4_000,
                        help="items processed in each memory run (0: the whole batch; 50,000 rows take long)")
    parser.add_argument("--no-memory", action="store_true", help="skip the memory runs")
    parser.add_argument("--servers", default=",".join(SERVERS),
                        help=f"comma-separated servers to measure against (default: {','.join(SERVERS)})")
    sub = parser.add_subparsers(dest="role")
    work = sub.add_parser("work", help="(child) run one queued batch")
    work.add_argument("db")
    work.add_argument("url")
    work.add_argument("batch_id", type=int)
    work.add_argument("--profile", dest="child_profile", default="")
    work.add_argument("--phases", dest="child_phases", action="store_true")
    work.add_argument("--stop-after", type=int, default=0)
    loop = sub.add_parser("client", help="(child) the LLMClient loop")
    loop.add_argument("url")
    loop.add_argument("requests_file")
    args = parser.parse_args(argv)
    if args.role == "work":
        print(json.dumps(child_work(args.db, args.url, args.batch_id, profile=args.child_profile,
                                    phases=args.child_phases, stop_after=args.stop_after)))
    elif args.role == "client":
        bodies = json.loads(Path(args.requests_file).read_text())
        print(json.dumps(asyncio.run(client_loop(args.url, bodies, CONCURRENCY))))
    else:
        servers = tuple(name.strip() for name in args.servers.split(",") if name.strip())
        unknown = [name for name in servers if name not in SERVERS]
        if unknown or not servers:
            parser.error(f"--servers takes {', '.join(SERVERS)}; got {args.servers!r}")
        main(BenchOptions(phases=args.phases, profile=args.profile, memory_items=args.memory_items,
                          memory=not args.no_memory, servers=servers))


if __name__ == "__main__":
    cli()
