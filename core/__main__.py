"""The command line: `python -m core --help`. Thin over the engine modules; errors are one line on stderr.

Each verb group lives in `core.cli.<group>` and adds its verbs with `register(sub, add)`; this module only
builds the parser from them and turns errors into one line.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence

from core.cli import access, batches, budget, experiments, personalize, prices, replies, scenarios, simulator, spend
from core.cli import templates as templates_cli
from core.cli.base import CLIError, fail

# In the order `--help` lists them.
GROUPS = (spend, simulator, prices, access, scenarios, personalize, templates_cli, batches, replies, experiments,
          budget)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m core", description="Sam Funnel cost console engine.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], None], help_: str,
            parent: argparse._SubParsersAction | None = None) -> argparse.ArgumentParser:  # type: ignore[type-arg]
        p = (parent or sub).add_parser(name, help=help_, description=help_)
        p.set_defaults(func=func)
        p.add_argument("--json", action="store_true", help="print one JSON object")
        return p

    for group in GROUPS:
        group.register(sub, add)
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
