"""Shared plumbing of the command line: JSON output, one-line errors, the engine handle, and the shape of the
`add` helper every verb group's `register(sub, add)` receives from `core.__main__.build_parser`."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from decimal import Decimal
from typing import Any, NoReturn

from core.app import App
from core.config import load_settings
from core.demo import open_demo_app

# add(name, func, help, parent=None) -> the verb's parser (with --json), under `parent` or the top level.
AddCommand = Callable[..., argparse.ArgumentParser]


class CLIError(Exception):
    """A problem the user can fix: printed as one line on stderr, exit code 2."""


def emit(payload: Any, as_json: bool) -> None:
    if as_json:
        print(json.dumps(payload, default=_default, ensure_ascii=False, indent=2))
    elif isinstance(payload, dict):
        for key, value in payload.items():
            shown = json.dumps(value, default=_default, ensure_ascii=False) if isinstance(value, dict | list) else value
            print(f"{key}: {shown}")
    else:
        print(payload)


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def fail(message: str, code: int = 2) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(code)


_app: App | None = None


def app() -> App:
    global _app
    if _app is None:
        _app = open_demo_app(load_settings())
    return _app
