"""`python -m core scenario`: the original cost plan's hybrid cost table recomputed from its volumes, beside
the all-premium comparison (`core.costs.original_plan`), at the original plan's prices or today's."""

from __future__ import annotations

import argparse

from core.cli import base as cli
from core.cli.base import AddCommand, emit


def cmd_scenario(args: argparse.Namespace) -> None:
    from core.costs.original_plan import all_premium_comparison, hybrid_table
    from core.costs.scenarios import book_for

    book = book_for(cli.app(), "seed" if args.book == "original" else args.book)  # "seed": the book's internal name
    table = hybrid_table(book).as_json()
    table["all_premium"] = all_premium_comparison(book).as_json()
    emit(table, args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    scen = add("scenario", cmd_scenario, "the original cost plan's hybrid cost table recomputed from its volumes")
    scen.add_argument("--book", choices=("original", "current"), default="current",
                      help="price book: the original cost plan's own rates, or current prices")
