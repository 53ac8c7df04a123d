"""How good is a reply classifier: precision, recall and the confusion matrix on labelled replies.

`evaluate` scores any (true, predicted) pairs, from the rules or a model; `load_labelled` reads the labelled
set shipped in `data/replies_labelled.csv`; `ProviderEvaluation` is what running that set through the active
provider measured (an evaluation batch: `core.batches.kinds.evaluation`).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from core.replies.categories import CATEGORIES

LABELLED_FILE = "replies_labelled.csv"


@dataclass(frozen=True)
class CategoryScore:
    precision: float  # of the replies predicted this category, the share truly it
    recall: float  # of the replies truly this category, the share predicted it
    support: int  # how many are truly this category


@dataclass(frozen=True)
class Evaluation:
    """How a classifier did on labelled replies.

    `per_category[c]` is the `CategoryScore` of category c (every category present). A ratio whose
    denominator is zero (nothing predicted c, or nothing is truly c) is reported as 0.0, as is the
    accuracy of an empty evaluation. `confusion[true][predicted]` counts replies, with all 8x8 keys present.
    """

    n: int
    accuracy: float
    per_category: dict[str, CategoryScore]
    confusion: dict[str, dict[str, int]]


def evaluate(pairs: Iterable[tuple[str, str]]) -> Evaluation:
    """Score (true category, predicted category) pairs; ValueError names the first pair that is not one."""
    confusion = {true: dict.fromkeys(CATEGORIES, 0) for true in CATEGORIES}
    n = 0
    for index, pair in enumerate(pairs, start=1):
        try:
            true, predicted = pair
        except (TypeError, ValueError):
            raise ValueError(f"pair {index}: expected (true, predicted), got {pair!r}") from None
        for role, value in (("true", true), ("predicted", predicted)):
            if value not in confusion:
                raise ValueError(
                    f"pair {index}: unknown {role} category {value!r}; expected one of {', '.join(CATEGORIES)}"
                )
        confusion[true][predicted] += 1
        n += 1
    correct = sum(confusion[c][c] for c in CATEGORIES)
    per_category: dict[str, CategoryScore] = {}
    for category in CATEGORIES:
        support = sum(confusion[category].values())
        predicted_total = sum(confusion[true][category] for true in CATEGORIES)
        hits = confusion[category][category]
        per_category[category] = CategoryScore(
            precision=hits / predicted_total if predicted_total else 0.0,
            recall=hits / support if support else 0.0,
            support=support,
        )
    return Evaluation(
        n=n,
        accuracy=correct / n if n else 0.0,
        per_category=per_category,
        confusion=confusion,
    )


_LABELLED_COLUMNS = ("text", "category", "received")


def load_labelled(path: Path) -> list[tuple[str, str, date | None]]:
    """Read a labelled-replies CSV (UTF-8, header `text,category,received`; received is YYYY-MM-DD or empty).

    Raises ValueError naming the file and line for a missing column, an unknown category or a bad date.
    """
    path = Path(path)
    rows: list[tuple[str, str, date | None]] = []
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.DictReader(handle)
            header = reader.fieldnames or []
            missing = [column for column in _LABELLED_COLUMNS if column not in header]
            if missing:
                raise ValueError(
                    f"{path}: line 1: header must contain {', '.join(_LABELLED_COLUMNS)}; missing {', '.join(missing)}"
                )
            for record in reader:
                line = reader.line_num
                text = record.get("text") or ""
                category = (record.get("category") or "").strip()
                if category not in CATEGORIES:
                    raise ValueError(
                        f"{path}: line {line}: unknown category {category!r}; expected one of {', '.join(CATEGORIES)}"
                    )
                raw_date = (record.get("received") or "").strip()
                received: date | None = None
                if raw_date:
                    try:
                        received = date.fromisoformat(raw_date)
                    except ValueError:
                        raise ValueError(
                            f"{path}: line {line}: received {raw_date!r} is not a date like 2025-03-14"
                        ) from None
                rows.append((text, category, received))
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    except csv.Error as exc:
        raise ValueError(f"{path}: malformed CSV: {exc}") from None
    return rows


# --------------------------------------------------------------------------------------------------------
# Evaluation of the active provider
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProviderEvaluation(Evaluation):
    """`Evaluation` of the active provider on the labelled replies, with what it cost.

    Predictions are the routed categories (low confidence counts as unclear). Replies the provider failed
    on are left out (`errors`); `stopped` says why a run ended early (the budget, a cancel)."""

    provider: str = ""
    labelled: int = 0
    models: dict[str, int] = field(default_factory=dict)
    cost_usd: Decimal = Decimal(0)
    input_tokens: int = 0
    output_tokens: int = 0
    fallbacks: int = 0
    errors: list[str] = field(default_factory=list)
    stopped: str = ""

    def as_json(self) -> dict[str, Any]:
        return {"n": self.n, "labelled": self.labelled, "accuracy": self.accuracy,
                "per_category": {c: asdict(score) for c, score in self.per_category.items()},
                "confusion": self.confusion, "provider": self.provider,
                "models": self.models, "cost_usd": str(self.cost_usd), "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "unclear_fallbacks": self.fallbacks, "errors": self.errors,
                "stopped": self.stopped}

