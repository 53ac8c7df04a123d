"""Formatting for the pages: money, counts with agreeing nouns, codes as readable words, and text made safe for
the widgets that render Markdown.

Why it exists: pages show figures and codes the engine hands them; the words are made in `core.wording`
(shared with the CLI) and re-exported here so a page imports its formatting from one place. Messages that
carry someone else's words (a file name, a provider's error, a column header) go into st.error, st.warning and
headings, which render Markdown: `plain` makes them read as typed.
"""

from __future__ import annotations

import re

from core.store.models import Batch, BatchKind, BatchStatus
from core.wording import noun_for, plural, readable

__all__ = ["batch_label", "noun_for", "plain", "plural", "readable"]

# What Markdown (and Streamlit's extensions: $ for LaTeX, :color[...] directives) would act on in running text.
_MARKUP = re.compile(r"([\\`*_\[\]$<>#|~:])")


def plain(text: object) -> str:
    """`text` with every character Markdown would act on escaped, so a Markdown-rendering widget shows it as
    typed: plain("[click](http://x) *now* $5 and $6") shows brackets, stars and dollars, not a link, emphasis
    and a formula."""
    return _MARKUP.sub(r"\\\1", str(text))


def batch_label(batch: Batch) -> str:
    """A batch as a choice in a list: "#12 prospects.csv — Messages, running"."""
    return f"#{batch.id} {batch.name} — {BatchKind.label_of(batch.kind)}, {BatchStatus.label_of(batch.status).lower()}"
