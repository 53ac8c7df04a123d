"""Fetching one row by primary key or refusing with a sentence: the one get-or-raise.

Why this module exists: replies, experiments, approvals and batches each wrote
``x = s.get(Model, id); if x is None: raise ...`` with their own wording. Here the wording is one
("no reply with id 7") and each caller keeps its own exception type (``BatchError``, ``ReviewError``...).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TypeVar

from sqlmodel import Session, SQLModel

__all__ = ["get_or_raise"]

Row = TypeVar("Row", bound=SQLModel)


def _label(model: type[SQLModel]) -> str:
    """``Reply`` -> "reply", ``PriceOverride`` -> "price override"."""
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", model.__name__).lower()


def get_or_raise(s: Session, model: type[Row], key: int | str,
                 error: Callable[[str], Exception] = LookupError) -> Row:
    """The ``model`` row whose primary key is ``key``; else raise ``error("no <model> with id <key>")``."""
    row = s.get(model, key)
    if row is None:
        raise error(f"no {_label(model)} with id {key}")
    return row
