"""The eight categories a reply is sorted into, in one place: the rules, the model's schema, the routing table
and the metrics all name these codes, so a category added or renamed here is checked everywhere else; people
read them by their labels (`label`)."""

from __future__ import annotations

CATEGORIES: tuple[str, ...] = (
    "interested",
    "not_interested",
    "request_info",
    "schedule_call",
    "out_of_office",
    "wrong_person",
    "do_not_contact",
    "unclear",
)

PENDING = "pending"  # not classified yet: the review filter and count

_LABELS: dict[str, str] = {
    "interested": "Interested",
    "not_interested": "Not interested",
    "request_info": "Wants more information",
    "schedule_call": "Wants a call",
    "out_of_office": "Out of office",
    "wrong_person": "Wrong person",
    "do_not_contact": "Do not contact",
    "unclear": "Unclear: a person reads it",
    PENDING: "Not classified yet",
}


def label(category: str) -> str:
    """A category (or "pending") in a person's words; an unknown code is shown as it is."""
    return _LABELS.get(category, category)
