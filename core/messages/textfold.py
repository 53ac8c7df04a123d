"""The text folding and prefilters the message guards and the injection screen share.

Why this module exists: both halves read text the same way, on a *folded* copy (invisible characters
removed, NFKC, casefold, a few Cyrillic/Greek look-alikes mapped to Latin), so fullwidth letters, zero-width
joiners inside words and mixed case do not dodge either of them; and both skip a pattern whose literals
("needles") are absent, which is what makes checking 100,000 messages cheap. The underscore names are this
package's internals (`guards`, `contacts`, `injection`), not an API for the rest of the engine;
:func:`strip_invisible` is public. Pure functions: no database, no network, no clock.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

__all__ = ["strip_invisible"]

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


def _deaccent(text: str) -> str:
    """``text`` without combining marks ("précédentes" -> "precedentes"); NFC again so Hangul stays whole."""
    if text.isascii():
        return text
    stripped = "".join(ch for ch in unicodedata.normalize("NFD", text) if not unicodedata.combining(ch))
    return unicodedata.normalize("NFC", stripped)

def _present(needles: tuple[tuple[str, ...], tuple[str, ...]], text: str) -> set[str]:
    """The needles found in ``text``; the ones with letters outside ASCII are looked for only in such text."""
    ascii_needles, other_needles = needles
    present = {needle for needle in ascii_needles if needle in text}
    if not text.isascii():
        present.update(needle for needle in other_needles if needle in text)
    return present

