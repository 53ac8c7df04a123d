"""Token counts for prompts and answers, with real tokenizers where a package ships one.

`mistral-common` ships Mistral's Tekken tokenizer files (no download), which is exact for Mistral Nemo
and a close estimate for Mistral 7B (whose SentencePiece file the package does not ship) and for other
families. Counts are used by the simulator (to answer like a provider), by the Preview page and by
pre-flight estimates and budget reservations; provider-reported usage always wins for billing.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

# Chat-format overhead per message (role markers) and per conversation, as OpenAI-style servers count it.
PER_MESSAGE_OVERHEAD = 4
PER_CONVERSATION_OVERHEAD = 3

_lock = threading.Lock()


@lru_cache(maxsize=1)
def _tekken() -> Any:
    from mistral_common.tokens.tokenizers.mistral import MistralTokenizer

    return MistralTokenizer.v3(is_tekken=True).instruct_tokenizer.tokenizer


def warm_up() -> None:
    """Load the tokenizer now (a second or more) rather than inside the first batch; workers call it at start."""
    _tekken()


def is_exact(model: str) -> bool:
    return model.startswith("mistralai/mistral-nemo")


@lru_cache(maxsize=4096)  # a prompt is counted for the preview note and again for its reservation
def count_text(text: str) -> int:
    if not text:
        return 0
    tokenizer = _tekken()
    with _lock:  # the Rust-backed encoder is shared between worker threads
        return len(tokenizer.encode(text, bos=False, eos=False))


def count_messages(messages: Sequence[dict[str, str]]) -> int:
    return PER_CONVERSATION_OVERHEAD + sum(
        PER_MESSAGE_OVERHEAD + count_text(str(m.get("content", ""))) for m in messages
    )
