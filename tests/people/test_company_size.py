"""One reading of a company's headcount: the import, the Preview page's pipeline and the estimate agree.

`"1k"` used to be 1000 on import (core.people.columns.parse_company_size) and unknown in Preview, which
read typed sizes with a plain int(): a 5k-employee company typed into Preview got no premium review.
"""

from __future__ import annotations

import asyncio

import pytest

from core.app import App
from core.messages.personalize import RUNG_REVIEW, options_for, personalize_one
from core.people.columns import parse_company_size

ANA = {"first_name": "Ana", "last_name": "Silva", "company_name": "Nimbus", "industry": "SaaS",
       "job_title": "VP Sales", "recent_news": "Nimbus raised a $20M Series B."}


@pytest.mark.parametrize(("written", "size"), [
    ("1k", 1000), ("1.5k", 1500), ("1,200", 1200), ("51-200 employees", 51), ("10000+", 10000),
    ("250", 250), (250, 250), (None, None), ("", None), ("0", None), ("lots", None), ("1.5", None),
])
def test_parse_company_size_reads_text_and_numbers(written: str | int | None, size: int | None) -> None:
    assert parse_company_size(written) == size


@pytest.mark.parametrize("written", ["5k", "5,000", "5000 employees", "5000-10000"])
def test_preview_reads_a_typed_size_as_the_import_does(demo_app: App, written: str) -> None:
    options = options_for(demo_app, step="connection_request")
    plain = asyncio.run(personalize_one(demo_app, {**ANA, "company_size": "5000"}, options))
    typed = asyncio.run(personalize_one(demo_app, {**ANA, "company_size": written}, options))
    assert plain.rung == RUNG_REVIEW
    assert (typed.rung, typed.template, typed.selection_reason) == (plain.rung, plain.template,
                                                                    plain.selection_reason)
