"""Structured logs (one JSON object per line) with secrets scrubbed before anything is written.

Prospect data and model text are not logged at all; events carry ids, counts, durations and error kinds.
The scrubber (:func:`scrub`, at home in `core.llm.secrets` and used from here) is the one place secrets are
removed from text: log lines, the LLM client's error texts (and so the ledger's and batch items' errors) and
reconciliation notes all go through it.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any

from core.llm.secrets import remember_secret, scrub

__all__ = ["JsonFormatter", "configure", "event", "remember_secret", "scrub"]


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
