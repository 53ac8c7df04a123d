"""The eight categories a reply is sorted into, as the rules, the model's schema, the routing table and the
metrics name them. The codes and their labels are `core.store.models.ReplyCategory` (one home for every stored
state); this module adds "pending", the review filter for replies not classified yet."""

from __future__ import annotations

from core.store.models import ReplyCategory

CATEGORIES: tuple[str, ...] = tuple(c.value for c in ReplyCategory)  # the codes, in the order pages show them

PENDING = "pending"  # not classified yet: the review filter and count


def label(category: str) -> str:
    """A category (or "pending") in a person's words; an unknown code is shown as it is, made readable."""
    return "Not classified yet" if category == PENDING else ReplyCategory.label_of(category)
