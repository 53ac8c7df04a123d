import json
from datetime import date

import httpx2

from core.costs.prices import current_book
from core.messages import prompts
from core.sim.simulator import Faults, Scripted, Simulator, template_variants, write_marker


def _post(sim: Simulator, body: dict) -> tuple[int, dict]:
    resp = sim.handle("POST", "/api/v1/chat/completions", json.dumps(body).encode())
    return resp.status, json.loads(resp.body)


def test_answers_are_deterministic_and_priced() -> None:
    sim = Simulator(current_book())
    messages = prompts.personalize_messages(["recent_achievement", "industry_trend"], {}, {
        "first_name": "Ana", "company_name": "Nimbus", "industry": "SaaS", "recent_news": "Nimbus raised a Series B."})
    body = {"model": "mistralai/mistral-7b-instruct", "messages": messages, "max_tokens": 200}
    status, first = _post(sim, body)
    _, second = _post(sim, body)
    assert status == 200
    content = json.loads(first["choices"][0]["message"]["content"])
    assert content == json.loads(second["choices"][0]["message"]["content"])
    assert content["recent_achievement"] == "Congrats on the recent news: Nimbus raised a Series B."
    assert content["industry_trend"] == "The shift to usage-based pricing is reshaping SaaS."
    usage = first["usage"]
    assert usage["cost"] > 0 and usage["prompt_tokens"] > 20


def test_review_and_classification_are_json() -> None:
    sim = Simulator(current_book(), today=date(2026, 11, 1))  # before the Sonnet 4.5 retirement
    review = prompts.review_messages("Hi Ana, congrats on the Series B at Nimbus. Open to connecting?",
                                     {"first_name": "Ana"}, 300)
    _, body = _post(sim, {"model": "anthropic/claude-sonnet-4.5", "messages": review, "max_tokens": 400})
    verdict = json.loads(body["choices"][0]["message"]["content"])
    assert set(verdict) == {"approved", "score", "issues", "suggestions"} and verdict["approved"] is True
    classify = prompts.classify_messages("Please remove me from your list.", "2026-11-20")
    _, body = _post(sim, {"model": "meta-llama/llama-3-8b-instruct", "messages": classify, "max_tokens": 100})
    assert json.loads(body["choices"][0]["message"]["content"])["category"] == "do_not_contact"


def test_max_tokens_truncates_with_length_finish() -> None:
    sim = Simulator(current_book())
    messages = prompts.context_messages("Acme", "Acme " * 50 + ". More.")
    _, body = _post(sim, {"model": "mistralai/mistral-nemo", "messages": messages, "max_tokens": 3})
    assert body["choices"][0]["finish_reason"] == "length"
    assert body["usage"]["completion_tokens"] <= 3


def test_retired_model_uses_fallback_list_or_404() -> None:
    sim = Simulator(current_book(), today=date(2026, 12, 5))
    msgs = [{"role": "user", "content": "hi"}]
    status, _ = _post(sim, {"model": "anthropic/claude-sonnet-4.5", "messages": msgs, "max_tokens": 5})
    assert status == 404
    status, body = _post(sim, {"model": "anthropic/claude-sonnet-4.5", "messages": msgs, "max_tokens": 5,
                               "models": ["anthropic/claude-sonnet-4.5", "anthropic/claude-sonnet-5.5"]})
    assert status == 200 and body["model"] == "anthropic/claude-sonnet-5.5"


def test_bad_requests_get_openrouter_error_shape() -> None:
    sim = Simulator(current_book())
    status, body = _post(sim, {"model": "x"})
    assert status == 400 and set(body["error"]) >= {"code", "message"}


def test_fault_rates_are_reproducible() -> None:
    def statuses(seed: int) -> list[int]:
        sim = Simulator(current_book(), Faults(error_rates={503: 0.3}, seed=seed))
        body = {"model": "mistralai/mistral-nemo", "messages": [{"role": "user", "content": "x"}], "max_tokens": 5}
        return [_post(sim, body)[0] for _ in range(40)]

    assert statuses(3) == statuses(3)
    assert 3 <= statuses(3).count(503) <= 25


def test_script_and_models_endpoint_and_key() -> None:
    sim = Simulator(current_book())
    sim.script(Scripted(429, retry_after=2))
    resp = sim.handle("POST", "/api/v1/chat/completions", b"{}")
    assert resp.status == 429 and resp.headers["Retry-After"] == "2"
    models = json.loads(sim.handle("GET", "/api/v1/models", b"").body)["data"]
    by_id = {m["id"]: m for m in models}
    assert by_id["mistralai/mistral-7b-instruct"]["pricing"]["prompt"] == "0.000000028"
    assert by_id["anthropic/claude-sonnet-4.5"]["expiration_date"] == "2026-11-30"
    assert "usage" in json.loads(sim.handle("GET", "/api/v1/key", b"").body)["data"]


def test_loopback_server_answers_real_http() -> None:
    with Simulator(current_book()).serve() as srv:
        r = httpx2.post(f"{srv.url}/chat/completions", json={
            "model": "mistralai/mistral-nemo", "messages": [{"role": "user", "content": "hello"}], "max_tokens": 5})
    assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == "OK"


def test_variants_keep_liquid_tags() -> None:
    base = "Hi {{ first_name }}, {{ recent_achievement }} at {{ company_name }}. Would love to connect."
    variants = template_variants(base, 3)
    assert len(variants) == 3
    for v in variants:
        for tag in ("{{ first_name }}", "{{ recent_achievement }}", "{{ company_name }}"):
            assert tag in v


def test_markers_come_from_the_prospect_fields_only() -> None:
    text = write_marker("company_insight", {"company_name": "Quanta", "industry": "Fintech"})
    assert "Quanta" in text and "Fintech" in text
