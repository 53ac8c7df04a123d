"""Spend figures on a 1,000,000-row ledger: `core.costs.spend.summary` (target: <= 0.5 s here) against pandas.

The ledger is filled with a realistic spread: 60 days of calls in time order, the five routed tasks on their
routed models (fallbacks now and then), failed attempts at zero cost, most rows inside batches. Baseline, in the
same process: load the ledger into pandas with `pd.read_sql` and aggregate there (month total, by model, by
task, the 30-day daily series). Both must give the same figures, the month total to the nano-dollar.

The database is an ordinary app database, so it carries the engine's own schema (migration 003's covering and
day indexes) and nothing else. The script also times each of the engine's spend functions and prints SQLite's
plan for the two statements they run, captured as the engine executes them, and fails if either plan stops
using its index.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import event, text

from bench.common import print_table, temp_app
from core.app import App
from core.costs import spend
from core.store.db import dispose_engine
from core.store.models import from_nanos, month_of

N = 1_000_000
CHUNK = 50_000
DAYS = 60
TARGET_S = 0.5
SEED = 20250
# Mid-month, so the current month holds about half of the 60 days and the month before the rest.
NOW = datetime(2025, 6, 17, 15, 30, tzinfo=UTC)

# Share of calls, and (input, output) token ranges, per task: personalization dominates, review is premium.
TASKS: dict[str, tuple[float, tuple[int, int], tuple[int, int]]] = {
    "personalize": (0.55, (250, 700), (30, 120)),
    "context": (0.15, (300, 1500), (20, 60)),
    "review": (0.12, (400, 900), (60, 250)),
    "classify_reply": (0.13, (150, 500), (20, 80)),
    "optimize_template": (0.05, (400, 1200), (150, 300)),
}
FALLBACK_SHARE = 0.08
FAILED = (("http_429", 0.015), ("http_503", 0.008), ("deadline", 0.002))
IN_BATCH_SHARE = 0.7

COLUMNS = ("created_at", "month", "task", "model_requested", "model_answered", "input_tokens", "output_tokens",
           "cost_usd", "cost_source", "status", "error", "latency_ms", "attempt", "batch_id", "prospect_id",
           "request_id", "provider")
INSERT = f"INSERT INTO usage_ledger ({', '.join(COLUMNS)}) VALUES ({', '.join('?' for _ in COLUMNS)})"
# The indexes migration 003_ledger_indexes creates, which the two spend queries must read.
MONTH_INDEX = "ix_usage_month_task_model"
DAY_INDEX = "ix_usage_day_cost"

def _prices(app: App) -> dict[str, tuple[float, float]]:
    """Nano-dollars per input and output token, per routed model (the price book's USD per million tokens)."""
    book = app.price_book()
    out: dict[str, tuple[float, float]] = {}
    for model in app.routing.models():
        price = book.price(model)
        out[model] = (float(price.input_per_mtok) * 1000, float(price.output_per_mtok) * 1000)
    return out


def _rows(app: App) -> Iterator[list[tuple[Any, ...]]]:
    """The ledger in chunks of CHUNK rows, oldest first (the order a real ledger is appended in).

    Drawn with numpy, column by column, so a million rows take seconds rather than a minute of per-row
    Python; the costs are exact integers of nano-dollars from the price book's rates.
    """
    rng = np.random.default_rng(SEED)
    prices = _prices(app)
    tasks = list(TASKS)
    share = np.array([TASKS[t][0] for t in tasks])
    task_ix = rng.choice(len(tasks), size=N, p=share / share.sum())
    offsets_us = np.sort(rng.integers(0, DAYS * 86_400 * 1_000_000, size=N))
    start = np.datetime64((NOW - timedelta(days=DAYS)).replace(tzinfo=None), "us")
    moments = start + offsets_us.astype("timedelta64[us]")
    created = np.char.replace(np.datetime_as_string(moments, unit="us"), "T", " ")
    months = np.datetime_as_string(moments, unit="M")

    fallback = rng.random(N) < FALLBACK_SHARE
    requested = np.empty(N, dtype=object)
    answered = np.empty(N, dtype=object)
    tokens_in = np.zeros(N, dtype=np.int64)
    tokens_out = np.zeros(N, dtype=np.int64)
    cost = np.zeros(N, dtype=np.int64)
    for i, task in enumerate(tasks):
        mask = task_ix == i
        models = app.routing.route(task, NOW.date()).models
        _, (in_lo, in_hi), (out_lo, out_hi) = TASKS[task]
        requested[mask] = models[0]
        picked = np.where(fallback[mask] & (len(models) > 1), models[-1], models[0])
        answered[mask] = picked
        tokens_in[mask] = rng.integers(in_lo, in_hi + 1, size=int(mask.sum()))
        tokens_out[mask] = rng.integers(out_lo, out_hi + 1, size=int(mask.sum()))
        in_rate = np.array([prices[m][0] for m in picked])
        out_rate = np.array([prices[m][1] for m in picked])
        cost[mask] = np.rint(tokens_in[mask] * in_rate + tokens_out[mask] * out_rate).astype(np.int64)

    status = np.full(N, "ok", dtype=object)
    draw = rng.random(N)
    edge = 0.0
    for name, part in FAILED:
        status[(draw >= edge) & (draw < edge + part)] = name
        edge += part
    failed = status != "ok"
    tokens_in[failed] = tokens_out[failed] = cost[failed] = 0
    answered[failed] = ""
    source = np.where(failed, "none", "provider")
    error = np.where(failed, np.char.add("simulated ", status.astype(str)), "")

    day = offsets_us // (86_400 * 1_000_000)
    batch = np.where(rng.random(N) < IN_BATCH_SHARE, day * 3 + rng.integers(1, 4, size=N), -1)
    latency = rng.integers(300, 4001, size=N)
    prospect = rng.integers(1, 50_001, size=N)

    columns = (created, months, task_ix, requested, answered, tokens_in, tokens_out, cost, source, status, error,
               latency, batch, prospect)
    for lo in range(0, N, CHUNK):
        hi = min(N, lo + CHUNK)
        yield [
            (c, m, tasks[t], rq, an, ti, to, co, so, st, er, la, 1, None if b < 0 else b, pr, f"gen-{lo + k}",
             "openrouter")
            for k, (c, m, t, rq, an, ti, to, co, so, st, er, la, b, pr) in enumerate(
                zip(*(col[lo:hi].tolist() for col in columns), strict=True))
        ]


def fill_ledger(app: App) -> float:
    """Insert N ledger rows with executemany, one transaction per chunk; returns the seconds it took."""
    t0 = time.perf_counter()
    for chunk in _rows(app):
        with app.engine.begin() as conn:
            conn.exec_driver_sql(INSERT, chunk)
    elapsed = time.perf_counter() - t0
    # A long-running database has its WAL checkpointed; time the reads against that state, not a fresh bulk load.
    with app.engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    return elapsed


def _timed(fn: Callable[[], Any], repeat: int = 5) -> tuple[float, float, Any]:
    """(first run, best of `repeat`, last result) in seconds; the best is the figure least disturbed by
    whatever else the machine is running."""
    times: list[float] = []
    result: Any = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
    return times[0], min(times), result


def pandas_figures(app: App) -> dict[str, Any]:
    """The baseline: the whole ledger into a DataFrame, then the same figures aggregated in pandas."""
    df = pd.read_sql(
        text("SELECT created_at, month, task, model_answered, input_tokens, output_tokens, cost_usd "
             "FROM usage_ledger"),
        app.engine,
    )
    month = df[df["month"] == month_of(NOW)]
    today = NOW.date()
    first = date.fromisoformat(str(df["created_at"].min())[:10])
    start = max(first, today - timedelta(days=29))
    days = df["created_at"].astype(str).str.slice(0, 10)
    window = df[(days >= start.isoformat()) & (days <= today.isoformat())]
    daily = window.groupby(days[window.index])["cost_usd"].sum()
    return {
        "spent": int(month["cost_usd"].sum()),
        "calls": len(month),
        "input_tokens": int(month["input_tokens"].sum()),
        "output_tokens": int(month["output_tokens"].sum()),
        "by_model": {str(k) or "(none)": int(v) for k, v in month.groupby("model_answered")["cost_usd"].sum().items()},
        "by_task": {str(k): int(v) for k, v in month.groupby("task")["cost_usd"].sum().items()},
        "daily": {date.fromisoformat(str(k)): int(v) for k, v in daily.items()},
        "daily_start": start,
    }


def check_same(app: App, ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    """Every figure equal, money to the nano-dollar."""
    assert Decimal(ours["spent_usd"]) == from_nanos(theirs["spent"]), (ours["spent_usd"], theirs["spent"])
    assert (ours["calls"], ours["input_tokens"], ours["output_tokens"]) == (
        theirs["calls"], theirs["input_tokens"], theirs["output_tokens"])
    assert {k: Decimal(v) for k, v in ours["by_model"].items()} == {
        k: from_nanos(v) for k, v in theirs["by_model"].items()}
    assert {k: Decimal(v) for k, v in ours["by_task"].items()} == {
        k: from_nanos(v) for k, v in theirs["by_task"].items()}
    series = spend.daily_spend(app, theirs["daily_start"], NOW.date())
    assert {d: v for d, v in series if v} == {d: from_nanos(v) for d, v in theirs["daily"].items() if v}
    assert len(series) == (NOW.date() - theirs["daily_start"]).days + 1


def query_times(app: App) -> list[tuple[str, float]]:
    """Best-of-5 seconds of each of the engine's spend functions, on the benchmark's month and window."""
    month = month_of(NOW)
    today = NOW.date()
    start = max(spend.first_day(app) or today, today - timedelta(days=29))
    spent = spend.month_totals(app, month).spent_usd
    steps: list[tuple[str, Callable[[], Any]]] = [
        ("month_totals (one GROUP BY task, model)", lambda: spend.month_totals(app, month)),
        ("by_model (same query, folded)", lambda: spend.by_model(app, month)),
        ("by_task (same query, folded)", lambda: spend.by_task(app, month)),
        ("daily_spend, 30 days (GROUP BY date)", lambda: spend.daily_spend(app, start, today)),
        ("projection (first_day + daily_spend + fit)", lambda: spend.projection(app, today, spent)),
    ]
    return [(name, _timed(fn)[1]) for name, fn in steps]


def _statements(app: App, fn: Callable[[], Any]) -> list[tuple[str, Any]]:
    """The SQL text and driver parameters the engine sends while `fn` runs: the plans below are of the
    statements core/costs/spend.py really executes, not of a copy that could drift from them."""
    seen: list[tuple[str, Any]] = []

    def record(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):  # not the BEGIN the app's connections issue
            seen.append((statement, parameters))

    event.listen(app.engine, "before_cursor_execute", record)
    try:
        fn()
    finally:
        event.remove(app.engine, "before_cursor_execute", record)
    return seen


def plans(app: App) -> list[tuple[str, str, str]]:
    """SQLite's plan for the month query and the daily query; asserts each reads its migration-003 index."""
    today = NOW.date()
    month_sql = _statements(app, lambda: spend.month_totals(app, month_of(NOW)))
    daily_sql = _statements(app, lambda: spend.daily_spend(app, today - timedelta(days=29), today))
    assert len(month_sql) == 1 and len(daily_sql) == 1, (month_sql, daily_sql)
    out: list[tuple[str, str, str]] = []
    with app.engine.connect() as conn:
        for name, (sql, params), index in (("month figures", month_sql[0], MONTH_INDEX),
                                           ("daily series", daily_sql[0], DAY_INDEX)):
            plan = "; ".join(str(r[-1]) for r in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {sql}", params))
            out.append((name, index, plan))
    print_table("SQLite plans of the engine's two spend queries", out, ("query", "expected index", "plan"))
    for name, index, plan in out:
        assert index in plan, f"{name}: the plan no longer uses {index} (migration 003): {plan}"
    assert f"COVERING INDEX {MONTH_INDEX}" in out[0][2], f"month figures: {MONTH_INDEX} is not covering: {out[0][2]}"
    return out


def main() -> dict[str, float]:
    app = temp_app(load_demo=False)
    try:
        return run(app)
    finally:  # a million rows and the ledger's indexes take a few hundred MB of temporary disk
        url = app.settings.database_url
        dispose_engine(url)
        shutil.rmtree(Path(url.split("///", 1)[1]).parent, ignore_errors=True)


def run(app: App) -> dict[str, float]:
    fill = fill_ledger(app)
    with app.engine.connect() as conn:
        count = conn.execute(text("SELECT COUNT(*) FROM usage_ledger")).scalar_one()
    assert count == N, count

    first, ours, summary = _timed(lambda: spend.summary(app, NOW))
    result = summary.as_json()
    base_first, base, theirs = _timed(lambda: pandas_figures(app), repeat=2)
    check_same(app, result, theirs)

    verdict = "meets target" if ours <= TARGET_S else f"MISSES target ({TARGET_S} s)"
    print_table(
        f"Spend summary on {N:,} ledger rows, month {result['month']} ({result['calls']:,} calls, "
        f"${result['spent_usd']}), same figures in both; filled in {fill:.1f} s",
        [("ours: core.costs.spend.summary (SQL aggregation)", f"{ours:.3f} s", f"{first:.3f} s", verdict),
         ("baseline: pd.read_sql + pandas groupby", f"{base:.3f} s", f"{base_first:.3f} s", ""),
         ("ratio ours / baseline", f"{ours / base:.3f}x", "", "")],
        ("run", "best of 5 (2 for pandas)", "first run", "note"),
    )
    print_table("core.costs.spend functions, per call (best of 5)",
                [(n, f"{s * 1000:.1f} ms") for n, s in query_times(app)], ("function", "time"))
    plans(app)
    return {"summary_s": ours, "pandas_s": base, "ratio": ours / base}


if __name__ == "__main__":
    main()
