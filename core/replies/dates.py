"""The day an out-of-office reply says its writer is back, read from the text in five languages.

Used when the model names no return date (or one before the reply arrived), and by the rule classifier; see
`extract_return_date` for what is understood. The text is folded (`cleaning.fold`) so one pattern covers
accents and case; every regular expression is linear on the capped input.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta

from core.replies.cleaning import clean_reply, fold


def _numbered_names(groups: tuple[str, ...], start: int) -> dict[str, int]:
    """{"january": 1, "jan": 1, ...} from space-separated synonyms, one group per number."""
    return {name: number for number, names in enumerate(groups, start=start) for name in names.split()}


# Folded month and weekday names in English, German, French, Spanish and Portuguese.
MONTHS: dict[str, int] = _numbered_names(
    (
        "january jan januar janner janvier enero janeiro",
        "february feb februar fevrier febrero fevereiro",
        "march mar marz marzo mars marco",
        "april apr avril abril",
        "may mai mayo maio",
        "june jun juni juin junio junho",
        "july jul juli juillet julio julho",
        "august aug aout agosto",
        "september sep sept septembre septiembre setiembre setembro",
        "october oct oktober octobre octubre outubro",
        "november nov novembre noviembre novembro",
        "december dec dezember decembre diciembre dezembro",
    ),
    start=1,
)
MONTH_ALT = "|".join(sorted(MONTHS, key=len, reverse=True))

WEEKDAYS: dict[str, int] = _numbered_names(
    (
        "monday montag lundi lunes segunda-feira",
        "tuesday dienstag mardi martes terca-feira",
        "wednesday mittwoch mercredi miercoles quarta-feira",
        "thursday donnerstag jeudi jueves quinta-feira",
        "friday freitag vendredi viernes sexta-feira",
        "saturday samstag samedi sabado",
        "sunday sonntag dimanche domingo",
    ),
    start=0,  # date.weekday(): Monday is 0
)
WEEKDAY_ALT = "|".join(sorted(WEEKDAYS, key=len, reverse=True))

_ISO_DATE_RE = re.compile(r"\b(\d{4})-(\d{1,2})-(\d{1,2})\b")
_DAY_MONTH_RE = re.compile(
    r"\b(\d{1,2})(?:st|nd|rd|th|er|º|o)?\.?\s*(?:de\s+|of\s+)?(" + MONTH_ALT + r")\b\.?"
    r"(?:,?\s*(?:de\s+)?(\d{4})\b)?"
)
_MONTH_DAY_RE = re.compile(r"\b(" + MONTH_ALT + r")\.?\s+(\d{1,2})(?:st|nd|rd|th)?\b(?!:)(?:,?\s*(\d{4})\b)?")
# 12/03, 12.03., 12/03/2025, 12.3.25 -- but not times ("3.30pm", "15.30 Uhr") or version-like runs.
_NUMERIC_DATE_RE = re.compile(
    r"(?<![\d/.:])(\d{1,2})([/.])(\d{1,2})(?:\2(\d{4}|\d{2}))?(?![\d/]|\.\d|\s?(?:am|pm|h\b|uhr|%))"
)
_WEEKDAY_RE = re.compile(r"\b(" + WEEKDAY_ALT + r")\b")
_TOMORROW_RE = re.compile(r"\b(?:tomorrow|demain)\b")
# Words that introduce the end of an absence; a date right after one of them is the return date.
_RETURN_CUE_RE = re.compile(
    r"\b(?:until|till|til|through|thru|back|return|returning|returns|bis|zuruck|wieder|ab"
    r"|jusqu'?a[u]?|retour|hasta|regreso|regresare|vuelvo|volvere|ate|volto|retorno|retorna)\b"
)


def _reference_day(received: date | None) -> date:
    return received if received is not None else datetime.now(UTC).date()


def _make_date(year: int | None, month: int, day: int, reference: date) -> date | None:
    try:
        if year is not None:
            return date(year + 2000 if year < 100 else year, month, day)
        candidate = date(reference.year, month, day)
        if candidate < reference:
            candidate = date(reference.year + 1, month, day)
        return candidate
    except ValueError:  # 31/02, 29 February in a common year, month 13
        return None


def _explicit_dates(folded: str, reference: date) -> list[tuple[int, date]]:
    found: list[tuple[int, int, date]] = []

    def add(start: int, end: int, value: date | None) -> None:
        if value is None:
            return
        if any(start < other_end and other_start < end for other_start, other_end, _ in found):
            return  # already covered by a more specific format
        found.append((start, end, value))

    for m in _ISO_DATE_RE.finditer(folded):
        add(m.start(), m.end(), _make_date(int(m.group(1)), int(m.group(2)), int(m.group(3)), reference))
    for m in _DAY_MONTH_RE.finditer(folded):
        year = int(m.group(3)) if m.group(3) else None
        add(m.start(), m.end(), _make_date(year, MONTHS[m.group(2)], int(m.group(1)), reference))
    for m in _MONTH_DAY_RE.finditer(folded):
        year = int(m.group(3)) if m.group(3) else None
        add(m.start(), m.end(), _make_date(year, MONTHS[m.group(1)], int(m.group(2)), reference))
    for m in _NUMERIC_DATE_RE.finditer(folded):
        first_text, separator, second_text, year_text = m.groups()
        dotted_short = separator == "." and not year_text and not folded.startswith(".", m.end())
        if dotted_short and (len(first_text) < 2 or len(second_text) < 2):
            continue  # "2.5" is a number; "4.5." and "04.05" are dates
        first, second = int(first_text), int(second_text)
        day, month = (second, first) if second > 12 >= first else (first, second)
        year = int(year_text) if year_text else None
        add(m.start(), m.end(), _make_date(year, month, day, reference))
    return sorted((start, value) for start, _end, value in found)


def _pick_return(folded: str, candidates: list[tuple[int, date]]) -> date | None:
    if not candidates:
        return None
    for start, value in candidates:
        if _RETURN_CUE_RE.search(folded[max(0, start - 40) : start]):
            return value
    return candidates[-1][1]  # "from 2 to 9 May": the last date named ends the absence


def extract_from_folded(folded: str, received: date | None) -> date | None:
    reference = _reference_day(received)
    explicit = _pick_return(folded, _explicit_dates(folded, reference))
    if explicit is not None:
        return explicit
    relative: list[tuple[int, date]] = []
    for m in _WEEKDAY_RE.finditer(folded):
        ahead = (WEEKDAYS[m.group(1)] - reference.weekday()) % 7 or 7
        relative.append((m.start(), reference + timedelta(days=ahead)))
    for m in _TOMORROW_RE.finditer(folded):
        relative.append((m.start(), reference + timedelta(days=1)))
    return _pick_return(folded, sorted(relative))


def extract_return_date(text: str, received: date | None = None) -> date | None:
    """The date a reply says its writer is back, or None when it names none.

    Understood: ISO dates (2025-03-12); day and month name in English, German, French, Spanish and
    Portuguese ("12 March", "12th of March", "12. März", "1er mars", "12 de marzo de 2025"); month name
    then day ("March 12th, 2025"); numeric dates ("12/03", "12.03.2025"), read day-first as in most of
    Europe unless the second number cannot be a month ("03/25" is 25 March); weekday names ("back on
    Monday") and "tomorrow", counted forward from `received` (a weekday equal to the received day means a
    week later). Explicit dates beat weekday names, so "returning Monday 4 November" gives 4 November.

    When several dates appear, the first one after a cue such as "until", "back", "returning", "bis",
    "jusqu'au", "hasta" or "até" wins, otherwise the last one. "Until 3 March" gives 3 March as written.
    A date without a year that falls before `received` moves to the next year. When `received` is None,
    today's UTC date is the reference. Impossible dates (31/02) are ignored.
    """
    folded, _ = fold(clean_reply(text))
    return extract_from_folded(folded, received)
