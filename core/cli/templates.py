"""`python -m core templates {list,add}`: the template library (`core.messages.library`); a template whose
syntax or names are wrong is refused with the reason."""

from __future__ import annotations

import argparse

from core.cli import base as cli
from core.cli.base import AddCommand, emit


def cmd_templates_list(args: argparse.Namespace) -> None:
    from core.messages.library import list_templates

    rows = [{"name": t.name, "step": t.step, "industry": t.industry, "size_band": t.size_band,
             "is_default": t.is_default, "text": t.text} for t in list_templates(cli.app(), args.step)]
    emit({"templates": rows}, args.json)


def cmd_templates_add(args: argparse.Namespace) -> None:
    from core.messages.library import add_template

    t = add_template(cli.app(), args.name, args.step, args.text, industry=args.industry, size_band=args.size_band)
    emit({"added": {"name": t.name, "step": t.step, "industry": t.industry, "size_band": t.size_band}}, args.json)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:  # type: ignore[type-arg]
    templates = sub.add_parser("templates", help="the template library").add_subparsers(dest="t_cmd", required=True)
    tl = add("list", cmd_templates_list, "list templates", templates)
    tl.add_argument("--step")
    ta = add("add", cmd_templates_add, "add a template (refused if its syntax or names are wrong)", templates)
    ta.add_argument("--name", required=True)
    ta.add_argument("--step", required=True)
    ta.add_argument("--text", required=True)
    ta.add_argument("--industry")
    ta.add_argument("--size-band")
