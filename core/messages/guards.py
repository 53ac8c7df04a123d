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

Matching is done on a *folded* copy of the text (`core.messages.textfold`), so fullwidth letters,
zero-width joiners inside words and mixed case do not dodge the checks. The original text is never
modified. The contacts guard lives in `core.messages.contacts`, the injection screen in
`core.messages.injection` (its other-language override patterns feed the echo guard here).

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from core.messages.contacts import _check_contacts
from core.messages.injection import (
    _EVERYTHING_ML_NEEDLES,
    _EVERYTHING_ML_RE,
    _NEW_ML_HEADER_NEEDLES,
    _NEW_ML_HEADER_RE,
    _OVERRIDE_CJK_NEEDLES,
    _OVERRIDE_CJK_RE,
    _OVERRIDE_ML_ECHO_NEEDLES,
    _OVERRIDE_ML_ECHO_RE,
    _second_gate,
)
from core.messages.textfold import (
    _CONFUSABLE_KEYS,
    _any,
    _deaccent,
    _fold,
    _gates,
    _ignorecase_key,
    _invisible_chars,
    _join_found,
    _may_match,
    _Needles,
    _nfkc,
    _open,
    _present,
    _snip,
    _surely_visible,
)

__all__ = [
    "GUARD_NAMES",
    "GuardResult",
    "all_passed",
    "check_message",
    "failed_reasons",
    "load_banned_phrases",
]

GUARD_NAMES = ("placeholders", "length", "banned_phrases", "contacts", "markup", "instruction_echo", "invisible")


@dataclass(frozen=True)
class GuardResult:
    """The verdict of one guard on one message; ``detail`` is "" when it passed."""

    name: str
    passed: bool
    detail: str



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


# A message that carries an override in any of the screened languages fails the instruction-echo guard as
# well, whichever field or model put it there.
_ECHO_PATTERNS = _ECHO_PATTERNS_EN + tuple(
    ("echoes an instruction", pattern, needles)
    for pattern, needles in ((_OVERRIDE_ML_ECHO_RE, _OVERRIDE_ML_ECHO_NEEDLES),
                             (_EVERYTHING_ML_RE, _EVERYTHING_ML_NEEDLES), (_OVERRIDE_CJK_RE, _OVERRIDE_CJK_NEEDLES),
                             (_NEW_ML_HEADER_RE, _NEW_ML_HEADER_NEEDLES))
)
_ECHO_NEEDLES, _ECHO_GATES = _gates(needles for *_, needles in _ECHO_PATTERNS)
