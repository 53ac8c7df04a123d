"""The registry of batch kinds: a batch's `kind` names one of these, and the run loop asks it, never an
`if kind == ...` branch, what its items are and how to work one (the protocol is `base.Kind`)."""

from __future__ import annotations

from core.batches.kinds.base import ItemKey, Kind, RunContext
from core.batches.kinds.classify import ClassifyKind
from core.batches.kinds.evaluation import EvaluationKind
from core.batches.kinds.personalize import PersonalizeKind
from core.batches.kinds.variants import VariantsKind
from core.batches.lifecycle import BatchError
from core.store.models import BatchKind

KINDS: dict[BatchKind, Kind] = {
    BatchKind.PERSONALIZE: PersonalizeKind(),
    BatchKind.CLASSIFY: ClassifyKind(),
    BatchKind.VARIANTS: VariantsKind(),
    BatchKind.EVALUATION: EvaluationKind(),
}


def kind_of(code: str) -> Kind:
    """The kind a batch's `kind` column names; BatchError for one this version does not know."""
    try:
        return KINDS[BatchKind(code)]
    except ValueError:
        raise BatchError(f"unknown batch kind {code!r}; kinds: {', '.join(KINDS)}") from None


__all__ = ["KINDS", "ItemKey", "Kind", "RunContext", "kind_of"]
