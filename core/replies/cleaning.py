"""A reply's own words, cleaned: invisible characters, quoted earlier messages and runs of whitespace removed.

Every reply is untrusted text, so it is cleaned and cut (`clean_reply`) before a model, a rule or a person's
table sees it. `fold` gives the lower-case, accent-free view the rules and the date reader match against,
with a map back to the cleaned text for quoting evidence. All regular expressions are linear on the
(already length-capped) input.
"""

from __future__ import annotations

import functools
import re
import unicodedata

MAX_REPLY_CHARS = 4000

# --------------------------------------------------------------------------------------------------------
# Cleaning
# --------------------------------------------------------------------------------------------------------

# C0/C1 controls except \t and \n, format characters (zero-width spaces and joiners, bidi overrides and
# isolates, soft hyphen, BOM, invisible math operators, tag characters), lone surrogates, private-use
# code points, noncharacters and the replacement character left behind by bad decoding.
_INVISIBLE_RE = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f"
    "\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f"
    "\u200b-\u200f\u202a-\u202e\u2060-\u206f\u3164"
    "\ud800-\udfff\ue000-\uf8ff\ufe00-\ufe0e\ufeff\uffa0\ufff0-\ufffd\uffff"
    "\U000e0000-\U000e0fff\U000f0000-\U0010ffff]"
)
# Gmail/Outlook/Apple quote headers ("On Mon, 3 Mar 2025, Ana <a@b.c> wrote:") in the languages the rules
# know; the header may wrap over two lines. Checked line by line to stay linear on hostile input.
_QUOTE_HEADER_START_RE = re.compile(r"^[ \t]*(?:On|Am|Le|El|Em)\b", re.IGNORECASE)
_QUOTE_HEADER_END_RE = re.compile(
    r"(?:wrote|a écrit|escribió|escreveu)\s*:|\bschrieb\b.*:\s*$",  # German puts the name after the verb
    re.IGNORECASE,
)
_QUOTE_HEADER_MAX_CHARS = 400
_ORIGINAL_MESSAGE_RE = re.compile(
    r"^[ \t]*-{2,}\s*(?:Original Message|Forwarded message|Ursprüngliche Nachricht|Message d'origine"
    r"|Mensaje original|Mensagem original)\s*-{2,}",
    re.IGNORECASE | re.MULTILINE,
)
WHITESPACE_RE = re.compile(r"\s+")
# Anything past this many characters cannot reach the output once control characters and runs of
# whitespace are squeezed out, except in pathological inputs made almost entirely of invisible
# characters; capping first keeps cleaning of multi-megabyte pastes fast.
_PRECUT_CHARS = MAX_REPLY_CHARS * 50


def clean_reply(text: str) -> str:
    """Return the reply's own words on one line, at most MAX_REPLY_CHARS long.

    Removes control and invisible characters (zero-width spaces, bidi overrides, BOMs, private-use and
    replacement characters), drops the quoted previous message (everything from an "On ... wrote:" header
    or an "Original Message" separator on, and every line that starts with ">"), collapses all whitespace
    to single spaces and cuts the result. Never raises on a str; anything else is turned into its str().
    """
    if not isinstance(text, str):
        text = str(text)
    text = text[:_PRECUT_CHARS].replace("\r\n", "\n").replace("\r", "\n")
    text = _INVISIBLE_RE.sub("", text)
    found = _ORIGINAL_MESSAGE_RE.search(text)
    if found:
        text = text[: found.start()]
    kept: list[str] = []
    lines = text.split("\n")
    for index, line in enumerate(lines):
        if _QUOTE_HEADER_START_RE.match(line):
            headers = [line] if index + 1 == len(lines) else [line, f"{line} {lines[index + 1]}"]
            if any(
                len(header) <= _QUOTE_HEADER_MAX_CHARS and _QUOTE_HEADER_END_RE.search(header) for header in headers
            ):
                break  # everything from here on is the quoted previous message
        if not line.lstrip().startswith(">"):
            kept.append(line)
    text = "\n".join(kept)
    text = WHITESPACE_RE.sub(" ", text).strip()
    return text[:MAX_REPLY_CHARS].rstrip()



# --------------------------------------------------------------------------------------------------------
# Folding: one lower-case, accent-free view of the text, with a map back to the cleaned text
# --------------------------------------------------------------------------------------------------------

_PUNCT_FOLD = {
    "\u2018": "'", "\u2019": "'", "\u201b": "'", "\u02bc": "'", "\u0060": "'", "\u00b4": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-", "\u2212": "-",
    "\u00a0": " ", "\u202f": " ",
}  # fmt: skip


@functools.lru_cache(maxsize=4096)
def _fold_char(ch: str) -> str:
    if ch in _PUNCT_FOLD:
        return _PUNCT_FOLD[ch]
    lowered = ch.casefold()  # "ß" -> "ss"
    decomposed = unicodedata.normalize("NFKD", lowered)
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def fold(text: str) -> tuple[str, list[int]]:
    """Fold `text`; the list maps each folded index (and one past the end) to an index in `text`."""
    parts: list[str] = []
    index_map: list[int] = []
    for i, ch in enumerate(text):
        folded = _fold_char(ch)
        parts.append(folded)
        index_map.extend([i] * len(folded))
    index_map.append(len(text))
    return "".join(parts), index_map


