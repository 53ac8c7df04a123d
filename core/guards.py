"""Code checks on every text we might send, and a prompt-injection screen of prospect fields.

Why this module exists: templates, prospect data and model output are all untrusted, and a LinkedIn
message cannot be recalled once sent. So before any candidate message leaves the engine it passes the
six guards of :func:`check_message` (no leftover placeholders, within the length limit, no spam phrase,
no invented link / e-mail / phone number, no Markdown or HTML, no echoed instructions). Separately,
:func:`screen_fields` looks at prospect fields *before* they reach a prompt, because a headline such as
"Ignore all previous instructions and ..." is aimed at the model that writes the message.

Everything here is a pure function of its arguments: no database, no network, no clock.

Matching is done on a *folded* copy of the text (invisible characters removed, NFKC, casefold, a few
Cyrillic/Greek look-alikes mapped to Latin), so fullwidth letters, zero-width joiners inside words and
mixed case do not dodge the checks. The original text is never modified.

``GuardResult.detail`` and ``InjectionFlag.detail`` are plain text meant for operators: quoted snippets
are shortened, control characters are shown as ``\\uXXXX`` and angle brackets are replaced by ``‹ ›``, so
a detail never carries live HTML. The UI should still render it as text, not Markdown.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping, Sequence
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

GUARD_NAMES = ("placeholders", "length", "banned_phrases", "contacts", "markup", "instruction_echo")
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
    if value.isascii() and value.isprintable():
        return value
    return "".join(ch for i, ch in enumerate(value) if not _is_invisible(value, i))


def _invisible_chars(value: str) -> list[str]:
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


def _fold(value: str) -> str:
    """The matching form of a text: visible characters only, NFKC, casefolded, look-alikes mapped."""
    text = unicodedata.normalize("NFKC", strip_invisible(value)).casefold()
    text = text.translate(_CONFUSABLES).translate(_TYPOGRAPHY)
    return _HORIZONTAL_SPACE_RE.sub(" ", text)


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

_PLACEHOLDER_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("unfilled writing slot", re.compile(r"\x00[^\x00]{0,60}\x00?")),
    ("template tag", re.compile(r"\{%.{0,80}?%\}|\{#.{0,80}?#\}", re.S)),
    ("template variable", re.compile(r"\{\{.{0,80}?\}\}", re.S)),
    ("template delimiter", re.compile(r"\{\{|\}\}|\{%|%\}|\$\{|<%|%>")),
    ("braced placeholder", re.compile(r"\{\s*[A-Za-z_0-9][\w .:\-]{0,40}\}")),
    ("double-bracket marker", re.compile(r"\[\[.{0,80}?\]\]", re.S)),
    # [Name], [Company name], [insert pain point] -- but not a Markdown link "[text](url)".
    ("bracketed placeholder", re.compile(r"\[\s*[A-Za-z_][^\[\]\n]{0,60}\](?!\()")),
    ("format placeholder", re.compile(r"%\(\w+\)[sdr]|(?<![\w%])%[sd](?!\w)")),
    ("empty value after greeting",
     re.compile(r"(?im)\b(?:hi|hello|hey|dear)[ \t]+(?:[,!.;:]|(?:none|null|nan|undefined)\b)")),
)  # fmt: skip
_ANGLE_PLACEHOLDER_RE = re.compile(r"<\s*([A-Za-z_][\w \-]{0,40}?)\s*>")


_MAX_FINDINGS = 10  # a detail shows a few; stop looking after this many (bounds the work on hostile text)


def _check_placeholders(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)  # fullwidth braces are still braces
    found: list[str] = []
    taken: list[tuple[int, int]] = []  # report "{{ name }}" once, not again as a stray "{{"
    for label, pattern in _PLACEHOLDER_PATTERNS:
        for match in pattern.finditer(text):
            if len(found) >= _MAX_FINDINGS:
                break
            if all(match.end() <= a or match.start() >= b for a, b in taken):
                taken.append(match.span())
                found.append(f"{label} {_snip(match.group(0))}")
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


@lru_cache(maxsize=1024)
def _phrase_pattern(phrase: str) -> re.Pattern[str] | None:
    words = [w for w in re.split(r"[\s\-]+", _fold(phrase)) if w]
    if not words:
        return None
    body = r"[\s\-]+".join(re.escape(w) for w in words)
    # Whole-word-ish: a phrase may not start or end inside a word ("act now" is not in "react nowhere").
    return re.compile(rf"(?<!\w){body}(?!\w)")


def _check_banned(text: str, phrases: Sequence[str]) -> str:
    folded = _fold(text)
    hits = []
    for phrase in phrases:
        pattern = _phrase_pattern(phrase)
        if pattern is not None and pattern.search(folded):
            hits.append(phrase.strip())
    return f"spam phrase {_join_found(hits)}" if hits else ""


# --------------------------------------------------------------------------------------------------
# Guard: contacts
# --------------------------------------------------------------------------------------------------

# Common generic TLDs plus country codes that are not English words, so "thanks.so", "in.it" or "join.us"
# from a missing space is not taken for a domain. A link with a scheme or "www." is caught whatever its TLD.
_TLDS = (
    "com|net|org|io|co|ai|app|dev|biz|info|xyz|tech|ly|gg|sh|vc|tv|cc|uk|de|fr|nl|es|ca|au|eu|ch|se|pl|"
    "ru|cn|jp|br|mx|gov|edu|site|online|store|shop|blog|cloud|link|page|club|pro|agency|digital|"
    "solutions|studio|bio|fm|gl|li|sg|hk|nz|za|ie|dk|fi|pt|cz|ro|il|kr|tw|ua|tr"
)
_URL_CHARS = r"[^\s<>\"'()\[\]{}|\\^`]"
_SCHEME_URL_RE = re.compile(rf"(?i)\b(?:https?://|www\.){_URL_CHARS}+")
_EMAIL_RE = re.compile(r"(?i)(?<![\w.+\-])[a-z0-9._%+\-]+@[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}(?![\w\-])")
_BARE_DOMAIN_RE = re.compile(
    rf"(?i)(?<![\w@./\-])(?:[a-z0-9](?:[a-z0-9\-]{{0,61}}[a-z0-9])?\.)+(?:{_TLDS})(?![\w\-])(?:/{_URL_CHARS}*)?"
)
_TECH_NAMES = frozenset({"asp.net", "vb.net", "ado.net"})
_PHONE_CANDIDATE_RE = re.compile(r"(?<![\w+])\+?\(?[0-9][0-9 ().\-]{5,}[0-9](?![\w])")
_THOUSANDS_RE = re.compile(r"\d{1,3}(?:[ .]\d{3})+")
_YEAR_RANGE_RE = re.compile(r"(?:19|20)\d{2}\s*-\s*(?:19|20)\d{2}")
_DATE_RE = re.compile(r"\d{4}[\-./]\d{1,2}[\-./]\d{1,2}|\d{1,2}[\-./]\d{1,2}[\-./]\d{2,4}")
_LOCAL_PHONE_RE = re.compile(r"\d{3}[\- ]\d{4}")
_TRAILING_PUNCT = ".,;:!?'\")*"


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
    """(kind, as written, canonical) for every link, e-mail address and phone number in ``text``."""
    found: list[tuple[str, str, str]] = []
    taken: set[int] = set()  # character positions already part of a contact

    def claim(match: re.Match[str]) -> bool:
        span = range(match.start(), match.end())
        if any(i in taken for i in span):
            return False
        taken.update(span)
        return True

    for match in _SCHEME_URL_RE.finditer(text):
        written = match.group(0).rstrip(_TRAILING_PUNCT)
        claim(match)
        found.append(("link", written, _canonical_link(written)))
    for match in _EMAIL_RE.finditer(text):
        if claim(match):
            found.append(("e-mail", match.group(0), match.group(0).lower()))
    for match in _BARE_DOMAIN_RE.finditer(text):
        written = match.group(0).rstrip(_TRAILING_PUNCT)
        if written.lower() not in _TECH_NAMES and claim(match):
            found.append(("link", written, _canonical_link(written)))
    for match in _PHONE_CANDIDATE_RE.finditer(text):
        if _looks_like_phone(match.group(0)) and claim(match):
            found.append(("phone number", match.group(0), _digits(match.group(0))))
    return found


def _haystack(value: str) -> str:
    text = unicodedata.normalize("NFKC", strip_invisible(value)).lower()
    text = re.sub(r"https?://", " ", text)
    return re.sub(r"(?<![\w.\-])www\.", " ", text)


def _contact_in_inputs(kind: str, canonical: str, haystacks: Sequence[str], phones: set[str]) -> bool:
    if kind == "phone number":
        return any(
            canonical == known or (min(len(canonical), len(known)) >= 7 and
                                   (known.endswith(canonical) or canonical.endswith(known)))
            for known in phones
        )  # fmt: skip
    # The contact must appear as a whole: "acme.io" is not in "notacme.io" nor in "acme.io.evil.com".
    pattern = re.compile(rf"(?<![\w.@+\-]){re.escape(canonical)}(?![\w\-@]|\.[\w])")
    return any(pattern.search(haystack) for haystack in haystacks)


def _check_contacts(text: str, inputs: Mapping[str, str]) -> str:
    contacts = _find_contacts(unicodedata.normalize("NFKC", strip_invisible(text)))
    if not contacts:
        return ""
    values = [v for v in inputs.values() if isinstance(v, str) and v]
    haystacks = [_haystack(v) for v in values]
    phones = {
        _digits(m.group(0)) for v in values for m in _PHONE_CANDIDATE_RE.finditer(unicodedata.normalize("NFKC", v))
    }
    unknown: dict[str, list[str]] = {}
    checked: set[tuple[str, str]] = set()
    for kind, written, canonical in contacts:
        if (kind, canonical) in checked:
            continue
        checked.add((kind, canonical))
        if not _contact_in_inputs(kind, canonical, haystacks, phones):
            unknown.setdefault(kind, []).append(written)
    if not unknown:
        return ""
    parts = [f"{kind} {_join_found(items)}" for kind, items in unknown.items()]
    return "; ".join(parts) + " not found in the prospect data or template"


# --------------------------------------------------------------------------------------------------
# Guard: markup
# --------------------------------------------------------------------------------------------------

_SIGN_OFF_RE = re.compile(r"[ \t]*-[ \t]*\w+(?:[ \t]+\w+)?[ \t]*")
_MARKUP_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Markdown code fence", re.compile(r"```|~~~")),
    ("Markdown link", re.compile(r"!?\[[^\]\n]*\]\([^)\n]*\)")),
    ("Markdown bold", re.compile(r"\*\*(?=\S)[^*\n]+?\*\*|__(?=\S)[^_\n]+?__")),
    ("Markdown emphasis", re.compile(r"(?<![\w*])\*(?=[^\s*])[^*\n]*?[^\s*]\*(?![\w*])")),
    ("inline code", re.compile(r"`[^`\n]+`")),
    ("Markdown heading", re.compile(r"(?m)^[ \t]{0,3}#{1,6}[ \t]+\S.*$")),
    ("Markdown quote", re.compile(r"(?m)^[ \t]{0,3}>.*$")),
    ("Markdown rule", re.compile(r"(?m)^[ \t]*(?:-{3,}|\*{3,}|_{3,})[ \t]*$")),
    ("HTML comment", re.compile(r"<!--")),
    ("HTML tag", re.compile(r"</?[A-Za-z][A-Za-z0-9\-]*(?:\s[^<>]*)?/?>")),
    ("HTML entity", re.compile(r"&(?:#\d{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")),
)
_BULLET_RE = re.compile(r"(?m)^[ \t]*[-*+][ \t]+\S.*$")


def _check_markup(text: str) -> str:
    found = [f"{label} {_snip(m.group(0))}" for label, p in _MARKUP_PATTERNS for m in p.finditer(text)]
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

_ECHO_PATTERNS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("talks about being an AI", re.compile(
        r"\bas an? (?:ai|artificial intelligence|(?:large )?language model|llm|ai assistant|assistant)\b"
        r"|\bi(?:'m| am) (?:just )?an? (?:ai language model|(?:large )?language model|ai assistant|ai model"
        r"|chatbot|llm)\b|\bi(?:'m| am) (?:just )?an ai(?=\s*(?:[,.!;]|$))")),
    ("echoes an instruction", re.compile(
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+)?(?:the\s+|your\s+|my\s+|any\s+)?"
        r"(?:previous|prior|above|earlier|preceding)\b"
        r"|\b(?:system|initial|original|hidden) prompt\b"
        r"|\b(?:my|these|the above|the following|the given|previous|your new|new) instructions\b")),
    ("presents the message", re.compile(
        r"\bhere(?:'s| is) (?:the|a|your|my) (?:\w+ ){0,2}?(?:personali[sz]ed|revised|rewritten|updated|final"
        r"|shorter|customi[sz]ed|tailored|suggested|requested) (?:\w+ ){0,2}?(?:message|note|version|draft"
        r"|request|text|outreach|intro)\b"
        r"|\bhere(?:'s| is) (?:the|your|a) (?:linkedin )?(?:message|note|draft|connection request)\s*[:\n]")),
    ("chat acknowledgement", re.compile(
        r"^\s*(?:sure|certainly|of course|absolutely|okay|ok|got it|great question)\s*[!,.:]"
        r"|\b(?:sure|certainly|of course)!\s*here\b")),
    ("refusal", re.compile(
        r"\bi(?: cannot| can ?not| can't| won't| am unable to|'m unable to| am not able to|'m not able to)\s+"
        r"(?:help(?!\s+(?:but|\w+ing)\b)|assist|comply|fulfil|fulfill|provide|create|write|generate|complete|do that"
        r"|personali[sz]e)\b")),
    ("JSON", re.compile(
        r"^\s*(?:\{|\[\s*[{\"])|\}\s*$|\{\s*\"|\"[\w ]{1,40}\"\s*:\s*(?:\"|\[|\{|-?\d|true\b|false\b|null\b)")),
    ("role tag", re.compile(
        r"(?m)^\s*(?:system|assistant|user|human|ai)\s*:|<\|[a-z_]+\|>|\[/?inst\]|<</?sys>>|</?s>"
        r"|#{2,}\s*(?:system|assistant|user|instruction|response|human)\b")),
    ("talks about the draft", re.compile(
        r"\bfeel free to (?:adjust|modify|tweak|edit|customi[sz]e|revise)\s+"
        r"(?:it|this|the (?:message|note|tone|wording|draft))\b"
        r"|\blet me know if you(?:'d| would)? (?:like|want|need) (?:any )?(?:changes|adjustments|revisions"
        r"|edits|another version|a different tone)\b"
        r"|\bcharacter (?:count|limit)\b|\bword count\b|\b(?:under|within|below) \d+ characters\b"
        r"|\bend of (?:the )?message\b|\b(?:placeholder|template|personali[sz]ation) (?:marker|variable)s?\b")),
    ("output label", re.compile(
        r"(?m)^\s*(?:subject|message|note|draft|connection (?:request|note)|output|response|answer)\s*:")),
)  # fmt: skip


def _check_echo(text: str) -> str:
    folded = _fold(text)
    found = []
    for label, pattern in _ECHO_PATTERNS:
        match = pattern.search(folded)
        if match:
            found.append(f"{label} {_snip(match.group(0).strip() or match.group(0))}")
    return "; ".join(found[:3]) if found else ""


# --------------------------------------------------------------------------------------------------
# Public message API
# --------------------------------------------------------------------------------------------------


def check_message(
    text: str,
    *,
    inputs: Mapping[str, str],
    max_chars: int,
    banned_phrases: Sequence[str] = (),
) -> list[GuardResult]:
    """Run every guard on a candidate message; one result per guard, in ``GUARD_NAMES`` order.

    ``inputs`` are the texts the message was built from (prospect fields and the template text): a link,
    e-mail address or phone number is only allowed when it appears in one of them. ``max_chars`` is the
    LinkedIn limit in force (300 for a connection note, 200 on free accounts).
    """
    if isinstance(max_chars, bool) or not isinstance(max_chars, int) or max_chars <= 0:
        raise ValueError(f"max_chars must be a positive whole number of characters, got {max_chars!r}")
    checks: dict[str, Callable[[], str]] = {
        "placeholders": lambda: _check_placeholders(text),
        "length": lambda: _check_length(text, max_chars),
        "banned_phrases": lambda: _check_banned(text, banned_phrases),
        "contacts": lambda: _check_contacts(text, inputs),
        "markup": lambda: _check_markup(text),
        "instruction_echo": lambda: _check_echo(text),
    }
    results = []
    for name in GUARD_NAMES:
        detail = checks[name]()
        results.append(GuardResult(name=name, passed=not detail, detail=detail))
    return results


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

_INJECTION_PATTERNS: tuple[tuple[str, str, re.Pattern[str]], ...] = (
    ("instruction_override", "asks to ignore earlier instructions", re.compile(
        rf"\b(?:ignore|disregard|forget|override|overrule|bypass)\s*(?:all\s*|any\s*|of\s*)*"
        rf"(?:the\s*|your\s*|my\s*|these\s*|those\s*|its\s*)?{_EARLIER}\s*(?:{_OBJECTS}|(?=\s*(?:$|[.,;:!?\n])))"
        r"|\b(?:ignore|disregard|forget|override|bypass)\s*(?:all\s*|any\s*)?(?:of\s*)?(?:your|the|these|my)?\s*"
        r"(?:instructions|prompts?|programming|directives|guardrails|system\s*prompt)\b"
        r"|\b(?:ignore|disregard|forget)\s*(?:everything|all)\s*"
        r"(?:above|before|said|prior|you\s*(?:were|have\s*been)\s*told)")),
    ("instruction_override", "tries to give the model a new role", re.compile(
        rf"{_SENTENCE_START}you\s*are\s*now(?![a-z])"
        r"|\byou\s*are\s*now\s*(?:a|an|the|my|called|named|acting|playing|in\s*(?:developer|dan|god)|free|no\s*longer"
        r"|unrestricted|jailbroken|dan)(?![a-z])"
        r"|\bfrom\s*now\s*on,?\s*(?:you\s*(?:are|will|must|should|shall|have)|always|only|respond|reply|write"
        r"|answer)\b"
        r"|\b(?:pretend|imagine)\s*(?:that\s*)?(?:you\s*are|to\s*be|you're)\s*(?:an?\s*)?(?:ai|assistant|bot|model|different|unrestricted|dan)\b"
        r"|\b(?:act|behave)\s*as\s*(?:an?\s*)?(?:unrestricted|unfiltered|jailbroken|different)\s*(?:ai|assistant|model|bot)?\b"
        r"|\b(?:enable|activate|enter|switch\s*to)\s*(?:developer|dan|god|jailbreak|debug|admin)\s*mode\b"
        r"|\bdo\s*anything\s*now\b")),
    ("instruction_override", "announces new instructions", re.compile(
        r"\b(?:new|updated|revised|real|actual|true|important|additional|secret|hidden)\s*(?:system\s*)?"
        r"instructions?\s*[:\-–—]"
        r"|\b(?:here\s*are|these\s*are|follow)\s*(?:your|the|my)\s*new\s*instructions\b"
        r"|\byour\s*(?:new|real|actual|true)\s*(?:instructions\b|task\s*(?:is\b|:))"
        r"|\b(?:system|admin|developer|administrator)\s*override\b")),
    ("instruction_override", "addresses the model directly", re.compile(
        r"\b(?:attention|note\s*to|dear|hey|hello|hi|message\s*for|instructions?\s*for)\s*"
        r"(?:the\s*)?(?:ai|llm|gpt|chatgpt|assistant|bot|model|language\s*model|ai\s*assistant|ai\s*model)\s*[:,!\-]"
        r"|\bif\s*you(?:'re|\s*are)\s*(?:an?\s*)?(?:ai|llm|(?:large\s*)?language\s*model|ai\s*assistant|chatbot|gpt)"
        r"\s*(?:[,:;]|reading\b|(?:model|assistant|agent)\b)"
        r"|\b(?:respond|reply|answer)\s*(?:only\s*with|with\s*only|with\s*exactly|with\s*just)\b"
        r"|\b(?:say|write|output|print|type|reply|respond)\s*(?:exactly|verbatim)\b|\boutput\s*only\b"
        r"|\binstead,?\s*(?:write|say|output|reply|respond|print)\b")),
    ("role_tag", "fake chat role or special token", re.compile(
        rf"{_SENTENCE_START}(?:system|assistant|human)\s*:"
        r"|<\|[a-z_]{2,20}\|>|\[/?\s*inst\s*\]|<</?\s*sys\s*>>|</?s>|\[/?\s*(?:system|assistant|user)\s*\]"
        r"|</?\s*(?:system|assistant|user|instructions?|prompt|im_start|im_end)\s*>"
        r"|#{2,}\s*(?:system|assistant|user|instruction|instructions|response|human)\b"
        r"|\b(?:im_start|im_end|endoftext|start_header_id|end_header_id|eot_id)\b")),
    ("template_syntax", "template syntax in data", re.compile(r"\{\{|\}\}|\{%|%\}|\{#|\$\{|<%|%>")),
    ("exfiltration", "asks to reveal the prompt or secrets", re.compile(
        r"\b(?:reveal|print|show|repeat|output|display|leak|dump|expose|tell\s*me|give\s*me|share|return|send"
        r"|write\s*out|spell\s*out|recite|echo|translate|what\s*(?:is|are|were|was))\b[^.\n]{0,30}?"
        r"(?:\bsystem\s*prompt|\b(?:your|the)\s*(?:initial|original|hidden|secret|system|full|exact)?\s*"
        r"(?:prompt|instructions)\b|\byour\s*(?:rules|guidelines|directives|configuration)\b)"
        r"|\b(?:reveal|print|output|dump|leak|expose|tell\s*me|give\s*me|send\s*me)\b[^.\n]{0,30}?"
        r"\b(?:api[\s_\-]*keys?|passwords?|credentials|environment\s*variables|secret\s*keys?)"
        r"|\brepeat\b[^.\n]{0,20}?\b(?:everything|all|the\s*text|the\s*words|the\s*content)\b[^.\n]{0,20}?"
        r"\b(?:above|before|so\s*far|verbatim)"
        r"|\bsystem\s*prompt\s*(?:says|is|reads)\b")),
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
        r"[^.\n]{0,40}?\bto\b")),
)  # fmt: skip

_SPACED_RUN_RE = re.compile(r"(?<![^\W_])(?:[^\W_][ \t._*·\-]+){2,}[^\W_](?![^\W_])")
_DELEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s"})
_RLO_SEGMENT_RE = re.compile("[\u202e\u202b]([^\u202c\u2069\n]*)")


def _collapse_spaced(text: str) -> str:
    """ "i g n o r e" -> "ignore" (runs of three or more single characters split by spaces or dots)."""
    return _SPACED_RUN_RE.sub(lambda m: re.sub(r"[ \t._*·\-]+", "", m.group(0)), text)


def _variants(value: str) -> list[str]:
    """Folded readings of one field value that an attacker might rely on a model to understand."""
    base = _fold(value)
    variants = [base, _collapse_spaced(base)]
    variants.append(re.sub(r"[^\w\n'{}%#$<>|\[\]/:]+", " ", variants[1]))  # "ignore...all_previous"
    variants.append(variants[-1].translate(_DELEET))  # "1gn0re"
    if "\u202e" in value or "\u202b" in value:
        # Right-to-left override: what a person sees is the reversed run; a model may read it either way.
        flipped = _RLO_SEGMENT_RE.sub(lambda m: f" {m.group(1)[::-1]} ", value)
        variants.append(_collapse_spaced(_fold(flipped)))
    return list(dict.fromkeys(variants))


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
        found: dict[str, str] = {}
        hidden = _invisible_chars(value)
        if hidden:
            codes = ", ".join(dict.fromkeys(f"U+{ord(ch):04X}" for ch in hidden))
            found["invisible_chars"] = f"{len(hidden)} invisible or direction-control character(s): {codes}"
        variants = _variants(value)
        for kind, label, pattern in _INJECTION_PATTERNS:
            if kind in found:
                continue
            for variant in variants:
                match = pattern.search(variant)
                if match:
                    found[kind] = f"{label}: {_snip(match.group(0).strip() or match.group(0))}"
                    break
        flags.extend(InjectionFlag(field=field, kind=kind, detail=found[kind]) for kind in INJECTION_KINDS
                     if kind in found)  # fmt: skip
    return flags
