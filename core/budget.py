"""Budget enforcement by reservation, and the throttle ladder.

Before a call, its worst-case cost is reserved in one conditional UPDATE that fails when the month's cap
would be crossed, so any number of concurrent callers can never overspend. After the call the reservation
is settled to the real cost in the same transaction that writes the ledger row; a reservation left by a
crashed worker is swept once its lease expires. Months are calendar months in UTC.

`budget_months` holds running totals (cap, spent, reserved) only so that the check is one statement; the
usage ledger remains the record that spend figures and charts are computed from.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, text
from sqlalchemy.engine import Connection, Engine

from core.db import immediate
from core.llm.errors import BudgetExceededError
from core.models import Money, Reservation, StageResult, UsageEntry, UTCDateTime, from_nanos, month_of, to_nanos, utcnow

RESERVATION_LEASE = timedelta(minutes=10)
ALERT_LEVELS = (Decimal("0.8"), Decimal("0.9"), Decimal("1.0"))

# Throttle ladder, by the share of the month's budget still free (spent + reserved counted as used).
LEVEL_NORMAL = "normal"
LEVEL_REVIEW_TOP = "review_top_only"  # <= THROTTLE_AT left: premium review only for the highest-value
LEVEL_TEMPLATE_ONLY = "template_only"  # <= 5% left: no model writing, plain templates
LEVEL_STOPPED = "stopped"  # nothing left: no model calls; batches pause
TEMPLATE_ONLY_AT = Decimal("0.05")


# Statements built once: the reservation and the settlement run for every model call.
_ENSURE_MONTH = text("INSERT INTO budget_months (month, cap_usd, spent_usd, reserved_usd) VALUES (:m, :c, 0, 0) "
                     "ON CONFLICT (month) DO NOTHING")
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
_SPEND = text("UPDATE budget_months SET spent_usd = spent_usd + :c, reserved_usd = reserved_usd - :a WHERE month = :m")


def ensure_month(conn: Connection, month: str, cap: Decimal) -> None:
    conn.execute(_ENSURE_MONTH, {"m": month, "c": to_nanos(cap)})


def set_cap(engine: Engine, cap: Decimal, month: str | None = None) -> None:
    """Set the month's cap (a raised cap lets paused batches resume)."""
    month = month or month_of(utcnow())
    with immediate(engine) as conn:
        ensure_month(conn, month, cap)
        conn.execute(text("UPDATE budget_months SET cap_usd = :c WHERE month = :m"), {"c": to_nanos(cap), "m": month})


def reserve(engine: Engine, amount: Decimal, *, cap: Decimal, task: str = "", now: datetime | None = None) -> int:
    """Hold `amount` against this month's cap; raises BudgetExceededError when it does not fit.

    `cap` only seeds a month seen for the first time; an existing month keeps its stored cap (see `set_cap`).
    """
    with immediate(engine) as conn:
        return reserve_on(conn, amount, cap=cap, task=task, now=now)


def reserve_on(conn: Connection, amount: Decimal, *, cap: Decimal, task: str = "", now: datetime | None = None,
               owner: str | None = None) -> int:
    """`reserve` inside the caller's write transaction (see `core.commits`)."""
    now = now or utcnow()
    month = month_of(now)
    hold = {"a": to_nanos(amount), "m": month}
    if conn.execute(_HOLD, hold).rowcount != 1:  # the month is new, or the cap is reached
        ensure_month(conn, month, cap)
        if conn.execute(_HOLD, hold).rowcount != 1:
            row = conn.execute(_TOTALS, {"m": month}).one()
            left = from_nanos(row[0] - row[1] - row[2])
            raise BudgetExceededError(
                f"the {month} budget cannot cover this call: it needs up to ${amount:.6f}, "
                f"${max(left, Decimal(0)):.6f} of ${from_nanos(row[0]):.2f} is left. "
                "Raise the budget on the Spend page or wait for the month to roll."
            )
    result = conn.execute(_INSERT_RESERVATION, {
        "month": month, "amount_usd": amount, "task": task, "state": "held", "created_at": now,
        "expires_at": now + RESERVATION_LEASE, "owner": owner})
    return int(result.inserted_primary_key[0])


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
    """`settle` inside the caller's write transaction (see `core.commits`), with the ledger row and the stage's
    answer as column values: the gateway builds them for every call, cheaper than model instances."""
    conn.execute(_INSERT_LEDGER, entry)
    if stage is not None:
        conn.execute(_INSERT_STAGE, stage)
    month = entry["month"]
    held = _close_hold(conn, reservation_id, "settled") if reservation_id is not None else None
    if held is not None and held[0] != month:  # a hold of another month: give it back there
        conn.execute(_SPEND, {"c": 0, "a": held[1], "m": held[0]})
        held = None
    if held is None:
        ensure_month(conn, month, cap)
    conn.execute(_SPEND, {"c": to_nanos(entry["cost_usd"]), "a": held[1] if held else 0, "m": month})


def release(engine: Engine, reservation_id: int) -> None:
    with immediate(engine) as conn:
        _release(conn, reservation_id, "settled")


def _close_hold(conn: Connection, reservation_id: int, state: str) -> tuple[str, int] | None:
    """Mark a held reservation settled or swept; its month and amount in nano-dollars, or None if it was not
    held any more (already swept: its hold was returned then)."""
    row = conn.execute(_CLOSE_HOLD, {"s": state, "i": reservation_id}).first()
    return None if row is None else (str(row[0]), int(row[1]))


def _release(conn: Connection, reservation_id: int, state: str) -> None:
    held = _close_hold(conn, reservation_id, state)
    if held is not None:
        conn.execute(_SPEND, {"c": 0, "a": held[1], "m": held[0]})


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

    @property
    def remaining_usd(self) -> Decimal:
        return self.cap_usd - self.spent_usd - self.reserved_usd

    @property
    def used_fraction(self) -> Decimal:
        if self.cap_usd <= 0:
            return Decimal(1)
        return (self.spent_usd + self.reserved_usd) / self.cap_usd

    @property
    def remaining_fraction(self) -> Decimal:
        return max(Decimal(0), 1 - self.used_fraction)

    @property
    def level(self) -> str:
        left = self.remaining_fraction
        if self.remaining_usd <= 0:
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
            text("SELECT cap_usd, spent_usd, reserved_usd FROM budget_months WHERE month = :m"), {"m": month}
        ).first()
    if row is None:
        return BudgetState(month, cap, Decimal(0), Decimal(0), throttle_at)
    return BudgetState(month, from_nanos(row[0]), from_nanos(row[1]), from_nanos(row[2]), throttle_at)
