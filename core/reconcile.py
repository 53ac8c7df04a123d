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
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import httpx2
from sqlalchemy import text

from core.app import App
from core.llm.client import LLMClient, RetryPolicy
from core.llm.errors import LLMError
from core.logs import scrub  # the one scrubber; re-exported here for callers of reconcile.scrub
from core.models import NANO, from_nanos, money_str, month_of, utcnow

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
        return f"The provider's usage for {month} matches the ledger (${money_str(ledger)})."
    if diff > 0:
        why = (
            "The provider counts every call made with this API key in the current UTC month, including other "
            "tools or consoles that share the key; calls whose ledger row could not be written would also show here."
        )
        head = f"The provider reports ${money_str(diff)} more than the ledger for {month}."
    else:
        why = (
            "The provider may not have counted the latest calls yet, or the ledger holds estimated costs where the "
            "provider reported none (cost_source 'estimated' in the ledger CSV)."
        )
        head = f"The ledger records ${money_str(-diff)} more than the provider reports for {month}."
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
    return result(reported, _explain(provider, month, ledger, reported))
