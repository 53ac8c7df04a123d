"""Review JSON broken in every usual way ends validated or "review failed", never approved by default."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.app import App
from core.llm.client import RetryPolicy
from core.messages.review import VerdictError, parse_verdict, review_message

GOOD = {"approved": True, "score": 8, "issues": [], "suggestions": ["ask a question"]}


@pytest.mark.parametrize(
    "text",
    [
        json.dumps(GOOD),
        "```json\n" + json.dumps(GOOD) + "\n```",
        "Here is my review:\n" + json.dumps(GOOD) + "\nLet me know if you need more.",
        '{"approved": true, "score": 8, "issues": [], "suggestions": ["ask a question"],}',
        '{"approved": true, "score": 8, "issues": [], "suggestions": ["ask a question",],}',
        '{"approved": true, "score": 8.0, "issues": [], "suggestions": ["a } brace in a string"], "extra": 1}',
    ],
)
def test_recoverable_answers_validate(text: str) -> None:
    verdict = parse_verdict(text)
    assert verdict.approved is True and verdict.score == 8


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", "empty"),
        ("I approve this message.", "no JSON object"),
        ('{"approved": true, "score": 8, "issues": [', "cut off"),
        ('{"approved": "yes", "score": 8, "issues": [], "suggestions": []}', "approved"),
        ('{"approved": true, "score": "high", "issues": [], "suggestions": []}', "score"),
        ('{"approved": true, "score": 14, "issues": [], "suggestions": []}', "score"),
        ('{"approved": true, "score": 8, "issues": "none", "suggestions": []}', "issues"),
        ('{"approved": true, "score": 8}', "issues"),
        ('{"score": 8, "issues": [], "suggestions": []}', "approved"),
        ("[true, 8]", "no JSON object"),
        ("{'approved': True}", "does not parse"),
    ],
)
def test_broken_answers_are_refused_with_the_reason(text: str, problem: str) -> None:
    with pytest.raises(VerdictError, match=problem):
        parse_verdict(text)


def _review(app: App, message: str = "Hi Ana, congrats on the Series B at Nimbus. Open to connecting?"):  # type: ignore[no-untyped-def]
    async def go():  # type: ignore[no-untyped-def]
        async with app.gateway(RetryPolicy(backoff_base_s=0.001)) as gw:
            return await review_message(gw, message, {"first_name": "Ana"}, 300)

    return asyncio.run(go())


def _answer_with(app: App, *contents: str) -> list[dict]:
    """Make the simulator answer review calls with the given raw contents, in order; returns requests seen."""
    assert app.simulator is not None
    sim = app.simulator
    queue = list(contents)
    seen: list[dict] = []
    original = sim._answer

    def answer(messages):  # type: ignore[no-untyped-def]
        seen.append({"messages": messages})
        return queue.pop(0) if queue else original(messages)

    sim._answer = answer  # type: ignore[method-assign]
    return seen


def _review_route(app: App):  # type: ignore[no-untyped-def]
    """Today's review route: Sonnet 4.5 until its retirement on 2026-11-30, its replacement after."""
    from core.store.models import utcnow

    return app.routing.route("review", utcnow().date())


def test_valid_review_through_the_simulator(app: App) -> None:
    outcome = _review(app)
    assert outcome.status == "ok" and outcome.approved is True and outcome.model == _review_route(app).model
    assert outcome.cost_usd > 0 and len(outcome.calls) == 1


def test_one_reask_recovers(app: App) -> None:
    seen = _answer_with(app, "Sure! The message looks great.", json.dumps(GOOD))
    outcome = _review(app)
    assert outcome.status == "ok" and outcome.approved is True
    assert len(seen) == 2 and "not valid" in seen[1]["messages"][-1]["content"]


def test_still_invalid_after_reask_is_review_failed_not_approval(app: App) -> None:
    _answer_with(app, '{"approved": true, "score": ', '{"approved": "yes"}')
    outcome = _review(app)
    assert outcome.status == "failed" and outcome.approved is False
    assert outcome.problem.startswith("review failed") and len(outcome.calls) == 2


def test_review_request_is_strict_json_schema(app: App) -> None:
    assert app.simulator is not None
    captured: list[bytes] = []
    handle = app.simulator.handle

    def spy(method: str, path: str, body: bytes):  # type: ignore[no-untyped-def]
        captured.append(body)
        return handle(method, path, body)

    app.simulator.handle = spy  # type: ignore[method-assign]
    _review(app)
    request = json.loads(captured[0])
    assert request["response_format"]["type"] == "json_schema"
    assert request["response_format"]["json_schema"]["strict"] is True
    assert request["provider"] == {"require_parameters": True}
    route = _review_route(app)
    assert request["model"] == route.model
    assert request.get("models") == (route.models if len(route.models) > 1 else None), "fallbacks go as `models`"


def test_ask_json_stages_are_numbered_for_replay(app: App) -> None:
    from core.costs.gateway import CallContext
    from core.messages.structured import ask_json

    seen = _answer_with(app, "garbage", json.dumps(GOOD))

    async def go():  # type: ignore[no-untyped-def]
        async with app.gateway(RetryPolicy(backoff_base_s=0.001)) as gw:
            return await ask_json(gw, "review", [{"role": "user", "content": "x"}], lambda c: json.loads(c),
                                  response_format={}, context=CallContext())

    answer = asyncio.run(go())
    assert answer.value == GOOD and len(answer.calls) == 2 and len(seen) == 2
    assert answer.cost_usd == sum(c.cost_usd for c in answer.calls)
