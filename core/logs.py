"""Structured logs (one JSON object per line) with secrets scrubbed before anything is written.

Prospect data and model text are not logged at all; events carry ids, counts, durations and error kinds.
The scrubber is a last line of defence: any text that looks like an API key or a bearer token is masked.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from datetime import UTC, datetime
from typing import Any

_SECRET_RE = re.compile(r"(sk-or-v1-[A-Za-z0-9]+|sk-[A-Za-z0-9_\-]{16,}|Bearer\s+[A-Za-z0-9._\-]+)")


def scrub(text: str) -> str:
    out = _SECRET_RE.sub("[redacted]", text)
    for name in ("OPENROUTER_API_KEY", "LLM_API_KEY"):
        value = os.environ.get(name)
        if value and len(value) >= 8:
            out = out.replace(value, "[redacted]")
    return out


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        payload: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": scrub(record.getMessage()),
        }
        for key, value in getattr(record, "fields", {}).items():
            payload[key] = scrub(value) if isinstance(value, str) else value
        if record.exc_info:
            payload["error"] = scrub(self.formatException(record.exc_info))
        return json.dumps(payload, default=str)


def configure(level: str | None = None) -> None:
    """Send the engine's logs ("sam.*") to stderr as JSON lines; idempotent."""
    logger = logging.getLogger("sam")
    if any(isinstance(h.formatter, JsonFormatter) for h in logger.handlers):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    logger.addHandler(handler)
    logger.setLevel((level or os.environ.get("LOG_LEVEL", "INFO")).upper())
    logger.propagate = False


def event(logger: logging.Logger, message: str, **fields: Any) -> None:
    logger.info(message, extra={"fields": fields})
