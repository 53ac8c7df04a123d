"""Context summaries reused per company, so a company with long news costs one summary per process."""

from __future__ import annotations

import threading


class SummaryCache:
    def __init__(self) -> None:
        self._items: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()

    def get(self, company: str, text: str) -> str | None:
        with self._lock:
            return self._items.get((company.casefold(), text))

    def put(self, company: str, text: str, summary: str) -> None:
        with self._lock:
            self._items[(company.casefold(), text)] = summary
