"""The command line: `python -m core --help`. Thin over the engine modules; errors are one line on stderr."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Callable, Sequence

from core.cli import base as cli
from core.cli.base import CLIError, emit, fail


def cmd_spend(args: argparse.Namespace) -> None:
    from core.costs.spend import summary

    emit(summary(cli.app()), args.json)


def cmd_simulator(args: argparse.Namespace) -> None:
    from core.costs.prices import current_book
    from core.sim.simulator import Faults, Simulator

    rates: dict[int, float] = {}
    for spec in args.fault or []:
        try:
            status, rate = spec.split("=", 1)
            rates[int(status)] = float(rate)
        except ValueError:
            raise CLIError(f"--fault takes STATUS=RATE, e.g. 429=0.1; got {spec!r}") from None
    faults = Faults(latency_ms=args.latency_ms, jitter_ms=args.jitter_ms, error_rates=rates,
                    retry_after=args.retry_after, malformed_rate=args.malformed_rate, seed=args.seed)
    server = Simulator(current_book(), faults).serve(args.host, args.port)
    print(f"simulator listening on {server.url} (chat completions, GET /models, GET /key); Ctrl-C to stop",
          file=sys.stderr, flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        server.close()


def cmd_prices_list(args: argparse.Namespace) -> None:
    a = cli.app()
    emit({"book": "current", "prices": a.price_book().rows(a.routing.models())}, args.json)


def cmd_prices_refresh(args: argparse.Namespace) -> None:
    from core.costs.price_refresh import refresh_prices

    a = cli.app()
    result = asyncio.run(refresh_prices(a))
    emit(result, args.json)


def cmd_personalize(args: argparse.Namespace) -> None:
    from core.messages.personalize import options_for, parse_prospect_json, personalize_one

    fields = parse_prospect_json(args.prospect)
    a = cli.app()
    options = options_for(a, step=args.step, template_name=args.template, free_account=args.free_account or None)
    result = asyncio.run(personalize_one(a, fields, options))
    emit(result.as_json(), args.json)


def cmd_templates_list(args: argparse.Namespace) -> None:
    from core.messages.library import list_templates

    rows = [{"name": t.name, "step": t.step, "industry": t.industry, "size_band": t.size_band,
             "is_default": t.is_default, "text": t.text} for t in list_templates(cli.app(), args.step)]
    emit({"templates": rows}, args.json)


def cmd_templates_add(args: argparse.Namespace) -> None:
    from core.messages.library import add_template

    t = add_template(cli.app(), args.name, args.step, args.text, industry=args.industry, size_band=args.size_band)
    emit({"added": {"name": t.name, "step": t.step, "industry": t.industry, "size_band": t.size_band}}, args.json)


def cmd_scenario(args: argparse.Namespace) -> None:
    from core.costs.scenarios import all_premium_comparison, book_for, hybrid_table

    a = cli.app()
    book = book_for(a, args.book)
    table = hybrid_table(book)
    table["all_premium"] = all_premium_comparison(book)
    emit(table, args.json)


def cmd_hash_password(args: argparse.Namespace) -> None:
    import getpass

    from core.access import hash_password

    password = sys.stdin.readline().rstrip("\n") if args.stdin else getpass.getpass("Console password: ")
    emit({"CONSOLE_PASSWORD_HASH": hash_password(password)}, args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Sam Funnel cost console engine.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str,
            parent: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:
        p = (parent or sub).add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        return p

    add("spend", cmd_spend, "this month's spend against budget, with projections")

    sim = add("simulator", cmd_simulator, "serve the offline simulator on a loopback port")
    sim.add_argument("--host", default="127.0.0.1")
    sim.add_argument("--port", type=int, default=8765)
    sim.add_argument("--latency-ms", type=float, default=0.0)
    sim.add_argument("--jitter-ms", type=float, default=0.0)
    sim.add_argument("--fault", action="append", metavar="STATUS=RATE", help="inject errors, e.g. 429=0.1")
    sim.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on injected 429/503")
    sim.add_argument("--malformed-rate", type=float, default=0.0)
    sim.add_argument("--seed", type=int, default=0)

    prices = sub.add_parser("prices", help="the price book").add_subparsers(dest="prices_cmd", required=True)
    add("list", cmd_prices_list, "prices of every routed model and their sources", prices)
    add("refresh", cmd_prices_refresh, "read the provider's /models prices into overrides", prices)
    hp = add("hash-password", cmd_hash_password, "make a CONSOLE_PASSWORD_HASH for the console's password gate")
    hp.add_argument("--stdin", action="store_true", help="read the password from standard input")

    scen = add("scenario", cmd_scenario, "the seed's hybrid cost table recomputed from its volumes")
    scen.add_argument("--book", choices=("seed", "current"), default="current", help="price book")

    pers = add("personalize", cmd_personalize, "one prospect through the pipeline")
    pers.add_argument("--prospect", required=True, help="the prospect as a JSON object")
    pers.add_argument("--template", help="template name (default: chosen by rule)")
    pers.add_argument("--step", default="connection_request")
    pers.add_argument("--free-account", action="store_true", help="LinkedIn free account (200-character notes)")

    templates = sub.add_parser("templates", help="the template library").add_subparsers(dest="t_cmd", required=True)
    tl = add("list", cmd_templates_list, "list templates", templates)
    tl.add_argument("--step")
    ta = add("add", cmd_templates_add, "add a template (refused if its syntax or names are wrong)", templates)
    ta.add_argument("--name", required=True)
    ta.add_argument("--step", required=True)
    ta.add_argument("--text", required=True)
    ta.add_argument("--industry")
    ta.add_argument("--size-band")

    from core.cli.batches import register as register_batches

    register_batches(sub, add)
    from core.cli.replies import register as register_replies

    register_replies(sub, add)
    from core.cli.experiments import register as register_experiments

    register_experiments(sub, add)
    from core.cli.budget import register as register_budget

    register_budget(sub, add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.func(args)
    except CLIError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        fail("interrupted", 130)
    except BrokenPipeError:  # output piped into `head` and the like
        return 0
    except Exception as exc:  # one line, never a traceback, for anything the user can act on
        from core.config import ConfigError
        from core.llm.errors import LLMError
        from core.messages.templates import TemplateError
        from core.people.reading import UnreadableFile

        if isinstance(exc, ConfigError | LLMError | UnreadableFile | TemplateError | ValueError | LookupError
                      | OSError):
            fail(str(exc))
        raise
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
