"""The budget commands of `python -m core`: show the month's cap and where it comes from, set it, reconcile.

`budget set` is the command-line twin of the Spend page's budget form: a cap a person sets is kept for its
month even when MONTHLY_BUDGET_USD changes between starts (that value applies again from the next month), and
`budget show` says which one is in force and why. `budget reconcile` settles calls that timed out after they were
sent (booked at their hold until the provider says what it billed). `register(sub, add)` is called from
`core.__main__.build_parser`.
"""

from __future__ import annotations

import argparse
import asyncio
import re
from decimal import Decimal, InvalidOperation
from typing import Any

from core.cli import base as cli
from core.cli.base import AddCommand, CLIError, emit
from core.costs import budget
from core.store.models import money_str, month_of, utcnow

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _month(raw: str | None) -> str:
    if raw is None:
        return month_of(utcnow())
    if not _MONTH.match(raw.strip()):
        raise CLIError(f"--month takes a UTC calendar month like 2026-12; got {raw!r}")
    month = raw.strip()
    if month < month_of(utcnow()):
        raise CLIError(f"{month} is over: a past month's cap cannot be changed")
    return month


def _amount(raw: str) -> Decimal:
    try:
        amount = Decimal(raw.strip().lstrip("$").replace(",", ""))
    except InvalidOperation:
        raise CLIError(f"the budget must be an amount of USD like 50 or 1200.50; got {raw!r}") from None
    if not amount.is_finite() or amount < 0:
        raise CLIError(f"the budget must be a non-negative amount of USD; got {raw!r}")
    return amount.quantize(Decimal("0.01"))


def state_json(month: str | None = None) -> dict[str, Any]:
    """The month's cap, its source and the ladder, as `budget show --json` prints them."""
    a = cli.app()
    month = month or month_of(utcnow())
    info = a.cap_info(month)
    state = a.budget_state(month)
    return {**info.as_json(), "spent_usd": money_str(state.spent_usd), "reserved_usd": money_str(state.reserved_usd),
            "remaining_usd": money_str(state.remaining_usd), "level": state.level,
            "level_text": state.describe_level()}


def cmd_budget_show(args: argparse.Namespace) -> None:
    emit(state_json(_month(args.month)), args.json)


def cmd_budget_set(args: argparse.Namespace) -> None:
    month = _month(args.month)
    amount = _amount(args.amount)
    a = cli.app()
    before = a.budget_cap(month)
    a.set_budget_cap(amount, month, source=budget.CAP_FROM_CLI)
    emit({**state_json(month), "previous_cap_usd": money_str(before)}, args.json)


def cmd_budget_reconcile(args: argparse.Namespace) -> None:
    from core.costs.reconcile import settle_unreconciled

    run = asyncio.run(settle_unreconciled(cli.app()))
    emit(run.as_json(), args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:
    """Add `budget {show,set,reconcile}` to the top-level parser."""
    group = sub.add_parser("budget", help="the monthly budget").add_subparsers(dest="budget_cmd", required=True)
    show = add("show", cmd_budget_show, "the month's cap, who set it, and why MONTHLY_BUDGET_USD is or is not used",
               group)
    show.add_argument("--month", help="UTC month YYYY-MM (default: this month)")
    put = add("set", cmd_budget_set, "set the month's cap (kept for the month; MONTHLY_BUDGET_USD applies from "
              "the next)", group)
    put.add_argument("amount", help="USD, e.g. 50")
    put.add_argument("--month", help="UTC month YYYY-MM (default: this month)")
    add("reconcile", cmd_budget_reconcile, "settle calls that timed out after they were sent, by asking the provider",
        group)
