"""What the columns of an uploaded file mean: header spellings, the prospect fields, company size.

Every CSV import matches its headers here, so "First Name", "first_name", "firstName" and "FIRST-NAME"
are the same column everywhere (prospects, replies, experiment outcomes): :func:`header_key` is the one
normaliser and :func:`find_column` the one matcher. :func:`custom_key` names an unmapped column as a
template variable. :func:`parse_company_size` is the one reading of a headcount ("1k", "51-200").
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from decimal import Decimal, InvalidOperation

__all__ = [
    "CANONICAL_FIELDS",
    "REQUIRED_FIELDS",
    "custom_key",
    "find_column",
    "header_key",
    "parse_company_size",
    "suggest_mapping",
]

# Prospects: mapping, normalisation, identity
# --------------------------------------------------------------------------------------------------

CANONICAL_FIELDS: tuple[str, ...] = (
    "first_name",
    "last_name",
    "company_name",
    "job_title",
    "industry",
    "company_size",
    "linkedin_url",
    "email",
    "recent_news",
    "notes",
    "sender_account",
)
REQUIRED_FIELDS: tuple[str, ...] = ("first_name", "company_name")

# Spellings compared after casefolding and dropping everything but letters and digits, so "First Name",
# "first_name", "firstName" and "FIRST-NAME" are all "firstname". Earlier spellings win when several
# columns match one field. A spelling belongs to one field only (the tests check it).
_SYNONYMS: dict[str, tuple[str, ...]] = {
    "first_name": (
        "firstname",
        "fname",
        "givenname",
        "first",
        "forename",
        "personfirstname",
        "contactfirstname",
    ),
    "last_name": (
        "lastname",
        "lname",
        "surname",
        "familyname",
        "last",
        "personlastname",
        "contactlastname",
    ),
    "company_name": (
        "companyname",
        "company",
        "organization",
        "organisation",
        "organizationname",
        "organisationname",
        "employer",
        "currentcompany",
        "accountname",
        "companyorganization",
        "org",
        "business",
        "firm",
    ),
    "job_title": (
        "jobtitle",
        "title",
        "position",
        "role",
        "jobrole",
        "currenttitle",
        "currentposition",
        "jobposition",
        "designation",
    ),
    "industry": ("industry", "sector", "vertical", "companyindustry"),
    "company_size": (
        "companysize",
        "employees",
        "headcount",
        "numberofemployees",
        "employeecount",
        "noofemployees",
        "numemployees",
        "nbemployees",
        "companyheadcount",
        "companyemployees",
        "employeesize",
        "staffcount",
        "size",
    ),
    "linkedin_url": (
        "linkedinurl",
        "linkedin",
        "linkedinprofile",
        "linkedinprofileurl",
        "profileurl",
        "personlinkedinurl",
        "linkedinlink",
        "linkedinprofilelink",
        "profilelink",
        "liurl",
    ),
    "email": (
        "email",
        "emailaddress",
        "workemail",
        "businessemail",
        "primaryemail",
        "mail",
        "emailid",
        "email1",
    ),
    "recent_news": ("recentnews", "news", "latestnews", "companynews", "triggerevent", "trigger"),
    "notes": ("notes", "note", "comments", "comment", "remarks"),
    "sender_account": (
        "senderaccount",
        "account",
        "sender",
        "sendingaccount",
        "linkedinaccount",
        "fromaccount",
        "sendername",
    ),
}



def header_key(header: str) -> str:
    """A header as compared with known spellings: casefolded, letters and digits only ("Sent At" -> "sentat")."""
    return "".join(ch for ch in header.casefold() if ch.isalnum())


def find_column(headers: Sequence[str], spellings: Sequence[str]) -> int | None:
    """The index of the header matching the earliest of ``spellings`` (the leftmost such header), or None."""
    best: tuple[int, int] | None = None
    for position, header in enumerate(headers):
        key = header_key(header)
        if key in spellings:
            rank = (spellings.index(key), position)
            if best is None or rank < best:
                best = rank
    return None if best is None else best[1]


def suggest_mapping(headers: Sequence[str]) -> dict[str, str]:
    """Canonical field -> source header, from common spellings; unmatched headers stay unmapped."""
    mapping: dict[str, str] = {}
    for canonical, spellings in _SYNONYMS.items():
        index = find_column(headers, spellings)
        if index is not None:
            mapping[canonical] = headers[index]
    return mapping


def custom_key(header: str) -> str:
    """The snake_case ASCII identifier for a column name ("Recent Funding (USD)" -> "recent_funding_usd").

    Used both to detect duplicate headers and as the key of custom variables, so it must be usable as
    a template variable name. Returns "" when nothing usable is left (for example "名前" or "#").
    """
    text = unicodedata.normalize("NFKD", header.strip())
    text = "".join(ch for ch in text if not unicodedata.combining(ch))
    text = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", text)
    key = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    if key[:1].isdigit():
        key = "col_" + key
    return key



_SIZE_NUMBER = r"(\d{1,3}(?:,\d{3})+|\d+(?:\.\d+)?)\s*([km])?"
_SIZE_RANGE_RE = re.compile(rf"{_SIZE_NUMBER}\s*-\s*{_SIZE_NUMBER}")
_SIZE_SINGLE_RE = re.compile(rf"(?:>=?\s*|over\s+|more\s+than\s+|at\s+least\s+)?{_SIZE_NUMBER}\s*(?:\+|or\s+more)?")
_SIZE_WORDS_RE = re.compile(r"\b(?:employees?|people|persons?|staff|emp)\b\.?")


def _size_number(digits: str, suffix: str | None) -> int | None:
    try:
        value = Decimal(digits.replace(",", ""))
    except InvalidOperation:
        return None
    value *= {"k": 1_000, "m": 1_000_000}.get(suffix or "", 1)
    if value != value.to_integral_value() or value < 1:
        return None
    return int(value)


def parse_company_size(value: str | int | None) -> int | None:
    """Headcount as an int: "1,200", "1200", "1k", "1.5k", "10000+", "51-200 employees", or an int as stored.

    The one reading of a size: the import, the pipeline (and so Preview) and the estimate all use it.

    A range gives its *lower* bound ("501-1000" -> 501): it is the figure the source vouches for, and
    it keeps LinkedIn's size buckets exact when a routing threshold sits on a bucket boundary.
    Open-ended sizes ("10000+", "over 500") give the stated bound. None when empty or missing, when
    unparseable, when the range is reversed, or below 1. Never uses floats.
    """
    if value is None or isinstance(value, int):
        return value if value is not None and value >= 1 else None
    text = value.strip().casefold()
    if not text:
        return None
    text = text.replace("\u2013", "-").replace("\u2014", "-").replace("\u2212", "-")
    text = _SIZE_WORDS_RE.sub(" ", text)
    text = re.sub(r"\s+to\s+", "-", text).strip()
    ranged = _SIZE_RANGE_RE.fullmatch(text)
    if ranged:
        low = _size_number(ranged.group(1), ranged.group(2))
        high = _size_number(ranged.group(3), ranged.group(4))
        if low is None or high is None or high < low:
            return None
        return low
    single = _SIZE_SINGLE_RE.fullmatch(text)
    if single:
        return _size_number(single.group(1), single.group(2))
    return None


# --------------------------------------------------------------------------------------------------
# Prospects import
# --------------------------------------------------------------------------------------------------
