"""No link of any scheme, phone number or e-mail address that the template does not contain reaches a final
message, whichever prospect field or model carried it, however it is disguised."""

from __future__ import annotations

import asyncio

import pytest

from core.app import App
from core.messages.guards import check_message
from core.messages.library import add_template
from core.messages.personalize import options_for, personalize_one
from tests.conftest import sim_answers

TEMPLATE = "Hi {{ first_name }}, loved what {{ company_name }} did. Glad to connect."


def contacts(text: str, template: str = TEMPLATE, **fields: str) -> str:
    """The contacts guard's detail for ``text`` ("" when it passed)."""
    inputs = {"first_name": "Dana", "company_name": "Acme", **fields, "__template__": template}
    [result] = [r for r in check_message(text, inputs=inputs, max_chars=1000) if r.name == "contacts"]
    assert result.passed == (result.detail == "")
    return result.detail


@pytest.mark.parametrize(
    "text",
    [
        # schemes
        "Click javascript:alert(document.cookie)",
        "Click JavaScript:void(0)",
        "Open data:text/html;base64,PHNjcmlwdD4=",
        "Open vbscript:msgbox(1)",
        "See file:///etc/passwd",
        "See file://fileserver/share/deck.pdf",
        "Grab ftp://files.evil.io/x",
        "Tap tel:+15550100200",
        "Tap sms:+15550100200",
        "Write mailto:sam@evil.io",
        "Ring callto:sam.evil",
        "Open intent://scan/#Intent;scheme=zxing;end",
        "See https://evil.example.com/offer",
        "See www.evil.com",
        # obfuscated
        "See hxxp://evil.io/x",
        "See hxxps[:]//evil.io/x",
        "See hXXps://evil.io",
        "See evil[.]com",
        "See evil(.)io/deck",
        "See evil{.}io",
        "See evil[dot]com",
        "See evil (dot) com",
        "See evil dot com today",
        "See www[.]evil[.]net",
        "See ｅｖｉｌ．ｃｏｍ",  # fullwidth
        "See ｈｔｔｐｓ：／／ｅｖｉｌ．ｉｏ",
        "See evil。com",  # ideographic full stop, read as a dot by browsers
        "See evil｡io",
        "See ev\u200bil.com",  # zero-width space inside
        "See ev\u200dil.c\u200com",  # zero-width joiner and non-joiner inside
        "See ht\u200dtps://evil.io",
        "See evi\u00adl.io",  # soft hyphen
        "See t.me/joinchat/abc",
        "See evil.top/win",
        "See xn--80ak6aa92e.com",
        "See 203.0.113.7/login",
        "See 203.0.113.7:8080",
        # e-mail addresses
        "Mail sam@evil.io",
        "Mail sam＠evil.io",  # fullwidth at sign
        "Mail sam [at] evil [dot] io",
        "Mail sam(at)evil.io",
        "Mail sam at evil dot io",
        "Mail sam@évil.fr",
        "Mail s\u200bam@ev\u200bil.io",
        # phone numbers
        "Call +44 20 7946 0958",
        "Call ＋４４ ２０ ７９４６ ０９５８",  # fullwidth digits
        "Call +٤٤ ٢٠ ٧٩٤٦ ٠٩٥٨",  # Arabic-Indic digits
        "Call +44\u200b20\u200b7946\u200b0958",
        "Call (555) 987-6543",
        "WhatsApp +1·555·987·6543",
    ],
)
def test_contacts_the_template_does_not_contain_fail(text: str) -> None:
    assert contacts(text).endswith("not in the template"), text


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("See acme.io/pricing", "acme.io/pricing"),
        ("Mail dana@acme.io", "dana@acme.io"),
        ("Call +1 555 123 4567", "+1 555 123 4567"),
        ("See javascript:alert(1)", "javascript:alert(1)"),
    ],
)
def test_a_contact_from_prospect_data_is_not_allowed(text: str, field: str) -> None:
    # Today's code let these through because the prospect field contains them; only the template counts now.
    assert contacts(text, website=field, about=f"Find us: {field}") != ""


@pytest.mark.parametrize(
    ("text", "template"),
    [
        ("Our guide: growthco.com/guide", "Hi {{ first_name }}, our guide: growthco.com/guide"),
        ("Our guide: https://growthco.com/guide.", "Our guide: https://growthco.com/guide. {{ first_name }}"),
        ("Write to hello@growthco.com", "Write to hello@growthco.com, {{ first_name }}"),
        ("Call +1 555 010 0200", "Call +1 555 010 0200 ({{ first_name }})"),
    ],
)
def test_a_contact_the_template_contains_passes(text: str, template: str) -> None:
    assert contacts(text, template) == ""


@pytest.mark.parametrize(
    "text",
    [
        "Q3 data: strong retention, and a note: see you Monday",
        "Your file: the Q3 deck was great",
        "Since the dot com era, Acme has grown",
        "Built on ASP.NET and Node.js; meet at 10:30",
        "We grew 1 200 000 users from 2019-2023 and 2024-05-12",
        "Thanks.So glad. Keen to meet.Be well",
        "Raised $12.5M in 2024, 40% growth, v2.0 shipped",
        "Meet at the event (at) noon? Looking forward",
        "ｈｉ Dana, great talk",
    ],
)
def test_ordinary_text_is_not_a_contact(text: str) -> None:
    assert contacts(text) == ""


def test_no_template_means_no_contact_is_allowed() -> None:
    result = check_message("See acme.io", inputs={"website": "acme.io"}, max_chars=300)
    assert not next(r for r in result if r.name == "contacts").passed


# --- through the pipeline: whichever field or model carried it ----------------------------------------


@pytest.fixture
def app_with_templates(demo_app: App) -> App:
    add_template(demo_app, "plain_company", "connection_request",
                 "Hi {{ first_name }}, glad to connect about {{ company_name }}.")
    add_template(demo_app, "achievement", "connection_request",
                 "Hi {{ first_name }}, {{ recent_achievement }} Glad to connect.")
    return demo_app


ANA = {"first_name": "Ana", "last_name": "Silva", "company_name": "Nimbus", "industry": "SaaS",
       "company_size": "120", "job_title": "VP Sales", "recent_news": "Nimbus raised a $20M Series B."}


def _run(app: App, fields: dict[str, str], template: str):  # type: ignore[no-untyped-def]
    return asyncio.run(personalize_one(app, fields, options_for(app, template_name=template)))


@pytest.mark.parametrize("company", ["Nimbus (nimbus[.]io)", "Nimbus javascript:alert(1)", "Nimbus, +44 20 7946 0958"])
def test_a_prospect_field_cannot_carry_a_contact_into_a_message(app_with_templates: App, company: str) -> None:
    result = _run(app_with_templates, {**ANA, "company_name": company}, "plain_company")
    assert result.state not in ("ready", "fallback"), (result.state, result.message)
    assert result.message == ""


@pytest.mark.parametrize("snippet", [
    "Nimbus raised a $20M Series B, see nimbus.io/news.",
    "Congrats on the round! hxxps://nimbus[.]io",
    "Congrats, write to ceo@nimbus.io.",
])
def test_a_model_cannot_carry_a_contact_from_prospect_data(app_with_templates: App, snippet: str) -> None:
    fields = {**ANA, "recent_news": "Nimbus raised a $20M Series B (nimbus.io/news, ceo@nimbus.io)."}
    sim_answers(app_with_templates, {"personalize": [f'{{"recent_achievement": "{snippet}"}}']})
    result = _run(app_with_templates, fields, "achievement")
    assert result.fallback and "contacts" in result.reason, result.reason
    assert result.message == "Hi Ana, I came across Nimbus and would be glad to connect."  # the safe template
