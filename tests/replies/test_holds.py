"""Sequence holds are rows of `sequence_holds`, one per reply from a known prospect: written on import and by
routing, replaced by a re-route, read by the batch runner's checks; migration 007 backfills them from the
state older versions kept in each reply's details."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import text
from sqlmodel import select

from core.app import App
from core.people.prospects import import_prospects
from core.replies.holds import Hold, hold_reply, paused_until, sequence_state, sequence_stopped
from core.replies.importing import import_replies
from core.replies.review import override
from core.store.db import get_engine, session_scope
from core.store.migrations import migrate
from core.store.models import HoldKind, Prospect, Reply, SequenceHold
from tests.replies.test_replies import RECEIVED, hold_of, route_with, store_reply, verdict_json

PEOPLE = b"first_name,company_name,email\nAna,Nimbus,ana@nimbus.example\nBen,Fernhollow,ben@fern.example\n"


@pytest.fixture
def people(app: App) -> dict[str, int]:
    assert import_prospects(app, PEOPLE).accepted == 2
    with session_scope(app.engine) as s:
        return {p.first_name: int(p.id) for p in s.exec(select(Prospect)).all()}  # type: ignore[arg-type]


def holds(app: App) -> list[SequenceHold]:
    with session_scope(app.engine) as s:
        return list(s.exec(select(SequenceHold).order_by(SequenceHold.id)).all())  # type: ignore[arg-type]


def test_an_imported_reply_stops_its_prospect_at_once_and_a_stranger_holds_no_one(
    app: App, people: dict[str, int]
) -> None:
    report = import_replies(app, b"email,text\nana@nimbus.example,hello\nwho@else.example,hi\n")
    ana_reply, stranger_reply = report.reply_ids
    assert hold_of(app, ana_reply) == (HoldKind.STOPPED, None, "reply received; not classified yet")
    assert hold_of(app, stranger_reply) is None
    assert [h.prospect_id for h in holds(app)] == [people["Ana"]]
    assert sequence_stopped(app, people["Ana"]) and not sequence_stopped(app, people["Ben"])


def test_routing_replaces_the_reply_hold_and_the_checks_read_only_the_table(
    app: App, people: dict[str, int]
) -> None:
    rid = store_reply(app, people["Ben"], "Away, back on 18 March")
    route_with(app, rid, verdict_json("out_of_office", 0.9, "2025-03-18"))
    assert hold_of(app, rid) == (HoldKind.PAUSED, date(2025, 3, 18), f"reply #{rid} (out_of_office)")
    override(app, rid, "do_not_contact", "Maria")
    assert hold_of(app, rid) == (HoldKind.SUPPRESSED, None, f"reply #{rid} (do_not_contact)")
    override(app, rid, "out_of_office", "Maria")
    assert len(holds(app)) == 1 and paused_until(app, people["Ben"], RECEIVED) == date(2025, 3, 18)

    with session_scope(app.engine) as s:  # what a reply's details say no longer decides anything
        reply = s.get(Reply, rid)
        assert reply is not None
        reply.details = {**reply.details, "sequence": {"state": "stopped"}}
        s.add(reply)
    assert not sequence_stopped(app, people["Ben"])
    with session_scope(app.engine) as s:
        row = s.exec(select(SequenceHold).where(SequenceHold.reply_id == rid)).one()
        row.kind = HoldKind.STOPPED
        s.add(row)
    state = sequence_state(app, people["Ben"], RECEIVED)
    assert state.stopped and state.paused_until is None and state.reason == f"reply #{rid} (out_of_office)"


def test_the_latest_pause_still_ahead_wins_and_a_suppressed_identity_stops(app: App, people: dict[str, int]) -> None:
    first = store_reply(app, people["Ana"], "OOO")
    second = store_reply(app, people["Ana"], "OOO again")
    with session_scope(app.engine) as s:
        for rid, until in ((first, date(2025, 3, 10)), (second, date(2025, 3, 20))):
            reply = s.get(Reply, rid)
            assert reply is not None
            hold_reply(s, reply, HoldKind.PAUSED, until, f"pause {rid}")
    assert paused_until(app, people["Ana"], date(2025, 3, 5)) == date(2025, 3, 20)
    assert paused_until(app, people["Ana"], date(2025, 3, 20)) is None, "resumes on the return date"
    from core.people.prospects import suppress

    suppress(app, "email:ana@nimbus.example", "manual list")
    assert sequence_state(app, people["Ana"], date(2025, 3, 5)).stopped


def test_a_pause_needs_its_end_and_describes_itself(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ana"], "OOO")
    with session_scope(app.engine) as s, pytest.raises(ValueError, match="resume"):
        reply = s.get(Reply, rid)
        assert reply is not None
        hold_reply(s, reply, HoldKind.PAUSED, None, "no date")
    assert Hold(HoldKind.PAUSED, date(2025, 3, 21), "").describe() == "paused until 2025-03-21"
    assert Hold(HoldKind.STOPPED, None, "").describe() == "stopped"
    assert Hold(HoldKind.SUPPRESSED, None, "").describe() == "stopped: opted out"


def _as_before_007(engine) -> None:  # type: ignore[no-untyped-def]
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE sequence_holds"))
        conn.execute(text("DELETE FROM schema_migrations WHERE name = '007_sequence_holds'"))


def test_007_backfills_holds_from_the_replies_details(db_url: str) -> None:
    engine = get_engine(db_url)
    migrate(engine)
    now = "2025-03-04 09:30:00"
    details = {
        1: {"sequence": {"state": "paused", "until": "2025-03-21", "reason": "reply #1 (out_of_office)"}},
        2: {"sequence": {"state": "stopped", "until": None, "reason": "reply #2 (do_not_contact)"}},
        3: {"sequence": {"state": "stopped", "until": None, "reason": "reply received; not classified yet"}},
        4: {"sequence": {"state": "paused", "until": "not a date"}},
        5: {},
        6: {"sequence": {"state": "stopped"}},  # from nobody known: holds no one
    }
    actions = {1: "pause_until_return", 2: "suppress", 3: "", 4: "pause_until_return", 5: "stop", 6: "stop"}
    with engine.begin() as conn:
        for pid in (1, 2):
            conn.execute(text("INSERT INTO prospects (id, identity, first_name, last_name, company_name, job_title, "
                              "industry, linkedin_url, email, recent_news, notes, sender_account, custom, flags, "
                              "source, created_at) VALUES (:i, :ident, 'P', '', 'C', '', '', '', '', '', '', '', "
                              "'{}', '[]', 'import', :now)"), {"i": pid, "ident": f"email:p{pid}@x.com", "now": now})
        for rid, data in details.items():
            conn.execute(text("INSERT INTO replies (id, prospect_id, prospect_identity, text, received_at, category, "
                              "confidence, model_category, overridden_by, next_action, details, created_at) "
                              "VALUES (:r, :p, '', 'hi', :now, '', 0, '', '', :a, :d, :now)"),
                         {"r": rid, "p": None if rid == 6 else 1 + rid % 2, "a": actions[rid],
                          "d": json.dumps(data), "now": now})
    _as_before_007(engine)

    assert migrate(engine) == ["007_sequence_holds"]
    with engine.connect() as conn:
        rows = {r: (k, u, why, p) for r, k, u, why, p in conn.execute(text(
            "SELECT reply_id, kind, until, reason, prospect_id FROM sequence_holds"))}
    as_day = {r: (k, None if u is None else date.fromisoformat(str(u)[:10]), why, p) for r, (k, u, why, p)
              in rows.items()}
    assert as_day == {
        1: ("paused", date(2025, 3, 21), "reply #1 (out_of_office)", 2),
        2: ("suppressed", None, "reply #2 (do_not_contact)", 1),
        3: ("stopped", None, "reply received; not classified yet", 2),
        4: ("stopped", None, "reply #4", 1),
        5: ("stopped", None, "reply #5", 2),
    }
    assert migrate(engine) == [], "applied once"


def test_holds_follow_the_app_on_a_fresh_database(app: App, people: dict[str, int]) -> None:
    rid = store_reply(app, people["Ana"], "Yes please")
    route_with(app, rid, verdict_json("interested"))
    [row] = holds(app)
    assert (row.prospect_id, row.reply_id, row.kind) == (people["Ana"], rid, HoldKind.STOPPED)
    assert row.created_at.tzinfo == UTC and row.created_at <= datetime.now(UTC)


def test_a_chunk_of_prospects_is_answered_at_once(app: App, people: dict[str, int]) -> None:
    from core.people.prospects import suppress
    from core.replies.holds import SequenceState, sequence_states

    away = store_reply(app, people["Ana"], "OOO")
    route_with(app, away, verdict_json("out_of_office", 0.9, "2025-03-21"))
    assert sequence_states(app, [people["Ana"], people["Ben"], 999], RECEIVED) == {
        people["Ana"]: SequenceState(False, date(2025, 3, 21), f"reply #{away} (out_of_office)")}
    suppress(app, "email:ben@fern.example", "manual list")
    states = sequence_states(app, list(people.values()), RECEIVED)
    assert states[people["Ben"]] == SequenceState(True, None, "on the do-not-contact list")
    assert states[people["Ana"]].paused_until == date(2025, 3, 21)
    assert sequence_states(app, [people["Ana"]], date(2025, 3, 21)) == {}, "the pause is over on the return day"
