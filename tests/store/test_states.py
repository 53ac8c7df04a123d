"""Stored states are StrEnums: the code is what the database holds, `.label` what a person reads, and SQL lists
are built from the members."""

from __future__ import annotations

import pytest

from core.store.models import (
    FINAL_ITEM_STATES,
    OPEN_ITEM_STATES,
    BatchKind,
    BatchStatus,
    ItemState,
    LabelledEnum,
    MessageState,
    ReplyCategory,
    WorkerState,
)

STATES = [c for c in LabelledEnum.__subclasses__()]


def test_the_codes_users_saw_read_as_words() -> None:
    assert ReplyCategory.DO_NOT_CONTACT.label == "Do not contact"
    assert ItemState.REVIEW_FAILED.label == "Review failed"
    assert BatchStatus.PAUSED_BUDGET.label == "Paused: budget"
    assert BatchKind.VARIANTS.label == "Template variants"
    assert MessageState.NEEDS_DATA.label == "Held: needs data"
    assert WorkerState.SILENT.label == "Silent"


@pytest.mark.parametrize("enum", STATES, ids=lambda e: e.__name__)
def test_every_label_is_words_not_a_code(enum: type[LabelledEnum]) -> None:
    for member in enum:
        assert member.label and "_" not in member.label and member.label[0].isupper(), member
        assert enum.label_of(member.value) == member.label


def test_a_code_this_version_does_not_know_still_reads_as_words() -> None:
    assert BatchStatus.label_of("paused_for_lunch") == "Paused for lunch"
    assert ItemState.label_of("claimed") == "In progress"


def test_sql_lists_are_built_from_the_members() -> None:
    assert ItemState.sql(*OPEN_ITEM_STATES) == "('pending', 'claimed')"
    assert ItemState.sql(*FINAL_ITEM_STATES) == "('ready', 'fallback', 'needs_data', 'review_failed', 'failed')"
    assert BatchStatus.sql() == "(" + ", ".join(f"'{s.value}'" for s in BatchStatus) + ")"
    assert set(FINAL_ITEM_STATES) | set(OPEN_ITEM_STATES) == set(ItemState)
    assert {s.value for s in MessageState} <= {s.value for s in ItemState}, "a message's state is its item's"
