"""What a model call is booked at: the provider's figures when they are believable, the hold otherwise.

The provider's answer carries token counts and (OpenRouter, the simulator) `usage.cost`. A bug or a hostile
proxy can send negative, missing or absurd figures; booking them would hide spend (a negative cost lowers the
month) or burn the budget. So a settlement is checked against what the console knows before the call: the
prompt tokens it counted, the `max_tokens` it asked for, and the worst case it held. A figure that fails is
refused: the call is booked at its hold (the worst case reserved for it, the most the console let the call
cost), the ledger row's status is `refused_usage` and its error text keeps the provider's raw figures.

A timed-out call (read timeout or deadline after the request went out) may still have been billed: it is
booked at its hold with status `unreconciled` until `core.costs.reconcile.settle_unreconciled` asks the provider.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from core.costs.money import usd


class Booking(StrEnum):
    """Ledger statuses this module decides (besides the client's own: ok, http_429, timeout, ...)."""

    REFUSED_USAGE = "refused_usage"  # the provider's figures were not believable: booked at the hold
    UNRECONCILED = "unreconciled"  # no answer, maybe billed: booked at the hold until reconciled
    RECONCILED = "reconciled"  # an unreconciled call the provider has since answered for


COST_SOURCE_HOLD = "hold"  # the cost_source of a call booked at its hold

# A completion may overrun max_tokens by a little (tokenizer differences, a stop sequence); by this much, never.
COMPLETION_SLACK_FACTOR = 2
COMPLETION_SLACK_TOKENS = 64
# The console counts prompt tokens with its own tokenizer; a provider's count this far above it is not believable.
PROMPT_SLACK_FACTOR = 4
PROMPT_SLACK_TOKENS = 1000
# A reported cost this many times the worst case held for the call is refused (a price list is not that wrong).
ABSURD_COST_FACTOR = Decimal(10)


@dataclass(frozen=True)
class Verdict:
    accepted: bool
    reason: str = ""  # why the figures were refused, in words for the Spend page

    @classmethod
    def ok(cls) -> Verdict:
        return cls(True)


def _count(raw: dict[str, Any], key: str) -> tuple[int | None, str]:
    if key not in raw or raw[key] is None:
        return None, f"{key} is missing"
    value = raw[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, f"{key} is not a number"
    if isinstance(value, float) and (not math.isfinite(value) or not value.is_integer()):
        return None, f"{key} is not a whole number"
    if value < 0:
        return None, f"{key} is negative"
    return int(value), ""


def _cost(raw: dict[str, Any]) -> tuple[Decimal | None, str]:
    value = raw.get("cost")
    if value is None:
        return None, ""
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        return None, "cost is not a number"
    try:
        cost = Decimal(str(value))
    except InvalidOperation:
        return None, "cost is not a number"
    if not cost.is_finite():
        return None, "cost is not a finite number"
    if cost < 0:
        return None, "cost is negative"
    return cost, ""


def check_usage(
    usage: Any, *, prompt_counted: int, max_tokens: int, worst_case: Decimal, expect_cost: bool
) -> Verdict:
    """Whether the provider's `usage` object can be booked. `expect_cost`: the provider always sends
    `usage.cost` (OpenRouter, the simulator); OpenAI-compatible servers send tokens only."""
    if not isinstance(usage, dict) or not usage:
        return Verdict(False, "the answer has no usage figures")
    prompt, why = _count(usage, "prompt_tokens")
    if prompt is None:
        return Verdict(False, why)
    completion, why = _count(usage, "completion_tokens")
    if completion is None:
        return Verdict(False, why)
    if completion > max_tokens * COMPLETION_SLACK_FACTOR + COMPLETION_SLACK_TOKENS:
        return Verdict(False, f"completion_tokens {completion} is far above the {max_tokens} max_tokens asked for")
    if prompt > prompt_counted * PROMPT_SLACK_FACTOR + PROMPT_SLACK_TOKENS:
        return Verdict(False, f"prompt_tokens {prompt} is far above the {prompt_counted} counted before sending")
    cost, why = _cost(usage)
    if why:
        return Verdict(False, why)
    if cost is None:
        return Verdict(False, "cost is missing") if expect_cost else Verdict.ok()
    if worst_case > 0 and cost > worst_case * ABSURD_COST_FACTOR:
        return Verdict(False, f"cost {usd(cost)} is more than {ABSURD_COST_FACTOR} times the {usd(worst_case)} "
                              "worst case")
    return Verdict.ok()


def raw_figures(usage: Any) -> str:
    """The provider's usage as it came, for the ledger's error text (bounded)."""
    try:
        text = json.dumps(usage, sort_keys=True, default=str)
    except (TypeError, ValueError):
        text = repr(usage)
    return text[:300]
