"""The routing table: which model serves each task, with its fallbacks and generation limits.

Models are configuration (`data/routing.json`), never literals in code. A primary that has retired is
skipped in favour of the first live fallback, so the premium reviewer moves to its named replacement on the
retirement date without a code change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

from core import datafiles
from core.config import DATA_DIR
from core.costs.prices import retired

TASKS = ("personalize", "optimize_template", "context", "review", "classify_reply")


class RoutingError(ValueError):
    """The routing table is missing a task or has an invalid entry."""


@dataclass(frozen=True)
class Route:
    task: str
    model: str  # the model to ask first (after skipping retired ones)
    fallbacks: tuple[str, ...]  # live models to try after it, in order
    max_tokens: int
    temperature: float
    configured_model: str  # what the table names, for display when it differs from `model`

    @property
    def models(self) -> list[str]:
        return [self.model, *self.fallbacks]


@dataclass(frozen=True)
class RoutingTable:
    entries: dict[str, dict]
    data_dir: Path

    def route(self, task: str, today: date) -> Route:
        entry = self.entries.get(task)
        if entry is None:
            raise RoutingError(f"no route for task {task!r}; known tasks: {', '.join(sorted(self.entries))}")
        chain = [entry["model"], *entry.get("fallbacks", [])]
        gone = retired(chain, today, self.data_dir)
        live = [m for m in chain if m not in gone]
        if not live:
            raise RoutingError(f"every model routed for {task!r} has retired: {', '.join(chain)}")
        return Route(
            task=task,
            model=live[0],
            fallbacks=tuple(live[1:]),
            max_tokens=int(entry["max_tokens"]),
            temperature=float(entry["temperature"]),
            configured_model=entry["model"],
        )

    def models(self) -> list[str]:
        out: list[str] = []
        for entry in self.entries.values():
            for m in [entry["model"], *entry.get("fallbacks", [])]:
                if m not in out:
                    out.append(m)
        return out

    def routes(self, today: date) -> list[Route]:
        """Every task's route today (retired models skipped), in the table's order."""
        return [self.route(task, today) for task in self.entries]


def load_routing(data_dir: Path = DATA_DIR) -> RoutingTable:
    path = data_dir / "routing.json"
    try:
        raw = datafiles.read_json(path)
        entries = raw["routes"]
    except (OSError, ValueError, KeyError) as exc:
        raise RoutingError(f"cannot read routing table {path}: {exc}") from exc
    for task in TASKS:
        entry = entries.get(task)
        if not isinstance(entry, dict) or not isinstance(entry.get("model"), str):
            raise RoutingError(f"routing table {path} has no valid entry for task {task!r}")
        try:
            if int(entry["max_tokens"]) <= 0:
                raise ValueError("max_tokens must be positive")
            float(entry["temperature"])
        except (KeyError, TypeError, ValueError) as exc:
            raise RoutingError(f"routing entry {task!r} in {path}: {exc}") from exc
    return RoutingTable(entries=entries, data_dir=data_dir)
