"""Counts and codes as users read them: one helper, so "1 prospect" and "2 prospects" agree everywhere."""

from __future__ import annotations

import pytest

from core.wording import noun_for, plural, readable


@pytest.mark.parametrize(("count", "noun", "expected"), [
    (0, "prospect", "0 prospects"),
    (1, "prospect", "1 prospect"),
    (2, "prospect", "2 prospects"),
    (2000, "prospect", "2,000 prospects"),
    (1, "reply", "1 reply"),
    (3, "reply", "3 replies"),
    (2, "batch", "2 batches"),
    (1, "call", "1 call"),
])
def test_plural_agrees_with_the_count(count: int, noun: str, expected: str) -> None:
    assert plural(count, noun) == expected


def test_an_irregular_plural_can_be_given() -> None:
    assert plural(2, "datum", "data") == "2 data"
    assert noun_for(1, "datum", "data") == "datum"
    assert noun_for(2, "was") == "were"


@pytest.mark.parametrize(("code", "expected"), [
    ("do_not_contact", "Do not contact"),
    ("company_size", "Company size"),
    ("linkedin_url", "LinkedIn URL"),
    ("cost_usd", "Cost USD"),
    ("banned_phrases", "Banned phrases"),
    ("length", "Length"),
])
def test_codes_read_as_words(code: str, expected: str) -> None:
    assert readable(code) == expected
