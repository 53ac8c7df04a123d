"""`python -m core spend`: this month's spend against the budget, with projections (`core.costs.spend`)."""

from __future__ import annotations

import argparse

from core.cli import base as cli
from core.cli.base import AddCommand, emit


def cmd_spend(args: argparse.Namespace) -> None:
    from core.costs.spend import summary

    emit(summary(cli.app()).as_json(), args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    add("spend", cmd_spend, "this month's spend against budget, with projections")
