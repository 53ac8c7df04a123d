"""Budget enforcement by reservation, and the throttle ladder.

Before a call, its worst-case cost is reserved in one conditional UPDATE that fails when the month's cap
would be crossed, so any number of concurrent callers can never overspend. After the call the reservation
is settled to the real cost in the same transaction that writes the ledger row; a reservation left by a
crashed worker is swept once its lease expires. Months are calendar months in UTC.

`budget_months` holds running totals (cap, spent, reserved) only so that the check is one statement; the
usage ledger remains the record that spend figures and charts are computed from.

Holds in flight are worst cases, most of which come back at settlement. A hold that does not fit only because
other holds are in flight (settled spend plus this hold fits the cap) raises `BudgetBusyError`: the caller
waits for them to settle instead of pausing a batch with most of its budget unspent. The throttle ladder
counts a hold in flight at what holds of the month really cost so far (spent / holds settled), not at its
worst case.

Who set a month's cap is kept with it: MONTHLY_BUDGET_USD ("env") is applied again at every start, a cap a
person set (Spend page, `python -m core budget set`) is kept for its month and the environment value applies
from the next month (`apply_env_cap`, `cap_info`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine

from core.costs.money import usd
from core.llm.errors import BudgetExceededError
from core.store.db import immediate
from core.store.models import (
    Money,
    Reservation,
    StageResult,
    UsageEntry,
    UTCDateTime,
    as_utc,
    from_nanos,
    money_str,
    month_of,
    to_nanos,
    utcnow,
)

RESERVATION_LEASE = timedelta(minutes=10)
ALERT_LEVELS = (Decimal("0.8"), Decimal("0.9"), Decimal("1.0"))

# Throttle ladder, by the share of the month's budget still free (spent + reserved counted as used).
LEVEL_NORMAL = "normal"
LEVEL_REVIEW_TOP = "review_top_only"  # <= THROTTLE_AT left: premium review only for the highest-value
LEVEL_TEMPLATE_ONLY = "template_only"  # <= 5% left: no model writing, plain templates
LEVEL_STOPPED = "stopped"  # nothing left: no model calls; batches pause
TEMPLATE_ONLY_AT = Decimal("0.05")

class CapSource(StrEnum):
    """Who set a month's cap (budget_months.cap_source)."""

    ENV = "env"  # MONTHLY_BUDGET_USD, applied again at every start
    SPEND_PAGE = "spend_page"  # a person, on the Spend page: kept for the month
    CLI = "cli"  # a person, with `python -m core budget set`: kept for the month


CAP_FROM_ENV = CapSource.ENV
CAP_FROM_SPEND_PAGE = CapSource.SPEND_PAGE
CAP_FROM_CLI = CapSource.CLI
CAP_SOURCES = tuple(CapSource)
_SOURCE_WORDS = {CAP_FROM_SPEND_PAGE: "on the Spend page", CAP_FROM_CLI: "with `python -m core budget set`"}


class BudgetBusyError(BudgetExceededError):
    """The hold does not fit now only because other holds are in flight: settled spend plus this hold fits the
    cap, so waiting for those calls to settle (most of a worst case comes back) frees the room."""

    kind = "budget_busy"


# Statements built once: the reservation and the settlement run for every model call.
_ENSURE_MONTH = text("INSERT INTO budget_months (month, cap_usd, spent_usd, reserved_usd, held_settled_usd, "
                     "cap_source) VALUES (:m, :c, 0, 0, 0, 'env') ON CONFLICT (month) DO NOTHING")
_HOLD = text("UPDATE budget_months SET reserved_usd = reserved_usd + :a "
             "WHERE month = :m AND spent_usd + reserved_usd + :a <= cap_usd")
_TOTALS = text("SELECT cap_usd, spent_usd, reserved_usd FROM budget_months WHERE month = :m")
_INSERT_RESERVATION = Reservation.__table__.insert()  # type: ignore[attr-defined]
_INSERT_LEDGER = UsageEntry.__table__.insert()  # type: ignore[attr-defined]
_INSERT_STAGE = text(
    "INSERT INTO stage_results (batch_item_id, stage, content, model, input_tokens, output_tokens, cost_usd, "
    "created_at) VALUES (:batch_item_id, :stage, :content, :model, :input_tokens, :output_tokens, :cost_usd, "
    ":created_at) ON CONFLICT (batch_item_id, stage) DO NOTHING"
).bindparams(bindparam("cost_usd", type_=Money()), bindparam("created_at", type_=UTCDateTime()))
_CLOSE_HOLD = text("UPDATE reservations SET state = :s WHERE id = :i AND state = 'held' RETURNING month, amount_usd")
_SPEND = text("UPDATE budget_months SET spent_usd = spent_usd + :c, reserved_usd = reserved_usd - :a, "
              "held_settled_usd = held_settled_usd + :h WHERE month = :m")


def ensure_month(conn: Connection, month: str, cap: Decimal) -> None:
    conn.execute(_ENSURE_MONTH, {"m": month, "c": to_nanos(cap)})


def set_cap(engine: Engine, cap: Decimal, month: str | None = None, *, source: str = CAP_FROM_ENV,
            now: datetime | None = None) -> None:
    """Set the month's cap (a raised cap lets paused batches resume), recording who set it (`CAP_SOURCES`)."""
    if source not in set(CAP_SOURCES):
        raise ValueError(f"unknown cap source {source!r}")
    now = now or utcnow()
    month = month or month_of(now)
    with immediate(engine) as conn:
        ensure_month(conn, month, cap)
        conn.execute(text("UPDATE budget_months SET cap_usd = :c, cap_source = :s, cap_set_at = :at WHERE month = :m"),
                     {"c": to_nanos(cap), "m": month, "s": str(source),
                      "at": None if source == CAP_FROM_ENV else now.astimezone(UTC).replace(tzinfo=None)})


@dataclass(frozen=True)
class CapInfo:
    """A month's cap, who set it, and the sentence saying why MONTHLY_BUDGET_USD is or is not the cap."""

    month: str
    cap_usd: Decimal
    source: str  # CAP_SOURCES
    set_at: datetime | None
    env_usd: Decimal

    @property
    def env_applies(self) -> bool:
        return self.source == CAP_FROM_ENV

    @property
    def message(self) -> str:
        if self.source == CAP_FROM_ENV:
            return f"The {self.month} cap {usd(self.cap_usd)} comes from MONTHLY_BUDGET_USD."
        when = f" on {self.set_at.date().isoformat()}" if self.set_at else ""
        said = (f"This month's cap was set to {usd(self.cap_usd)} {_SOURCE_WORDS.get(self.source, 'by hand')}"
                f"{when} (UTC)")
        if self.env_usd == self.cap_usd:
            return f"{said}; it equals MONTHLY_BUDGET_USD, which applies again from next month."
        return f"{said}, so MONTHLY_BUDGET_USD={money_str(self.env_usd)} is not used: it applies from next month."

    def as_json(self) -> dict[str, Any]:
        return {"month": self.month, "cap_usd": money_str(self.cap_usd), "cap_source": self.source,
                "cap_set_at": self.set_at.isoformat() if self.set_at else None,
                "env_monthly_budget_usd": money_str(self.env_usd), "env_applies": self.env_applies,
                "message": self.message}


def _cap_row(conn: Connection, month: str) -> tuple[int, str, Any] | None:
    row = conn.execute(text("SELECT cap_usd, cap_source, cap_set_at FROM budget_months WHERE month = :m"),
                       {"m": month}).first()
    return None if row is None else (int(row[0]), str(row[1] or CAP_FROM_ENV), row[2])


def cap_info(engine: Engine, env_cap: Decimal, month: str | None = None) -> CapInfo:
    month = month or month_of(utcnow())
    with engine.connect() as conn:
        row = _cap_row(conn, month)
    if row is None:
        return CapInfo(month, env_cap, CAP_FROM_ENV, None, env_cap)
    return CapInfo(month, from_nanos(row[0]), row[1], as_utc(row[2]) if row[2] is not None else None, env_cap)


def apply_env_cap(engine: Engine, env_cap: Decimal, now: datetime | None = None) -> CapInfo:
    """At start-up: MONTHLY_BUDGET_USD becomes the current month's cap unless a person set this month's cap."""
    month = month_of(now or utcnow())
    with immediate(engine) as conn:
        ensure_month(conn, month, env_cap)
        conn.execute(text("UPDATE budget_months SET cap_usd = :c WHERE month = :m AND cap_source = :env"),
                     {"c": to_nanos(env_cap), "m": month, "env": CAP_FROM_ENV})
    return cap_info(engine, env_cap, month)


def reserve(engine: Engine, amount: Decimal, *, cap: Decimal, task: str = "", now: datetime | None = None) -> int:
    """Hold `amount` against this month's cap; raises BudgetExceededError when it does not fit.

    `cap` only seeds a month seen for the first time; an existing month keeps its stored cap (see `set_cap`).
    """
    with immediate(engine) as conn:
        return reserve_on(conn, amount, cap=cap, task=task, now=now)


def _refusal(month: str, amount: Decimal, row: Any, own: int = 0) -> BudgetExceededError:
    """Why a hold of `amount` (beside `own` nano-dollars this call already holds) does not fit: busy when it would
    fit once the other holds in flight settle, exhausted otherwise."""
    cap, spent, reserved = int(row[0]), int(row[1]), int(row[2])
    if reserved - own > 0 and spent + own + to_nanos(amount) <= cap:
        return BudgetBusyError(
            f"the {month} budget has {usd(from_nanos(cap - spent))} unspent but {usd(from_nanos(reserved - own))} "
            f"of it is held by calls in flight; this call needs up to {usd(amount)} more: wait for them to settle."
        )
    left = from_nanos(cap - spent - reserved)
    return BudgetExceededError(
        f"the {month} budget cannot cover this call: it needs up to {usd(amount)}, "
        f"{usd(max(left, Decimal(0)))} of {usd(from_nanos(cap))} is left. "
        "Raise the budget on the Spend page or wait for the month to roll."
    )


def reserve_on(conn: Connection, amount: Decimal, *, cap: Decimal, task: str = "", now: datetime | None = None,
               owner: str | None = None) -> int:
    """`reserve` inside the caller's write transaction (see `core.store.commits`)."""
    now = now or utcnow()
    month = month_of(now)
    hold = {"a": to_nanos(amount), "m": month}
    if conn.execute(_HOLD, hold).rowcount != 1:  # the month is new, or the cap is reached
        ensure_month(conn, month, cap)
        if conn.execute(_HOLD, hold).rowcount != 1:
            raise _refusal(month, amount, conn.execute(_TOTALS, {"m": month}).one())
    result = conn.execute(_INSERT_RESERVATION, {
        "month": month, "amount_usd": amount, "task": task, "state": "held", "created_at": now,
        "expires_at": now + RESERVATION_LEASE, "owner": owner})
    return int(result.inserted_primary_key[0])


def top_up_on(conn: Connection, reservation_id: int, extra: Decimal) -> None:
    """Raise a held reservation by `extra` (its worst case grew since it was taken: a learned cost factor),
    under the same cap check as a new hold; BudgetBusyError / BudgetExceededError when it does not fit."""
    row = conn.execute(text("SELECT month, amount_usd FROM reservations WHERE id = :i AND state = 'held'"),
                       {"i": reservation_id}).first()
    if row is None:  # swept meanwhile: nothing is held to raise
        return
    month, own = str(row[0]), int(row[1])
    if conn.execute(_HOLD, {"a": to_nanos(extra), "m": month}).rowcount != 1:
        raise _refusal(month, extra, conn.execute(_TOTALS, {"m": month}).one(), own)
    conn.execute(text("UPDATE reservations SET amount_usd = amount_usd + :x WHERE id = :i"),
                 {"x": to_nanos(extra), "i": reservation_id})


def settle(
    engine: Engine, reservation_id: int | None, entry: UsageEntry, *, cap: Decimal,
    stage: StageResult | None = None,
) -> None:
    """Write the ledger row (and the stage's answer, if any), add its cost to spend and release the
    reservation, all in one transaction."""
    with immediate(engine) as conn:
        settle_on(conn, reservation_id, entry.model_dump(exclude={"id"}), cap=cap,
                  stage=stage.model_dump(exclude={"id"}) if stage is not None else None)


def settle_on(
    conn: Connection, reservation_id: int | None, entry: Mapping[str, Any], *, cap: Decimal,
    stage: Mapping[str, Any] | None = None,
) -> None:
    """`settle` inside the caller's write transaction (see `core.store.commits`), with the ledger row and the stage's
    answer as column values: the gateway builds them for every call, cheaper than model instances."""
    conn.execute(_INSERT_LEDGER, entry)
    if stage is not None:
        conn.execute(_INSERT_STAGE, stage)
    month = entry["month"]
    held = _close_hold(conn, reservation_id, "settled") if reservation_id is not None else None
    if held is not None and held[0] != month:  # a hold of another month: give it back there
        conn.execute(_SPEND, {"c": 0, "a": held[1], "h": 0, "m": held[0]})
        held = None
    if held is None:
        ensure_month(conn, month, cap)
    a = held[1] if held else 0
    conn.execute(_SPEND, {"c": to_nanos(entry["cost_usd"]), "a": a, "h": a, "m": month})


def rebook_on(conn: Connection, ledger_id: int, cost: Decimal, *, status: str, cost_source: str, note: str) -> Decimal:
    """Replace a ledger row's booked cost (an unreconciled call, once the provider says what it billed), moving
    the month's spend by the difference; returns the difference."""
    row = conn.execute(text("SELECT month, cost_usd, error FROM usage_ledger WHERE id = :i"), {"i": ledger_id}).one()
    delta = to_nanos(cost) - int(row[1])
    error = (f"{row[2]} | {note}" if row[2] else note)[:500]
    conn.execute(text("UPDATE usage_ledger SET cost_usd = :c, status = :s, cost_source = :cs, error = :e "
                      "WHERE id = :i"),
                 {"c": to_nanos(cost), "s": status, "cs": cost_source, "e": error, "i": ledger_id})
    conn.execute(_SPEND, {"c": delta, "a": 0, "h": 0, "m": str(row[0])})
    return from_nanos(delta)


def cost_factors(engine: Engine) -> dict[str, Decimal]:
    """Per model, the factor its holds are multiplied by (learned from reports above the worst case)."""
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT model, factor FROM model_cost_factors")).all()
    out: dict[str, Decimal] = {}
    for model, factor in rows:
        try:
            value = Decimal(str(factor))
        except ArithmeticError:
            continue
        if value.is_finite() and value > 1:
            out[str(model)] = value
    return out


def known_models(engine: Engine) -> set[str]:
    """Models with at least one believable settlement in this database (a row in model_cost_factors)."""
    with engine.connect() as conn:
        return {str(r[0]) for r in conn.execute(text("SELECT model FROM model_cost_factors")).all()}


def note_model_on(conn: Connection, model: str, *, now: datetime) -> None:
    """Remember that `model` has settled a believable call (factor 1 unless one was learned)."""
    conn.execute(text("INSERT INTO model_cost_factors (model, factor, reported_usd, worst_case_usd, updated_at) "
                      "VALUES (:m, '1', 0, 0, :at) ON CONFLICT (model) DO NOTHING"),
                 {"m": model, "at": now.astimezone(UTC).replace(tzinfo=None)})


def learn_factor_on(conn: Connection, model: str, factor: Decimal, *, reported: Decimal, worst: Decimal,
                    now: datetime) -> None:
    """Store a model's factor if it is above the one stored (factors only go up)."""
    row = conn.execute(text("SELECT factor FROM model_cost_factors WHERE model = :m"), {"m": model}).first()
    values = {"m": model, "f": str(factor), "r": to_nanos(reported), "w": to_nanos(worst),
              "at": now.astimezone(UTC).replace(tzinfo=None)}
    if row is None:
        conn.execute(text("INSERT INTO model_cost_factors (model, factor, reported_usd, worst_case_usd, updated_at) "
                          "VALUES (:m, :f, :r, :w, :at)"), values)
    elif Decimal(str(row[0])) < factor:
        conn.execute(text("UPDATE model_cost_factors SET factor = :f, reported_usd = :r, worst_case_usd = :w, "
                          "updated_at = :at WHERE model = :m"), values)


def release(engine: Engine, reservation_id: int) -> None:
    with immediate(engine) as conn:
        _release(conn, reservation_id, "settled")


def _close_hold(conn: Connection, reservation_id: int, state: str) -> tuple[str, int] | None:
    """Mark a held reservation settled or swept; its month and amount in nano-dollars, or None if it was not
    held any more (already swept: its hold was returned then)."""
    row = conn.execute(_CLOSE_HOLD, {"s": state, "i": reservation_id}).first()
    return None if row is None else (str(row[0]), int(row[1]))


def release_on(conn: Connection, reservation_id: int) -> None:
    """Give a hold back unspent (its call was never sent), inside the caller's write transaction."""
    _release(conn, reservation_id, "settled")


def _release(conn: Connection, reservation_id: int, state: str) -> None:
    held = _close_hold(conn, reservation_id, state)
    if held is not None:
        conn.execute(_SPEND, {"c": 0, "a": held[1], "h": 0, "m": held[0]})


def sweep(engine: Engine, now: datetime | None = None) -> int:
    """Return the holds of reservations whose lease expired (their worker died); returns how many."""
    now = now or utcnow()
    with immediate(engine) as conn:
        rows = conn.execute(
            text("SELECT id FROM reservations WHERE state = 'held' AND expires_at < :now"),
            {"now": now.replace(tzinfo=None)},
        ).all()
        for (rid,) in rows:
            _release(conn, rid, "swept")
    return len(rows)


@dataclass(frozen=True)
class BudgetState:
    month: str
    cap_usd: Decimal
    spent_usd: Decimal
    reserved_usd: Decimal
    throttle_at: Decimal
    held_settled_usd: Decimal = Decimal(0)  # the holds that settled this month (what they were held at)

    @property
    def remaining_usd(self) -> Decimal:
        """What new holds can take now: the cap less settled spend and every hold in flight."""
        return self.cap_usd - self.spent_usd - self.reserved_usd

    @property
    def settle_ratio(self) -> Decimal:
        """How much of a worst case a call of this month really cost (1 before any hold settled)."""
        if self.held_settled_usd <= 0:
            return Decimal(1)
        return min(Decimal(1), max(Decimal(0), self.spent_usd / self.held_settled_usd))

    @property
    def expected_in_flight_usd(self) -> Decimal:
        """The holds in flight at what holds of this month really cost, not at their worst case."""
        return self.reserved_usd * self.settle_ratio

    @property
    def used_fraction(self) -> Decimal:
        """Settled spend plus the expected cost of the holds in flight, as a share of the cap."""
        if self.cap_usd <= 0:
            return Decimal(1)
        return (self.spent_usd + self.expected_in_flight_usd) / self.cap_usd

    @property
    def remaining_fraction(self) -> Decimal:
        return max(Decimal(0), 1 - self.used_fraction)

    @property
    def level(self) -> str:
        left = self.remaining_fraction
        if self.spent_usd >= self.cap_usd:
            return LEVEL_STOPPED
        if left <= TEMPLATE_ONLY_AT:
            return LEVEL_TEMPLATE_ONLY
        if left <= self.throttle_at:
            return LEVEL_REVIEW_TOP
        return LEVEL_NORMAL

    @property
    def throttled(self) -> bool:
        return self.level != LEVEL_NORMAL

    @property
    def alerts(self) -> list[str]:
        used = self.used_fraction
        crossed = [lvl for lvl in ALERT_LEVELS if used >= lvl]
        if not crossed:
            return []
        top = crossed[-1]
        pct = int(top * 100)
        msg = {
            100: f"Budget exhausted for {self.month}: no model calls until it is raised or the month rolls.",
            90: f"{pct}% of the {self.month} budget used: premium review is limited to the highest-value prospects.",
            80: f"{pct}% of the {self.month} budget used.",
        }[pct]
        return [msg]

    def describe_level(self) -> str:
        return {
            LEVEL_NORMAL: "Normal: every step of the ladder is available.",
            LEVEL_REVIEW_TOP: f"Throttled ({int(self.throttle_at * 100)}% or less left): premium review only "
            "for the highest-value prospects.",
            LEVEL_TEMPLATE_ONLY: "Template-only (5% or less left): no model writing, plain templates only.",
            LEVEL_STOPPED: "Stopped: the budget is used up; no model calls, running batches pause.",
        }[self.level]


def budget_state(engine: Engine, cap: Decimal, throttle_at: Decimal, month: str | None = None) -> BudgetState:
    month = month or month_of(utcnow())
    with engine.connect() as conn:
        row = conn.execute(
            text("SELECT cap_usd, spent_usd, reserved_usd, held_settled_usd FROM budget_months WHERE month = :m"),
            {"m": month},
        ).first()
    if row is None:
        return BudgetState(month, cap, Decimal(0), Decimal(0), throttle_at)
    return BudgetState(month, from_nanos(row[0]), from_nanos(row[1]), from_nanos(row[2]), throttle_at,
                       from_nanos(row[3]))
