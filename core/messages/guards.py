"""Code checks on every text we might send, and a prompt-injection screen of prospect fields.

Why this module exists: templates, prospect data and model output are all untrusted, and a LinkedIn
message cannot be recalled once sent. So before any candidate message leaves the engine it passes the
seven guards of :func:`check_message` (no leftover placeholders, within the length limit, no spam phrase,
no link of any scheme / e-mail / phone number the template does not contain, no Markdown or HTML, no
echoed instructions in any of the screened languages, no invisible or direction-control characters).
Separately, :func:`screen_fields` looks at prospect fields *before* they reach a prompt, because a headline
such as "Ignore all previous instructions and ..." (or "Ignorez les instructions précédentes ...") is aimed
at the model that writes the message.

Everything here is a pure function of its arguments: no database, no network, no clock.

Matching is done on a *folded* copy of the text (invisible characters removed, NFKC, casefold, a few
Cyrillic/Greek look-alikes mapped to Latin), so fullwidth letters, zero-width joiners inside words and
mixed case do not dodge the checks. The original text is never modified.

Speed matters here: check_message runs on every rendered message (100,000 in a template-only batch) and
screen_fields on every imported prospect. So each pattern carries the literals it cannot match without and
is skipped when they are absent (see "Prefilters" below), and ASCII text skips Unicode normalisation. The
straightforward versions are kept in tests/guards_reference.py (``*_reference``); the tests check that both
give identical results. A new pattern needs its needles, and the prefilter tests will exercise them.

``GuardResult.detail`` and ``InjectionFlag.detail`` are plain text meant for operators: quoted snippets
are shortened, control characters are shown as ``\\uXXXX`` and angle brackets are replaced by ``‹ ›``, so
a detail never carries live HTML. The UI should still render it as text, not Markdown.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

__all__ = [
    "GUARD_NAMES",
    "INJECTION_KINDS",
    "GuardResult",
    "InjectionFlag",
    "all_passed",
    "check_message",
    "failed_reasons",
    "load_banned_phrases",
    "screen_fields",
    "strip_invisible",
]

GUARD_NAMES = ("placeholders", "length", "banned_phrases", "contacts", "markup", "instruction_echo", "invisible")
INJECTION_KINDS = ("invisible_chars", "instruction_override", "role_tag", "template_syntax", "exfiltration")


@dataclass(frozen=True)
class GuardResult:
    """The verdict of one guard on one message; ``detail`` is "" when it passed."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class InjectionFlag:
    """One suspicious finding in one prospect field (``kind`` is one of ``INJECTION_KINDS``)."""

    field: str
    kind: str
    detail: str


# --------------------------------------------------------------------------------------------------
# Normalisation shared by both halves
# --------------------------------------------------------------------------------------------------

# Format characters (category Cf: zero-width, bidi embeddings/overrides/isolates, BOM, soft hyphen,
# Unicode "tag" characters used for ASCII smuggling) plus a few letters that render as blank.
_BLANK_LETTERS = frozenset("\u034f\u115f\u1160\u17b4\u17b5\u180e\u2800\u3164\uffa0")
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_ZWJ = "\u200d"
_KEPT_CONTROLS = frozenset("\n\t")


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return 0x1F000 <= code <= 0x1FAFF or 0x2600 <= code <= 0x27BF or code == 0xFE0F


def _is_invisible(value: str, index: int) -> bool:
    char = value[index]
    if char in _KEPT_CONTROLS:
        return False
    if char == _ZWJ:
        # A joiner between two emoji builds one glyph (👩‍💻); anywhere else it only hides things.
        before = value[index - 1] if index > 0 else ""
        after = value[index + 1] if index + 1 < len(value) else ""
        return not (before and after and _is_emoji(before) and _is_emoji(after))
    if char in _BLANK_LETTERS:
        return True
    return unicodedata.category(char) in ("Cc", "Cf")


def strip_invisible(value: str) -> str:
    """Remove zero-width, bidi-control, other format and control characters (``\\n`` and ``\\t`` stay).

    A zero-width joiner between two emoji is kept, because it is part of a single emoji glyph. Unicode
    tag characters are removed even though a few flag emoji use them: they are the classic way to smuggle
    invisible ASCII instructions.
    """
    if value.isascii():
        # In ASCII only the C0 controls and DEL are invisible (category Cc); \n and \t stay.
        return value if value.isprintable() else _ASCII_INVISIBLE_RE.sub("", value)
    if _surely_visible(value):
        return value
    return "".join(ch for i, ch in enumerate(value) if not _is_invisible(value, i))


_ASCII_INVISIBLE_RE = re.compile("[\x00-\x08\x0b-\x1f\x7f]")
_NEWLINE_TAB = str.maketrans("", "", "\n\t")


def _surely_visible(value: str) -> bool:
    """A quick test: True only when no character of ``value`` is invisible in the sense of ``_is_invisible``.

    ``str.isprintable`` is False for every Cc and Cf character (the zero-width joiner included), so a
    printable text without the blank-rendering letters has nothing to strip. False means "look closer".
    """
    if not value.isprintable():
        value = value.translate(_NEWLINE_TAB)
        if not value.isprintable():
            return False
    return value.isascii() or _BLANK_LETTERS.isdisjoint(value)


def _invisible_chars(value: str) -> list[str]:
    if value.isascii():
        return _ASCII_INVISIBLE_RE.findall(value)
    if _surely_visible(value):
        return []
    return [ch for i, ch in enumerate(value) if _is_invisible(value, i)]


# Cyrillic and Greek letters that look like Latin ones (lower case: applied after casefold).
_CONFUSABLES = str.maketrans(
    {
        "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
        "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "ԁ": "d",
        "һ": "h", "ӏ": "l", "ɡ": "g", "ο": "o", "α": "a", "ε": "e", "ι": "i", "κ": "k", "ν": "v",
        "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ʏ": "y", "ɪ": "i",
    }
)  # fmt: skip
_TYPOGRAPHY = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201c": '"', "\u201d": '"'})
_HORIZONTAL_SPACE_RE = re.compile(r"[^\S\n]+")


def _fold(value: str, *, confusables: bool = True) -> str:
    """The matching form of a text: visible characters only, NFKC, casefolded, look-alikes mapped (unless
    ``confusables`` is False)."""
    text = strip_invisible(value)
    if text.isascii():
        # NFKC and both translation tables leave ASCII as it is, and casefold is lower; after
        # strip_invisible the only horizontal spaces left in ASCII are " " and "\t".
        text = text.lower()
        return _HORIZONTAL_SPACE_RE.sub(" ", text) if "\t" in text or "  " in text else text
    text = unicodedata.normalize("NFKC", text).casefold()
    text = (text.translate(_CONFUSABLES) if confusables else text).translate(_TYPOGRAPHY)
    return _HORIZONTAL_SPACE_RE.sub(" ", text)


_CONFUSABLE_KEYS = frozenset(chr(code) for code in _CONFUSABLES)


def _nfkc(value: str) -> str:
    return value if value.isascii() else unicodedata.normalize("NFKC", value)


# Prefilters. Searching a short text for a literal with ``in`` costs a fraction of one regex search, so each
# pattern below comes with the literals it cannot match without: a tuple of groups, and the pattern can only
# match when every needle of at least one group occurs in the text. A failed prefilter proves there is no
# match, so skipping the regex changes nothing; a passed one just runs the regex as before. The needles are
# written by reading each pattern; tests/test_guards.py checks them against strings generated from it.
_Needles = tuple[tuple[str, ...], ...]


def _any(*needles: str) -> _Needles:
    return tuple((needle,) for needle in needles)


def _may_match(text: str, groups: _Needles) -> bool:
    for group in groups:
        for needle in group:
            if needle not in text:
                break
        else:
            return True
    return False


_Gate = tuple[frozenset[str], tuple[frozenset[str], ...]]  # one-needle groups, then the longer groups


def _gates(tables: Iterable[_Needles]) -> tuple[tuple[tuple[str, ...], tuple[str, ...]], tuple[_Gate, ...]]:
    """For a whole table at once: every distinct needle (ASCII ones, then the others), and each pattern's
    groups as a :data:`_Gate`.

    Looking each needle up once (``present = {n for n in needles if n in text}``) and then testing each
    pattern's gate with :func:`_open` is much cheaper than :func:`_may_match` per pattern when there are
    many patterns.
    """
    gates = tuple(
        (frozenset(group[0] for group in groups if len(group) == 1),
         tuple(frozenset(group) for group in groups if len(group) > 1))
        for groups in tables
    )  # fmt: skip
    needles = sorted({needle for singles, groups in gates for needle in singles.union(*groups)})
    return (tuple(n for n in needles if n.isascii()), tuple(n for n in needles if not n.isascii())), gates


def _open(gate: _Gate, present: set[str]) -> bool:
    singles, groups = gate
    return not singles.isdisjoint(present) or (bool(groups) and any(group <= present for group in groups))


# Under re.IGNORECASE an ASCII letter also matches these four characters, so a prefilter key for a
# case-insensitive pattern maps them before lowering (a key may have false hits, never false misses).
_IGNORECASE_ASCII = str.maketrans({"\u0130": "i", "\u0131": "i", "\u017f": "s", "\u212a": "k"})


def _ignorecase_key(text: str) -> str:
    return text.lower() if text.isascii() else text.translate(_IGNORECASE_ASCII).lower()


_SNIPPET_LIMIT = 60


def _snip(value: str, limit: int = _SNIPPET_LIMIT) -> str:
    """A short, single-line, markup-free quotation of untrusted text for a ``detail``."""
    shown = []
    for i, ch in enumerate(value):
        if ch in "\n\t\r":
            shown.append(" ")
        elif _is_invisible(value, i):
            shown.append(f"\\u{ord(ch):04X}")
        else:
            shown.append(ch)
    text = " ".join("".join(shown).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return "'" + text.replace("<", "‹").replace(">", "›") + "'"


def _join_found(items: Iterable[str], limit: int = 4) -> str:
    unique = list(dict.fromkeys(items))
    shown = ", ".join(_snip(item) for item in unique[:limit])
    if len(unique) > limit:
        shown += f" and {len(unique) - limit} more"
    return shown


# --------------------------------------------------------------------------------------------------
# Guard: placeholders
# --------------------------------------------------------------------------------------------------

_HTML_TAG_NAMES = frozenset(
    re.findall(
        r"\w+",
        "a abbr b blockquote body br code div em font h1 h2 h3 h4 h5 h6 head hr html i img li ol p pre q s "
        "script small span strong style sub sup table td th tr u ul",
    )
)

_PLACEHOLDER_PATTERNS: tuple[tuple[str, re.Pattern[str], _Needles], ...] = (
    ("unfilled writing slot", re.compile(r"\x00[^\x00]{0,60}\x00?"), _any("\x00")),
    ("template tag", re.compile(r"\{%.{0,80}?%\}|\{#.{0,80}?#\}", re.S), _any("{%", "{#")),
    ("template variable", re.compile(r"\{\{.{0,80}?\}\}", re.S), _any("{{")),
    ("template delimiter", re.compile(r"\{\{|\}\}|\{%|%\}|\$\{|<%|%>"), _any("{{", "}}", "{%", "%}", "${", "<%", "%>")),
    ("braced placeholder", re.compile(r"\{\s*[A-Za-z_0-9][\w .:\-]{0,40}\}"), (("{", "}"),)),
    ("double-bracket marker", re.compile(r"\[\[.{0,80}?\]\]", re.S), (("[[", "]]"),)),
    # [Name], [Company name], [insert pain point] -- but not a Markdown link "[text](url)".
    ("bracketed placeholder", re.compile(r"\[\s*[A-Za-z_][^\[\]\n]{0,60}\](?!\()"), (("[", "]"),)),
    ("format placeholder", re.compile(r"%\(\w+\)[sdr]|(?<![\w%])%[sd](?!\w)"), _any("%")),
)  # fmt: skip
# Case-insensitive, so it gets its own prefilter in _check_placeholders.
_GREETING_RE = re.compile(r"(?im)\b(?:hi|hello|hey|dear)[ \t]+(?:[,!.;:]|(?:none|null|nan|undefined)\b)")
_GREETING_LABEL = "empty value after greeting"
_GREETING_GAPS = _any(*(space + mark for space in " \t" for mark in ",!.;:"))
_GREETING_EMPTIES = _any("none", "null", "nan", "undefined")
_ANGLE_PLACEHOLDER_RE = re.compile(r"<\s*([A-Za-z_][\w \-]{0,40}?)\s*>")
# Each needle group of the table and of the angle-bracket pattern has one of these characters.
_PLACEHOLDER_CHARS_RE = re.compile(r"[\x00{}\[%$<]")


_MAX_FINDINGS = 10  # a detail shows a few; stop looking after this many (bounds the work on hostile text)


def _check_placeholders(text: str) -> str:
    text = _nfkc(text)  # fullwidth braces are still braces
    found: list[str] = []
    taken: list[tuple[int, int]] = []  # report "{{ name }}" once, not again as a stray "{{"

    def collect(label: str, pattern: re.Pattern[str]) -> None:
        for match in pattern.finditer(text):
            if len(found) >= _MAX_FINDINGS:
                break
            if all(match.end() <= a or match.start() >= b for a, b in taken):
                taken.append(match.span())
                found.append(f"{label} {_snip(match.group(0))}")

    symbols = _PLACEHOLDER_CHARS_RE.search(text) is not None
    if symbols:
        for label, pattern, needles in _PLACEHOLDER_PATTERNS:
            if _may_match(text, needles):
                collect(label, pattern)
    if _may_match(text, _GREETING_GAPS) or _may_match(_ignorecase_key(text), _GREETING_EMPTIES):
        collect(_GREETING_LABEL, _GREETING_RE)
    if symbols and "<" in text and ">" in text:
        for match in _ANGLE_PLACEHOLDER_RE.finditer(text):
            inner = match.group(1)
            if inner.lower() not in _HTML_TAG_NAMES:  # real tags are the markup guard's business
                found.append(f"angle-bracket placeholder {_snip(inner)}")
    if not found:
        return ""
    unique = list(dict.fromkeys(found))
    more = f" and {len(unique) - 3} more" if len(unique) > 3 else ""
    return "leftover placeholder: " + "; ".join(unique[:3]) + more


# --------------------------------------------------------------------------------------------------
# Guard: length
# --------------------------------------------------------------------------------------------------


def _check_length(text: str, max_chars: int) -> str:
    if not text.strip():
        return "message is empty"
    if len(text) > max_chars:
        return f"{len(text)} characters, limit is {max_chars} ({len(text) - max_chars} over)"
    return ""


# --------------------------------------------------------------------------------------------------
# Guard: banned phrases
# --------------------------------------------------------------------------------------------------


def _phrase_words(phrase: str) -> list[str]:
    return [w for w in re.split(r"[\s\-]+", _fold(phrase)) if w]


@lru_cache(maxsize=1024)
def _phrase_pattern(phrase: str) -> re.Pattern[str] | None:
    words = _phrase_words(phrase)
    if not words:
        return None
    body = r"[\s\-]+".join(re.escape(w) for w in words)
    # Whole-word-ish: a phrase may not start or end inside a word ("act now" is not in "react nowhere").
    return re.compile(rf"(?<!\w){body}(?!\w)")


_BannedPlan = tuple[tuple[str, str, re.Pattern[str]], ...]


def _build_banned_plan(phrases: Sequence[str]) -> _BannedPlan:
    """(phrase as reported, its longest folded word, pattern) per usable phrase, in the given order.

    The pattern contains every folded word literally, so a text without the longest one cannot match.
    """
    plan = []
    for phrase in phrases:
        pattern = _phrase_pattern(phrase)
        if pattern is not None:
            plan.append((phrase.strip(), max(_phrase_words(phrase), key=len), pattern))
    return tuple(plan)


_cached_banned_plan = lru_cache(maxsize=64)(_build_banned_plan)


def _banned_plan(phrases: Sequence[str]) -> _BannedPlan:
    key = phrases if type(phrases) is tuple else tuple(phrases)
    try:
        return _cached_banned_plan(key)
    except TypeError:  # an unhashable item: build it uncached and let it fail (or not) as it would
        return _build_banned_plan(key)


def _check_banned(folded: str, phrases: Sequence[str]) -> str:
    """``folded`` is ``_fold`` of the message (check_message folds once for this guard and the echo guard)."""
    hits = [reported for reported, needle, pattern in _banned_plan(phrases)
            if needle in folded and pattern.search(folded)]  # fmt: skip
    return f"spam phrase {_join_found(hits)}" if hits else ""


# --------------------------------------------------------------------------------------------------
# Guard: contacts
# --------------------------------------------------------------------------------------------------

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


# --------------------------------------------------------------------------------------------------
# Guard: markup
# --------------------------------------------------------------------------------------------------

_SIGN_OFF_RE = re.compile(r"[ \t]*-[ \t]*\w+(?:[ \t]+\w+)?[ \t]*")
_MARKUP_PATTERNS: tuple[tuple[str, re.Pattern[str], _Needles], ...] = (
    ("Markdown code fence", re.compile(r"```|~~~"), _any("```", "~~~")),
    ("Markdown link", re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)"), _any("](")),
    ("Markdown bold", re.compile(r"\*\*(?=\S)[^*\n]+?\*\*|__(?=\S)[^_\n]+?__"), _any("**", "__")),
    ("Markdown emphasis", re.compile(r"(?<![\w*])\*(?=[^\s*])[^*\n]*?[^\s*]\*(?![\w*])"), _any("*")),
    ("inline code", re.compile(r"`[^`\n]+`"), _any("`")),
    ("Markdown heading", re.compile(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+\S.*$"), _any("#")),
    ("Markdown quote", re.compile(r"(?m)^[ \t]{0,3}>.*$"), _any(">")),
    ("Markdown rule", re.compile(r"(?m)^[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$"), _any("---", "***", "___")),
    ("HTML comment", re.compile(r"<!--"), _any("<!--")),
    ("HTML tag", re.compile(r"</?[A-Za-z][A-Za-z0-9\-]*(?:\s[^<>]*)?/?>"), (("<", ">"),)),
    ("HTML entity", re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});"), (("&", ";"),)),
)  # fmt: skip
_BULLET_RE = re.compile(r"(?m)^[ \t]*[-*+][ \t]+\S.*$")
_BULLET_NEEDLES = _any(*(mark + space for mark in "-*+" for space in " \t"))
# Each needle group of the markup table and of the bullets has one of these characters.
_MARKUP_CHARS_RE = re.compile(r"[`~\]*_#>\-<&+]")


def _check_markup(text: str) -> str:
    if _MARKUP_CHARS_RE.search(text) is None:
        return ""
    found = [f"{label} {_snip(m.group(0))}" for label, p, needles in _MARKUP_PATTERNS
             if _may_match(text, needles) for m in p.finditer(text)]  # fmt: skip
    if _may_match(text, _BULLET_NEEDLES):
        lines = text.rstrip().split("\n")
        for match in _BULLET_RE.finditer(text):
            line = match.group(0)
            # "- Sam" as the last line is a sign-off, not a list.
            if line == lines[-1] and _SIGN_OFF_RE.fullmatch(line):
                continue
            found.append(f"list bullet {_snip(line)}")
    if not found:
        return ""
    unique = list(dict.fromkeys(found))
    more = f" and {len(unique) - 3} more" if len(unique) > 3 else ""
    return "; ".join(unique[:3]) + more + " (LinkedIn shows markup as raw characters)"


# --------------------------------------------------------------------------------------------------
# Guard: instruction echo (run on folded text)
# --------------------------------------------------------------------------------------------------

_ECHO_PATTERNS_EN: tuple[tuple[str, re.Pattern[str], _Needles], ...] = (
    ("talks about being an AI", re.compile(
        r"\bas an? (?:ai|artificial intelligence|(?:large )?language model|llm|ai assistant|assistant)\b"
        r"|\bi(?:'m| am) (?:just )?an? (?:ai language model|(?:large )?language model|ai assistant|ai model"
        r"|chatbot|llm)\b|\bi(?:'m| am) (?:just )?an ai(?=\s*(?:[,.!;]|$))"),
     tuple((lead, what) for lead in ("as a", "i'm ", "i am ")
           for what in ("ai", "artificial intelligence", "language model", "llm", "assistant", "chatbot"))),
    ("echoes an instruction", re.compile(
        r"\b(?<!don't )(?<!do not )(?<!never )(?:ignore|disregard|forget)\s+(?:all\s+)?(?:the\s+|your\s+|my\s+|any\s+)?"
        r"(?:previous|prior|above|earlier|preceding)\b"
        r"|\b(?:system|initial|original|hidden) prompt\b"
        r"|\b(?:my|these|the above|the following|the given|previous|your new|new) instructions\b"),
     _any("ignore", "disregard", "forget", " prompt", " instructions")),
    ("presents the message", re.compile(
        r"\bhere(?:'s| is) (?:the|a|your|my) (?:\w+ ){0,2}?(?:personali[sz]ed|revised|rewritten|updated|final"
        r"|shorter|customi[sz]ed|tailored|suggested|requested) (?:\w+ ){0,2}?(?:message|note|version|draft"
        r"|request|text|outreach|intro)\b"
        r"|\bhere(?:'s| is) (?:the|your|a) (?:linkedin )?(?:message|note|draft|connection request)\s*[:\n]"),
     _any("here's ", "here is ")),
    ("chat acknowledgement", re.compile(
        r"^\s*(?:sure|certainly|of course|absolutely|okay|ok|got it|great question)\s*[!,.:]"
        r"|\b(?:sure|certainly|of course)!\s*here\b"),
     _any("sure", "certainly", "of course", "absolutely", "ok", "got it", "great question")),
    ("refusal", re.compile(
        r"\bi(?: cannot| can ?not| can't| won't| am unable to|'m unable to| am not able to|'m not able to)\s+"
        r"(?:help(?!\s+(?:but|\w+ing)\b)|assist|comply|fulfil|fulfill|provide|create|write|generate|complete|do that"
        r"|personali[sz]e)\b"),
     _any("i can", "i won't", "i am ", "i'm ")),
    ("JSON", re.compile(
        r"^\s*(?:\{|\[\s*[{\"])|\}\s*$|\{\s*\"|\"[\w ]{1,40}\"\s*:\s*(?:\"|\[|\{|-?\d|true\b|false\b|null\b)"),
     _any("{", "}", '"')),
    ("role tag", re.compile(
        r"(?m)^\s*(?:system|assistant|user|human|ai)\s*:|<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|</?s>"
        r"|#{2,}\s*(?:system|assistant|user|instruction|response|human)\b"),
     _any(":", "<", "[", "#")),
    ("talks about the draft", re.compile(
        r"\bfeel free to (?:adjust|modify|tweak|edit|customi[sz]e|revise)\s+"
        r"(?:it|this|the (?:message|note|tone|wording|draft))\b"
        r"|\blet me know if you(?:'d| would)? (?:like|want|need) (?:any )?(?:changes|adjustments|revisions"
        r"|edits|another version|a different tone)\b"
        r"|\bcharacter (?:count|limit)\b|\bword count\b|\b(?:under|within|below) \d+ characters\b"
        r"|\bend of (?:the )?message\b|\b(?:placeholder|template|personali[sz]ation) (?:marker|variable)s?\b"),
     _any("feel free to ", "let me know if you", "character", "word count", "end of ", " marker", " variable")),
    ("output label", re.compile(
        r"(?m)^\s*(?:subject|message|note|draft|connection (?:request|note)|output|response|answer)\s*:"),
     _any(":")),
)  # fmt: skip


# The table is completed with the other languages' override patterns below (see _ECHO_PATTERNS).


def _check_echo(folded: str) -> str:
    """``folded`` is ``_fold`` of the message, without accents (:func:`_deaccent`) when it is not ASCII."""
    present = _present(_ECHO_NEEDLES, folded)
    if not present:  # every gate has at least one needle
        return ""
    found = []
    for (label, pattern, _), gate in zip(_ECHO_PATTERNS, _ECHO_GATES, strict=True):
        match = pattern.search(folded) if _open(gate, present) and _second_gate(pattern, folded) else None
        if match:
            found.append(f"{label} {_snip(match.group(0).strip() or match.group(0))}")
    return "; ".join(found[:3]) if found else ""


# --------------------------------------------------------------------------------------------------
# Guard: invisible characters
# --------------------------------------------------------------------------------------------------


def _check_invisible(text: str) -> str:
    """Refuse zero-width, bidi-control, tag and other format characters (Cf), blank letters and control
    characters other than line breaks and tabs.

    They show nothing (or reorder what is shown), so what a reviewer reads is not what the recipient gets,
    and they hide words from every other guard. Model snippets are cleaned before they are used (see
    ``core.messages.personalize``); anything still here came from a template or a prospect field, which this guard
    does not rewrite behind the author's back. A zero-width joiner inside an emoji sequence is kept.
    """
    if _surely_visible(text):  # the common case
        return ""
    hidden = [ch for ch in _invisible_chars(text) if ch != "\r"]
    if not hidden:
        return ""
    codes = ", ".join(dict.fromkeys(f"U+{ord(ch):04X}" for ch in hidden))
    return f"{len(hidden)} invisible or direction-control character(s): {codes}"


def _check_echo_unicode(text: str, folded: str) -> str:
    """The echo guard on a non-ASCII message, read without accents (every pattern is written without them);
    Japanese kana also as folded (removing marks changes the kana themselves), and Cyrillic or Greek
    letters also without the look-alike mapping, so Russian words are read as themselves."""
    readings = [_deaccent(folded)]
    if _KANA_RE.search(folded):
        readings.append(folded)
    if not _CONFUSABLE_KEYS.isdisjoint(folded) or not _CONFUSABLE_KEYS.isdisjoint(text.casefold()):
        readings.append(_deaccent(_fold(text, confusables=False)))
    for reading in dict.fromkeys(readings):
        found = _check_echo(reading)
        if found:
            return found
    return ""


_KANA_RE = re.compile("[\u3040-\u30ff]")


# --------------------------------------------------------------------------------------------------
# Public message API
# --------------------------------------------------------------------------------------------------


def check_message(
    text: str,
    *,
    inputs: Mapping[str, str] | None = None,
    max_chars: int,
    banned_phrases: Sequence[str] = (),
    template: str | None = None,
) -> list[GuardResult]:
    """Run every guard on a candidate message; one result per guard, in ``GUARD_NAMES`` order.

    ``template`` is the text of the template the message was built from (default: ``inputs["__template__"]``):
    a link, e-mail address or phone number is only allowed when the template itself contains it, never
    because a prospect field (or a model) supplied it. ``max_chars`` is the LinkedIn limit in force (300 for
    a connection note, 200 on free accounts).
    """
    _check_max_chars(max_chars)
    if template is None:
        template = (inputs or {}).get("__template__") or ""
    placeholders = _check_placeholders(text)
    length = _check_length(text, max_chars)
    folded = _fold(text)  # shared by the banned-phrase and the echo guard
    details = (
        placeholders,
        length,
        _check_banned(folded, banned_phrases),
        _check_contacts(text, template if isinstance(template, str) else str(template)),
        _check_markup(text),
        _check_echo(folded) if folded.isascii() else _check_echo_unicode(text, folded),
        _check_invisible(text),
    )
    return [GuardResult(name=name, passed=False, detail=detail) if detail else _PASSED[name]
            for name, detail in zip(GUARD_NAMES, details, strict=True)]  # fmt: skip


# Results are frozen, so the passing ones can be shared between calls.
_PASSED = {name: GuardResult(name=name, passed=True, detail="") for name in GUARD_NAMES}


def _check_max_chars(max_chars: int) -> None:
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars <= 0:
        raise ValueError(f"max_chars must be a positive whole number of characters, got {max_chars!r}")


def all_passed(results: Sequence[GuardResult]) -> bool:
    """True when every guard passed (and there was at least one)."""
    return bool(results) and all(r.passed for r in results)


def failed_reasons(results: Sequence[GuardResult]) -> list[str]:
    """``"name: detail"`` for each failed guard, in the order given."""
    return [f"{r.name}: {r.detail}" for r in results if not r.passed]


def load_banned_phrases(path: Path) -> list[str]:
    """Read one phrase per line; blank lines and lines starting with ``#`` are ignored.

    Duplicates (ignoring case and spacing) are dropped. A phrase under three characters is refused with
    its line number, since it would match almost anything.
    """
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise FileNotFoundError(f"banned phrases file not found: {path}") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    phrases: list[str] = []
    seen: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        phrase = " ".join(line.split())
        if not phrase or phrase.startswith("#"):
            continue
        if len(phrase) < 3:
            raise ValueError(f"{path}, line {number}: {phrase!r} is too short to match safely (3+ characters)")
        key = _fold(phrase)
        if key not in seen:
            seen.add(key)
            phrases.append(phrase)
    return phrases


# --------------------------------------------------------------------------------------------------
# Prompt-injection screen of prospect fields
# --------------------------------------------------------------------------------------------------

_OBJECTS = (
    r"(?:instructions?|prompts?|directions?|directives?|commands?|guidelines|guidance|programming|context"
    r"|guardrails|constraints|rules|messages?|text|content|everything)"
)
_EARLIER = r"(?:previous|prior|above|earlier|preceding|foregoing|original|initial|system)"
_SENTENCE_START = r"(?:^|(?<=[.!?;:\n\"'(\[\]>|*\-–—]))\s*"

_INJECTION_PATTERNS_EN: tuple[tuple[str, str, re.Pattern[str], _Needles], ...] = (
    ("instruction_override", "asks to ignore earlier instructions", re.compile(
        rf"\b(?:ignore|disregard|forget|override|overrule|bypass)\s*(?:all\s*|any\s*|of\s*)*"
        rf"(?:the\s*|your\s*|my\s*|these\s*|those\s*|its\s*)?{_EARLIER}\s*(?:{_OBJECTS}|(?=\s*(?:$|[.,;:!?\n])))"
        r"|\b(?:ignore|disregard|forget|override|bypass)\s*(?:all\s*|any\s*)?(?:of\s*)?(?:your|the|these|my)?\s*"
        r"(?:instructions|prompts?|programming|directives|guardrails|system\s*prompt)\b"
        r"|\b(?:ignore|disregard|forget)\s*(?:everything|all)\s*"
        r"(?:above|before|said|prior|you\s*(?:were|have\s*been)\s*told)"),
     _any("ignore", "disregard", "forget", "override", "overrule", "bypass")),
    ("instruction_override", "tries to give the model a new role", re.compile(
        rf"{_SENTENCE_START}you\s*are\s*now(?![a-z])"
        r"|\byou\s*are\s*now\s*(?:a|an|the|my|called|named|acting|playing|in\s*(?:developer|dan|god)|free|no\s*longer"
        r"|unrestricted|jailbroken|dan)(?![a-z])"
        r"|\bfrom\s*now\s*on,?\s*(?:you\s*(?:are|will|must|should|shall|have)|always|only|respond|reply|write"
        r"|answer)\b"
        r"|\b(?:pretend|imagine)\s*(?:that\s*)?(?:you\s*are|to\s*be|you're)\s*(?:an?\s*)?(?:ai|assistant|bot|model|different|unrestricted|dan)\b"
        r"|\b(?:act|behave)\s*as\s*(?:an?\s*)?(?:unrestricted|unfiltered|jailbroken|different)\s*(?:ai|assistant|model|bot)?\b"
        r"|\b(?:enable|activate|enter|switch\s*to)\s*(?:developer|dan|god|jailbreak|debug|admin)\s*mode\b"
        r"|\bdo\s*anything\s*now\b"),
     (("you", "now"), ("from", "now"), *_any("pretend", "imagine", "act", "behave", "mode", "anything"))),
    ("instruction_override", "announces new instructions", re.compile(
        r"\b(?:new|updated|revised|real|actual|true|important|additional|secret|hidden)\s*(?:system\s*)?"
        r"instructions?\s*[:\-–—]"
        r"|\b(?:here\s*are|these\s*are|follow)\s*(?:your|the|my)\s*new\s*instructions\b"
        r"|\byour\s*(?:new|real|actual|true)\s*(?:instructions\b|task\s*(?:is\b|:))"
        r"|\b(?:system|admin|developer|administrator)\s*override\b"),
     (*_any("instruction", "override"), ("your", "task"))),
    ("instruction_override", "addresses the model directly", re.compile(
        r"\b(?:attention|note\s*to|dear|hey|hello|hi|message\s*for|instructions?\s*for)\s*"
        r"(?:the\s*)?(?:ai|llm|gpt|chatgpt|assistant|bot|model|language\s*model|ai\s*assistant|ai\s*model)\s*[:,!\-]"
        r"|\bif\s*you(?:'re|\s*are)\s*(?:an?\s*)?(?:ai|llm|(?:large\s*)?language\s*model|ai\s*assistant|chatbot|gpt)"
        r"\s*(?:[,:;]|reading\b|(?:model|assistant|agent)\b)"
        r"|\b(?:respond|reply|answer)\s*(?:only\s*with|with\s*only|with\s*exactly|with\s*just)\b"
        r"|\b(?:say|write|output|print|type|reply|respond)\s*(?:exactly|verbatim)\b|\boutput\s*only\b"
        r"|\binstead,?\s*(?:write|say|output|reply|respond|print)\b"),
     (*_any("ai", "llm", "gpt", "assistant", "bot", "model", "exactly", "verbatim", "output", "instead"),
      ("if", "you"), ("respond", "with"), ("reply", "with"), ("answer", "with"))),
    ("role_tag", "fake chat role or special token", re.compile(
        rf"{_SENTENCE_START}(?:system|assistant|human)\s*:"
        r"|<\|[a-z_]{2,20}\|>|\[/?\s*inst\s*\]|<</?\s*sys\s*>>|</?s>|\[/?\s*(?:system|assistant|user)\s*\]"
        r"|</?\s*(?:system|assistant|user|instructions?|prompt|im_start|im_end)\s*>"
        r"|#{2,}\s*(?:system|assistant|user|instruction|instructions|response|human)\b"
        r"|\b(?:im_start|im_end|endoftext|start_header_id|end_header_id|eot_id)\b"),
     (("system", ":"), ("assistant", ":"), ("human", ":"), ("<", ">"),
      *_any("[", "##", "im_", "endoftext", "header_id", "eot_id"))),
    ("template_syntax", "template syntax in data", re.compile(r"\{\{|\}\}|\{%|%\}|\{#|\$\{|<%|%>"),
     _any("{", "}", "%")),
    ("exfiltration", "asks to reveal the prompt or secrets", re.compile(
        r"\b(?:reveal|print|show|repeat|output|display|leak|dump|expose|tell\s*me|give\s*me|share|return|send"
        r"|write\s*out|spell\s*out|recite|echo|translate|what\s*(?:is|are|were|was))\b[^.\n]{0,30}?"
        r"(?:\bsystem\s*prompt|\b(?:your|the)\s*(?:initial|original|hidden|secret|system|full|exact)?\s*"
        r"(?:prompt|instructions)\b|\byour\s*(?:rules|guidelines|directives|configuration)\b)"
        r"|\b(?:reveal|print|output|dump|leak|expose|tell\s*me|give\s*me|send\s*me)\b[^.\n]{0,30}?"
        r"\b(?:api[\s_\-]*keys?|passwords?|credentials|environment\s*variables|secret\s*keys?)"
        r"|\brepeat\b[^.\n]{0,20}?\b(?:everything|all|the\s*text|the\s*words|the\s*content)\b[^.\n]{0,20}?"
        r"\b(?:above|before|so\s*far|verbatim)"
        r"|\bsystem\s*prompt\s*(?:says|is|reads)\b"),
     _any("prompt", "instructions", "rules", "guidelines", "directives", "configuration", "key", "password",
          "credentials", "environment", "repeat")),
    ("exfiltration", "asks to put a link or data in the output", re.compile(
        r"\b(?:include|add|insert|append|put|output|print|paste|embed|place)\s*(?:this|the|the\s*following|my|a|our)?"
        r"\s*(?:link|url|hyperlink)\b"
        r"|\b(?:include|add|insert|append|put|output|print|paste|embed|place)\b[^\n.]{0,30}?(?:https?://|www\.)"
        r"|\b(?:include|add|insert|append|say|write|mention|output|print|put)\b[^.\n]{0,60}?"
        r"\b(?:in|to|into|at\s*the\s*(?:end|start|beginning)\s*of)\s*(?:your|the)\s*"
        r"(?:reply|response|output|answer|generated\s*(?:message|text))\b"
        r"(?!\s*(?:time|rate|team|workflow|process|plan|strateg|capabilit))"
        r"|\b(?:end|start|begin|sign|finish)\s*(?:your|the|each|every)\s*(?:reply|response|output|answer|message)s?"
        r"\s*(?:with|by)\b"
        r"|!\[[^\]\n]*\]\("
        r"|\b(?:send|post|forward|upload|exfiltrate|transmit|leak)\b[^.\n]{0,30}?\b(?:the|your|this|all)\s*"
        r"(?:conversation|prompt|instructions|context|chat\s*history|api\s*keys?|secrets?|credentials)\b"
        r"[^.\n]{0,40}?\bto\b"),
     _any("link", "url", "http", "www", "reply", "response", "output", "answer", "generated", "message", "![",
          "conversation", "prompt", "instructions", "context", "history", "key", "secret", "credentials")),
)  # fmt: skip

# --------------------------------------------------------------------------------------------------
# The screen in other languages
# --------------------------------------------------------------------------------------------------
# The common injection phrasings in French, Spanish, Portuguese, Italian, German, Dutch, Polish, Swedish,
# Danish/Norwegian, Romanian, Turkish and Russian (plus Chinese, Japanese and Korean for the "ignore the
# previous instructions" family). They run on the folded variants with accents removed ("précédentes" ->
# "precedentes"), so accents, case and spacing do not matter. Each family is anchored on a group of words
# that every match contains (the object "instructions" in its languages, "now", "reply", ...), and those
# words are its needles. Ordinary sales language is kept out by requiring an override verb *and* an
# instruction-like object, or an unmistakable construction ("nouvelles instructions :").


def _words(*items: str) -> str:
    return "(?:" + "|".join(items) + ")"


_SEP = r"[\s'\-]+"
# Articles, quantifiers, possessives and politeness words that may sit between a verb and its object.
_FILL = _words(
    "all", "any", "of", "the", "your", "my", "these", "those", "toutes?", "tous", "tout", "les?", "la", "l", "des?",
    "du", "vos", "votre", "tes", "ses", "mes", "ces", "leurs?", "todas?", "todos?", "las?", "los?", "el", "del",
    "tus?", "sus?", "mis?", "estas?", "esas?", "esos", "as", "os", "a", "o", "das", "dos", "suas?", "seus?",
    "tuas?", "teus?", "essas?", "tutte?", "tutti", "gli", "i", "il", "lo", "di", "delle", "degli", "dei", "tue?",
    "tuoi", "sue?", "suoi", "queste?", "questi", "alle[ns]?", "die", "der", "den", "dem", "deine[nrms]?",
    "ihre[nrms]?", "diese[nrms]?", "samtliche[n]?", "sie", "du", "het", "je", "jouw", "uw", "deze", "wszystkie",
    "wszystkich", "moje", "twoje", "alla", "dina", "dine", "toate", "bitte", "please", "svp", "por favor",
    "per favore", "moi", "mir", "me", "simplement", "einfach", "just", "maintenant", "ahora", "agora", "ora",
    "jetzt", "nu", "now", "y", "e", "et", "und", "en", "van", "ci", "ne", "nun", "tum", "butun", "wszystkich",
)
_FILLS = rf"(?:{_FILL}{_SEP}){{0,4}}"
# Objects: the ones that make an override on their own, and the ones that need an "earlier" word.
# (needle, word forms): each form contains its needle.
_OBJ_FORMS = (
    ("instr", r"instructions?|instrucciones|instruccion|instrucoes|instrucao|instruktion(?:en|er)?|instructies"
              r"|instructie|instrukcj\w*|instruksjon(?:er)?|instructiun\w*"),
    ("istruz", r"istruzion[ei]"), ("consign", r"consignes?"), ("anweis", r"anweisung(?:en)?"),
    ("prompt", r"prompts?|systemprompts?|systeemprompts?"),
    ("directiv", r"directives?|directivas?"), ("directric", r"directrices"),
    ("diret", r"diretrizes|diretivas?|direttive"),
    ("richtl", r"richtlinien|richtlijnen"), ("vorgab", r"vorgaben"), ("aanwijz", r"aanwijzingen"),
    ("wytyczn", r"wytyczn\w*"), ("polecen", r"polecen\w*"), ("talimat", r"talimat\w*"), ("yonerge", r"yonerge\w*"),
    ("indicac", r"indicaciones|indicacoes"), ("indicati", r"indications"), ("indicaz", r"indicazioni"),
    ("orientac", r"orientaciones|orientacoes"), ("befehl", r"befehle"),
    ("comand", r"comandos|comandi"), ("opdracht", r"opdrachten"), ("komut", r"komutlar\w*"),
)
_OBJ_STEMS = tuple(stem for stem, _ in _OBJ_FORMS)
_WEAK_STEMS = ("regl", "regel", "regol", "regra", "regul", "zasad", "kural")
_STRONG = _words(*(forms for _, forms in _OBJ_FORMS))
_WEAK = _words(*(stem + r"\w*" for stem in _WEAK_STEMS), r"messages?", "mensajes", "mensagens", "messaggi",
               "nachrichten", "berichten")
_EARLIER_ML = _words(
    r"precedent\w*", r"anterior\w*", r"previ[ao]s?", "ci dessus", "ci-dessus", "d'origine", r"initia\w*",
    r"inicia\w*", r"inizia\w*", r"origina\w*", "du systeme", "del sistema", "do sistema", "di sistema",
    "de arriba", "acima", "sopra", r"vorherig\w*", r"vorig\w*", r"bisherig\w*", r"obig\w*", r"vorangegangen\w*",
    r"vorangehend\w*", r"ursprunglich\w*", r"fruher\w*", "oben", "davor", r"eerder\w*", r"voorgaand\w*",
    r"bovenstaand\w*", r"oorspronkelijk\w*", "hierboven", r"poprzedni\w*", r"wczesniejsz\w*", r"powyzsz\w*",
    "tidigare", "tidligere", "foregaende", "ovanstaende", "ovenstaende", "ovenfor", "anterioare", "onceki",
    "yukaridaki", r"system\w*", "previous", "prior", "above", "earlier",
)
_NOT_BEFORE = r"(?<!\bne )(?<!\bn')(?<!\bno )(?<!\bnon )(?<!\bnao )(?<!\bnie )(?<!\bdon't )(?<!\bdo not )"
_NOT_AFTER = r"(?![\s'\-]+(?:pas|nicht|niet|nie|non|no|not)\b)"
_OVERRIDE_VERB = _words(
    # fr
    r"ignor\w*", r"zignor\w*", r"oubli\w*", r"neglige[zr]?", r"outrepass\w*", r"contourne[zr]?",
    "ne tiens pas compte", "ne tenez pas compte", "ne pas tenir compte", "fais abstraction", "faites abstraction",
    r"passe[zr]? outre", r"annule[zr]?", r"efface[zr]?",
    # es / pt / it
    r"olvid\w*", "haz caso omiso", "hagan caso omiso", "haga caso omiso", "no hagas caso", r"omit[ae]\w*",
    r"descart\w*", "pasa por alto", "pase por alto", r"esquec\w*", r"desconsider\w*", "deixe de lado",
    "nao leve em conta", r"dimentic\w*", "non considerare", "non tenere conto", r"trascur\w*", r"tralasci\w*",
    # de / nl
    r"vergi(?:ss|b)\w*", r"vergess\w*", r"missacht\w*", r"ueberspring\w*", r"uberspring\w*", r"ubergeh\w*",
    r"verwirf", r"nege(?:er|ren)\w*", r"verge(?:et|ten)\w*", "houd geen rekening", "negeer",
    # pl / sv / da / no / ro / en
    r"zapomnij\w*", r"pomin\w*", "glom", "glem", "bortse fran", "se bort fra",
    r"disregard\w*", r"forget\w*", "bypass", r"overrid\w*",
)
_VERB_AT = rf"\b{_NOT_BEFORE}{_OVERRIDE_VERB}{_NOT_AFTER}{_SEP}{_FILLS}"
_LATE_VERB = r"(?:ignor\w*|vergess\w*|negeren|yok say\w*|gormezden gel\w*|unut\w*|olvid\w*|dimentic\w*|oubli\w*)"
_OVERRIDE_STRONG = (
    # verb, fillers, (earlier), strong object: "ignorez toutes les instructions", "vergiss alle vorherigen Anweisungen"
    rf"{_VERB_AT}(?:{_EARLIER_ML}{_SEP}{_FILLS})?{_STRONG}\b"
    # object first (German infinitive, Turkish order): "vorherigen Anweisungen ignorieren"
    rf"|\b{_EARLIER_ML}{_SEP}(?:{_FILL}{_SEP})?{_STRONG}{_SEP}(?:zu{_SEP})?{_LATE_VERB}"
    # spaced-out text collapsed into one word: "ignorezlesinstructionsprecedentes"
    rf"|\b(?:ignor|oubli|olvid|esquec|dimentic|vergi|vergess|nege|zapomn)[a-z]{{0,30}}?"
    rf"(?:{'|'.join(_OBJ_STEMS)})[a-z]{{0,20}}?(?:precedent|anterior|previ|vorherig|vorig|eerder|poprzedn)"
)


def _override_weak(weak: str) -> str:
    return (
        # verb, fillers, object, earlier: "ignora las reglas anteriores", "olvida los mensajes previos"
        rf"{_VERB_AT}(?:{_STRONG}|{weak}){_SEP}(?:{_FILL}{_SEP}){{0,2}}{_EARLIER_ML}"
        # verb, fillers, earlier, weak object: "vergiss alle vorherigen Regeln"
        rf"|{_VERB_AT}{_EARLIER_ML}{_SEP}{weak}"
        rf"|\b{_EARLIER_ML}{_SEP}(?:{_FILL}{_SEP})?{weak}{_SEP}(?:zu{_SEP})?{_LATE_VERB}"
    )


_OVERRIDE_ML_RE = re.compile(f"{_OVERRIDE_STRONG}|{_override_weak(_WEAK)}")
# The message guard leaves out "messages" (fewer needles to look for in every message it checks).
_RULES = _words(*(stem + r"\w*" for stem in _WEAK_STEMS))
_OVERRIDE_ML_ECHO_RE = re.compile(f"{_OVERRIDE_STRONG}|{_override_weak(_RULES)}")
_OVERRIDE_ML_ECHO_NEEDLES = _any(*_OBJ_STEMS, *_WEAK_STEMS)
_OVERRIDE_ML_NEEDLES = _any(*_OBJ_STEMS, *_WEAK_STEMS, "messag", "mensaj", "mensag", "nachricht", "bericht")
# Everything said so far: "oublie tout ce qui précède", "olvida todo lo anterior", "vergiss alles davor".
_EVERYTHING_ML_RE = re.compile(
    rf"\b{_NOT_BEFORE}{_OVERRIDE_VERB}{_NOT_AFTER}{_SEP}(?:{_FILL}{_SEP}){{0,2}}"
    r"(?:tout ce qui|tout ce que|tout ce|todo lo|tudo o|tudo que|tutto quello|tutto cio|tutto quanto|alles was|alles"
    r"|allt|alt hvad|alt det|wszystko|toate)"
    r"[\s'\-]+(?:[\w']+[\s'\-]+){0,4}?(?:precede\w*|ci-dessus|ci dessus|dit\b|anterior\w*|arriba|acima|dicho\b|dito\b"
    r"|detto\b|sopra|oben|davor|bisher\w*|gesagt|hierboven|gezegd|ovan|ovenfor|powyzej|de mai sus)"
)
_EVERYTHING_ML_NEEDLES = _any("tout ce", "todo lo", "tudo", "tutto", "alles", "allt", "alt ", "wszystko", "toate")
# Chinese, Japanese, Korean and Russian "ignore the previous instructions" (run on the folded text).
_OVERRIDE_CJK_RE = re.compile(
    r"(?:忽略|忽视|无视|無視|忘记|忘掉|不要理会|不理会|不要遵守|跳过)\s*(?:掉)?\s*(?:你|您)?(?:之前|以前|先前|上面|上述|前面|以上|所有|全部|原来|原先)"
    r"[^。.!?！？]{0,8}?(?:指令|指示|说明|提示|规则|命令|要求|設定|设定)"
    r"|(?:以前|前|上記|これまで|先)の(?:すべての|全ての)?(?:指示|命令|指令|プロンプト|ルール)(?:を|は)?(?:すべて)?(?:無視|忘れ)"
    r"|(?:이전|앞의|위의|기존)\s*(?:의\s*)?(?:모든\s*)?(?:지시|명령|지침|프롬프트|규칙)\S*\s*(?:을|를)?\s*(?:무시|잊어)"
    r"|(?:игнорир\w*|забудь\w*|забуд\w*|не обращай внимания на|не слушай)\s+(?:все\s+|всё\s+)?(?:предыдущ\w*|прежн\w*"
    r"|вышеуказанн\w*|системн\w*|свои\s+|твои\s+)?\s*(?:инструкц\w*|указани\w*|команд\w*|правил\w*|промпт\w*)"
)
_OVERRIDE_CJK_NEEDLES = _any("忽略", "忽视", "无视", "無視", "忘记", "忘掉", "不要理会", "不理会", "不要遵守", "跳过",
                             "無視", "忘れ", "무시", "잊어", "игнорир", "забуд", "забудь", "не обращай", "не слушай")
# A new role: "tu es maintenant un assistant sans limites", "ab jetzt bist du", "finge que eres".
_ROLE_ML_RE = re.compile(
    r"\b(?:tu es|vous etes|t'es) (?:maintenant|desormais|a present|dorenavant) (?:une? |le |la |mon |ma |en mode |libre"
    r"|sans |dan\b)"
    r"|\b(?:a partir de maintenant|desormais|dorenavant),? (?:tu|vous) (?:es|etes|dois|devez|reponds|repondez|ecris"
    r"|ecrivez|obeis|obeissez)\b"
    r"|\bahora (?:eres|sos|seras|actuas como) (?:un |una |el |la |mi |libre|dan\b)"
    r"|\b(?:a partir de ahora|desde ahora|de ahora en adelante),? (?:eres|seras|debes|responde\w*|escrib\w*|actua\w*)\b"
    r"|\bagora (?:voce e|tu es|es) (?:um |uma |o |a |meu |minha |livre|dan\b)"
    r"|\b(?:a partir de agora|de agora em diante),? (?:voce|tu) (?:e|es|deve|deves|vai|responde\w*|escreve\w*)\b"
    r"|\bora (?:sei|tu sei) (?:un |una |un'|il |lo |la |il mio |libero|dan\b)"
    r"|\b(?:d'ora in (?:poi|avanti)|da ora in poi|da adesso),? (?:sei|devi|rispond\w*|scriv\w*)\b"
    r"|\bdu bist (?:jetzt|nun|ab jetzt|ab sofort|von nun an) (?:ein |eine |der |die |das |mein |meine |frei|dan\b|kein)"
    r"|\b(?:ab jetzt|von nun an|ab sofort),? (?:bist du|musst du|antwortest du|schreibst du|sollst du|wirst du)\b"
    r"|\bje bent (?:nu|vanaf nu) (?:een |de |het |mijn |vrij|dan\b)"
    r"|\bvanaf nu,? (?:ben je|moet je|antwoord je|schrijf je|zul je)\b"
    r"|\b(?:fais|faites) semblant d'etre|\bfinge (?:que eres|ser)\b|\bfinja (?:que (?:voce )?e|ser)\b"
    r"|\b(?:fingi|fai finta) di essere\b|\btu so,? als (?:ob du|warst du|waerst du)|\bdoe alsof je\b"
    r"|\b(?:active[zr]?|activa\w*|ative\w*|attiva\w*|aktivier\w*|activeer\w*) (?:le |el |o |la |den |de |il )?"
    r"(?:mode |modo |modalita |modus )?(?:developpeur|desarrollador|desenvolvedor|sviluppatore|entwickler\w*"
    r"|ontwikkelaar\w*|dan|jailbreak|dieu|dios|deus|admin\w*|debug)\b"
)
_ROLE_ML_NEEDLES = _any("maintenant", "desormais", "dorenavant", "a present", "ahora", "agora", "ora ", "d'ora",
                        "adesso", "du bist",
                        "ab jetzt", "von nun an", "ab sofort", "je bent", "vanaf nu", "semblant", "fing", "finj",
                        "finta", "als ob", "warst", "waerst", "alsof", "activ", "ativ", "attiv", "aktivier")
# A header that introduces new instructions, or the model's "real task": "Nouvelles instructions :".
_NEW_ML_HEADER = (
    r"\b(?:nouvelles?|nuevas?|novas?|nuove|nuova|neuen?|nieuwe|nowe|nya|nye|yeni|noi)\s+(?:instructions?|consignes"
    r"|instrucciones|instrucoes|instrucao|istruzioni|anweisungen|anweisung|instruktionen|instructies|instrukcje"
    r"|instruktioner|instruksjoner|talimatlar|instructiuni)\s*[:\-–—]"
    r"|\b(?:voici|voila|estas son|aqui (?:estan|estao|tens|tem)|hier sind|ecco|dit zijn|hier zijn|oto)\s+"
    r"(?:(?:tes|vos|tus|sus|suas|tuas|deine|ihre|le tue|le sue|je|jouw|uw|twoje)\s+)?(?:nouvelles?|nuevas?|novas?"
    r"|nuove|neuen?|nieuwe|nowe)\s+(?:instructions|consignes|instrucciones|instrucoes|istruzioni|anweisungen"
    r"|instructies|instrukcje)"
    r"|\bnovye instrukcii\s*:|\bновые инструкции\s*[:\-–—]"
)
_NEW_ML_HEADER_RE = re.compile(_NEW_ML_HEADER)
_NEW_ML_HEADER_NEEDLES = _any("instr", "istruz", "consign", "anweis", "talimat", "инструкц")
_NEW_ML_RE = re.compile(
    _NEW_ML_HEADER
    + r"|\b(?:ta|votre|tu|su|sua|deine|ihre|il tuo|je|jouw)\s+(?:vraie|veritable|verdadera|verdadeira|eigentliche"
    r"|wahre|vero|echte)\s+(?:tache|mission|tarea|mision|tarefa|missao|aufgabe|compito|taak|opdracht)\b"
)
_NEW_ML_NEEDLES = (*_NEW_ML_HEADER_NEEDLES,
                   *_any("vraie", "veritable", "verdadera", "verdadeira", "eigentliche", "wahre", "vero", "echte"))
# Speaks to the model: "Note à l'IA :", "Si eres una IA", "Antworte nur mit", "Réponds uniquement par oui".
_ADDRESS_ML_RE = re.compile(
    r"\b(?:note|nota|hinweis|opmerking|message|mensaje|mensagem|messaggio|nachricht|bericht|attention|atencion"
    r"|atencao|attenzione|achtung)\s+(?:a|pour|para|per|an|aan|voor|fur|for)\s+(?:l'|la |le |el |a |o |die |den "
    r"|de |het |il |lo )?(?:ia|ai|ki|llm|gpt|chatgpt|assistant\w*|asistente|assistente|bot|robot|modele|modelo"
    r"|modello|modell|model)\s*[:,!\-]"
    r"|\b(?:si tu es|si vous etes|si eres|si usted es|se voce e|se tu es|se sei|wenn du|falls du|als je|als u)\s+"
    r"(?:une? |una |uma |um |un'|eine? |een |ein )?(?:ia|ai|ki|llm|gpt|chatbot|modele de langage|modelo de lenguaje"
    r"|modelo de linguagem|modello linguistico|sprachmodell|taalmodel|assistant\w*|asistente|assistente)\b"
    r"|\b(?:repond\w*|respond\w*|contest\w*|antwort\w*|rispond\w*|antwoord\w*|ecri[st]\w*|escrib\w*|escrev\w*"
    r"|schreib\w*|scriv\w*|schrijf\w*)\s+(?:uniquement|seulement|solo|solamente|unicamente|apenas|somente|nur"
    r"|soltanto|alleen|enkel)\s+(?:par|avec|con|com|mit|met)\s+(?:le mot|la palabra|a palavra|das wort|la parola"
    r"|het woord|oui|si|sim|ja|yes|\"|'|«)"
)
_ADDRESS_ML_NEEDLES = (*_any("ia", "ai", "ki", "llm", "gpt", "assist", "asist", "bot", "model", "taalmodel"),
                       *_any("uniquement", "seulement", "solo", "solamente", "unicamente", "apenas", "somente",
                             "nur", "soltanto", "alleen", "enkel"))
# Asks for the prompt, keys or passwords, or for everything above to be repeated.
_SHOW_ML = _words(
    r"revele\w*", r"montre\w*", r"affiche\w*", r"donne\w*", "dis-moi", "dis moi", "ecris", r"repete\w*",
    r"imprime\w*", r"recite\w*", r"divulgue\w*", r"muestra\w*", r"revela\w*", "dime", "dame", "escribe",
    r"repite\w*", r"ensena\w*", r"mostr\w*", r"revel\w*", "diga-me", "me diga", "diz-me", r"repit\w*",
    r"escrev\w*", r"imprim\w*", "dimmi", "dammi", "ripeti", "scrivi", "stampa", r"rivela\w*", r"zeig\w*",
    r"verrat\w*", "gib", r"nenn\w*", r"wiederhol\w*", r"schreib\w*", r"offenbar\w*", "toon", "laat zien",
    r"onthul\w*", "geef", "herhaal", "schrijf", r"pokaz\w*", r"ujawnij\w*", r"visa", "vis",
)
_EXFIL_ML_RE = re.compile(
    rf"\b{_SHOW_ML}\b[^.\n]{{0,30}}?(?:\b(?:system)?prompt\w*|\bsysteemprompt\w*"
    r"|\b(?:tes|vos|tus|sus|suas|seus|tuas|teus|deine[n]?|ihre[n]?|tue|tuoi|je|jouw|uw|twoje)\s+(?:instructions"
    r"|consignes|instrucciones|instrucoes|istruzioni|anweisungen|instructies|instrukcje|regles|reglas|regras"
    r"|regole|regeln|regels|directives|directrices|diretrizes|richtlinien|richtlijnen)\b"
    r"|\b(?:les|las|as|le|die|de)\s+(?:instructions|consignes|instrucciones|instrucoes|istruzioni|anweisungen"
    r"|instructies)\s+(?:initiales|originales|originais|originali|ursprunglichen|oorspronkelijke|du systeme"
    r"|del sistema|do sistema|di sistema|cachees|secretes|ocultas|secretas|nascoste|segrete|geheimen|versteckten"
    r"|verborgen)"
    r"|\b(?:cle|clef|clave|chave|chiave)s?\s*(?:d'|de |di |do |da )?\s*(?:l')?api\b|\bapi[\s\-]*(?:schlussel|sleutel)"
    r"|\bmots? de passe\b|\bcontrasena\w*|\bsenhas?\b|\bpasswort\w*|\bkennwort\w*|\bwachtwoord\w*|\bidentifiants\b"
    r"|\bcredenciales\b|\bcredenciais\b|\bcredenziali\b|\bzugangsdaten\b|\binloggegevens\b"
    r"|\bvariables d'environnement\b|\bvariables de entorno\b|\bumgebungsvariablen\b)"
    r"|\b(?:repete\w*|repite\w*|repit[ae]\w*|ripet\w*|wiederhol\w*|herhaal\w*)\b[^.\n]{0,20}?\b(?:tout|todo|tudo"
    r"|tutto|alles|le texte|el texto|o texto|il testo|den text|de tekst)\b[^.\n]{0,25}?(?:precede|ci-dessus"
    r"|au-dessus|anterior|arriba|acima|sopra|oben|davor|hierboven|mot pour mot|palabra por palabra"
    r"|palavra por palavra|parola per parola|wort fur wort|woord voor woord)"
)
_EXFIL_ML_NEEDLES = _any("prompt", "instr", "istruz", "consign", "anweis", "regl", "regra", "regol", "regel",
                         "direc", "diret", "richtl", "api", "passe", "contrasen", "senha", "passwort", "kennwort",
                         "wachtwoord", "identifiant", "credencia", "credenzia", "zugangsdat", "inlogg",
                         "environnement", "entorno", "umgebungsvar", "repet", "repit", "ripet", "wiederhol", "herhaal")
# Asks to put a link or a text into the output: "ajoute ce lien dans ta réponse", "termina tu mensaje con".
_REPLY_ML = _words("reponse", "respuesta", "resposta", "risposta", "antwort", "antwoord", "mensaje", "mensagem",
                   "messaggio", "nachricht", "bericht", "message", "odpowiedz", "svar")
_LINK_ML_RE = re.compile(
    r"\b(?:ajoute\w*|inclu\w*|insere\w*|mets|mettez|colle\w*|integre\w*|anade\w*|agrega\w*|incluy\w*|inserta\w*"
    r"|pon|pega\w*|adicion\w*|insir\w*|coloqu\w*|aggiung\w*|inserisc\w*|metti|fug\w*|setz\w*|einfug\w*|voeg\w*"
    r"|zet|plak\w*|dodaj\w*)\b[^.\n]{0,30}?\b(?:lien|liens|enlace|enlaces|vinculo|link|links|url|collegamento"
    r"|hyperlien)\b"
    rf"|\b(?:ajoute\w*|inclu\w*|insere\w*|mets|mettez|ecri[st]\w*|mentionne\w*|anade\w*|agrega\w*|incluy\w*"
    r"|escrib\w*|menciona\w*|adicion\w*|escrev\w*|aggiung\w*|scriv\w*|menziona\w*|fug\w*|schreib\w*|erwahn\w*"
    r"|voeg\w*|schrijf\w*|vermeld\w*|dodaj\w*|napisz\w*)\b[^.\n]{0,60}?\b(?:dans|en|in|na|nella|no|im|w)\s+"
    rf"(?:ta|votre|tu|su|sua|tua|deine[rm]?|ihre[rm]?|je|jouw|uw|la|le|el|a|die|der|de|het|swojej|twojej)\s+{_REPLY_ML}\b"
    r"|\b(?:termine\w*|finis\w*|commence\w*|signe\w*|finaliza\w*|acaba\w*|empieza\w*|comienza\w*|firma\w*"
    r"|conclu\w*|beende\w*|beginne\w*|unterschreib\w*|eindig\w*|onderteken\w*|finisci|inizia|chiudi|zakoncz\w*)\s+"
    rf"(?:ta|votre|tu|su|sua|tua|deine|ihre|je|jouw|uw|chaque|cada|jede|ogni|elke|la|le|el|a|die|de|il|o)\s+"
    rf"{_REPLY_ML}s?\s+(?:par|avec|con|com|mit|met|por|en|with|by)\b"
)
_LINK_ML_NEEDLES = _any("lien", "enlace", "vinculo", "link", "url", "collegamento", "reponse", "respuesta",
                        "resposta", "risposta", "antwort", "antwoord", "mensaje", "mensagem", "messaggio",
                        "nachricht", "bericht", "message", "odpowiedz", "svar")

_MULTILINGUAL_PATTERNS: tuple[tuple[str, str, re.Pattern[str], _Needles], ...] = (
    ("instruction_override", "asks to ignore earlier instructions", _OVERRIDE_ML_RE, _OVERRIDE_ML_NEEDLES),
    ("instruction_override", "asks to ignore earlier instructions", _EVERYTHING_ML_RE, _EVERYTHING_ML_NEEDLES),
    ("instruction_override", "asks to ignore earlier instructions", _OVERRIDE_CJK_RE, _OVERRIDE_CJK_NEEDLES),
    ("instruction_override", "tries to give the model a new role", _ROLE_ML_RE, _ROLE_ML_NEEDLES),
    ("instruction_override", "announces new instructions", _NEW_ML_RE, _NEW_ML_NEEDLES),
    ("instruction_override", "addresses the model directly", _ADDRESS_ML_RE, _ADDRESS_ML_NEEDLES),
    ("exfiltration", "asks to reveal the prompt or secrets", _EXFIL_ML_RE, _EXFIL_ML_NEEDLES),
    ("exfiltration", "asks to put a link or data in the output", _LINK_ML_RE, _LINK_ML_NEEDLES),
)


def _deaccent(text: str) -> str:
    """``text`` without combining marks ("précédentes" -> "precedentes"); NFC again so Hangul stays whole."""
    if text.isascii():
        return text
    stripped = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)


_INJECTION_PATTERNS = _INJECTION_PATTERNS_EN + _MULTILINGUAL_PATTERNS
# A message that carries an override in any of these languages fails the instruction-echo guard as well,
# whichever field or model put it there.
_ECHO_PATTERNS = _ECHO_PATTERNS_EN + tuple(
    ("echoes an instruction", pattern, needles)
    for pattern, needles in ((_OVERRIDE_ML_ECHO_RE, _OVERRIDE_ML_ECHO_NEEDLES),
                             (_EVERYTHING_ML_RE, _EVERYTHING_ML_NEEDLES), (_OVERRIDE_CJK_RE, _OVERRIDE_CJK_NEEDLES),
                             (_NEW_ML_HEADER_RE, _NEW_ML_HEADER_NEEDLES))
)
_ECHO_NEEDLES, _ECHO_GATES = _gates(needles for *_, needles in _ECHO_PATTERNS)
_INJECTION_NEEDLES, _INJECTION_GATES = _gates(needles for *_, needles in _INJECTION_PATTERNS)

# A second prefilter for the costly other-language override patterns: besides an object ("instructions"),
# a match always contains one of these pieces of an override verb. Looked for only once the first gate opened.
_ML_VERB_STEMS = (
    "ignor", "oubli", "neglige", "outrepass", "contourne", "compte", "abstraction", "e outre", "z outre", "r outre",
    "annule", "efface",
    "olvid", "omiso", "hagas caso", "omit", "descart", "por alto", "esquec", "desconsider", "de lado", "em conta",
    "dimentic", "considerare", "tenere conto", "trascur", "tralasci", "verg", "missacht", "berspring", "bergeh",
    "verwirf", "nege", "rekening", "zapomn", "pomin", "glom", "glem", "bortse", "se bort", "disregard",
    "forget", "bypass", "overrid", "yok say", "gormezden", "unut",
)  # fmt: skip
# Keyed by id: hashing a compiled pattern hashes its (long) source text on every lookup.
_SECOND_GATES: dict[int, tuple[str, ...]] = {
    id(pattern): _ML_VERB_STEMS for pattern in (_OVERRIDE_ML_RE, _OVERRIDE_ML_ECHO_RE, _EVERYTHING_ML_RE)
}


def _second_gate(pattern: re.Pattern[str], text: str) -> bool:
    stems = _SECOND_GATES.get(id(pattern))
    return stems is None or any(stem in text for stem in stems)


def _present(needles: tuple[tuple[str, ...], tuple[str, ...]], text: str) -> set[str]:
    """The needles found in ``text``; the ones with letters outside ASCII are looked for only in such text."""
    ascii_needles, other_needles = needles
    present = {needle for needle in ascii_needles if needle in text}
    if not text.isascii():
        present.update(needle for needle in other_needles if needle in text)
    return present

_SPACED_RUN_RE = re.compile(r"(?<![^\W_])(?:[^\W_][ \t._*·\-]+){2,}[^\W_](?![^\W_])")
# Runs of characters outside \w and the symbols the patterns look for become one space. A lone space is
# left out of the pattern: replacing it by a space would change nothing and costs a replacement per word.
_NON_WORD_RE = re.compile(r"[^\w\n'{}%#$<>|\[\]/: ][^\w\n'{}%#$<>|\[\]/:]*| [^\w\n'{}%#$<>|\[\]/:]+")
_DELEET_CHARS_RE = re.compile("[013457@$]")  # the keys of _DELEET
_DELEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_RLO_SEGMENT_RE = re.compile("[\u202e\u202b]([^\u202c\u2069\n]*)")


def _collapse_spaced(text: str) -> str:
    """ "i g n o r e" -> "ignore" (runs of three or more single characters split by spaces or dots)."""
    if _SPACED_RUN_RE.search(text) is None:  # the usual case, and a search is cheaper than a sub
        return text
    return _SPACED_RUN_RE.sub(lambda m: re.sub(r"[ \t._*·\-]+", "", m.group(0)), text)


def _variants(value: str) -> list[str]:
    """Folded readings of one field value that an attacker might rely on a model to understand."""
    base = _fold(value)
    variants = [base, _collapse_spaced(base)]
    variants.append(_NON_WORD_RE.sub(" ", variants[1]))  # "ignore...all_previous"
    if _DELEET_CHARS_RE.search(variants[-1]):
        variants.append(variants[-1].translate(_DELEET))  # "1gn0re"
    if "\u202e" in value or "\u202b" in value:
        # Right-to-left override: what a person sees is the reversed run; a model may read it either way.
        flipped = _RLO_SEGMENT_RE.sub(lambda m: f" {m.group(1)[::-1]} ", value)
        variants.append(_collapse_spaced(_fold(flipped)))
    if not value.isascii():
        variants.append(_deaccent(variants[2]))  # "précédentes" -> "precedentes" for the other languages
        if not _CONFUSABLE_KEYS.isdisjoint(value.casefold()):
            # Russian or Greek words read as themselves, not with their letters mapped to Latin look-alikes.
            variants.append(_deaccent(_NON_WORD_RE.sub(" ", _collapse_spaced(_fold(value, confusables=False)))))
    return list(dict.fromkeys(variants))


@lru_cache(maxsize=16384)
def _screen_value(value: str) -> tuple[tuple[str, str], ...]:
    """(kind, detail) per finding in one value, in ``INJECTION_KINDS`` order. Cached: an import repeats the
    same industries, titles, notes and news on many rows, and the answer depends on the value alone."""
    found: dict[str, str] = {}
    hidden = _invisible_chars(value)
    if hidden:
        codes = ", ".join(dict.fromkeys(f"U+{ord(ch):04X}" for ch in hidden))
        found["invisible_chars"] = f"{len(hidden)} invisible or direction-control character(s): {codes}"
    variants = _variants(value)
    # A needle found in this join is in at least one variant ("\x00" is in no needle and no variant).
    joined = variants[0] if len(variants) == 1 else "\x00".join(variants)
    present = _present(_INJECTION_NEEDLES, joined)
    for (kind, label, pattern, _), gate in zip(_INJECTION_PATTERNS, _INJECTION_GATES, strict=True):
        if not present:
            break  # every gate has at least one needle
        if kind in found or not _open(gate, present) or not _second_gate(pattern, joined):
            continue
        for variant in variants:
            match = pattern.search(variant)
            if match:
                found[kind] = f"{label}: {_snip(match.group(0).strip() or match.group(0))}"
                break
    return tuple((kind, found[kind]) for kind in INJECTION_KINDS if kind in found)


def screen_fields(fields: Mapping[str, str | None]) -> list[InjectionFlag]:
    """Flag prompt-injection attempts in prospect fields; ``[]`` means nothing suspicious was found.

    At most one flag per (field, kind), fields in the given order and kinds in ``INJECTION_KINDS`` order.
    Ordinary business language ("Ignored by competitors", "System integrator", "Assistant Professor",
    "new instructions for onboarding") is not flagged: overrides must target earlier instructions or the
    model itself, and "new instructions" only counts when it introduces something (``new instructions:``).
    """
    flags: list[InjectionFlag] = []
    for field, raw in fields.items():
        if raw is None:
            continue
        value = raw if isinstance(raw, str) else str(raw)
        flags.extend(InjectionFlag(field=field, kind=kind, detail=detail) for kind, detail in _screen_value(value))
    return flags
