"""The one answer to "is this the same person?" and "may we contact them?".

Before this module, imports, replies, batches, experiments and exports each computed identities their own way
(one lowercased e-mails, another compared stored URLs, a third joined on the primary identity only), so a
person who opted out under their e-mail address and was later imported with the address in another case plus
a LinkedIn URL got a message. Every part now asks here.

Identity keys (strings, stored in `Suppression.identity`, `Prospect.identity` and `ProspectIdentity.key`):

- ``li:https://www.linkedin.com/in/<slug>``: the profile URL normalised (any scheme or none, ``www.``,
  country and mobile subdomains such as ``fr.linkedin.com``, trailing slash, sub-pages, query string and
  fragment dropped; the slug percent-decoded, NFC-normalised, lowercased and percent-encoded once, so
  ``/in/jos%C3%A9`` and ``/in/josé`` are one key);
- ``email:<address>``: stripped and case-folded;
- ``name:<first last>|<company>``: whitespace collapsed, case-folded (only the primary identity of a person
  with neither profile nor e-mail, and one more identity everyone is known by).

A person is known by every key of every profile URL and address they were ever imported with (the
`prospect_identities` table) plus the keys their current fields give. They are suppressed when any of those
keys is on the do-not-contact list. What a user typed (the URL as given) is kept for display and export;
only the key is normalised.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from enum import StrEnum
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import func
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from core.store.models import Prospect, ProspectIdentity, Suppression, utcnow

CHUNK = 500
LOOKUP_CHUNK = 5_000  # keys per IN (...) look-up: well under SQLite's and PostgreSQL's parameter limits
DO_NOT_CONTACT = "do not contact"


class IdentityKind(StrEnum):
    LINKEDIN = "li"
    EMAIL = "email"
    NAME = "name"


# The usual spellings, read without urlsplit: optional scheme, any linkedin.com subdomains, /in/<slug>, then
# anything (sub-pages, query, fragment). Matched on the lowercased text; other forms take the general path.
_PROFILE_RE = re.compile(r"(?:https?:)?(?://)?(?:[a-z0-9-]+\.)*linkedin\.com/in/([^/?#\s]+)(?:[/?#].*)?", re.DOTALL)
_ASCII_SLUG_RE = re.compile(r"[a-z0-9_-]+", re.ASCII)
_BAD_SLUG_RE = re.compile(r"[\s<>\"']")
PROFILE_PREFIX = "https://www.linkedin.com/in/"


_UNSAFE_RE = re.compile(r"[^A-Za-z0-9_.~-]+")


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


def _slug(raw: str) -> str | None:
    """The slug decoded once, NFC, lowercased and percent-encoded once (what ``quote(slug, safe="-_.~")`` gives,
    with a regular expression instead of a per-byte loop: most characters of a slug need no encoding)."""
    if _ASCII_SLUG_RE.fullmatch(raw):
        return raw.lower()
    slug = unquote(raw) if "%" in raw else raw
    if not unicodedata.is_normalized("NFC", slug):
        slug = unicodedata.normalize("NFC", slug)
    slug = slug.strip().lower()
    if not slug or _BAD_SLUG_RE.search(slug):
        return None
    return _UNSAFE_RE.sub(_percent, slug)


def normalize_linkedin_url(url: str | None) -> str | None:
    """The canonical ``https://www.linkedin.com/in/<slug>`` for a profile URL, else None."""
    text = (url or "").strip()
    if not text:
        return None
    usual = _PROFILE_RE.fullmatch(text.lower())
    if usual:
        slug = _slug(usual.group(1))
        return PROFILE_PREFIX + slug if slug else None
    if "://" not in text:
        text = "https:" + text if text.startswith("//") else "https://" + text
    try:
        parts = urlsplit(text)
        host = (parts.hostname or "").rstrip(".")
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https"):
        return None
    if host != "linkedin.com" and not host.endswith(".linkedin.com"):
        return None
    segments = [s for s in parts.path.split("/") if s]
    if len(segments) < 2 or segments[0].lower() != "in":
        return None
    slug = _slug(segments[1])
    return PROFILE_PREFIX + slug if slug else None


_EMAIL_RE = re.compile(r"[^@\s<>(),;:\"\[\]]+@[^@\s<>(),;:\"\[\]]+\.[^@\s<>(),;:\"\[\].]+")


def is_email_address(value: str) -> bool:
    """Whether an imported cell is one e-mail address (name@host.tld, no spaces, brackets or separators):
    the one check behind the prospects and the replies imports."""
    return _EMAIL_RE.fullmatch(value) is not None


def normalize_email(email: str | None) -> str | None:
    """The address stripped and case-folded ("Jane@X.COM " -> "jane@x.com"); None when empty."""
    text = unicodedata.normalize("NFC", (email or "").strip()).casefold()
    return text or None


@functools.lru_cache(maxsize=65_536)  # names and companies repeat down a file
def _collapse(value: str) -> str:
    return " ".join(value.split()).casefold()


def linkedin_key(url: str | None) -> str | None:
    normalized = normalize_linkedin_url(url)
    return f"{IdentityKind.LINKEDIN}:{normalized}" if normalized else None


def email_key(email: str | None) -> str | None:
    normalized = normalize_email(email)
    return f"{IdentityKind.EMAIL}:{normalized}" if normalized else None


def name_key(first_name: str | None, last_name: str | None, company_name: str | None) -> str:
    name = _collapse(f"{first_name or ''} {last_name or ''}")
    return f"{IdentityKind.NAME}:{name}|{_collapse(company_name or '')}"


def primary_identity(fields: Mapping[str, Any]) -> str:
    """The key a prospect is stored under: LinkedIn profile, else e-mail, else name and company."""
    return (linkedin_key(fields.get("linkedin_url")) or email_key(fields.get("email"))
            or name_key(fields.get("first_name"), fields.get("last_name"), fields.get("company_name")))


def identities_of(fields: Mapping[str, Any]) -> list[str]:
    """Every key these fields identify a person by: profile, e-mail, name and company (in that order)."""
    keys = [linkedin_key(fields.get("linkedin_url")), email_key(fields.get("email")),
            name_key(fields.get("first_name"), fields.get("last_name"), fields.get("company_name"))]
    return [k for k in keys if k]


def canonical(key: str) -> str | None:
    """A stored or typed identity in today's normal form: ``li:``/``email:``/``name:`` keys, a bare profile
    URL or a bare e-mail address. None when it is none of these."""
    text = key.strip()
    kind, sep, rest = text.partition(":")
    kind = kind.lower()
    if sep and kind == IdentityKind.LINKEDIN:
        return linkedin_key(rest)
    if sep and kind == IdentityKind.EMAIL:
        return email_key(rest) if "@" in rest else None
    if sep and kind == IdentityKind.NAME:
        name, bar, company = rest.partition("|")
        return name_key(name, "", company) if name.strip() and bar else None
    found = linkedin_key(text)
    if found:
        return found
    return email_key(text) if "@" in text and not any(c.isspace() for c in text) else None


def _fields(p: Any) -> dict[str, str]:
    return {"linkedin_url": p.linkedin_url or "", "email": p.email or "", "first_name": p.first_name or "",
            "last_name": p.last_name or "", "company_name": p.company_name or ""}


def prospect_keys(p: Any) -> list[str]:
    """The keys a stored prospect's own fields give, its stored primary identity first."""
    return list(dict.fromkeys([canonical(p.identity) or p.identity, *identities_of(_fields(p))]))


# --------------------------------------------------------------------------------------------------------
# The database side: known identities, matching, the do-not-contact list
# --------------------------------------------------------------------------------------------------------

def _chunks(values: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def _connection(s: Session | Connection) -> Connection:
    return s.connection() if isinstance(s, Session) else s


def rows_where_in(s: Session | Connection, table: str, columns: Sequence[str], column: str,
                  values: Sequence[Any], size: int = LOOKUP_CHUNK) -> list[tuple[Any, ...]]:
    """``SELECT columns FROM table WHERE column IN (values)`` in chunks, through the driver directly: an import
    looks up hundreds of thousands of keys, and building an expanding IN per chunk costs more than the query.
    Table and column names are this module's constants, never user input; the values are bound parameters."""
    conn = _connection(s)
    mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    out: list[tuple[Any, ...]] = []
    for part in _chunks(list(values), size):
        sql = f"SELECT {', '.join(columns)} FROM {table} WHERE {column} IN ({', '.join([mark] * len(part))})"
        out.extend(tuple(r) for r in conn.exec_driver_sql(sql, tuple(part)).all())
    return out


def known_keys(s: Session, prospect_ids: Sequence[int]) -> dict[int, set[str]]:
    """prospect id -> every key the prospect is known by (recorded identities and current fields)."""
    out: dict[int, set[str]] = {}
    ids = list(dict.fromkeys(int(i) for i in prospect_ids))
    for part in _chunks(ids):
        for p in s.exec(select(Prospect).where(col(Prospect.id).in_(part))).all():
            out[int(p.id or 0)] = set(prospect_keys(p))
        for pid, key in s.exec(select(ProspectIdentity.prospect_id, ProspectIdentity.key)
                               .where(col(ProspectIdentity.prospect_id).in_(part))).all():
            out.setdefault(int(pid), set()).add(key)
    return out


def suppressed_keys(s: Session | Connection, keys: Iterable[str]) -> dict[str, str]:
    """The keys among `keys` that are on the do-not-contact list -> the reason recorded."""
    rows = rows_where_in(s, "suppressions", ("identity", "reason"), "identity", sorted(set(keys)))
    return {str(k): str(r or "") for k, r in rows}


def suppressed_prospects(s: Session, prospect_ids: Sequence[int]) -> dict[int, str]:
    """The prospects among `prospect_ids` on the do-not-contact list under any key -> the reason."""
    known = known_keys(s, prospect_ids)
    blocked = suppressed_keys(s, (k for keys in known.values() for k in keys))
    out: dict[int, str] = {}
    for pid, keys in known.items():
        hit = sorted(k for k in keys if k in blocked)
        if hit:
            out[pid] = blocked[hit[0]] or DO_NOT_CONTACT
    return out


def is_suppressed(s: Session, prospect_id: int) -> bool:
    return bool(suppressed_prospects(s, [prospect_id]))


def find_prospects(s: Session | Connection, keys: Iterable[str], *, primary_only: bool = False) -> dict[str, int]:
    """key -> id of the stored prospect known by it: its primary identity, or a recorded profile or e-mail.

    A name-and-company key matches only a prospect stored under it (one with neither profile nor e-mail), so a
    richer record is never merged into a poorer one because they share a common name. `primary_only`: only
    primary identities."""
    wanted = sorted(set(keys))
    personal = [] if primary_only else [k for k in wanted if not k.startswith(f"{IdentityKind.NAME}:")]
    found: dict[str, int] = {}
    for key, pid in sorted(rows_where_in(s, "prospect_identities", ("key", "prospect_id"), "key", personal),
                           key=lambda r: int(r[1])):
        found.setdefault(str(key), int(pid))
    for key, pid in rows_where_in(s, "prospects", ("identity", "id"), "identity", wanted):
        found.setdefault(str(key), int(pid))
    return found


def identity_rows(prospect_id: int, keys: Iterable[str], primary: str | None = None) -> list[dict[str, Any]]:
    """`prospect_identities` rows for the profile and e-mail keys other than `primary` (the prospect's own
    `identity` column holds that one, and a name key comes from the prospect's fields whenever it is needed)."""
    return [{"prospect_id": prospect_id, "key": k, "kind": k.partition(":")[0]} for k in dict.fromkeys(keys)
            if k != primary and not k.startswith(f"{IdentityKind.NAME}:")]


def record_identities(conn: Session | Connection, prospect_id: int, keys: Iterable[str]) -> list[str]:
    """Remember that the prospect is known by `keys` (the ones not recorded yet); returns those added."""
    wanted = [r["key"] for r in identity_rows(prospect_id, keys)]
    if not wanted:
        return []
    table = ProspectIdentity.__table__  # type: ignore[attr-defined]
    have = {str(k) for (k,) in conn.execute(table.select().with_only_columns(table.c.key).where(
        table.c.prospect_id == prospect_id, table.c.key.in_(wanted))).all()}
    rows = identity_rows(prospect_id, [k for k in wanted if k not in have])
    if rows:
        conn.execute(table.insert(), rows)
    return [r["key"] for r in rows]


def add_suppressions(s: Session, keys: Iterable[str], reason: str) -> list[str]:
    """Put `keys` (normalised first) on the do-not-contact list; returns the keys added now."""
    added: list[str] = []
    for raw in dict.fromkeys(keys):
        key = canonical(raw) or raw.strip()
        if key and key not in added and s.get(Suppression, key) is None:
            s.add(Suppression(identity=key, reason=reason, created_at=utcnow()))
            added.append(key)
    s.flush()
    return added


def count_suppressions(s: Session) -> int:
    return int(s.exec(select(func.count()).select_from(Suppression)).one())
