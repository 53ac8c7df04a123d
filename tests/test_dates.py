"""One reading of dates in uploaded files: core.dates.parse_moment, used by the replies and outcomes imports."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from core.dates import parse_moment
from core.experiments.outcomes import parse_sent
from core.replies.importing import parse_received

MOMENTS = {
    "2025-03-14": datetime(2025, 3, 14, tzinfo=UTC),
    " 2025-03-14 ": datetime(2025, 3, 14, tzinfo=UTC),
    "2025-03-14T09:30:00": datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
    "2025-03-14 09:30": datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
    "2025-03-14T09:30:00Z": datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
    "2025-03-14T11:30:00+02:00": datetime(2025, 3, 14, 9, 30, tzinfo=UTC),
    "20250314": datetime(2025, 3, 14, tzinfo=UTC),
}
NOT_MOMENTS = ["", "14/03/2025", "March 14", "2025-02-30", "yesterday"]
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "moment"), MOMENTS.items())
def test_both_imports_read_a_moment_alike(raw: str, moment: datetime) -> None:
    assert parse_moment(raw) == moment and parse_moment(raw).tzinfo is UTC
    assert parse_received(raw) == moment
    assert parse_sent(raw, NOW) == (moment, "")


@pytest.mark.parametrize("raw", NOT_MOMENTS)
def test_both_imports_refuse_what_is_not_a_moment(raw: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO date"):
        parse_moment(raw)
    with pytest.raises(ValueError, match="is not a date like 2025-03-14"):
        parse_received(raw)
    sent, why = parse_sent(raw, NOW)
    assert sent is None and why


def test_a_sent_date_in_the_future_is_refused() -> None:
    assert parse_sent((NOW + timedelta(days=2)).date().isoformat(), NOW)[1].endswith("is in the future")
