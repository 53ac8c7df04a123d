"""`python -m core personalize`: one prospect through the personalization ladder (`core.messages.personalize`),
for trying a template or a route on the command line; the call is reserved and logged like a batch's."""

from __future__ import annotations

import argparse
import asyncio

from core.cli import base as cli
from core.cli.base import AddCommand, emit


def cmd_personalize(args: argparse.Namespace) -> None:
    from core.messages.personalize import options_for, parse_prospect_json, personalize_one

    fields = parse_prospect_json(args.prospect)
    a = cli.app()
    options = options_for(a, step=args.step, template_name=args.template, free_account=args.free_account or None)
    emit(asyncio.run(personalize_one(a, fields, options)).as_json(), args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    pers = add("personalize", cmd_personalize, "one prospect through the pipeline")
    pers.add_argument("--prospect", required=True, help="the prospect as a JSON object")
    pers.add_argument("--template", help="template name (default: chosen by rule)")
    pers.add_argument("--step", default="connection_request")
    pers.add_argument("--free-account", action="store_true", help="LinkedIn free account (200-character notes)")
