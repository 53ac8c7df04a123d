"""The eight categories a reply is sorted into, in one place: the rules, the model's schema, the routing table
and the metrics all name these, so a category added or renamed here is checked everywhere else."""

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
