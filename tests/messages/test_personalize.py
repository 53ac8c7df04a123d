"""The pipeline end to end against the simulator: fewest tokens, guards, fallbacks, review, ladder."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from sqlmodel import select

from core.app import App
from core.costs import budget
from core.messages.library import add_template
from core.messages.personalize import Options, Result, choose_rung, options_for, personalize_one, preview_sequence
from core.store.db import session_scope
from core.store.models import UsageEntry
from tests.conftest import sim_answers
from tests.messages.test_guards import INJECTION_CORPUS

ANA = {"first_name": "Ana", "last_name": "Silva", "company_name": "Nimbus", "industry": "SaaS",
       "company_size": "120", "job_title": "VP Sales", "email": "ana@example.com",
       "linkedin_url": "https://www.linkedin.com/in/ana-demo", "recent_news": "Nimbus raised a $20M Series B."}


@pytest.fixture
def lib_app(demo_app: App) -> App:
    add_template(demo_app, "plain_only", "connection_request", "Hi {{ first_name }}, glad to connect about "
                 "{{ company_name }}'s outbound work.")
    add_template(demo_app, "needs_title", "connection_request", "Hi {{ first_name }}, as {{ job_title }} you know "
                 "outbound. Glad to connect.")
    add_template(demo_app, "achievement", "connection_request", "Hi {{ first_name }}, {{ recent_achievement }} "
                 "Glad to connect.")
    return demo_app


def run(app: App, fields: dict[str, str], **kw: Any) -> Result:
    return asyncio.run(personalize_one(app, fields, options_for(app, **kw)))


def ledger(app: App) -> list[UsageEntry]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(UsageEntry).order_by(UsageEntry.id)).all())


def test_plain_template_makes_no_model_call(lib_app: App) -> None:
    result = run(lib_app, ANA, template_name="plain_only")
    assert result.state == "ready" and not result.used_ai and result.cost_usd == 0
    assert result.message == "Hi Ana, glad to connect about Nimbus's outbound work."
    assert ledger(lib_app) == []


def test_markers_call_the_personalize_route_with_only_the_needed_fields(lib_app: App) -> None:
    seen = sim_answers(lib_app, {})
    result = run(lib_app, ANA, template_name="achievement")
    assert result.state == "ready" and result.used_ai
    assert result.message == "Hi Ana, Congrats on the recent news: Nimbus raised a $20M Series B. Glad to connect."
    [row] = ledger(lib_app)
    assert row.task == "personalize" and row.model_requested == "mistralai/mistral-7b-instruct"
    assert result.cost_usd == row.cost_usd and result.input_tokens == row.input_tokens
    system, user = seen[0]
    assert "ana@example.com" not in user["content"] and "linkedin" not in user["content"]
    assert "Nimbus raised" not in system["content"], "prospect data never goes in the system prompt"
    assert user["content"].count("<data>") == 1


def test_missing_variable_is_held_as_needs_data(lib_app: App) -> None:
    fields = {k: v for k, v in ANA.items() if k != "job_title"}
    result = run(lib_app, fields, template_name="needs_title")
    assert result.state == "needs_data" and "job_title" in result.reason
    assert result.message == "" and ledger(lib_app) == []


def test_guard_failure_falls_back_to_safe_template(lib_app: App) -> None:
    sim_answers(lib_app, {"personalize": [json.dumps({"recent_achievement": "See https://evil.example.net/x now."})]})
    result = run(lib_app, ANA, template_name="achievement")
    assert result.state == "fallback" and result.fallback
    assert result.template == "connection_request_safe"
    assert "contacts" in result.reason
    assert result.message == "Hi Ana, I came across Nimbus and would be glad to connect."


def test_broken_snippet_json_is_reasked_once_then_falls_back(lib_app: App) -> None:
    seen = sim_answers(lib_app, {"personalize": ["not json", "still not json"]})
    result = run(lib_app, ANA, template_name="achievement")
    assert result.state == "fallback" and "unusable twice" in result.reason
    assert len(seen) == 2 and len(ledger(lib_app)) == 2


def test_high_value_prospect_gets_review_and_rejection_means_safe_template(lib_app: App) -> None:
    big = {**ANA, "company_size": "4000"}
    ok = run(lib_app, big, template_name="achievement")
    assert ok.rung == "premium_review" and ok.review is not None and ok.review.approved and ok.state == "ready"
    sim_answers(lib_app, {"review": [json.dumps({"approved": False, "score": 3, "issues": ["too generic"],
                                                 "suggestions": []})]})
    rejected = run(lib_app, big, template_name="achievement")
    assert rejected.state == "fallback" and "too generic" in rejected.reason
    assert rejected.template == "connection_request_safe"


def test_review_failed_is_held(lib_app: App) -> None:
    sim_answers(lib_app, {"review": ["nope", "still nope"]})
    result = run(lib_app, {**ANA, "company_size": "4000"}, template_name="achievement")
    assert result.state == "review_failed" and result.review is not None and not result.review.approved


@pytest.mark.parametrize(
    ("level", "size", "expected"),
    [
        (budget.LEVEL_NORMAL, 120, "model_writing"),
        (budget.LEVEL_NORMAL, 4000, "premium_review"),
        (budget.LEVEL_REVIEW_TOP, 4000, "model_writing"),
        (budget.LEVEL_REVIEW_TOP, 6000, "premium_review"),
        (budget.LEVEL_TEMPLATE_ONLY, 6000, "template_only"),
        (budget.LEVEL_STOPPED, 120, "template_only"),
    ],
)
def test_ladder(level: str, size: int, expected: str) -> None:
    rung, why = choose_rung(True, size, Options(budget_level=level), flagged=False)
    assert rung == expected and why


def test_template_only_budget_makes_no_calls(lib_app: App) -> None:
    result = asyncio.run(personalize_one(lib_app, ANA, Options(template_name="achievement",
                                                               budget_level=budget.LEVEL_TEMPLATE_ONLY)))
    assert result.state == "fallback" and ledger(lib_app) == []


def test_long_news_is_summarized_once_per_company(lib_app: App) -> None:
    news = "Nimbus opened an office in Lisbon. " + "It also hired forty engineers for the platform team. " * 12
    run(lib_app, {**ANA, "recent_news": news}, template_name="achievement")
    run(lib_app, {**ANA, "first_name": "Rui", "recent_news": news}, template_name="achievement")
    tasks = [r.task for r in ledger(lib_app)]
    assert tasks.count("context") == 1 and tasks.count("personalize") == 2


def test_free_account_cap(lib_app: App) -> None:
    long = "Hi {{ first_name }}, " + "we help teams keep outreach costs predictable and honest. " * 4
    add_template(lib_app, "long_note", "connection_request", long)
    assert run(lib_app, ANA, template_name="long_note").state == "ready"
    free = run(lib_app, ANA, template_name="long_note", free_account=True)
    assert free.state == "fallback" and "length" in free.reason


def test_selection_reason_is_recorded(lib_app: App) -> None:
    result = run(lib_app, {**ANA, "industry": "Fintech"})
    assert result.template == "connection_request_fintech" and result.selection_reason == "industry match: Fintech"


@pytest.mark.parametrize(("value", "kind"), INJECTION_CORPUS)
def test_injection_corpus_never_reaches_the_output_unflagged(lib_app: App, value: str, kind: str) -> None:
    fields = {**ANA, "recent_news": value, "notes": value}
    result = run(lib_app, fields, template_name="achievement")
    assert kind in {f.kind for f in result.flags}, f"not flagged: {value!r}"
    assert not result.used_ai
    assert value not in result.message


def test_whole_sequence(lib_app: App) -> None:
    results = asyncio.run(preview_sequence(lib_app, ANA))
    assert [r.step for r in results] == ["connection_request", "follow_up_1", "follow_up_2"]
    assert all(r.state in ("ready", "fallback") for r in results)
