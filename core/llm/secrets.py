"""Secrets out of text: the one scrubber, and the keys in use that it masks.

Why here: the LLM client is what holds an API key and turns a provider's answers into error texts, and
`core/llm` imports nothing else of the product, so the scrubber it needs lives beside it. Everything else
uses it from here, mostly through `core.logs` (log lines), and the ledger, batch items and reconciliation
notes get texts that already went through it.
"""

from __future__ import annotations

import os
import re

_MASK = "***"
_VALUE = r"[^\s\"',;}&)\]]+"
# Secrets we can recognise without knowing them, each replaced by its label (group 1, kept) and the mask.
_SECRET_PATTERNS = (
    # An Authorization header, however it is quoted, with or without its scheme ("Bearer", "Basic", ...).
    re.compile(rf"""(?i)((?<![\w-])["']?(?:proxy-)?authorization["']?\s*[:=]\s*["']?)"""
               rf"(?:(?:bearer|basic|token|digest)\s+)?{_VALUE}"),
    re.compile(rf"(?i)(\bbearer\s+){_VALUE}"),
    # key=..., "api_key": "...", x-api-key: ... (query strings, JSON and header echoes).
    re.compile(rf"""(?i)((?<![\w-])["']?(?:x-api-key|api[_-]?key|apikey|access[_-]?token|refresh[_-]?token|"""
               rf"""client[_-]?secret|secret[_-]?key|password|passwd)["']?\s*[:=]\s*["']?){_VALUE}"""),
    # Key shapes: OpenRouter/OpenAI/Anthropic "sk-...", also shortened as "sk-or-v1-0f3a...b7c2".
    re.compile(r"(sk-(?:or-v1-)?)[A-Za-z0-9_\-]+(?:(?:\.{2,}|…|\*+)[A-Za-z0-9_\-]*)?"),
    re.compile(r"()\b(?:AIza[0-9A-Za-z_\-]{20,}|(?:gsk|hf|ghp|gho|xoxb|xai)[_-][A-Za-z0-9_\-]{16,}"
               r"|eyJ[\w-]{8,}\.[\w-]{8,}\.[\w-]{8,})"),
    # A password in a URL: scheme://user:password@host (up to the last "@" before the path, since an
    # unencoded "@" in a password is common in DATABASE_URL). Also what the console shows of DATABASE_URL.
    re.compile(r"(?i)(\b[a-z][a-z0-9+.\-]*://[^\s/@:]+:)[^\s/]+(?=@[^\s/@]*(?:[/\s]|$))"),
)
_KEY_VARIABLES = ("OPENROUTER_API_KEY", "LLM_API_KEY")
_PIECE = 8  # a run of this many characters of a known key is masked, so a partly echoed key is caught too
_REMEMBERED: set[str] = set()  # keys in use that may not be in the environment (e.g. from secrets.toml)


def remember_secret(secret: str | None) -> None:
    """Have :func:`scrub` mask ``secret`` from now on in this process (the LLM client registers its key)."""
    if secret and len(secret) >= _PIECE and len(_REMEMBERED) < 16:
        _REMEMBERED.add(secret)


def scrub(text: str, *secrets: str | None) -> str:
    """``text`` without API keys, bearer tokens, Authorization headers and other recognisable secrets.

    This is the one scrubber: logs, the LLM client's error texts (and so the ledger and batch items) and
    reconciliation notes all use it. ``secrets`` are keys known to the caller (the configured key); the
    keys in OPENROUTER_API_KEY and LLM_API_KEY and those passed to :func:`remember_secret` are always
    included. A known key is masked wherever any :data:`_PIECE` consecutive characters of it appear, so a
    provider echoing part of it leaks nothing.
    """
    if not text:
        return text
    out = text
    for pattern in _SECRET_PATTERNS:
        out = pattern.sub(lambda m: m.group(1) + _MASK, out)
    known = {s for s in (*secrets, *_REMEMBERED, *(os.environ.get(name) for name in _KEY_VARIABLES))
             if s and len(s) >= _PIECE}
    for secret in sorted(known, key=len, reverse=True):
        out = _mask_pieces(out, secret)
    return _MASKS_RE.sub(_MASK, out) if known else out


_MASKS_RE = re.compile(r"(?:\*\*\*){2,}")  # "sk-or-v1-***" then masked as a piece of the key: one mask


def _mask_pieces(text: str, secret: str) -> str:
    if secret in text:
        text = text.replace(secret, _MASK)
    if len(text) < _PIECE:
        return text
    covered = bytearray(len(text))
    for piece in {secret[i : i + _PIECE] for i in range(len(secret) - _PIECE + 1)}:
        at = text.find(piece)
        while at != -1:
            covered[at : at + _PIECE] = b"\x01" * _PIECE
            at = text.find(piece, at + 1)
    if not any(covered):
        return text
    out: list[str] = []
    for i, ch in enumerate(text):
        if not covered[i]:
            out.append(ch)
        elif i == 0 or not covered[i - 1]:
            out.append(_MASK)
    return "".join(out)
