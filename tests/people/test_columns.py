"""One matcher for CSV headers: prospects, replies and experiment outcomes read a header the same way."""

from __future__ import annotations

import pytest

from core.experiments.outcomes import _outcome_columns
from core.people.columns import find_column, header_key, suggest_mapping

SPELLINGS_OF_SENT_AT = ["sent_at", "Sent At", "SentAt", "sent-at", " SENT_AT ", "sentAt"]


@pytest.mark.parametrize("header", SPELLINGS_OF_SENT_AT)
def test_header_key_ignores_case_spaces_and_punctuation(header: str) -> None:
    assert header_key(header) == "sentat"


def test_find_column_prefers_the_earlier_spelling_then_the_leftmost_header() -> None:
    assert find_column(["Body", "Reply Text", "reply_text"], ("replytext", "body")) == 1
    assert find_column(["Body", "Notes"], ("replytext", "body")) == 0
    assert find_column(["Notes"], ("replytext", "body")) is None


@pytest.mark.parametrize("header", SPELLINGS_OF_SENT_AT)
def test_outcome_import_reads_every_spelling_of_a_header(header: str) -> None:
    columns = _outcome_columns(["LinkedIn Profile", header, "Accepted"], "accepted", "acceptance")
    assert columns == {"linkedin_url": 0, "sent_at": 1, "accepted": 2}


def test_prospect_mapping_uses_the_same_key() -> None:
    assert suggest_mapping(["FIRST-NAME", "Company Name"]) == {"first_name": "FIRST-NAME",
                                                              "company_name": "Company Name"}
