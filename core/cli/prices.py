"""`python -m core prices {list,refresh}`: the price book of every routed model, and reading the provider's
/models prices into overrides (`core.costs.price_refresh`)."""

from __future__ import annotations

import argparse
import asyncio

from core.cli import base as cli
from core.cli.base import AddCommand, emit


def cmd_prices_list(args: argparse.Namespace) -> None:
    a = cli.app()
    emit({"book": "current", "prices": [r.as_json() for r in a.price_book().rows(a.routing.models())]}, args.json)


def cmd_prices_refresh(args: argparse.Namespace) -> None:
    from core.costs.price_refresh import refresh_prices

    emit(asyncio.run(refresh_prices(cli.app())).as_json(), args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    prices = sub.add_parser("prices", help="the price book").add_subparsers(dest="prices_cmd", required=True)
    add("list", cmd_prices_list, "prices of every routed model and their sources", prices)
    add("refresh", cmd_prices_refresh, "read the provider's /models prices into overrides", prices)
