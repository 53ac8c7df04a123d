"""Template variants: candidates are checked (tags, guards) before they reach the library; bulk runs are priced."""

from __future__ import annotations

import asyncio
import json
from decimal import Decimal

import pytest
from sqlmodel import select

from core.app import App
from core.batches.creation import create_batch
from core.batches.kinds.variants import bulk_report
from core.batches.lifecycle import start_batch
from core.batches.runs import run_pending
from core.experiments import variants as v
from core.llm.tokens import count_messages
from core.messages.library import get_template, markers, steps
from core.messages.personalize import banned_phrases
from core.sim import simulator
from core.store.db import session_scope
from core.store.models import BatchKind, UsageEntry, utcnow

BASE = "connection_request_default"
BASE_TEXT = ("Hi {{ first_name }}, {{ recent_achievement }} I'd be glad to connect and keep following the work at "
             "{{ company_name }}.")


def _check(app: App, candidate: str, base: str = BASE_TEXT, max_chars: int = 300) -> tuple[str, str]:
    return v.check_candidate(candidate, base, markers(app.settings.data_dir), max_chars=max_chars,
                             banned=banned_phrases(app.settings.data_dir))


def test_a_rephrasing_that_keeps_every_tag_passes(app: App) -> None:
    reason, sample = _check(app, "Hello {{ first_name }}, {{ recent_achievement }} Would love to connect and follow "
                                 "{{ company_name }}.")
    assert reason == ""
    assert "Alexandra" in sample and "Northwind Analytics" in sample and "{{" not in sample
    assert v.SAMPLE_MARKER_TEXT["recent_achievement"] in sample


def test_candidates_that_change_tags_or_fail_guards_are_refused_with_the_reason(app: App) -> None:
    cases = {
        "Hi {{ first_name }}, I'd be glad to connect with {{ company_name }}.":
            "drops marker(s) {{ recent_achievement }}",
        "Hi {{ first_name }}, {{ recent_achievement }} {{ company_insight }} Glad to connect, {{ company_name }}.":
            "adds marker(s) {{ company_insight }}",
        "Hi {{ first_name }}, {{ recent_achievement }} Let's connect.":
            "drops variable(s) {{ company_name }}",
        "Hi {{ first_name }}, {{ recent_achievement }} Use {{ discount_code }} at {{ company_name }}.":
            "adds variable(s) {{ discount_code }}",
        "Hi {{ first_name }}, {{ recent_achievement }} See https://example.com/offer and {{ company_name }}.":
            "guard failed on a sample rendering: contacts",
        "Hi {{ first_name }}, {{ recent_achievement }} {% if %} {{ company_name }}":
            "not a valid template",
        "Hi {{ first_name }}, {{ recent_achievement }} " + "We really would love to connect. " * 8
        + "{{ company_name }}.": "guard failed on a sample rendering: length",
        "Hi {{ first_name }}, {{ recent_achievement }} **Connect** with {{ company_name }}.":
            "guard failed on a sample rendering: markup",
    }
    for candidate, expected in cases.items():
        reason, _ = _check(app, candidate)
        assert expected in reason, (candidate, reason)


def test_a_link_in_the_base_template_may_stay(app: App) -> None:
    base = "Hi {{ first_name }}, notes at https://example.com/notes for {{ company_name }}."
    same_link = "Hello {{ first_name }}, my notes: https://example.com/notes ({{ company_name }})."
    assert _check(app, same_link, base)[0] == ""
    assert "contacts" in _check(app, "Hello {{ first_name }}, see https://evil.example ({{ company_name }}).", base)[0]


def test_generate_stores_kept_variants_with_lineage(demo_app: App) -> None:
    report = asyncio.run(v.generate_variants(demo_app, BASE, 2, {"reply_rate": 0.08}))
    assert report.problem == "" and report.model == "meta-llama/llama-3-8b-instruct"
    assert [c.name for c in report.kept] == [f"{BASE}_v1", f"{BASE}_v2"]
    assert report.cost_usd > 0 and report.input_tokens > 0
    base = get_template(demo_app, BASE)
    stored = get_template(demo_app, f"{BASE}_v1")
    assert base is not None and stored is not None
    assert stored.parent_id == base.id and stored.step == base.step and stored.industry == base.industry
    assert not stored.is_default
    lineage = stored.lineage
    assert lineage["parent"] == BASE and lineage["model"] == report.model
    assert Decimal(lineage["cost_usd"]) == report.cost_usd
    assert lineage["prompt"][1]["content"].count(json.dumps(BASE_TEXT)[1:20]) == 1
    assert lineage["date"][:10] == utcnow().date().isoformat() and lineage["performance"] == {"reply_rate": 0.08}
    with session_scope(demo_app.engine) as s:
        tasks = s.exec(select(UsageEntry.task)).all()
    assert tasks == ["optimize_template"]

    again = asyncio.run(v.generate_variants(demo_app, BASE, 2))
    assert [c.name for c in again.kept] == [f"{BASE}_v3", f"{BASE}_v4"]


def test_generate_discards_bad_candidates_and_says_why(demo_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        "Hello {{ first_name }}, {{ recent_achievement }} Would love to connect with {{ company_name }}.",
        "Hello {{ first_name }}, glad to connect with {{ company_name }}.",
        "Hello {{ first_name }}, {{ recent_achievement }} Book at https://cal.example/me, {{ company_name }}.",
        BASE_TEXT,
        "Hello {{ first_name }}, {{ recent_achievement }} Would love to connect with {{ company_name }}.",
        42,
    ]
    monkeypatch.setattr(simulator, "template_variants", lambda template, count: answers)
    report = asyncio.run(v.generate_variants(demo_app, BASE, 3))
    reasons = [c.reason for c in report.candidates]
    assert [c.kept for c in report.candidates] == [True, False, False, False, False, False]
    assert "drops marker(s) {{ recent_achievement }}" in reasons[1]
    assert "contacts" in reasons[2] and "cal.example" in reasons[2]
    assert reasons[3] == "the same as the base template" and reasons[4] == "a repeat" and reasons[5] == "not a text"
    assert "6 candidates for 3 asked" in report.problem
    assert get_template(demo_app, f"{BASE}_v1") is not None and get_template(demo_app, f"{BASE}_v2") is None


def test_an_unreadable_answer_is_reported_not_stored(demo_app: App, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(simulator.Simulator, "_answer", lambda self, messages: "Sure! Here are some ideas.")
    report = asyncio.run(v.generate_variants(demo_app, BASE, 2))
    assert "could not be read" in report.problem and report.candidates == []
    assert report.cost_usd > 0  # the call was made and is in the ledger


def test_generate_refuses_bad_requests(demo_app: App) -> None:
    with pytest.raises(LookupError, match="no template named"):
        asyncio.run(v.generate_variants(demo_app, "nope", 2))
    with pytest.raises(ValueError, match="safe fallback"):
        asyncio.run(v.generate_variants(demo_app, "connection_request_safe", 2))
    for n in (0, 11, True):
        with pytest.raises(ValueError, match="1 to 10"):
            asyncio.run(v.generate_variants(demo_app, BASE, n))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="plain JSON"):
        asyncio.run(v.generate_variants(demo_app, BASE, 2, {"when": object()}))


def test_the_optimize_prompt_is_the_house_prompt() -> None:
    messages = v.optimize_messages("Hi {{ first_name }}", {"reply_rate": 0.1}, 3, 300)
    from core.messages.prompts import task_of

    assert task_of(messages) == "optimize_template"
    assert "under 300 characters" in messages[0]["content"] and "{{ ... }}" in messages[0]["content"]
    assert '{"variants": ["...", "..."]}' in messages[0]["content"]


def test_output_budget_grows_with_long_templates(demo_app: App) -> None:
    route = demo_app.routing.route("optimize_template", utcnow().date())
    follow_up = get_template(demo_app, "follow_up_1_default")
    assert follow_up is not None
    assert v.output_tokens_for("Hi {{ first_name }}", 1, route) == route.max_tokens
    assert route.max_tokens < v.output_tokens_for(follow_up.text, 3, route) <= v.MAX_OUTPUT_TOKENS


def test_bulk_estimate_prices_every_call_at_the_worst_case(demo_app: App) -> None:
    estimate = v.estimate_bulk(demo_app, "saas", 2)
    assert [t["name"] for t in estimate.templates] == ["connection_request_saas"]
    book = demo_app.price_book()
    route = demo_app.routing.route("optimize_template", utcnow().date())
    base = get_template(demo_app, "connection_request_saas")
    assert base is not None
    max_chars = steps(demo_app.settings.data_dir)[base.step].max_chars
    prompt = count_messages(v.optimize_messages(base.text, {}, 2, max_chars))
    out = v.output_tokens_for(base.text, 2, route)
    worst = max(book.cost(m, prompt, out) for m in route.models)
    assert estimate.worst_case_usd == worst and estimate.templates[0]["prompt_tokens"] == prompt
    assert Decimal(0) < estimate.typical_usd <= estimate.worst_case_usd

    batch = create_batch(demo_app, [], kind=BatchKind.VARIANTS, subjects=[t["name"] for t in estimate.templates],
                         options={"n": 2})
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    run_pending(demo_app, "w1")  # bulk generation is a batch the worker runs
    bulk = bulk_report(demo_app, batch.id)  # type: ignore[arg-type]
    assert len(bulk.reports) == 1 and 0 < bulk.cost_usd <= estimate.worst_case_usd and bulk.stopped == ""
    # generated variants are not bulk bases themselves, and safe templates never are
    assert [t["name"] for t in v.estimate_bulk(demo_app, "SaaS", 2).templates] == ["connection_request_saas"]
    general = {t["name"] for t in v.estimate_bulk(demo_app, None, 1).templates}
    assert BASE in general and "connection_request_safe" not in general and "connection_request_saas" not in general
    assert v.estimate_bulk(demo_app, "Agriculture", 3).templates == []
    assert "SaaS" in v.industries(demo_app)
    one = v.estimate_variants(demo_app, "connection_request_saas", 2)
    assert one.worst_case_usd == estimate.worst_case_usd
