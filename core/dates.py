"""The one reading of a date or time written in an uploaded file (replies' received, outcomes' sent dates).

Why this module exists: the replies import and the experiment outcomes import each had their own parser,
with their own idea of what a date without a time or a time without an offset means. Here: an ISO date is
midnight UTC of that day, an ISO date-time without an offset is UTC, one with an offset (or ``Z``) is
converted to UTC. The callers word their own errors; this module only says whether the text is a moment.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

__all__ = ["parse_moment"]


def parse_moment(raw: str) -> datetime:
    """``raw`` (surrounding spaces ignored) as an aware UTC datetime; ValueError when it is not an ISO date
    (``2025-03-14``) or date-time (``2025-03-14T09:30:00Z``, ``2025-03-14 09:30+02:00``)."""
    text = raw.strip()
    try:
        day = date.fromisoformat(text)
    except ValueError:
        pass
    else:
        return datetime(day.year, day.month, day.day, tzinfo=UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"{text[:40]!r} is not an ISO date or date-time") from None
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
