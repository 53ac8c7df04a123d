"""Migration 006 on a database made by the earlier ones: it adds the owner of budget holds, the workers table
and one (prospect, step) claim per step already written or still to do, keeping the first of any duplicates
that earlier versions let through; after it, the database itself refuses a second claim."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from core.store.db import get_engine
from core.store.migrations import migrate


def _as_before_006(engine) -> None:  # type: ignore[no-untyped-def]
    """Undo what 006 (and 001 built from today's models) added, as on a database of the previous release."""
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX IF EXISTS ix_reservations_owner"))
        conn.execute(text("ALTER TABLE reservations DROP COLUMN owner"))
        conn.execute(text("DROP TABLE step_claims"))
        conn.execute(text("DROP TABLE workers"))
        conn.execute(text("DELETE FROM schema_migrations WHERE name = '006_batches_workers'"))


def test_006_backfills_claims_and_adds_the_hold_owner(db_url: str) -> None:
    engine = get_engine(db_url)
    migrate(engine)
    now = "2026-11-20 10:00:00"
    with engine.begin() as conn:
        for pid in (1, 2, 3):
            conn.execute(text("INSERT INTO prospects (id, identity, first_name, last_name, company_name, job_title, "
                              "industry, linkedin_url, email, recent_news, notes, sender_account, custom, flags, "
                              "source, created_at) VALUES (:i, :ident, 'P', '', 'C', '', '', '', '', '', '', '', "
                              "'{}', '[]', 'import', :now)"), {"i": pid, "ident": f"email:p{pid}@x.com", "now": now})
        for bid in (1, 2):
            conn.execute(text("INSERT INTO batches (id, name, status, kind, step, concurrency, items_total, options, "
                              "error, created_at) VALUES (:b, '', 'running', 'personalize', 'connection_request', 4, "
                              "2, '{}', '', :now)"), {"b": bid, "now": now})
        # prospect 1 was written twice (two batches of one upload, the old bug); prospect 2 is still to do in
        # batch 2; prospect 3 failed in batch 1 (no message): its step is free.
        items = [(1, 1, 1, "ready"), (2, 2, 1, "ready"), (3, 2, 2, "pending"), (4, 1, 3, "failed")]
        for iid, bid, pid, state in items:
            conn.execute(text("INSERT INTO batch_items (id, batch_id, prospect_id, step, state, attempts, error, "
                              "updated_at) VALUES (:i, :b, :p, 'connection_request', :s, 1, '', :now)"),
                         {"i": iid, "b": bid, "p": pid, "s": state, "now": now})
        for iid, bid in ((1, 1), (2, 2)):
            conn.execute(text("INSERT INTO messages (prospect_id, batch_item_id, batch_id, step, template_name, "
                              "variant, text, state, used_ai, model, input_tokens, output_tokens, cost_usd, guards, "
                              "fallback, reason, approval, created_at) VALUES (1, :i, :b, 'connection_request', 't', "
                              "'', 'Hi', 'ready', false, '', 0, 0, 0, '[]', false, '', 'pending', :now)"),
                         {"i": iid, "b": bid, "now": now})
    _as_before_006(engine)
    assert "owner" not in {c["name"] for c in inspect(engine).get_columns("reservations")}

    assert migrate(engine) == ["006_batches_workers"]
    assert "owner" in {c["name"] for c in inspect(engine).get_columns("reservations")}
    assert "workers" in inspect(engine).get_table_names()
    with engine.connect() as conn:
        claims = dict(conn.execute(text("SELECT prospect_id, batch_id FROM step_claims")).all())
    assert claims == {1: 1, 2: 2}, "the first batch keeps a duplicate's claim; a failed step stays free"
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(text("INSERT INTO step_claims (prospect_id, step, batch_id, created_at) "
                          "VALUES (2, 'connection_request', 1, :now)"), {"now": now})
