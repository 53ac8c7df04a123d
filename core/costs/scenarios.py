"""Saved scenarios: a planner scenario stored by name (payload JSON in the `scenarios` table), loaded back,
listed and compared side by side, each priced with its own book.

What a scenario is and how it is priced is `core.costs.planner`; the original cost plan checked is
`core.costs.original_plan`.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from core.app import App
from core.costs.original_plan import require_price
from core.costs.planner import BOOKS, ScenarioInput, annual_cost
from core.costs.prices import PriceBook, seed_book
from core.store.db import session_scope
from core.store.models import Scenario

MAX_NAME_LENGTH = 80


def book_for(app: App, which: str) -> PriceBook:
    """The named price book: "current" (live, with refreshed prices) or "seed" (the seed's own rates)."""
    if which == "current":
        return app.price_book()
    if which == "seed":
        return seed_book(app.settings.data_dir)
    raise ValueError(f"unknown price book {which!r}; choose one of: {', '.join(BOOKS)}")


def clean_name(name: Any) -> str:
    """A scenario name as stored: trimmed, 1..80 printable characters."""
    if not isinstance(name, str):
        raise ValueError("a scenario name must be text")
    cleaned = name.strip()
    if not cleaned:
        raise ValueError("give the scenario a name")
    if len(cleaned) > MAX_NAME_LENGTH:
        raise ValueError(f"a scenario name can have at most {MAX_NAME_LENGTH} characters (this one has {len(cleaned)})")
    if any(unicodedata.category(ch).startswith("C") for ch in cleaned):
        raise ValueError("a scenario name cannot contain control or invisible formatting characters")
    return cleaned


def save_scenario(app: App, name: str, scenario: ScenarioInput) -> str:
    """Store `scenario` under a new name; returns the stored (trimmed) name."""
    cleaned = clean_name(name)
    book = book_for(app, scenario.book)
    for plan in scenario.tasks.values():
        require_price(book, plan.model)
    duplicate = ValueError(f"a scenario named {cleaned!r} already exists; choose another name or delete it first")
    try:
        with session_scope(app.engine) as s:
            if s.exec(select(Scenario).where(Scenario.name == cleaned)).first() is not None:
                raise duplicate
            s.add(Scenario(name=cleaned, payload=scenario.to_payload()))
    except IntegrityError as exc:  # a concurrent save won the race for the name
        raise duplicate from exc
    return cleaned


def _row(app: App, name: str) -> Scenario:
    with session_scope(app.engine) as s:
        row = s.exec(select(Scenario).where(Scenario.name == name)).first()
    if row is None:
        raise ValueError(f"no saved scenario named {name!r}")
    return row


def load_scenario(app: App, name: str) -> ScenarioInput:
    row = _row(app, name)
    try:
        return ScenarioInput.from_payload(row.payload)
    except ValueError as exc:
        raise ValueError(f"saved scenario {name!r} cannot be read: {exc}") from exc


@dataclass(frozen=True)
class SavedScenario:
    name: str  # typed by a user: shown in widgets and tables, never in Markdown
    book: str
    messages_per_month: int | None
    review_rate: str | None
    saved_at: str  # UTC, ISO


def list_scenarios(app: App) -> list[SavedScenario]:
    """Saved scenarios, oldest first."""
    with session_scope(app.engine) as s:
        rows = s.exec(select(Scenario).order_by(Scenario.created_at, Scenario.id)).all()
    return [SavedScenario(r.name, str(r.payload.get("book", "")), r.payload.get("messages_per_month"),
                          r.payload.get("review_rate"), r.created_at.isoformat(timespec="seconds")) for r in rows]


def delete_scenario(app: App, name: str) -> None:
    row = _row(app, name)
    with session_scope(app.engine) as s:
        stored = s.get(Scenario, row.id)
        if stored is not None:
            s.delete(stored)


@dataclass(frozen=True)
class ComparedScenario:
    scenario: str
    book: str
    messages_per_month: int
    review_rate: Decimal
    annual_tokens: Decimal
    annual_by_task: dict[str, Decimal]  # task id -> USD a year
    annual_usd: Decimal


def compare(app: App, names: Sequence[str]) -> list[ComparedScenario]:
    """One row per named scenario, each priced with its own book: volumes, annual USD per task and total."""
    rows = []
    for name in dict.fromkeys(names):
        scenario = load_scenario(app, name)
        result = annual_cost(scenario, book_for(app, scenario.book))
        rows.append(ComparedScenario(name, result.book, scenario.messages_per_month, scenario.review_rate,
                                     result.annual_tokens, {t.task: t.annual_usd for t in result.tasks},
                                     result.annual_usd))
    return rows
