"""`python -m core scenario`: the original cost plan's hybrid cost table recomputed from its volumes, beside
the all-premium comparison (`core.costs.scenarios`), at the original plan's prices or today's."""

from __future__ import annotations

import argparse

from core.cli import base as cli
from core.cli.base import AddCommand, emit


def cmd_scenario(args: argparse.Namespace) -> None:
    from core.costs.scenarios import all_premium_comparison, book_for, hybrid_table

    book = book_for(cli.app(), args.book)
    table = hybrid_table(book)
    table["all_premium"] = all_premium_comparison(book)
    emit(table, args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    scen = add("scenario", cmd_scenario, "the original cost plan's hybrid cost table recomputed from its volumes")
    scen.add_argument("--book", choices=("seed", "current"), default="current", help="price book")
