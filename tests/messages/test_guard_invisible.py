"""Invisible and bidirectional control characters never reach a final message.

Model output: removed before the snippet is used (it carries nothing a reader can see, and the text left
is what every guard then checks). Anything else (template, prospect field): the "invisible" guard refuses
the message and names the code points.
"""

from __future__ import annotations

import asyncio
import json
import unicodedata

import pytest

from core.app import App
from core.messages.guards import GUARD_NAMES, check_message
from core.messages.library import add_template
from core.messages.personalize import options_for, personalize_one
from tests.conftest import sim_answers

HIDDEN = [
    *(chr(c) for c in range(0x200B, 0x2010)),  # zero-width space/non-joiner/joiner, LRM, RLM
    *(chr(c) for c in range(0x202A, 0x202F)),  # bidi embeddings and overrides
    *(chr(c) for c in range(0x2066, 0x206A)),  # bidi isolates
    "\ufeff", "\u00ad", "\u061c", "\u2060", "\u2061", "\u180e", "\U000e0001", "\U000e0041", "\U000e007f",
    "\x00", "\x1b", "\x7f",
]  # fmt: skip


def invisible(text: str) -> str:
    result = {r.name: r for r in check_message(text, inputs={}, max_chars=300)}["invisible"]
    assert result.passed == (result.detail == "")
    return result.detail


def test_the_invisible_guard_is_one_of_the_guards() -> None:
    assert "invisible" in GUARD_NAMES


@pytest.mark.parametrize("char", HIDDEN, ids=lambda c: f"U+{ord(c):04X}")
def test_a_message_with_an_invisible_character_is_refused(char: str) -> None:
    detail = invisible(f"Hi Dana, great to con{char}nect.")
    assert detail == f"1 invisible or direction-control character(s): U+{ord(char):04X}"


def test_every_format_character_is_refused() -> None:
    # Every Unicode "Cf" (format) character in the Basic Multilingual Plane, one at a time.
    for code in range(0x10000):
        char = chr(code)
        if unicodedata.category(char) == "Cf":
            assert invisible(f"Hi Dana{char}!"), f"U+{code:04X}"


@pytest.mark.parametrize("text", [
    "Hi Dana,\n\tglad to connect.\r\nSam",
    "Ops lead 👩\u200d💻 here",  # a joiner inside an emoji sequence is part of one glyph
    "Hi José, 東京 café ❤\ufe0f",
    "Hi Dana\u00a0Lee",  # a no-break space is visible as a space
])
def test_visible_text_passes(text: str) -> None:
    assert invisible(text) == ""


# --- through the pipeline ---------------------------------------------------------------------------------

ANA = {"first_name": "Ana", "last_name": "Silva", "company_name": "Nimbus", "industry": "SaaS",
       "company_size": "120", "job_title": "VP Sales", "recent_news": "Nimbus raised a $20M Series B."}


@pytest.fixture
def app_with_templates(demo_app: App) -> App:
    add_template(demo_app, "achievement", "connection_request",
                 "Hi {{ first_name }}, {{ recent_achievement }} Glad to connect.")
    add_template(demo_app, "titled", "connection_request",
                 "Hi {{ first_name }}, as {{ job_title }} you know outbound. Glad to connect.")
    return demo_app


def _run(app: App, fields: dict[str, str], template: str):  # type: ignore[no-untyped-def]
    return asyncio.run(personalize_one(app, fields, options_for(app, template_name=template)))


def test_invisible_characters_in_model_output_are_removed(app_with_templates: App) -> None:
    snippet = "Con\u200bgrats\u00ad on the \u202eSeries B\u202c round\ufeff!\U000e0069\U000e0067"
    sim_answers(app_with_templates, {"personalize": [json.dumps({"recent_achievement": snippet})]})
    result = _run(app_with_templates, ANA, "achievement")
    assert result.state == "ready" and result.used_ai, result.reason
    assert result.message == "Hi Ana, Congrats on the Series B round! Glad to connect."
    assert all(g.passed for g in result.guards)


def test_invisible_characters_from_a_prospect_field_refuse_the_message(app_with_templates: App) -> None:
    result = _run(app_with_templates, {**ANA, "job_title": "VP\u202e Sales"}, "titled")
    assert result.fallback and "invisible" in result.reason and "U+202E" in result.reason
    assert "\u202e" not in result.message  # the safe template does not use the field
