"""Retirement notes keyed by model, so the Settings page puts each beside its model without parsing a sentence."""

from __future__ import annotations

from datetime import date

from core.costs.prices import retirement_notes, retirement_warnings

SONNET = "anthropic/claude-sonnet-4.5"


def test_notes_are_keyed_by_the_model_they_are_about() -> None:
    notes = retirement_notes([SONNET, "mistralai/mistral-7b-instruct"], date(2026, 11, 29))
    assert list(notes) == [SONNET]
    assert notes[SONNET].startswith(f"{SONNET} retires on 2026-11-30 (in 1 day)"), "one day, not one days"
    assert retirement_notes([SONNET], date(2026, 11, 30))[SONNET].endswith("(today); replacement: "
                                                                          "anthropic/claude-sonnet-5.5.")
    assert retirement_warnings([SONNET], date(2026, 11, 29)) == list(notes.values())
