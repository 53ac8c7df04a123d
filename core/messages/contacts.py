"""The contacts guard: links of any scheme, e-mail addresses and phone numbers the template does not contain.

Why this module exists: a message that carries a contact the operator did not write (from a prospect field
or a model) is the most direct harm a personalised message can do, and recognising contacts through their
disguises ("hxxps[:]//", "evil[.]com", "sam (at) evil", spaced-out phone numbers) is a concern of its own.
`core.messages.guards.check_message` runs it as its "contacts" guard. Pure functions of their arguments.
"""

from __future__ import annotations

import re
import unicodedata

from core.messages.textfold import _any, _ignorecase_key, _join_found, _may_match, strip_invisible

# Common generic TLDs plus country codes that are not English words, so "thanks.so", "in.it" or "join.us"
# from a missing space is not taken for a domain. A link with a scheme or "www." is caught whatever its TLD,
# and so is a domain of any two-letter TLD followed by a path ("t.me/x", "join.us/now").
_TLDS = (
    "com|net|org|io|co|ai|app|dev|biz|info|xyz|tech|ly|gg|sh|vc|tv|cc|uk|de|fr|nl|es|ca|au|eu|ch|se|pl|"
    "ru|cn|jp|br|mx|gov|edu|site|online|store|shop|blog|cloud|link|page|club|pro|agency|digital|"
    "solutions|studio|bio|fm|gl|li|sg|hk|nz|za|ie|dk|fi|pt|cz|ro|il|kr|tw|ua|tr|"
    "top|click|live|icu|buzz|rest|space|website|email|network|zone|bid|loan|ltd|company|global|group|"
    r"systems|software|cam|lol|quest|sbs|cfd|bond|gd|ws|su|tk|ml|ga|cf|gq|cx|pw|xn--[a-z0-9\-]+"
)
_URL_CHARS = r"[^\s<>\"'()\[\]{}|\\^`]"
# Any scheme with "//" (https, ftp, file, intent, ...) or "www."; and schemes that need no "//".
_SCHEME_URL_RE = re.compile(rf"(?i)(?<![\w+.\-])(?:[a-z][a-z0-9+.\-]{{1,30}}://|www\.){_URL_CHARS}*")
_COLON_SCHEME_RE = re.compile(
    r"(?i)(?<![\w+.\-])(?:javascript|vbscript|livescript|data|file|blob|mailto|tel|sms|smsto|mms|callto|facetime"
    rf"|sip|sips|skype|whatsapp|tg|viber|intent|jar|view-source|ms-[a-z\-]+|ftp|wss?):(?=[^\s]){_URL_CHARS}*"
)
_EMAIL_RE = re.compile(r"(?i)(?<![\w.+\-])[\w.%+\-]+@[^\W_][\w\-]*(?:\.[\w\-]+)*\.[^\W\d_]{2,}(?![\w\-])")
_LABEL = r"[^\W_](?:[\w\-]{0,61}[^\W_])?"
_BARE_DOMAIN_RE = re.compile(
    rf"(?i)(?<![\w@./\-])(?:{_LABEL}\.)+(?:(?:{_TLDS})(?![\w\-])(?:/{_URL_CHARS}*)?|[a-z]{{2}}/{_URL_CHARS}+)"
    rf"|(?<![\w.])(?:\d{{1,3}}\.){{3}}\d{{1,3}}(?::\d{{2,5}}|/{_URL_CHARS}*)"  # an IP address with a port or path
)
_TECH_NAMES = frozenset({"asp.net", "vb.net", "ado.net"})
_PHONE_CANDIDATE_RE = re.compile(r"(?<![\w+])\+?\(?[0-9][0-9 ().\-]{5,}[0-9](?![\w])")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:[ .]\d{3})+")
_YEAR_RANGE_RE = re.compile(r"(?:19|20)\d{2}\s*-\s*(?:19|20)\d{2}")
_DATE_RE = re.compile(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}")
_LOCAL_PHONE_RE = re.compile(r"\d{3}[\- ]\d{4}")
# Prefilters (see _may_match): the scheme forms need "://", "www." or ":" (on _ignorecase_key), an e-mail an
# "@"; the two below are the domain and phone patterns without their look-arounds, so a text they do not
# find cannot hold a match of the full pattern. Every TLD starts with a letter; an IP address has digits.
_SCHEME_NEEDLES = _any("://", "www.")
_DOT_WORD_RE = re.compile(r"\.[^\W_]")  # a TLD starts with a letter; an IP address has a digit after a dot
_PHONE_DIGITS_RE = re.compile(r"[0-9][0-9 ().\-]{5,}[0-9]")
_TRAILING_PUNCT = ".,;:!?'\")*"

# Disguises undone before looking for contacts: "hxxps[:]//", "evil[.]com", "evil (dot) com", "sam[at]evil".
_DISGUISED_SCHEME_RE = re.compile(
    r"(?i)\b(?:h(?:xx|\*\*|__)p(s?)(?:\s*[\[({]\s*:\s*[\])}]\s*|:)//|(https?|ftp)\s*[\[({]\s*:\s*[\])}]\s*//)"
)
_BRACKETED_DOT_RE = re.compile(r"(?i)(?<=[^\W_])\s*[\[({]\s*(?:\.|dot)\s*[\])}]\s*(?=[^\W_])")
_BRACKETED_AT_RE = re.compile(r"(?i)(?<=[^\W_.])\s*[\[({]\s*(?:at|@)\s*[\])}]\s*(?=[^\W_])")
_SPELLED_DOT_RE = re.compile(rf"(?i)\b([^\W_][\w\-]*) dot ((?:{_TLDS})(?![\w\-]))")
_NOT_A_HOST = frozenset({"the", "a", "an", "of", "that", "this", "dot", "and", "or", "old", "first", "second"})
# Characters browsers read as a dot in a host name, and separators used to space out a phone number.
_CONTACT_CHARS = str.maketrans({"\u3002": ".", "\uff61": ".", "\u00b7": ".", "\u2027": ".", "\u30fb": "."})


class _AsciiDigits(dict[int, str]):
    """A ``str.translate`` table mapping every decimal digit of any script to its ASCII digit."""

    def __missing__(self, code: int) -> str:
        value = unicodedata.decimal(chr(code), None)
        self[code] = chr(code) if value is None else str(value)  # a character that is not a digit stays
        return self[code]


_ASCII_DIGITS = _AsciiDigits()


def _plain_scheme(match: re.Match[str]) -> str:
    return f"{match.group(2).lower()}://" if match.group(2) else f"http{match.group(1).lower()}://"


def _undisguise(text: str) -> str:
    text = _DISGUISED_SCHEME_RE.sub(_plain_scheme, text)
    text = _BRACKETED_DOT_RE.sub(".", text)
    text = _BRACKETED_AT_RE.sub("@", text)
    return _SPELLED_DOT_RE.sub(lambda m: m.group(0) if m.group(1).lower() in _NOT_A_HOST
                               else f"{m.group(1)}.{m.group(2)}", text)  # fmt: skip


def _contact_form(text: str) -> str:
    """The text contacts are looked for in: visible characters only, NFKC (fullwidth forms become ASCII),
    other scripts' digits and dots mapped to ASCII, and the usual disguises undone."""
    text = strip_invisible(text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_CONTACT_CHARS).translate(_ASCII_DIGITS)
    return _undisguise(text) if _may_be_disguised(text) else text


def _may_be_disguised(text: str) -> bool:
    """False only when :func:`_undisguise` would leave ``text`` as it is (every disguise needs one of these)."""
    if "[" in text or "(" in text or "{" in text:
        return True
    lower = text.lower()
    return " dot " in lower or "xxp" in lower or "**p" in lower or "__p" in lower


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isascii() and ch.isdigit())


def _looks_like_phone(candidate: str) -> bool:
    digits = _digits(candidate)
    if not 7 <= len(digits) <= 15:
        return False
    if candidate.startswith("+"):
        return True
    bare = candidate.strip("()")
    if _THOUSANDS_RE.fullmatch(bare) or _YEAR_RANGE_RE.fullmatch(bare) or _DATE_RE.fullmatch(bare):
        return False
    separator_runs = re.findall(r"[ ().\-]+", bare)
    return (
        "(" in candidate
        or len(separator_runs) >= 2
        or bool(_LOCAL_PHONE_RE.fullmatch(bare))
        or re.search(r"\d{10}", bare) is not None
    )


def _canonical_link(link: str) -> str:
    link = link.rstrip(_TRAILING_PUNCT).lower()
    link = re.sub(r"^https?://", "", link)
    link = re.sub(r"^www\.", "", link)
    return link.rstrip("/")


def _find_contacts(text: str) -> list[tuple[str, str, str]]:
    """(kind, as written, canonical) for every link, e-mail address and phone number in ``text``.

    ``text`` is already in :func:`_contact_form`.
    """
    found: list[tuple[str, str, str]] = []
    taken: set[int] = set()  # character positions already part of a contact

    def claim(match: re.Match[str]) -> bool:
        span = range(match.start(), match.end())
        if any(i in taken for i in span):
            return False
        taken.update(span)
        return True

    if ":" in text or _may_match(_ignorecase_key(text), _SCHEME_NEEDLES):
        for pattern in (_SCHEME_URL_RE, _COLON_SCHEME_RE):
            for match in pattern.finditer(text):
                written = match.group(0).rstrip(_TRAILING_PUNCT)
                if claim(match):
                    found.append(("link", written, _canonical_link(written)))
    if "@" in text:
        for match in _EMAIL_RE.finditer(text):
            if claim(match):
                found.append(("e-mail", match.group(0), match.group(0).lower()))
    if _DOT_WORD_RE.search(text):
        for match in _BARE_DOMAIN_RE.finditer(text):
            written = match.group(0).rstrip(_TRAILING_PUNCT)
            if written.lower() not in _TECH_NAMES and claim(match):
                found.append(("link", written, _canonical_link(written)))
    if _PHONE_DIGITS_RE.search(text):
        for match in _PHONE_CANDIDATE_RE.finditer(text):
            if _looks_like_phone(match.group(0)) and claim(match):
                found.append(("phone number", match.group(0), _digits(match.group(0))))
    return found


def _haystack(value: str) -> str:
    text = _contact_form(value).lower()
    text = re.sub(r"https?://", " ", text)
    return re.sub(r"(?<![\w.\-])www\.", " ", text)


def _contact_in_template(kind: str, canonical: str, haystack: str, phones: set[str]) -> bool:
    if kind == "phone number":
        return any(
            canonical == known or (min(len(canonical), len(known)) >= 7 and
                                   (known.endswith(canonical) or canonical.endswith(known)))
            for known in phones
        )  # fmt: skip
    # The contact must appear as a whole: "acme.io" is not in "notacme.io" nor in "acme.io.evil.com".
    pattern = re.compile(rf"(?<![\w.@+\-]){re.escape(canonical)}(?![\w\-@]|\.[\w])")
    return pattern.search(haystack) is not None


def _check_contacts(text: str, template: str) -> str:
    """Links, e-mail addresses and phone numbers are allowed only when ``template`` (its text) has them.

    Prospect fields do not count: whatever a field or a model put there, the template's author did not write.
    """
    contacts = _find_contacts(_contact_form(text))
    if not contacts:
        return ""
    haystack = _haystack(template) if template else ""
    phones = {_digits(m.group(0)) for m in _PHONE_CANDIDATE_RE.finditer(_contact_form(template))} if template else set()
    unknown: dict[str, list[str]] = {}
    checked: set[tuple[str, str]] = set()
    for kind, written, canonical in contacts:
        if (kind, canonical) in checked:
            continue
        checked.add((kind, canonical))
        if not _contact_in_template(kind, canonical, haystack, phones):
            unknown.setdefault(kind, []).append(written)
    if not unknown:
        return ""
    parts = [f"{kind} {_join_found(items)}" for kind, items in unknown.items()]
    return "; ".join(parts) + " not in the template"
