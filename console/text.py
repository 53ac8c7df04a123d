"""Formatting for the pages: money, counts with agreeing nouns, codes as readable words.

Why it exists: pages show figures and codes the engine hands them; the words are made in `core.wording`
(shared with the CLI) and re-exported here so a page imports its formatting from one place.
"""

from __future__ import annotations

from core.wording import noun_for, plural, readable

__all__ = ["noun_for", "plural", "readable", "usd"]


def usd(value: object, places: int = 2) -> str:
    """An amount in dollars with thousands separators: usd(12000) == "$12,000.00"."""
    return f"${float(value):,.{places}f}"  # type: ignore[arg-type]
