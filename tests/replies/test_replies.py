"""Reply classification and routing: strict verdicts with one re-ask, every category's funnel step, the
sequence stop and pause the batch runner honours, suppression seen by later imports, the reply import, and
the provider evaluation on the labelled set."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

import core
from core.app import App
from core.batches.foreground import evaluate_provider
from core.costs.gateway import CallContext
from core.experiments import outcomes as experiments
from core.llm.errors import BudgetExceededError
from core.messages import prompts
from core.messages.review import VerdictError
from core.people.prospects import import_prospects
from core.people.reading import RowError, UnreadableFile
from core.replies.categories import CATEGORIES
from core.replies.classify import (
    Classification,
    VerdictStatus,
    classify,
    classify_and_route,
    classify_replies,
    classify_text,
    parse_answer,
    pending_reply_ids,
    worst_case_cost,
)
from core.replies.cleaning import MAX_REPLY_CHARS, clean_reply
from core.replies.evaluation import evaluate, load_labelled
from core.replies.holds import paused_until, sequence_stopped
from core.replies.importing import UnknownProspect, import_replies
from core.replies.review import category_counts, override, review_rows
from core.replies.routing import apply_routing, load_routing_config
from core.replies.rules import classify_by_rules
from core.sim.simulator import Scripted
from core.store.db import session_scope
from core.store.models import HoldKind, Prospect, Reply, SequenceHold, Suppression, Template, UsageEntry
from tests.conftest import sim_answers

PROSPECTS_CSV = (
    b"first_name,last_name,company_name,linkedin_url,email\n"
    b"Ana,Souza,Nimbus,https://www.linkedin.com/in/ana-souza,ana@nimbus.example\n"
    b"Ben,Okafor,Fernhollow,,ben@fernhollow.example\n"
    b"Chloe,Martin,Umbria,https://linkedin.com/in/chloe-martin/,\n"
    b"Dan,Berg,Kestrel,,\n"
)

ANA_LI = "https://www.linkedin.com/in/ana-souza"
RECEIVED = date(2025, 3, 4)


def verdict_json(category: str, confidence: float = 0.9, return_date: str | None = None,
                 referral: str | None = None) -> str:
    return json.dumps({"category": category, "confidence": confidence, "return_date": return_date,
                       "referral": referral})


def run_classify(app: App, text: str | bytes, received: date | None = RECEIVED) -> Classification:
    async def go() -> Classification:
        async with app.gateway() as gw:
            return await classify(gw, text, received, CallContext(), config=load_routing_config(app.settings.data_dir))

    return asyncio.run(go())


def ledger(app: App) -> list[UsageEntry]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(UsageEntry).order_by(UsageEntry.id)).all())  # type: ignore[arg-type]


@pytest.fixture
def people(app: App) -> dict[str, int]:
    report = import_prospects(app, PROSPECTS_CSV)
    assert report.accepted == 4
    with session_scope(app.engine) as s:
        return {p.first_name: int(p.id) for p in s.exec(select(Prospect)).all()}  # type: ignore[arg-type]


def store_reply(app: App, prospect_id: int | None, text: str, received: date = RECEIVED,
                identity: str = "") -> int:
    with session_scope(app.engine) as s:
        if prospect_id is not None and not identity:
            prospect = s.get(Prospect, prospect_id)
            assert prospect is not None
            identity = prospect.identity
        reply = Reply(prospect_id=prospect_id, prospect_identity=identity, text=text,
                      received_at=datetime(received.year, received.month, received.day, 9, 30, tzinfo=UTC))
        s.add(reply)
        s.flush()
        return int(reply.id)  # type: ignore[arg-type]


def hold_of(app: App, reply_id: int) -> tuple[HoldKind, date | None, str] | None:
    """The reply's row in sequence_holds, as (kind, until, reason)."""
    with session_scope(app.engine) as s:
        rows = s.exec(select(SequenceHold).where(SequenceHold.reply_id == reply_id)).all()
    assert len(rows) <= 1, "one hold per reply"
    return (HoldKind(rows[0].kind), rows[0].until, rows[0].reason) if rows else None


def route_with(app: App, reply_id: int, answer: str) -> Reply:
    sim_answers(app, {"classify_reply": [answer]})

    async def go() -> None:
        async with app.gateway() as gw:
            await classify_and_route(app, gw, reply_id)

    asyncio.run(go())
    with session_scope(app.engine) as s:
        reply = s.get(Reply, reply_id)
        assert reply is not None
        return reply


# ---------------------------------------------------------------------------------------------------------
# Verdict parsing and the re-ask
# ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("raw", [
    '```json\n{"category": "interested", "confidence": 0.8, "return_date": null, "referral": null}\n```',
    'Sure! Here is the JSON: {"category": "Interested ", "confidence": 0.8, "return_date": null, "referral": null}.',
    '{"category": "interested", "confidence": 0.8, "return_date": null, "referral": null,}',
    '{"category": "interested", "confidence": 0.8}',
])
def test_recoverable_answers_parse(raw: str) -> None:
    assert parse_answer(raw) == ("interested", 0.8, None, None)


@pytest.mark.parametrize(("raw", "problem"), [
    ('{"category": "interested", "confidence": 0.9, "return_da', "cut off"),
    ('{"category": "maybe", "confidence": 0.9, "return_date": null, "referral": null}', "not one of"),
    ('{"category": "interested", "confidence": "0.9", "return_date": null, "referral": null}', "confidence"),
    ('{"category": "interested", "confidence": 1.7, "return_date": null, "referral": null}', "confidence"),
    ('{"category": "out_of_office", "confidence": 0.9, "return_date": "next week", "referral": null}',
     "return_date"),
    ("I think they are interested.", "no JSON object"),
    ("", "empty"),
    ('["interested"]', "no JSON object"),
])
def test_invalid_answers_say_what_is_wrong(raw: str, problem: str) -> None:
    with pytest.raises(VerdictError, match=problem):
        parse_answer(raw)


def test_simulator_classification_is_logged_on_the_classify_route(app: App) -> None:
    verdict = run_classify(app, "Please unsubscribe me from this list.")
    assert verdict.category == "do_not_contact" and verdict.status == VerdictStatus.OK and verdict.calls == 1
    [row] = ledger(app)
    assert row.task == "classify_reply" and row.model_requested == "meta-llama/llama-3-8b-instruct"
    assert verdict.cost_usd == row.cost_usd > 0 and verdict.tokens == row.input_tokens + row.output_tokens


BAD_ANSWERS = (
    '{"category": "interested", "confidence": 0.9, "return_da',
    '{"category": "hot_lead", "confidence": 0.9, "return_date": null, "referral": null}',
    '{"category": "interested", "confidence": "high", "return_date": null, "referral": null}',
    "The prospect seems interested in a demo.",
)


def test_one_bad_answer_is_reasked_once_and_the_second_is_used(app: App) -> None:
    for number, bad in enumerate(BAD_ANSWERS, start=1):
        seen = sim_answers(app, {"classify_reply": [bad, verdict_json("schedule_call", 0.85)]})
        verdict = run_classify(app, "Can we talk Thursday?")
        assert verdict.category == "schedule_call" and verdict.status == VerdictStatus.OK and verdict.calls == 2, bad
        assert len(seen) == 2 and len(ledger(app)) == 2 * number
        reask = seen[1]
        assert reask[-2] == {"role": "assistant", "content": bad}
        assert "not valid" in reask[-1]["content"]


def test_two_bad_answers_give_unclear_without_a_third_call(app: App) -> None:
    seen = sim_answers(app, {"classify_reply": ["```json\n{broken", '{"category": "yes", "confidence": 1}']})
    verdict = run_classify(app, "Sounds great, tell me more")
    assert verdict.category == "unclear" and verdict.status == VerdictStatus.UNCLEAR
    assert verdict.calls == 2 and len(seen) == 2 and len(ledger(app)) == 2
    assert "re-ask" in verdict.problem and "not one of" in verdict.problem
    assert verdict.model_said is None and verdict.confidence == 0.0


def test_low_confidence_is_unclear_but_keeps_what_the_model_said(app: App) -> None:
    sim_answers(app, {"classify_reply": [verdict_json("interested", 0.41)]})
    verdict = run_classify(app, "hmm")
    assert verdict.category == "unclear" and verdict.status == VerdictStatus.UNCLEAR
    assert verdict.model_said == "interested" and verdict.confidence == pytest.approx(0.41)
    assert "below 0.60" in verdict.problem


def test_empty_reply_is_unclear_without_a_model_call(app: App) -> None:
    seen = sim_answers(app, {})
    for text in ("", "   \n\t ", "\u200b\u200b", "> quoted only\n> nothing new"):
        verdict = run_classify(app, text)
        assert verdict.category == "unclear" and verdict.status == VerdictStatus.UNCLEAR and verdict.calls == 0
    assert seen == [] and ledger(app) == []


def test_huge_and_binary_replies_are_cut_before_the_model_sees_them(app: App) -> None:
    seen = sim_answers(app, {})
    huge = "Not interested, thanks. " + ("\x00\x07\ufeff" + "x" * 97) * 20_000
    verdict = run_classify(app, huge)
    sent = prompts.read_data(seen[0][-1]["content"])["reply"]
    assert len(sent) <= MAX_REPLY_CHARS and "\x00" not in sent and "\ufeff" not in sent
    assert verdict.category == "not_interested"
    binary = bytes(range(256)) * 50 + b"please remove me from your list"
    verdict = run_classify(app, binary)
    sent = prompts.read_data(seen[1][-1]["content"])["reply"]
    assert len(sent) <= MAX_REPLY_CHARS and "\x00" not in sent and verdict.calls == 1


def test_moderation_refusal_goes_to_a_person(app: App) -> None:
    assert app.simulator is not None
    app.simulator.script(Scripted(403, message="flagged"))
    verdict = run_classify(app, "some reply")
    assert verdict.category == "unclear" and verdict.status == VerdictStatus.UNCLEAR and "moderation" in verdict.problem


def test_model_return_date_before_the_reply_is_dropped_and_the_text_is_read(app: App) -> None:
    sim_answers(app, {"classify_reply": [verdict_json("out_of_office", 0.9, "2020-01-01")]})
    verdict = run_classify(app, "I am out of the office until 12 March.")
    assert verdict.category == "out_of_office" and verdict.return_date == date(2025, 3, 12)
    sim_answers(app, {"classify_reply": [verdict_json("out_of_office", 0.9, None)]})
    verdict = run_classify(app, "I am out of the office until 12 March.")
    assert verdict.return_date == date(2025, 3, 12)
    sim_answers(app, {"classify_reply": [verdict_json("out_of_office", 0.9, "2020-01-01")]})
    verdict = run_classify(app, "Out of office, limited access to email.")
    assert verdict.category == "out_of_office" and verdict.return_date is None
    sim_answers(app, {"classify_reply": [verdict_json("out_of_office", 0.9, "2025-04-01")]})
    assert run_classify(app, "Out of office until 12 March.").return_date == date(2025, 4, 1), "the model's date wins"


# ---------------------------------------------------------------------------------------------------------
# Routing
# ---------------------------------------------------------------------------------------------------------


def test_routing_config_names_an_action_for_every_category(app: App) -> None:
    config = load_routing_config(app.settings.data_dir)
    assert set(config.routes) == set(CATEGORIES)
    assert {c: r.action for c, r in config.routes.items()} == {
        "schedule_call": "booking", "request_info": "send_template:info_follow_up",
        "out_of_office": "pause_until_return", "do_not_contact": "suppress", "not_interested": "stop",
        "wrong_person": "record_referral", "interested": "next_step_and_person", "unclear": "to_person",
    }
    assert 0 < config.min_confidence < 1 and config.default_pause_days <= config.max_pause_days


@pytest.mark.parametrize(("change", "message"), [
    ({"min_confidence": "0.6"}, "min_confidence must be a number"),
    ({"default_pause_days": 500}, "default_pause_days must be between"),
    ({"routes": {"interested": {"action": "stop"}}}, "missing: not_interested"),
    ({"positive_categories": ["hot"]}, "positive_categories"),
])
def test_broken_routing_config_is_refused_with_the_file_name(tmp_path: Path, change: dict, message: str) -> None:
    raw = json.loads((Path(core.__file__).parent.parent / "data" / "reply_routing.json").read_text())
    raw.update(change)
    (tmp_path / "reply_routing.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=message) as caught:
        load_routing_config(tmp_path)
    assert "reply_routing.json" in str(caught.value)


def test_bad_action_in_config_is_refused(tmp_path: Path) -> None:
    raw = json.loads((Path(core.__file__).parent.parent / "data" / "reply_routing.json").read_text())
    raw["routes"]["interested"]["action"] = "send_carrier_pigeon"
    (tmp_path / "reply_routing.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"routes\.interested\.action"):
        load_routing_config(tmp_path)


def test_each_category_routes_to_its_step_and_stops_the_sequence(app: App, people: dict[str, int]) -> None:
    expected = {
        "schedule_call": ("booking", "booking link"),
        "request_info": ("send_template:info_follow_up", "No template named 'info_follow_up'"),
        "not_interested": ("stop", "sequence stops"),
        "interested": ("next_step_and_person", "person takes over"),
        "unclear": ("to_person", "a person reads"),
    }
    for category, (action, detail_part) in expected.items():
        reply = route_with(app, store_reply(app, people["Ana"], f"reply {category}"), verdict_json(category))
        assert reply.category == reply.model_category == category and reply.next_action == action
        assert detail_part in reply.details["routing"]["detail"]
        assert hold_of(app, int(reply.id or 0)) == (HoldKind.STOPPED, None, f"reply #{reply.id} ({category})")
    assert sequence_stopped(app, people["Ana"]) and paused_until(app, people["Ana"], RECEIVED) is None
    assert not sequence_stopped(app, people["Ben"]), "other prospects are untouched"


def test_request_info_names_the_template_when_the_library_has_it(app: App, people: dict[str, int]) -> None:
    with session_scope(app.engine) as s:
        s.add(Template(name="info_follow_up", step="follow_up_1", text="Hi {{ first_name }}, here is more."))
    reply = route_with(app, store_reply(app, people["Ana"], "Send me details"), verdict_json("request_info"))
    assert reply.next_action == "send_template:info_follow_up"
    assert "Template 'info_follow_up' (step follow_up_1)" in reply.details["routing"]["detail"]


def test_a_suppressed_prospect_is_stopped_without_any_reply(app: App, people: dict[str, int]) -> None:
    from core.people.prospects import suppress

    suppress(app, "email:ben@fernhollow.example", "manual list")
    assert sequence_stopped(app, people["Ben"]) and not sequence_stopped(app, people["Dan"])


def test_out_of_office_with_a_date_pauses_until_that_date(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ben"], "Out of office until 21 March")
    reply = route_with(app, rid, verdict_json("out_of_office", 0.9, "2025-03-21"))
    assert reply.next_action == "pause_until_return"
    assert hold_of(app, rid) == (HoldKind.PAUSED, date(2025, 3, 21), f"reply #{rid} (out_of_office)")
    assert "sequence" not in reply.details, "the hold is a row, not JSON in the reply"
    assert not sequence_stopped(app, people["Ben"])
    assert paused_until(app, people["Ben"], today=RECEIVED) == date(2025, 3, 21)
    assert paused_until(app, people["Ben"], today=date(2025, 3, 21)) is None, "resumes on the return date"


def test_out_of_office_without_a_date_pauses_for_the_default(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ben"], "Automatic reply: I am away with limited access to email.")
    route_with(app, rid, verdict_json("out_of_office"))
    days = load_routing_config(app.settings.data_dir).default_pause_days
    assert paused_until(app, people["Ben"], today=RECEIVED) == RECEIVED + timedelta(days=days)


def test_out_of_office_far_away_is_capped(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ben"], "On sabbatical")
    reply = route_with(app, rid, verdict_json("out_of_office", 0.9, "2027-01-01"))
    cap = load_routing_config(app.settings.data_dir).max_pause_days
    assert paused_until(app, people["Ben"], today=RECEIVED) == RECEIVED + timedelta(days=cap)
    assert "capped" in reply.details["routing"]["detail"]


def test_a_later_real_reply_stops_a_paused_sequence(app: App, people: dict[str, int]) -> None:
    route_with(app, store_reply(app, people["Ben"], "OOO"), verdict_json("out_of_office", 0.9, "2025-03-21"))
    assert not sequence_stopped(app, people["Ben"])
    route_with(app, store_reply(app, people["Ben"], "No thanks"), verdict_json("not_interested"))
    assert sequence_stopped(app, people["Ben"])


def test_a_pending_reply_already_stops_the_sequence(app: App, people: dict[str, int]) -> None:
    import_replies(app, f"linkedin_url,text\n{ANA_LI},hello there\n".encode())
    assert sequence_stopped(app, people["Ana"]) and not sequence_stopped(app, people["Chloe"])


def test_wrong_person_records_the_referral(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Chloe"], "Not me, try Lars Eriksen")
    reply = route_with(app, rid, verdict_json("wrong_person", 0.9, referral="Lars Eriksen (lars@umbria.example)"))
    assert reply.next_action == "record_referral"
    assert reply.details["referral"] == "Lars Eriksen (lars@umbria.example)"
    assert "Lars Eriksen" in reply.details["routing"]["detail"]


def test_opt_out_suppresses_every_identity_and_later_imports_skip_the_person(
    app: App, people: dict[str, int]
) -> None:
    rid = store_reply(app, people["Ana"], "Please remove me from your list")
    reply = route_with(app, rid, verdict_json("do_not_contact", 0.95))
    assert reply.next_action == "suppress"
    with session_scope(app.engine) as s:
        suppressed = set(s.exec(select(Suppression.identity)).all())
    assert {f"li:{ANA_LI}", "email:ana@nimbus.example", "name:ana souza|nimbus"} <= suppressed
    assert sequence_stopped(app, people["Ana"])
    again = (b"first_name,company_name,email\nAna,Nimbus,ANA@nimbus.example\n"
             b"Dora,Nimbus,dora@nimbus.example\n")
    report = import_prospects(app, again)
    assert report.suppressed == 1 and report.accepted == 1


def test_opt_out_from_an_unknown_prospect_suppresses_its_identity(app: App) -> None:
    rid = store_reply(app, None, "stop messaging me", identity="email:who@else.example")
    route_with(app, rid, verdict_json("do_not_contact", 0.95))
    report = import_prospects(app, b"first_name,company_name,email\nWho,Else,who@else.example\n")
    assert report.suppressed == 1 and report.accepted == 0


def test_override_keeps_the_model_answer_and_undoes_its_suppression(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ana"], "Not now. Stop for this quarter, maybe later")
    route_with(app, rid, verdict_json("do_not_contact", 0.95))
    result = override(app, rid, "not_interested", "  Maria  ")
    assert result.action == "stop" and set(result.unsuppressed) >= {f"li:{ANA_LI}", "email:ana@nimbus.example"}
    with session_scope(app.engine) as s:
        reply = s.get(Reply, rid)
        assert s.exec(select(Suppression)).all() == []
    assert reply is not None
    assert reply.category == reply.override_category == "not_interested"
    assert reply.model_category == "do_not_contact" and reply.overridden_by == "Maria"
    assert reply.next_action == "stop" and reply.details["overrides"][0]["from"] == "do_not_contact"
    assert sequence_stopped(app, people["Ana"])


def test_override_keeps_suppressions_made_elsewhere(app: App, people: dict[str, int]) -> None:
    from core.people.prospects import suppress

    suppress(app, "email:ana@nimbus.example", "manual list")
    rid = store_reply(app, people["Ana"], "unsubscribe")
    route_with(app, rid, verdict_json("do_not_contact", 0.95))
    override(app, rid, "interested", "Maria")
    with session_scope(app.engine) as s:
        assert set(s.exec(select(Suppression.identity)).all()) == {"email:ana@nimbus.example"}


def test_override_to_out_of_office_reads_the_date_from_the_text(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ben"], "Away on holiday, back on 18 March")
    route_with(app, rid, verdict_json("out_of_office", 0.3))  # too unsure: unclear, to a person
    assert sequence_stopped(app, people["Ben"])
    override(app, rid, "out_of_office", "Maria")
    assert not sequence_stopped(app, people["Ben"])
    assert paused_until(app, people["Ben"], RECEIVED) == date(2025, 3, 18)


def test_override_refuses_unknown_category_and_anonymous_people(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ana"], "hello")
    with pytest.raises(ValueError, match="unknown category"):
        override(app, rid, "hot", "Maria")
    with pytest.raises(ValueError, match="say who"):
        override(app, rid, "interested", "   ")
    with pytest.raises(LookupError):
        override(app, 9999, "interested", "Maria")
    with pytest.raises(ValueError, match="not classified"):
        apply_routing(app, rid)


def test_a_person_decision_survives_a_later_model_run(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ana"], "hello")
    override(app, rid, "interested", "Maria")
    reply = route_with(app, rid, verdict_json("not_interested"))
    assert reply.category == "interested" and reply.model_category == "not_interested"
    assert reply.next_action == "next_step_and_person"


def test_outcome_hook_gets_the_prospect_level_positive(
    app: App, people: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[Any, ...]] = []
    # The real module, with its hook replaced by a recorder (routing looks the hook up on each call).
    monkeypatch.setattr(experiments, "record_reply_outcome", lambda *args, **kwargs: calls.append((*args, kwargs)))
    first = route_with(app, store_reply(app, people["Ana"], "Yes!"), verdict_json("interested"))
    second = route_with(app, store_reply(app, people["Ana"], "OOO"), verdict_json("out_of_office"))
    assert [(c[1], c[2], c[4]) for c in calls] == [(people["Ana"], True, {}), (people["Ana"], True, {})]
    assert calls[0][0] is app and calls[0][3] == first.received_at
    assert second.details["outcome"] == {"recorded": True, "positive": True}
    override(app, first.id, "not_interested", "Maria")  # type: ignore[arg-type]
    assert calls[-1][1:3] == (people["Ana"], False) and calls[-1][4] == {"replace": True}


def test_a_failing_outcome_write_never_breaks_routing(
    app: App, people: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    reply = route_with(app, store_reply(app, people["Ana"], "No"), verdict_json("not_interested"))
    assert reply.details["outcome"] == {"recorded": True, "positive": False}
    assert reply.next_action == "stop"

    def broken(*_: Any) -> None:
        raise RuntimeError("experiments table locked")

    monkeypatch.setattr(experiments, "record_reply_outcome", broken)
    reply = route_with(app, store_reply(app, people["Ana"], "Yes"), verdict_json("interested"))
    assert "experiments table locked" in reply.details["outcome"]["note"]
    assert reply.next_action == "next_step_and_person"


# ---------------------------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------------------------


def test_import_stores_known_and_unknown_and_reports_bad_lines(app: App, people: dict[str, int]) -> None:
    data = (
        "linkedin_url,email,reply,received\n"
        f"{ANA_LI},,Sounds good — let's talk,2025-03-04\n"
        ",BEN@fernhollow.example,Out of office until Monday,2025-03-05T08:00:00+02:00\n"
        ",stranger@else.example,Who are you?,2025-03-05\n"
        "https://example.com/not-linkedin,,hi,2025-03-05\n"
        ",not-an-email,hi,2025-03-05\n"
        f"{ANA_LI},,,2025-03-05\n"
        f"{ANA_LI},,hello,05/03/2025\n"
        f"{ANA_LI},,hello,2999-01-01\n"
        ",,hello,2025-03-05\n"
        f"{ANA_LI},,Sounds good — let's talk,2025-03-04\n"
        f'{ANA_LI},,"broken,2025-03-05\n'
    ).encode()
    report = import_replies(app, data)
    assert report.rows == 11 and report.stored == 3 and report.duplicates == 1
    assert report.stored + report.duplicates + len(report.rejected) == report.rows
    reasons = {r.line: r.reason for r in report.rejected}
    assert "not a LinkedIn profile address" in reasons[5]
    assert "not a valid email" in reasons[6]
    assert "text is empty" in reasons[7]
    assert "not a date like 2025-03-14" in reasons[8]
    assert "in the future" in reasons[9]
    assert "no prospect identity" in reasons[10]
    assert "unclosed quote" in reasons[12]
    assert report.duplicate_lines == [RowError(11, "duplicate of line 2")]
    assert report.unknown_prospects == [UnknownProspect(4, "email:stranger@else.example")]
    assert report.as_json()["duplicate_lines"] == [{"line": 11, "reason": "duplicate of line 2"}]
    with session_scope(app.engine) as s:
        rows = {r.prospect_identity: r for r in s.exec(select(Reply)).all()}
    assert rows[f"li:{ANA_LI}"].prospect_id == people["Ana"]
    ben = rows["email:ben@fernhollow.example"]
    assert ben.prospect_id == people["Ben"] and ben.received_at == datetime(2025, 3, 5, 6, 0, tzinfo=UTC)
    assert rows["email:stranger@else.example"].prospect_id is None
    assert all(r.category == "" for r in rows.values())


def test_reimporting_the_same_file_stores_nothing_twice(app: App, people: dict[str, int]) -> None:
    data = f"linkedin_url,text,received\n{ANA_LI},Yes please,2025-03-04\n{ANA_LI},No dates here,\n".encode()
    first = import_replies(app, data)
    assert first.stored == 2 and first.warnings == [RowError(3, "received is empty; the import time is used")]
    second = import_replies(app, data)
    assert second.stored == 0 and second.duplicates == 2
    assert {d.reason for d in second.duplicate_lines} == {"this reply is already stored"}


def test_import_matches_by_profile_or_email_and_the_identity_column(app: App, people: dict[str, int]) -> None:
    data = ("identity;message;date\n"
            "li:https://linkedin.com/in/Chloe-Martin;Merci, pas intéressée;2025-03-04\n"
            "ana@nimbus.example;Hi;2025-03-04\n"
            "name:Dan  Berg|kestrel;Hello;2025-03-04\n"
            "somebody;Hello;2025-03-04\n").encode("cp1252")
    report = import_replies(app, data)
    assert report.delimiter == ";" and report.encoding == "cp1252"
    assert report.stored == 3 and [r.line for r in report.rejected] == [5]
    assert report.unknown_prospects == []
    with session_scope(app.engine) as s:
        by_prospect = {r.prospect_id: r.text for r in s.exec(select(Reply)).all()}
    assert by_prospect[people["Chloe"]] == "Merci, pas intéressée"
    assert by_prospect[people["Ana"]] == "Hi" and by_prospect[people["Dan"]] == "Hello"


def test_import_cuts_huge_replies_with_a_warning(app: App, people: dict[str, int]) -> None:
    data = f"email,text\nben@fernhollow.example,{'blah ' * 10_000}\n".encode()
    report = import_replies(app, data)
    assert report.stored == 1 and "stored cut to 20,000" in report.warnings[0].reason


def test_unusable_files_are_refused_whole(app: App) -> None:
    refused = [
        (b"email,received\nana@nimbus.example,2025-03-04\n", "no column for the reply text"),
        (b"text,received\nhello,2025-03-04\n", "no column that says who replied"),
        (b"", "empty"),
        (b"PK\x03\x04" + b"\x00" * 30 + b"[Content_Types].xml", "Excel workbook"),
        (b"<html><body>replies</body></html>", "HTML"),
    ]
    for data, message in refused:
        with pytest.raises(UnreadableFile, match=message):
            import_replies(app, data)
    with session_scope(app.engine) as s:
        assert s.exec(select(Reply)).all() == []


# ---------------------------------------------------------------------------------------------------------
# Classifying stored replies under the budget
# ---------------------------------------------------------------------------------------------------------


def _import_many(app: App, n: int) -> list[int]:
    lines = [f"stranger{i}@else.example,Thanks but we are not interested right now ({i})" for i in range(n)]
    report = import_replies(app, ("email,text\n" + "\n".join(lines) + "\n").encode())
    assert report.stored == n
    return report.reply_ids


def test_classify_pending_replies_in_chunks_with_progress(app: App, people: dict[str, int]) -> None:
    import_replies(app, f"linkedin_url,text,received\n{ANA_LI},Please unsubscribe me,2025-03-04\n".encode())
    ids = _import_many(app, 12)
    seen: list[tuple[int, int]] = []
    run = classify_replies(app, progress=lambda done, total: seen.append((done, total)), chunk=5)
    assert run.total == 13 and run.classified == 13 and run.pending == 0 and run.stopped == ""
    assert seen == [(5, 13), (10, 13), (13, 13)]
    assert pending_reply_ids(app) == []
    counts = category_counts(app)
    assert counts.of("not_interested") == 12 and counts.of("do_not_contact") == 1 and counts.pending == 0
    assert counts.total == 13 and set(counts.by_category) == set(CATEGORIES)
    rows = review_rows(app, "not_interested")
    assert len(rows) == 12 and {r.id for r in rows} == set(ids)
    assert all(r.prospect.startswith("unknown: email:stranger") for r in rows)
    assert {r.sequence for r in rows} == {"none: the prospect is not known"}, "a stranger has no sequence to hold"
    [ana] = review_rows(app, "do_not_contact")
    assert ana.prospect == "Ana Souza (Nimbus)" and ana.next_action == "suppress"
    assert ana.sequence == "stopped: opted out"


def test_budget_stops_the_run_and_leaves_the_rest_pending(app: App) -> None:
    ids = _import_many(app, 30)
    app.set_budget_cap(worst_case_cost(app, ids[:1]) * 3)
    run = classify_replies(app, ids, chunk=1)
    assert 0 < run.classified < run.total == 30
    assert run.stopped == f"budget reached: {run.classified} of 30 classified; the rest are pending"
    assert len(pending_reply_ids(app)) == run.pending == 30 - run.classified


def test_classify_and_route_propagates_the_budget_error_and_stores_nothing(app: App) -> None:
    [rid] = _import_many(app, 1)
    app.set_budget_cap(Decimal(0))

    async def go() -> None:
        async with app.gateway() as gw:
            await classify_and_route(app, gw, rid, CallContext(batch_id=7))

    with pytest.raises(BudgetExceededError):
        asyncio.run(go())
    assert pending_reply_ids(app) == [rid]


def test_batch_context_is_recorded_on_reply_and_ledger(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ana"], "Yes, let's talk next week")

    async def go() -> None:
        async with app.gateway() as gw:
            await classify_and_route(app, gw, rid, CallContext(batch_id=7))

    asyncio.run(go())
    [row] = ledger(app)
    assert row.batch_id == 7 and row.prospect_id == people["Ana"]
    with session_scope(app.engine) as s:
        reply = s.get(Reply, rid)
    assert reply is not None and reply.batch_id == 7 and reply.category


def test_classify_text_says_what_routing_would_do_without_storing(app: App) -> None:
    result = classify_text(app, "I'm out of the office until 20 March.", date(2025, 3, 10))
    assert result.classification.category == "out_of_office" and result.next_action == "pause_until_return"
    assert "Would pause until 2025-03-20" in result.detail
    assert result.as_json()["next_action"] == "pause_until_return"
    with session_scope(app.engine) as s:
        assert s.exec(select(Reply)).all() == [] and s.exec(select(Suppression)).all() == []


def test_worst_case_cost_covers_the_real_cost(app: App) -> None:
    ids = _import_many(app, 5)
    bound = worst_case_cost(app, ids)
    run = classify_replies(app, ids)
    spent = sum((e.cost_usd for e in ledger(app)), Decimal(0))
    assert run.classified == 5 and isinstance(bound, Decimal) and 0 < spent <= bound
    assert worst_case_cost(app, []) == 0


# ---------------------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------------------


def test_evaluate_provider_matches_the_rules_the_simulator_answers_with(app: App) -> None:
    labelled = load_labelled(app.settings.data_dir / "replies_labelled.csv")
    threshold = load_routing_config(app.settings.data_dir).min_confidence
    expected_pairs = []
    for text, truth, received in labelled:
        verdict = classify_by_rules(clean_reply(text), received)
        predicted = verdict.category if verdict.confidence >= threshold else "unclear"
        expected_pairs.append((truth, predicted if clean_reply(text) else "unclear"))
    expected = evaluate(expected_pairs)
    result = evaluate_provider(app)
    assert result.n == result.labelled == len(labelled)
    assert result.accuracy == pytest.approx(expected.accuracy)
    assert result.confusion == expected.confusion and result.per_category == expected.per_category
    assert result.provider == "simulator" and result.models == {"meta-llama/llama-3-8b-instruct": len(labelled)}
    assert result.cost_usd == sum((e.cost_usd for e in ledger(app)), Decimal(0)) > 0
    assert json.loads(json.dumps(result.as_json()))["accuracy"] == result.accuracy


def test_evaluate_provider_stops_at_the_budget(app: App, tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("text,category,received\n" + "".join(f"No thanks {i},not_interested,\n" for i in range(8)))
    app.set_budget_cap(Decimal("0.00002"))
    result = evaluate_provider(app, path)
    assert result.stopped.startswith("paused: the budget ran out: ") and result.n < 8, result.stopped
