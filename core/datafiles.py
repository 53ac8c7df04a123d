"""The one loader of the JSON configuration files in `data/` (routing, prices, lifecycle, reply routing,
markers, steps, templates).

Why this module exists: each file had its own caching policy (cached forever by path, cached by path and
modification time, or read on every call), so an edited file was seen by some readers and not by others
until a restart. Here every file is read through :func:`load`, cached by path, modification time and size:
an edited file is read again on the next call, an unchanged one costs a ``stat``. A parsed value is shared
between callers, so callers must not change it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["DataFileError", "load", "read_json"]

T = TypeVar("T")
_MAX_ENTRIES = 256  # tests make many small files; a long-running console reads about ten
_CACHE: dict[tuple[str, Callable[[Path, Any], Any] | None], tuple[tuple[int, int], Any]] = {}
_LOCK = threading.Lock()


class DataFileError(ValueError):
    """A data file is missing, unreadable or not valid JSON; ``str(e)`` names the file and the problem."""


def _stamp(path: str) -> tuple[int, int]:
    try:
        stat = os.stat(path)  # not Path.stat: routing asks for the lifecycle file on every call
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read the file ({exc.strerror})") from None
    return stat.st_mtime_ns, stat.st_size


def _parse_json(path: Path) -> Any:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataFileError(f"{path}: cannot read the file ({exc.strerror})") from None
    except UnicodeDecodeError as exc:
        raise DataFileError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataFileError(f"{path}: not valid JSON (line {exc.lineno}, column {exc.colno}): {exc.msg}") from None


def load(path: Path | str, parse: Callable[[Path, Any], T] | None = None) -> T | Any:
    """The JSON in ``path``, passed through ``parse(path, raw)`` when given (which validates and builds the
    typed value, raising ValueError that names the file); cached until the file changes."""
    name = os.fspath(path)
    stamp = _stamp(name)
    key = (name, parse)
    with _LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    path = Path(name)
    raw = _parse_json(path)
    value = raw if parse is None else parse(path, raw)
    with _LOCK:
        if len(_CACHE) >= _MAX_ENTRIES:
            _CACHE.clear()
        _CACHE[key] = (stamp, value)
    return value


def read_json(path: Path | str) -> Any:
    """The JSON in ``path`` as parsed (shared: do not change it); cached until the file changes."""
    return load(path)
