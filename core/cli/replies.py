"""The reply commands of `python -m core`: classify one reply, import a reply file, evaluate the provider.

Thin over the `core.replies` package; `register(sub, add)` is called from `core.__main__.build_parser`. A run stopped by
the month's budget prints its JSON and the reason, then exits with code 3, so scripts can tell it apart.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date
from pathlib import Path
from typing import Any

from core.cli import base as cli
from core.cli.base import AddCommand, CLIError, emit

BUDGET_STOP_EXIT = 3



def _received(raw: str | None) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise CLIError(f"--received takes a date like 2025-03-14; got {raw!r}") from None


def _stop_if_budget(stopped: str) -> None:
    if stopped:
        print(f"warning: {stopped}", file=sys.stderr)
        raise SystemExit(BUDGET_STOP_EXIT)


def cmd_classify(args: argparse.Namespace) -> None:
    from core.replies.classify import classify_text

    text = sys.stdin.read() if args.text == "-" else args.text
    result = classify_text(cli.app(), text, _received(args.received))
    emit(result.as_json(), args.json)


def cmd_replies_import(args: argparse.Namespace) -> None:
    from core.replies.classify import classify_replies
    from core.replies.importing import import_replies

    path = Path(args.file)
    if not path.is_file():
        raise CLIError(f"no such file: {path}")
    a = cli.app()
    report = import_replies(a, path.read_bytes())
    payload: dict[str, Any] = report.as_json()
    stopped = ""
    if args.classify:
        run = classify_replies(a, report.reply_ids)
        payload["classification"] = run.as_json()
        stopped = run.stopped
    emit(payload, args.json)
    _stop_if_budget(stopped)


def cmd_replies_classify(args: argparse.Namespace) -> None:
    from core.replies.classify import classify_replies

    run = classify_replies(cli.app())
    emit(run.as_json(), args.json)
    _stop_if_budget(run.stopped)


def cmd_replies_eval(args: argparse.Namespace) -> None:
    from core.batches.foreground import evaluate_provider

    result = evaluate_provider(cli.app(), Path(args.file) if args.file else None)
    emit(result.as_json(), args.json)
    _stop_if_budget(result.stopped)


def register(sub: argparse._SubParsersAction, add: AddCommand) -> None:
    """Add `classify` and `replies {import,classify,eval}` to the top-level parser."""
    one = add("classify", cmd_classify, "classify one reply and show its category, confidence and next action")
    one.add_argument("text", help='the reply text ("-" reads it from stdin)')
    one.add_argument("--received", help="the day it arrived (YYYY-MM-DD); anchors 'back Monday'")

    replies = sub.add_parser("replies", help="prospects' replies").add_subparsers(dest="replies_cmd", required=True)
    imp = add("import", cmd_replies_import, "import a CSV of replies (identity, text, received)", replies)
    imp.add_argument("file", help="CSV with linkedin_url / email / identity, text and received columns")
    imp.add_argument("--classify", action="store_true", help="classify and route the imported replies now")
    add("classify", cmd_replies_classify, "classify and route every pending reply, under the budget", replies)
    ev = add("eval", cmd_replies_eval, "accuracy of the active provider on the labelled replies", replies)
    ev.add_argument("--file", help="labelled CSV (text,category,received); default data/replies_labelled.csv")
