"""Reconcile the usage ledger with what the provider says it billed this month.

The ledger is the console's own record (one row per call attempt, costed from the provider's `usage.cost`);
the provider's account is what the invoice will say. A cost meeting wants both side by side and, when they
differ, a sentence on why.

Where the provider's figure comes from:
- **OpenRouter**: `GET /api/v1/key` answers `{"data": {"usage", "usage_daily", "usage_weekly",
  "usage_monthly", "limit", "limit_remaining", ...}}` in USD (floats). OpenRouter's API reference describes
  `usage_monthly` as the key's credit usage "for the current UTC month" (and `usage_weekly` as the current UTC
  week, Monday to Sunday); we read that as the calendar month starting on the 1st at 00:00 UTC, the same period
  as the ledger's `month` column. The reference does not spell out "calendar month" versus a rolling window,
  so a difference in the first hours of a month is worth a second look before it is called a leak. The figure
  is per API key (every tool sharing the key counts) and excludes bring-your-own-key usage, which OpenRouter
  reports separately as `byok_usage_monthly`.
- **simulator**: its `/key` mirrors OpenRouter's shape; `usage_monthly` is what this simulator instance has
  billed since the console process started (it keeps no calendar), so after a restart it reports less.
- **openai** (Ollama, llama.cpp, vLLM...): these servers have no usage endpoint, so there is nothing to
  compare; the result says so instead of failing.

The API key is never part of a result: error texts are scrubbed before they reach `note`.

Calls that timed out after they were sent are booked at their hold as `unreconciled` (see `core.costs.settlement`);
`settle_unreconciled` settles them: by `GET /generation?id=` (OpenRouter answers `{"data": {"total_cost", ...}}`)
when the call's generation id is known, else from `/key`: what `usage_monthly` counts beyond the ledger's
settled rows is shared among the open calls of the month in proportion to their holds, never above a hold.
That share is an estimate (every tool using the key counts there), so the note says which way each call went.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote

import httpx2
from sqlalchemy import text

from core.app import App
from core.costs import budget
from core.costs.money import usd
from core.costs.settlement import ABSURD_COST_FACTOR, Booking
from core.llm.client import LLMClient, RetryPolicy
from core.llm.errors import LLMError
from core.logs import scrub  # the one scrubber; re-exported here for callers of reconcile.scrub
from core.store.db import immediate
from core.store.models import NANO, as_utc, from_nanos, money_str, month_of, utcnow
from core.wording import noun_for, plural

PERIOD_MONTH = "month"
# Provider totals arrive as floats; a gap below a millionth of a dollar is float noise, not money.
MATCH_TOLERANCE = Decimal("0.000001")
KEY_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Reconciliation:
    month: str  # 'YYYY-MM', UTC
    period: str  # the provider's period compared: "month" (usage_monthly)
    provider: str  # settings.llm_provider; the ledger side counts only rows from this provider
    ledger_usd: Decimal
    provider_usd: Decimal | None  # None when the provider has no figure or could not be asked
    note: str

    @property
    def difference_usd(self) -> Decimal | None:
        """Provider minus ledger: positive when the provider counted more than the console recorded."""
        return None if self.provider_usd is None else self.provider_usd - self.ledger_usd

    @property
    def matches(self) -> bool:
        diff = self.difference_usd
        return diff is not None and abs(diff) < MATCH_TOLERANCE


def ledger_total(app: App, month: str, provider: str) -> Decimal:
    """Sum of the ledger's costs for `month` recorded through `provider` (summed in SQL)."""
    with app.engine.connect() as conn:
        total = conn.execute(
            text("SELECT COALESCE(SUM(cost_usd), 0) FROM usage_ledger WHERE month = :m AND provider = :p"),
            {"m": month, "p": provider},
        ).scalar()
    return from_nanos(total)


def _usage_monthly(payload: Any) -> Decimal:
    data = payload.get("data") if isinstance(payload, dict) else None
    if not isinstance(data, dict):
        raise ValueError("the /key answer has no `data` object")
    if "usage_monthly" not in data:
        fields = ", ".join(sorted(str(k) for k in data)[:20]) or "none"
        raise ValueError(f"the /key answer has no usage_monthly figure (fields present: {fields})")
    raw = data["usage_monthly"]
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError(f"usage_monthly is not a number (got {type(raw).__name__})")
    try:
        value = Decimal(str(raw))
    except InvalidOperation:
        raise ValueError("usage_monthly is not a number") from None
    if not value.is_finite() or value < 0:
        raise ValueError("usage_monthly is not a non-negative amount")
    return value.quantize(NANO)


def _explain(provider: str, month: str, ledger: Decimal, reported: Decimal) -> str:
    diff = reported - ledger
    if abs(diff) < MATCH_TOLERANCE:
        return f"The provider's usage for {month} matches the ledger ({usd(ledger)})."
    if diff > 0:
        why = (
            "The provider counts every call made with this API key in the current UTC month, including other "
            "tools or consoles that share the key; calls whose ledger row could not be written would also show here."
        )
        head = f"The provider reports {usd(diff)} more than the ledger for {month}."
    else:
        why = (
            "The provider may not have counted the latest calls yet, or the ledger holds estimated costs where the "
            "provider reported none (cost_source 'estimated' in the ledger CSV)."
        )
        head = f"The ledger records {usd(-diff)} more than the provider reports for {month}."
    if provider == "simulator":
        why += " The simulator only counts what it billed since this console process started."
    return f"{head} {why}"


async def reconcile(app: App, client: LLMClient | None = None, now: datetime | None = None) -> Reconciliation:
    """Compare this month's ledger total with the provider's `usage_monthly` from `GET /key`.

    `client` replaces the provider connection (tests inject a transport); by default the app's own client is
    used with a short timeout. Failures never raise: they come back as `provider_usd=None` with a note.
    """
    moment = now or utcnow()
    month = month_of(moment)
    provider = app.settings.llm_provider
    ledger = await asyncio.to_thread(ledger_total, app, month, provider)

    def result(reported: Decimal | None, note: str) -> Reconciliation:
        return Reconciliation(month, PERIOD_MONTH, provider, ledger, reported, note)

    if provider == "openai":
        return result(
            None,
            "The provider has no usage endpoint: OpenAI-compatible servers (Ollama, llama.cpp, vLLM) do not report "
            "spend, so the ledger is the only record of cost.",
        )

    owned = client is None
    active = client or app.client(RetryPolicy(request_timeout_s=KEY_TIMEOUT_S))
    try:
        payload = await active.get_json("/key")
    except (httpx2.HTTPError, LLMError) as exc:
        detail = scrub(str(exc) or type(exc).__name__, app.settings.api_key)[:300]
        return result(None, f"Could not reach /key: {detail}. The ledger total is shown alone; try again later.")
    finally:
        if owned:
            await active.aclose()

    try:
        reported = _usage_monthly(payload)
    except ValueError as exc:
        return result(None, f"Could not read the provider's usage: {scrub(str(exc), app.settings.api_key)}.")
    note = _explain(provider, month, ledger, reported)
    open_calls = [r for r in await asyncio.to_thread(_open_rows, app, provider) if r[1] == month]
    if open_calls:
        held = sum((r[2] for r in open_calls), Decimal(0))
        n = len(open_calls)
        note += (f" The ledger counts {plural(n, 'unreconciled call')} at {noun_for(n, 'its', 'their')} hold "
                 f"({usd(held)}): {noun_for(n, 'it', 'they')} timed out after "
                 f"{noun_for(n, 'it was', 'they were')} sent, and the provider may have billed less.")
    return result(reported, note)


# /key counts a call a little after it ends; an open call younger than this waits for the next reconcile.
KEY_SETTLE_AGE = timedelta(seconds=60)
SOURCE_GENERATION = "generation"
SOURCE_KEY = "key"


@dataclass
class UnreconciledRun:
    """What `settle_unreconciled` did."""

    open_before: int = 0
    by_generation: int = 0
    by_key: int = 0
    open_after: int = 0
    change_usd: Decimal = Decimal(0)  # booked after minus booked before (negative: holds given back)
    notes: list[str] | None = None

    def as_json(self) -> dict[str, Any]:
        return {"open_before": self.open_before, "settled_by_generation": self.by_generation,
                "settled_by_key": self.by_key, "open_after": self.open_after,
                "change_usd": money_str(self.change_usd), "notes": self.notes or []}


def _open_rows(app: App, provider: str) -> list[tuple[int, str, Decimal, str, datetime]]:
    with app.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, month, cost_usd, request_id, created_at FROM usage_ledger WHERE status = :s AND provider = :p "
            "ORDER BY id"), {"s": str(Booking.UNRECONCILED), "p": provider}).all()
    out = []
    for r in rows:
        created = as_utc(r[4]).replace(tzinfo=None)
        out.append((int(r[0]), str(r[1]), from_nanos(r[2]), str(r[3] or ""), created))
    return out


def _rebook(app: App, ledger_id: int, cost: Decimal, source: str, note: str) -> Decimal:
    with immediate(app.engine) as conn:
        return budget.rebook_on(conn, ledger_id, cost, status=str(Booking.RECONCILED), cost_source=source, note=note)


def _total_cost(payload: Any) -> Decimal:
    data = payload.get("data") if isinstance(payload, dict) else None
    raw = data.get("total_cost") if isinstance(data, dict) else None
    if raw is None or isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise ValueError("the /generation answer has no total_cost")
    value = Decimal(str(raw))
    if not value.is_finite() or value < 0:
        raise ValueError(f"total_cost {raw!r} is not a non-negative amount")
    return value.quantize(NANO)


async def settle_unreconciled(app: App, client: LLMClient | None = None, now: datetime | None = None,
                              min_age: timedelta = KEY_SETTLE_AGE) -> UnreconciledRun:
    """Settle the calls booked at their hold as `unreconciled` with what the provider says it billed."""
    moment = now or utcnow()
    provider = app.settings.llm_provider
    rows = await asyncio.to_thread(_open_rows, app, provider)
    run = UnreconciledRun(open_before=len(rows), open_after=len(rows), notes=[])
    assert run.notes is not None
    if not rows:
        return run
    if provider == "openai":
        run.notes.append("OpenAI-compatible servers report no billing: open calls stay booked at their hold.")
        return run
    owned = client is None
    active = client or app.client(RetryPolicy(request_timeout_s=KEY_TIMEOUT_S))
    secret = app.settings.api_key
    left: list[tuple[int, str, Decimal, str, datetime]] = []
    try:
        for row in rows:
            ledger_id, _, held, request_id, _ = row
            if not request_id:
                left.append(row)
                continue
            try:
                cost = _total_cost(await active.get_json(f"/generation?id={quote(request_id, safe='')}"))
            except (httpx2.HTTPError, LLMError, ValueError, ArithmeticError) as exc:
                run.notes.append(f"generation {request_id}: {scrub(str(exc) or type(exc).__name__, secret)[:200]}")
                left.append(row)
                continue
            if cost > held * ABSURD_COST_FACTOR:
                run.notes.append(f"generation {request_id}: total_cost {usd(cost)} is not believable beside its "
                                 f"{usd(held)} hold; kept at the hold")
                left.append(row)
                continue
            run.change_usd += await asyncio.to_thread(
                _rebook, app, ledger_id, cost, SOURCE_GENERATION,
                f"reconciled by GET /generation: the provider billed {usd(cost)} (held {usd(held)})")
            run.by_generation += 1
        month = month_of(moment)
        ripe = [r for r in left if r[1] == month and r[4] <= (moment - min_age).astimezone(UTC).replace(tzinfo=None)]
        if ripe and len(ripe) == len([r for r in left if r[1] == month]):
            await _settle_by_key(app, active, provider, month, ripe, run)
        elif left:
            run.notes.append("Open calls younger than a minute or from past months stay booked at their hold; "
                             "the provider's /key total may not count them yet.")
    finally:
        if owned:
            await active.aclose()
    run.open_after = run.open_before - run.by_generation - run.by_key
    return run


async def _settle_by_key(app: App, client: LLMClient, provider: str, month: str,
                         rows: list[tuple[int, str, Decimal, str, datetime]], run: UnreconciledRun) -> None:
    assert run.notes is not None
    try:
        reported = _usage_monthly(await client.get_json("/key"))
    except (httpx2.HTTPError, LLMError, ValueError) as exc:
        run.notes.append(f"/key: {scrub(str(exc) or type(exc).__name__, app.settings.api_key)[:200]}; "
                         "open calls stay booked at their hold")
        return
    with app.engine.connect() as conn:
        settled = from_nanos(conn.execute(text(
            "SELECT COALESCE(SUM(cost_usd), 0) FROM usage_ledger WHERE month = :m AND provider = :p AND status <> :s"),
            {"m": month, "p": provider, "s": str(Booking.UNRECONCILED)}).scalar())
    unexplained = max(Decimal(0), reported - settled)
    held = sum((r[2] for r in rows), Decimal(0))
    share = Decimal(1) if held <= 0 or unexplained >= held else unexplained / held
    given = Decimal(0)
    for i, (ledger_id, _, amount, _, _) in enumerate(rows):
        cost = (amount * share).quantize(NANO) if i < len(rows) - 1 else min(amount, max(Decimal(0), (
            min(unexplained, held) - given)))
        given += cost
        run.change_usd += await asyncio.to_thread(
            _rebook, app, ledger_id, cost, SOURCE_KEY,
            f"reconciled from /key: usage_monthly {usd(reported)} is {usd(unexplained)} above the "
            f"ledger's settled {usd(settled)}; this call's share {usd(cost)} of its "
            f"{usd(amount)} hold (an estimate: every tool using the key counts there)")
        run.by_key += 1
