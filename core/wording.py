"""Words a user reads, in one place: counts with nouns that agree ("1 prospect", "2 prospects") and codes
turned into readable words ("company_size" → "Company size", "linkedin_url" → "LinkedIn URL").

Why it exists: the engine's messages (CLI output, errors, statuses) and the console's pages both put counts
and codes in front of users; written inline, they drifted ("1 call(s)", "1 errors", raw `do_not_contact`).
States carry their own labels (their enums' `.label`); this module is for everything else.
"""

from __future__ import annotations

# Words that are not simply capitalised when a code is read out.
_SPECIAL_WORDS = {"url": "URL", "linkedin": "LinkedIn", "id": "ID", "usd": "USD", "llm": "LLM", "csv": "CSV",
                  "json": "JSON", "api": "API", "srm": "SRM", "eta": "ETA"}
# Words whose plural is not the word plus "s" (a few verbs too, so a sentence agrees: "was" → "were").
_IRREGULAR = {"reply": "replies", "company": "companies", "entry": "entries", "category": "categories",
              "person": "people", "this": "these", "is": "are", "was": "were", "has": "have"}


def plural_of(noun: str) -> str:
    """The plural of an English noun as the product uses it ("prospect" → "prospects", "reply" → "replies")."""
    if noun in _IRREGULAR:
        return _IRREGULAR[noun]
    if noun.endswith(("s", "x", "ch", "sh")):
        return f"{noun}es"
    return f"{noun}s"


def noun_for(count: int, noun: str, many: str | None = None) -> str:
    """The noun alone, agreeing with `count`: noun_for(1, "call") == "call", noun_for(3, "call") == "calls"."""
    return noun if count == 1 else (many or plural_of(noun))


def plural(count: int, noun: str, many: str | None = None) -> str:
    """A count with its noun: plural(1, "prospect") == "1 prospect", plural(2000, "prospect") == "2,000
    prospects". `many` gives an irregular plural the table above does not know."""
    return f"{count:,} {noun_for(count, noun, many)}"


def readable(code: str) -> str:
    """A code as words for a label or a column heading: "do_not_contact" → "Do not contact",
    "linkedin_url" → "LinkedIn URL", "review_score" → "Review score"."""
    words = [w for w in code.replace("-", "_").split("_") if w]
    if not words:
        return code
    shown = [_SPECIAL_WORDS.get(w.lower(), w.lower()) for w in words]
    first = shown[0]
    shown[0] = first if first in _SPECIAL_WORDS.values() else first[:1].upper() + first[1:]
    return " ".join(shown)
