"""The straightforward, slow versions of `core.messages.guards`' checks, kept as the reference the fast paths are
compared against in tests/test_guards.py (they used to live at the end of core/messages/guards.py)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping, Sequence

from core.messages.contacts import (
    _BARE_DOMAIN_RE,
    _COLON_SCHEME_RE,
    _CONTACT_CHARS,
    _EMAIL_RE,
    _PHONE_CANDIDATE_RE,
    _SCHEME_URL_RE,
    _TECH_NAMES,
    _TRAILING_PUNCT,
    _canonical_link,
    _contact_in_template,
    _digits,
    _haystack,
    _looks_like_phone,
    _undisguise,
)
from core.messages.guards import (
    _ANGLE_PLACEHOLDER_RE,
    _BULLET_RE,
    _ECHO_PATTERNS,
    _GREETING_LABEL,
    _GREETING_RE,
    _HTML_TAG_NAMES,
    _MARKUP_PATTERNS,
    _MAX_FINDINGS,
    _PLACEHOLDER_PATTERNS,
    _SIGN_OFF_RE,
    GUARD_NAMES,
    GuardResult,
    _check_length,
    _check_max_chars,
    _phrase_pattern,
)
from core.messages.injection import (
    _DELEET,
    _INJECTION_PATTERNS,
    _RLO_SEGMENT_RE,
    _SPACED_RUN_RE,
    INJECTION_KINDS,
    InjectionFlag,
)
from core.messages.textfold import (
    _CONFUSABLE_KEYS,
    _CONFUSABLES,
    _HORIZONTAL_SPACE_RE,
    _TYPOGRAPHY,
    _deaccent,
    _is_invisible,
    _join_found,
    _snip,
)

# --------------------------------------------------------------------------------------------------
# Reference implementation
# --------------------------------------------------------------------------------------------------
# The straightforward versions that the fast paths above replaced: every pattern searched, every text
# normalised in full, nothing cached. They share the pattern tables (ignoring the prefilters) and the
# small helpers, and exist only so tests/test_guards.py can check that the fast paths give identical
# results on generated and mutated messages. Not used in production.


def _strip_invisible_reference(value: str) -> str:
    if value.isascii() and value.isprintable():
        return value
    return "".join(ch for i, ch in enumerate(value) if not _is_invisible(value, i))


def _invisible_chars_reference(value: str) -> list[str]:
    return [ch for i, ch in enumerate(value) if _is_invisible(value, i)]


def _fold_reference(value: str) -> str:
    text = unicodedata.normalize("NFKC", _strip_invisible_reference(value)).casefold()
    text = text.translate(_CONFUSABLES).translate(_TYPOGRAPHY)
    return _HORIZONTAL_SPACE_RE.sub(" ", text)


def _fold_unmapped_reference(value: str) -> str:
    text = unicodedata.normalize("NFKC", _strip_invisible_reference(value)).casefold().translate(_TYPOGRAPHY)
    return _HORIZONTAL_SPACE_RE.sub(" ", text)


def _check_placeholders_reference(text: str) -> str:
    patterns = [(label, pattern) for label, pattern, _ in _PLACEHOLDER_PATTERNS] + [(_GREETING_LABEL, _GREETING_RE)]
    text = unicodedata.normalize("NFKC", text)
    found: list[str] = []
    taken: list[tuple[int, int]] = []
    for label, pattern in patterns:
        for match in pattern.finditer(text):
            if len(found) >= _MAX_FINDINGS:
                break
            if all(match.end() <= a or match.start() >= b for a, b in taken):
                taken.append(match.span())
                found.append(f"{label} {_snip(match.group(0))}")
    for match in _ANGLE_PLACEHOLDER_RE.finditer(text):
        inner = match.group(1)
        if inner.lower() not in _HTML_TAG_NAMES:
            found.append(f"angle-bracket placeholder {_snip(inner)}")
    if not found:
        return ""
    unique = list(dict.fromkeys(found))
    more = f" and {len(unique) - 3} more" if len(unique) > 3 else ""
    return "leftover placeholder: " + "; ".join(unique[:3]) + more


def _check_banned_reference(text: str, phrases: Sequence[str]) -> str:
    folded = _fold_reference(text)
    hits = []
    for phrase in phrases:
        pattern = _phrase_pattern(phrase)
        if pattern is not None and pattern.search(folded):
            hits.append(phrase.strip())
    return f"spam phrase {_join_found(hits)}" if hits else ""


def _contact_form_reference(text: str) -> str:
    text = unicodedata.normalize("NFKC", _strip_invisible_reference(text))
    text = text.translate(_CONTACT_CHARS)
    text = "".join(str(unicodedata.decimal(ch)) if unicodedata.decimal(ch, None) is not None else ch for ch in text)
    return _undisguise(text)


def _find_contacts_reference(text: str) -> list[tuple[str, str, str]]:
    found: list[tuple[str, str, str]] = []
    taken: set[int] = set()

    def claim(match: re.Match[str]) -> bool:
        span = range(match.start(), match.end())
        if any(i in taken for i in span):
            return False
        taken.update(span)
        return True

    for pattern in (_SCHEME_URL_RE, _COLON_SCHEME_RE):
        for match in pattern.finditer(text):
            written = match.group(0).rstrip(_TRAILING_PUNCT)
            if claim(match):
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


def _check_contacts_reference(text: str, template: str) -> str:
    contacts = _find_contacts_reference(_contact_form_reference(text))
    if not contacts:
        return ""
    haystack = _haystack(template)
    phones = {_digits(m.group(0)) for m in _PHONE_CANDIDATE_RE.finditer(_contact_form_reference(template))}
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


def _check_invisible_reference(text: str) -> str:
    hidden = [ch for ch in _invisible_chars_reference(text) if ch != "\r"]
    if not hidden:
        return ""
    codes = ", ".join(dict.fromkeys(f"U+{ord(ch):04X}" for ch in hidden))
    return f"{len(hidden)} invisible or direction-control character(s): {codes}"


def _check_markup_reference(text: str) -> str:
    found = [f"{label} {_snip(m.group(0))}" for label, p, _ in _MARKUP_PATTERNS for m in p.finditer(text)]
    lines = text.rstrip().split("\n")
    for match in _BULLET_RE.finditer(text):
        line = match.group(0)
        if line == lines[-1] and _SIGN_OFF_RE.fullmatch(line):
            continue
        found.append(f"list bullet {_snip(line)}")
    if not found:
        return ""
    unique = list(dict.fromkeys(found))
    more = f" and {len(unique) - 3} more" if len(unique) > 3 else ""
    return "; ".join(unique[:3]) + more + " (LinkedIn shows markup as raw characters)"


def _check_echo_reference(text: str) -> str:
    folded = _fold_reference(text)
    if folded.isascii():
        readings = [folded]
    else:
        readings = [_deaccent(folded)]
        if any("\u3040" <= ch <= "\u30ff" for ch in folded):
            readings.append(folded)
    if any(ch in _CONFUSABLE_KEYS for ch in folded + text.casefold()):
        readings.append(_deaccent(_fold_unmapped_reference(text)))
    for reading in dict.fromkeys(readings):
        found = []
        for label, pattern, _ in _ECHO_PATTERNS:
            match = pattern.search(reading)
            if match:
                found.append(f"{label} {_snip(match.group(0).strip() or match.group(0))}")
        if found:
            return "; ".join(found[:3])
    return ""


def _check_message_reference(
    text: str,
    *,
    inputs: Mapping[str, str] | None = None,
    max_chars: int,
    banned_phrases: Sequence[str] = (),
    template: str | None = None,
) -> list[GuardResult]:
    """What :func:`check_message` computes, done the slow way."""
    _check_max_chars(max_chars)
    allowed = template if template is not None else (inputs or {}).get("__template__") or ""
    checks: dict[str, Callable[[], str]] = {
        "placeholders": lambda: _check_placeholders_reference(text),
        "length": lambda: _check_length(text, max_chars),
        "banned_phrases": lambda: _check_banned_reference(text, banned_phrases),
        "contacts": lambda: _check_contacts_reference(text, allowed),
        "markup": lambda: _check_markup_reference(text),
        "instruction_echo": lambda: _check_echo_reference(text),
        "invisible": lambda: _check_invisible_reference(text),
    }
    results = []
    for name in GUARD_NAMES:
        detail = checks[name]()
        results.append(GuardResult(name=name, passed=not detail, detail=detail))
    return results


def _collapse_spaced_reference(text: str) -> str:
    return _SPACED_RUN_RE.sub(lambda m: re.sub(r"[ \t._*·\-]+", "", m.group(0)), text)


def _variants_reference(value: str) -> list[str]:
    base = _fold_reference(value)
    variants = [base, _collapse_spaced_reference(base)]
    variants.append(re.sub(r"[^\w\n'{}%#$<>|\[\]/:]+", " ", variants[1]))
    variants.append(variants[-1].translate(_DELEET))
    if "\u202e" in value or "\u202b" in value:
        flipped = _RLO_SEGMENT_RE.sub(lambda m: f" {m.group(1)[::-1]} ", value)
        variants.append(_collapse_spaced_reference(_fold_reference(flipped)))
    if not value.isascii():
        variants.append(_deaccent(variants[2]))
        if any(ch in _CONFUSABLE_KEYS for ch in value.casefold()):
            unmapped = _collapse_spaced_reference(_fold_unmapped_reference(value))
            variants.append(_deaccent(re.sub(r"[^\w\n'{}%#$<>|\[\]/:]+", " ", unmapped)))
    return list(dict.fromkeys(variants))


def _screen_fields_reference(fields: Mapping[str, str | None]) -> list[InjectionFlag]:
    """What :func:`screen_fields` computes, done the slow way."""
    flags: list[InjectionFlag] = []
    for field, raw in fields.items():
        if raw is None:
            continue
        value = raw if isinstance(raw, str) else str(raw)
        found: dict[str, str] = {}
        hidden = _invisible_chars_reference(value)
        if hidden:
            codes = ", ".join(dict.fromkeys(f"U+{ord(ch):04X}" for ch in hidden))
            found["invisible_chars"] = f"{len(hidden)} invisible or direction-control character(s): {codes}"
        variants = _variants_reference(value)
        for kind, label, pattern, _ in _INJECTION_PATTERNS:
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

