"""Spend figures, all computed from the usage ledger with aggregation in SQL.

The Spend page, the home page and `python -m core spend` read these functions; nothing loads the ledger
into memory to add it up, so the figures stay fast at millions of rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import text

from core.app import App
from core.costs import budget
from core.costs.forecast import Projection, project
from core.costs.settlement import Booking
from core.store.models import from_nanos, money_str, month_of, utcnow


@dataclass(frozen=True)
class Breakdown:
    key: str
    calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


def _group(app: App, column: str, month: str) -> list[Breakdown]:
    assert column in {"model_answered", "task", "batch_id", "model_requested", "status"}
    sql = (
        f"SELECT COALESCE(CAST({column} AS VARCHAR(200)), ''), COUNT(*), COALESCE(SUM(input_tokens), 0), "
        f"COALESCE(SUM(output_tokens), 0), COALESCE(SUM(cost_usd), 0) FROM usage_ledger WHERE month = :m "
        f"GROUP BY {column} ORDER BY SUM(cost_usd) DESC"
    )
    with app.engine.connect() as conn:
        rows = conn.execute(text(sql), {"m": month}).all()
    return [Breakdown(str(r[0] or ""), int(r[1]), int(r[2]), int(r[3]), from_nanos(r[4])) for r in rows]


def _task_model_groups(app: App, month: str) -> list[tuple[str, str, int, int, int, int]]:
    """One pass over the month's covering index: (task, model, calls, in, out, nano-dollars)."""
    sql = ("SELECT task, model_answered, COUNT(*), COALESCE(SUM(input_tokens), 0), COALESCE(SUM(output_tokens), 0), "
           "COALESCE(SUM(cost_usd), 0) FROM usage_ledger WHERE month = :m GROUP BY task, model_answered")
    with app.engine.connect() as conn:
        return [(str(r[0]), str(r[1] or ""), int(r[2]), int(r[3]), int(r[4]), int(r[5]))
                for r in conn.execute(text(sql), {"m": month}).all()]


def _fold(groups: list[tuple[str, str, int, int, int, int]], key: int) -> list[Breakdown]:
    acc: dict[str, list[int]] = {}
    for g in groups:
        row = acc.setdefault(g[key], [0, 0, 0, 0])
        for i in range(4):
            row[i] += g[2 + i]
    out = [Breakdown(k, v[0], v[1], v[2], from_nanos(v[3])) for k, v in acc.items()]
    return sorted(out, key=lambda b: b.cost_usd, reverse=True)


def by_model(app: App, month: str) -> list[Breakdown]:
    return _fold(_task_model_groups(app, month), 1)


def by_task(app: App, month: str) -> list[Breakdown]:
    return _fold(_task_model_groups(app, month), 0)


def by_batch(app: App, month: str) -> list[Breakdown]:
    return _group(app, "batch_id", month)


@dataclass(frozen=True)
class MonthTotals:
    spent_usd: Decimal
    calls: int
    input_tokens: int
    output_tokens: int


def _totals(groups: list[tuple[str, str, int, int, int, int]]) -> MonthTotals:
    return MonthTotals(from_nanos(sum(g[5] for g in groups)), sum(g[2] for g in groups), sum(g[3] for g in groups),
                       sum(g[4] for g in groups))


def month_totals(app: App, month: str) -> MonthTotals:
    """Spent, calls, input and output tokens for the month."""
    return _totals(_task_model_groups(app, month))


def _day_range(start: date, end: date) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=1)


def daily_spend(app: App, start: date, end: date) -> list[tuple[date, Decimal]]:
    """Spend per UTC day from start to end inclusive, zero-filled."""
    lo = datetime.combine(start, datetime.min.time())
    hi = datetime.combine(end + timedelta(days=1), datetime.min.time())
    # Filter and group on the same expression the day index is built on (migration 003).
    day_expr = "CAST(created_at AS DATE)" if app.engine.dialect.name != "sqlite" else "date(created_at)"
    with app.engine.connect() as conn:
        rows = conn.execute(
            text(f"SELECT {day_expr} AS d, SUM(cost_usd) FROM usage_ledger "
                 f"WHERE {day_expr} >= :lo AND {day_expr} < :hi GROUP BY {day_expr}"),
            {"lo": lo.date() if day_expr.startswith("CAST") else lo.date().isoformat(),
             "hi": hi.date() if day_expr.startswith("CAST") else hi.date().isoformat()},
        ).all()
    found = {(r[0] if isinstance(r[0], date) else date.fromisoformat(str(r[0]))): from_nanos(r[1]) for r in rows}
    return [(d, found.get(d, Decimal(0))) for d in _day_range(start, end)]


def first_day(app: App) -> date | None:
    with app.engine.connect() as conn:
        value = conn.execute(text("SELECT MIN(created_at) FROM usage_ledger")).scalar()
    if value is None:
        return None
    return value.date() if isinstance(value, datetime) else date.fromisoformat(str(value)[:10])


def projection(app: App, today: date, spent_this_month: Decimal) -> Projection:
    first = first_day(app)
    if first is None:
        return project([], spent_this_month, today)
    start = max(first, today - timedelta(days=29))
    return project([v for _, v in daily_spend(app, start, today)], spent_this_month, today)


@dataclass(frozen=True)
class Booked:
    """Calls booked at their hold, and what they are booked at."""

    calls: int
    booked_usd: Decimal


def unreconciled(app: App) -> Booked:
    """Calls that may have been billed without an answer, every month: each is booked at its hold until
    `core.costs.reconcile.settle_unreconciled` settles it."""
    with app.engine.connect() as conn:
        row = conn.execute(text("SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM usage_ledger WHERE status = :s"),
                           {"s": str(Booking.UNRECONCILED)}).one()
    return Booked(int(row[0]), from_nanos(row[1]))


@dataclass(frozen=True)
class RefusedCall:
    """A call whose provider figures were refused (`why` and `request_id` are the provider's words: plain text)."""

    when: str
    task: str
    model: str
    booked_usd: Decimal
    request_id: str
    why: str


@dataclass(frozen=True)
class Refused(Booked):
    latest: list[RefusedCall] = field(default_factory=list)


def refused_settlements(app: App, month: str, limit: int = 50) -> Refused:
    """Calls whose provider figures were refused this month: how many, what they are booked at, the latest."""
    params = {"s": str(Booking.REFUSED_USAGE), "m": month}
    with app.engine.connect() as conn:
        total = conn.execute(text("SELECT COUNT(*), COALESCE(SUM(cost_usd), 0) FROM usage_ledger "
                                  "WHERE status = :s AND month = :m"), params).one()
        rows = conn.execute(text(
            "SELECT created_at, task, model_answered, cost_usd, request_id, error FROM usage_ledger "
            "WHERE status = :s AND month = :m ORDER BY id DESC LIMIT :n"), {**params, "n": limit}).all()
    latest = [RefusedCall(str(r[0])[:19], str(r[1]), str(r[2] or ""), from_nanos(r[3]), str(r[4] or ""),
                          str(r[5] or "")) for r in rows]
    return Refused(int(total[0]), from_nanos(total[1]), latest)


@dataclass(frozen=True)
class SpendSummary:
    """The month's figures: what the home page shows and `python -m core spend` prints."""

    month: str
    budget_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    remaining_usd: Decimal
    throttled: bool
    level: str
    totals: MonthTotals
    projection: Projection
    by_model: list[Breakdown]
    by_task: list[Breakdown]
    alerts: list[str]
    unreconciled: Booked
    refused: Booked
    budget_source: str
    budget_source_message: str

    def as_json(self) -> dict[str, Any]:
        """The CLI's contract: money as decimal text."""
        proj = self.projection
        return {
            "month": self.month,
            "budget_usd": money_str(self.budget_usd),
            "spent_usd": money_str(self.spent_usd),
            "reserved_usd": money_str(self.reserved_usd),
            "remaining_usd": money_str(self.remaining_usd),
            "throttled": self.throttled,
            "level": self.level,
            "calls": self.totals.calls,
            "input_tokens": self.totals.input_tokens,
            "output_tokens": self.totals.output_tokens,
            "projected_month_usd": money_str(proj.month_end_usd),
            "projected_month_low_usd": money_str(proj.month_end_low_usd),
            "projected_month_high_usd": money_str(proj.month_end_high_usd),
            "projected_annual_usd": money_str(proj.annual_usd),
            "by_model": {b.key or "(none)": money_str(b.cost_usd) for b in self.by_model},
            "by_task": {b.key: money_str(b.cost_usd) for b in self.by_task},
            "alerts": self.alerts,
            "unreconciled_calls": self.unreconciled.calls,
            "unreconciled_usd": money_str(self.unreconciled.booked_usd),
            "refused_settlements": self.refused.calls,
            "refused_settlements_usd": money_str(self.refused.booked_usd),
            "budget_source": self.budget_source,
            "budget_source_message": self.budget_source_message,
        }


def summary(app: App, now: datetime | None = None) -> SpendSummary:
    """The month's figures, from the ledger and the budget."""
    now = now or utcnow()
    month = month_of(now)
    groups = _task_model_groups(app, month)
    totals = _totals(groups)
    state = app.budget_state(month)
    refused = refused_settlements(app, month, limit=0)
    cap = budget.cap_info(app.engine, app.settings.monthly_budget_usd, month)
    return SpendSummary(
        month=month, budget_usd=state.cap_usd, spent_usd=totals.spent_usd, reserved_usd=state.reserved_usd,
        remaining_usd=state.cap_usd - totals.spent_usd - state.reserved_usd, throttled=state.throttled,
        level=state.level, totals=totals, projection=projection(app, now.astimezone(UTC).date(), totals.spent_usd),
        by_model=_fold(groups, 1), by_task=_fold(groups, 0), alerts=state.alerts, unreconciled=unreconciled(app),
        refused=Booked(refused.calls, refused.booked_usd), budget_source=cap.source,
        budget_source_message=cap.message,
    )
