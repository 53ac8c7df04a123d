"""Shared plumbing of the command line: JSON output, one-line errors, the engine handle."""

from __future__ import annotations

import json
import sys
from decimal import Decimal
from typing import Any, NoReturn

from core.app import App
from core.config import load_settings
from core.demo import open_demo_app


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
