"""Versioned schema migrations, applied in order at start-up and recorded in `schema_migrations`.

The list is append-only: a released migration is never edited, a schema change is a new entry. Each entry
runs in its own transaction, so a failed migration leaves the database at the previous version.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection, Engine

from core.store import models
from core.store.db import is_sqlite

# The schema as migration 1 created it, spelled out: later migrations change it, and a migration never reads
# today's models to build yesterday's tables. `{pk}` and `{ts}` are the two words the dialects spell differently.
_M001_DDL = """
CREATE TABLE settings (
    key VARCHAR NOT NULL,
    value JSON NOT NULL,
    updated_at {ts} NOT NULL,
    PRIMARY KEY (key)
);
CREATE TABLE prospects (
    id {pk},
    identity VARCHAR NOT NULL,
    first_name VARCHAR NOT NULL,
    last_name VARCHAR NOT NULL,
    company_name VARCHAR NOT NULL,
    job_title VARCHAR NOT NULL,
    industry VARCHAR NOT NULL,
    company_size INTEGER,
    linkedin_url VARCHAR NOT NULL,
    email VARCHAR NOT NULL,
    recent_news VARCHAR NOT NULL,
    notes VARCHAR NOT NULL,
    sender_account VARCHAR NOT NULL,
    custom JSON NOT NULL,
    flags JSON NOT NULL,
    source VARCHAR NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (id)
);
CREATE UNIQUE INDEX ix_prospects_identity ON prospects (identity);
CREATE TABLE suppressions (
    identity VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (identity)
);
CREATE TABLE templates (
    id {pk},
    name VARCHAR NOT NULL,
    step VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    industry VARCHAR,
    size_band VARCHAR,
    is_default BOOLEAN NOT NULL,
    parent_id INTEGER,
    lineage JSON NOT NULL,
    archived BOOLEAN NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (parent_id) REFERENCES templates (id)
);
CREATE UNIQUE INDEX ix_templates_name ON templates (name);
CREATE INDEX ix_templates_step ON templates (step);
CREATE TABLE experiments (
    id {pk},
    name VARCHAR NOT NULL,
    step VARCHAR NOT NULL,
    segment VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    baseline_rate FLOAT NOT NULL,
    mde_abs FLOAT NOT NULL,
    power FLOAT NOT NULL,
    alpha FLOAT NOT NULL,
    planned_per_arm INTEGER,
    status VARCHAR NOT NULL,
    decision JSON NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name)
);
CREATE TABLE experiment_arms (
    id {pk},
    experiment_id INTEGER NOT NULL,
    name VARCHAR NOT NULL,
    template_id INTEGER NOT NULL,
    is_control BOOLEAN NOT NULL,
    weight FLOAT NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (experiment_id, name),
    FOREIGN KEY (experiment_id) REFERENCES experiments (id),
    FOREIGN KEY (template_id) REFERENCES templates (id)
);
CREATE INDEX ix_experiment_arms_experiment_id ON experiment_arms (experiment_id);
CREATE TABLE assignments (
    id {pk},
    experiment_id INTEGER NOT NULL,
    prospect_id INTEGER NOT NULL,
    arm_id INTEGER NOT NULL,
    assigned_at {ts} NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (experiment_id, prospect_id),
    FOREIGN KEY (experiment_id) REFERENCES experiments (id),
    FOREIGN KEY (prospect_id) REFERENCES prospects (id),
    FOREIGN KEY (arm_id) REFERENCES experiment_arms (id)
);
CREATE INDEX ix_assignments_experiment_id ON assignments (experiment_id);
CREATE INDEX ix_assignments_prospect_id ON assignments (prospect_id);
CREATE TABLE outcomes (
    id {pk},
    experiment_id INTEGER NOT NULL,
    prospect_id INTEGER NOT NULL,
    arm_id INTEGER NOT NULL,
    sent_at {ts} NOT NULL,
    accepted BOOLEAN NOT NULL,
    replied BOOLEAN NOT NULL,
    positive BOOLEAN NOT NULL,
    source VARCHAR NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (experiment_id, prospect_id),
    FOREIGN KEY (experiment_id) REFERENCES experiments (id),
    FOREIGN KEY (prospect_id) REFERENCES prospects (id),
    FOREIGN KEY (arm_id) REFERENCES experiment_arms (id)
);
CREATE INDEX ix_outcomes_experiment_id ON outcomes (experiment_id);
CREATE TABLE batches (
    id {pk},
    name VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    step VARCHAR NOT NULL,
    template_name VARCHAR,
    concurrency INTEGER NOT NULL,
    items_total INTEGER NOT NULL,
    options JSON NOT NULL,
    error VARCHAR NOT NULL,
    created_at {ts} NOT NULL,
    started_at {ts},
    finished_at {ts},
    PRIMARY KEY (id)
);
CREATE INDEX ix_batches_status ON batches (status);
CREATE TABLE batch_items (
    id {pk},
    batch_id INTEGER NOT NULL,
    prospect_id INTEGER,
    reply_id INTEGER,
    step VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    lease_owner VARCHAR,
    lease_expires_at {ts},
    attempts INTEGER NOT NULL,
    error VARCHAR NOT NULL,
    updated_at {ts} NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (batch_id, prospect_id, step),
    FOREIGN KEY (batch_id) REFERENCES batches (id),
    FOREIGN KEY (prospect_id) REFERENCES prospects (id)
);
CREATE INDEX ix_batch_items_batch_state ON batch_items (batch_id, state);
CREATE TABLE messages (
    id {pk},
    prospect_id INTEGER,
    batch_item_id INTEGER,
    batch_id INTEGER,
    step VARCHAR NOT NULL,
    template_name VARCHAR NOT NULL,
    variant VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    used_ai BOOLEAN NOT NULL,
    model VARCHAR NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd BIGINT NOT NULL,
    guards JSON NOT NULL,
    review JSON,
    fallback BOOLEAN NOT NULL,
    reason VARCHAR NOT NULL,
    approval VARCHAR NOT NULL,
    edited_text VARCHAR,
    decided_at {ts},
    created_at {ts} NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (prospect_id) REFERENCES prospects (id),
    UNIQUE (batch_item_id),
    FOREIGN KEY (batch_item_id) REFERENCES batch_items (id)
);
CREATE INDEX ix_messages_approval ON messages (approval);
CREATE INDEX ix_messages_batch_id ON messages (batch_id);
CREATE INDEX ix_messages_prospect_id ON messages (prospect_id);
CREATE TABLE usage_ledger (
    id {pk},
    created_at {ts} NOT NULL,
    month VARCHAR NOT NULL,
    task VARCHAR NOT NULL,
    model_requested VARCHAR NOT NULL,
    model_answered VARCHAR NOT NULL,
    input_tokens INTEGER NOT NULL,
    output_tokens INTEGER NOT NULL,
    cost_usd BIGINT NOT NULL,
    cost_source VARCHAR NOT NULL,
    status VARCHAR NOT NULL,
    error VARCHAR NOT NULL,
    latency_ms INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    batch_id INTEGER,
    prospect_id INTEGER,
    request_id VARCHAR NOT NULL,
    provider VARCHAR NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_usage_ledger_batch_id ON usage_ledger (batch_id);
CREATE INDEX ix_usage_ledger_created_at ON usage_ledger (created_at);
CREATE INDEX ix_usage_ledger_month ON usage_ledger (month);
CREATE INDEX ix_usage_month_task ON usage_ledger (month, task);
CREATE TABLE budget_months (
    month VARCHAR NOT NULL,
    cap_usd BIGINT NOT NULL,
    spent_usd BIGINT NOT NULL,
    reserved_usd BIGINT NOT NULL,
    PRIMARY KEY (month)
);
CREATE TABLE reservations (
    id {pk},
    month VARCHAR NOT NULL,
    amount_usd BIGINT NOT NULL,
    task VARCHAR NOT NULL,
    state VARCHAR NOT NULL,
    created_at {ts} NOT NULL,
    expires_at {ts} NOT NULL,
    PRIMARY KEY (id)
);
CREATE INDEX ix_reservations_month ON reservations (month);
CREATE INDEX ix_reservations_state ON reservations (state);
CREATE TABLE replies (
    id {pk},
    prospect_id INTEGER,
    prospect_identity VARCHAR NOT NULL,
    text VARCHAR NOT NULL,
    received_at {ts} NOT NULL,
    category VARCHAR NOT NULL,
    confidence FLOAT NOT NULL,
    model_category VARCHAR NOT NULL,
    override_category VARCHAR,
    overridden_by VARCHAR NOT NULL,
    next_action VARCHAR NOT NULL,
    details JSON NOT NULL,
    batch_id INTEGER,
    created_at {ts} NOT NULL,
    PRIMARY KEY (id),
    FOREIGN KEY (prospect_id) REFERENCES prospects (id)
);
CREATE INDEX ix_replies_prospect_id ON replies (prospect_id);
CREATE TABLE price_overrides (
    model VARCHAR NOT NULL,
    input_per_mtok VARCHAR NOT NULL,
    output_per_mtok VARCHAR NOT NULL,
    source VARCHAR NOT NULL,
    fetched_at {ts} NOT NULL,
    PRIMARY KEY (model)
);
CREATE TABLE scenarios (
    id {pk},
    name VARCHAR NOT NULL,
    payload JSON NOT NULL,
    created_at {ts} NOT NULL,
    PRIMARY KEY (id),
    UNIQUE (name)
);
"""


def _m001_initial(conn: Connection) -> None:
    """The first schema (the tables of the engine foundation), as it was then."""
    sqlite = conn.dialect.name == "sqlite"
    words = {"pk": "INTEGER NOT NULL" if sqlite else "SERIAL NOT NULL",
             "ts": "DATETIME" if sqlite else "TIMESTAMP WITHOUT TIME ZONE"}
    for statement in _M001_DDL.format(**words).split(";"):
        if statement.strip():
            conn.execute(text(statement))


def _m002_stage_results(conn: Connection) -> None:
    models.StageResult.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]


def _m003_ledger_indexes(conn: Connection) -> None:
    """Covering indexes so the spend summary reads a month without touching table rows."""
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_usage_month_task_model ON usage_ledger "
                      "(month, task, model_answered, cost_usd, input_tokens, output_tokens)"))
    day = "date(created_at)" if conn.dialect.name == "sqlite" else "CAST(created_at AS DATE)"
    conn.execute(text(f"CREATE INDEX IF NOT EXISTS ix_usage_day_cost ON usage_ledger (({day}), cost_usd)"))


def _m004_money(conn: Connection) -> None:
    """Money (issue 12): who set each month's cap, the holds settled per month (the ladder's in-flight ratio),
    and per-model cost factors learned from providers that bill above the worst case."""
    columns = {c["name"] for c in inspect(conn).get_columns("budget_months")}
    added = {
        "held_settled_usd": "BIGINT NOT NULL DEFAULT 0",
        "cap_source": "VARCHAR NOT NULL DEFAULT 'env'",
        "cap_set_at": "TIMESTAMP NULL",
    }
    for name, ddl in added.items():
        if name not in columns:
            conn.execute(text(f"ALTER TABLE budget_months ADD COLUMN {name} {ddl}"))
    models.ModelCostFactor.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    # Before this migration a cap set on the Spend page was one global setting; the months whose cap is that
    # value were set by a person then.
    row = conn.execute(text("SELECT value, updated_at FROM settings WHERE key = 'monthly_budget_usd'")).first()
    if row is not None:
        value = row[0] if isinstance(row[0], dict) else json.loads(row[0] or "{}")
        try:
            nanos = models.to_nanos(Decimal(str(value["usd"])))
        except (KeyError, TypeError, ArithmeticError):
            return
        conn.execute(text("UPDATE budget_months SET cap_source = 'spend_page', cap_set_at = :at WHERE cap_usd = :c"),
                     {"at": row[1], "c": nanos})


def _m005_people_identities(conn: Connection) -> None:
    """Every identity a prospect is known by, in one table; stored keys brought to `core.people.identity`'s normal form
    (e-mails case-folded rather than lowercased, profile URLs re-normalised), so old suppressions still match."""
    from core.people.identity import canonical, identity_rows, prospect_keys

    models.ProspectIdentity.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    prospects = models.Prospect.__table__  # type: ignore[attr-defined]
    suppressions = models.Suppression.__table__  # type: ignore[attr-defined]
    taken = {str(i) for (i,) in conn.execute(prospects.select().with_only_columns(prospects.c.identity))}
    rows = conn.execute(prospects.select().with_only_columns(
        prospects.c.id, prospects.c.identity, prospects.c.linkedin_url, prospects.c.email, prospects.c.first_name,
        prospects.c.last_name, prospects.c.company_name)).all()
    batch: list[dict[str, object]] = []
    for row in rows:
        fixed = canonical(row.identity)
        if fixed and fixed != row.identity and fixed not in taken:
            conn.execute(prospects.update().where(prospects.c.id == row.id).values(identity=fixed))
            taken.add(fixed)
        batch += identity_rows(int(row.id), [row.identity, *prospect_keys(row)])
        if len(batch) >= 1000:
            conn.execute(models.ProspectIdentity.__table__.insert(), batch)  # type: ignore[attr-defined]
            batch = []
    if batch:
        conn.execute(models.ProspectIdentity.__table__.insert(), batch)  # type: ignore[attr-defined]
    stored = {str(k): (str(r or ""), c) for k, r, c in conn.execute(suppressions.select().with_only_columns(
        suppressions.c.identity, suppressions.c.reason, suppressions.c.created_at))}
    for key, (reason, created) in list(stored.items()):
        fixed = canonical(key)
        if not fixed or fixed == key:
            continue
        conn.execute(suppressions.delete().where(suppressions.c.identity == key))
        if fixed not in stored:
            conn.execute(suppressions.insert().values(identity=fixed, reason=reason, created_at=created))
            stored[fixed] = (reason, created)


def _m006_batches_workers(conn: Connection) -> None:
    """Worker rows and heartbeats, the owner of each budget hold, and one claim per prospect and step."""
    models.Worker.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    models.StepClaim.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    if "owner" not in {c["name"] for c in inspect(conn).get_columns("reservations")}:
        conn.execute(text("ALTER TABLE reservations ADD COLUMN owner VARCHAR"))
        conn.execute(text("CREATE INDEX IF NOT EXISTS ix_reservations_owner ON reservations (owner)"))
    conn.execute(text("CREATE INDEX IF NOT EXISTS ix_batch_items_lease_owner ON batch_items (lease_owner)"))
    # Existing work claims its steps: messages already written, then items still to do (oldest batch first).
    # Duplicates that earlier versions let through keep the first claim.
    now = models.utcnow().replace(tzinfo=None)
    conn.execute(text(
        "INSERT INTO step_claims (prospect_id, step, batch_id, created_at) "
        "SELECT prospect_id, step, MIN(batch_id), :now FROM messages "
        "WHERE prospect_id IS NOT NULL AND batch_id IS NOT NULL GROUP BY prospect_id, step "
        "ON CONFLICT DO NOTHING"), {"now": now})
    conn.execute(text(
        "INSERT INTO step_claims (prospect_id, step, batch_id, created_at) "
        "SELECT prospect_id, step, MIN(batch_id), :now FROM batch_items "
        "WHERE prospect_id IS NOT NULL AND state IN ('pending', 'claimed') GROUP BY prospect_id, step "
        "ON CONFLICT DO NOTHING"), {"now": now})


def _m007_sequence_holds(conn: Connection) -> None:
    """Sequence holds become rows (`sequence_holds`), backfilled from the state each reply kept in its details:
    a pause with a readable date stays a pause, an opt-out routed to suppress is a suppression, anything else
    (pending replies included) a stop. Replies from unknown prospects hold no one, as before."""
    models.SequenceHold.__table__.create(conn, checkfirst=True)  # type: ignore[attr-defined]
    replies = models.Reply.__table__  # type: ignore[attr-defined]
    holds = models.SequenceHold.__table__  # type: ignore[attr-defined]
    have = {int(r) for (r,) in conn.execute(holds.select().with_only_columns(holds.c.reply_id)) if r is not None}
    now = models.utcnow()
    rows = []
    for rid, pid, action, details in conn.execute(replies.select().with_only_columns(
            replies.c.id, replies.c.prospect_id, replies.c.next_action, replies.c.details)
            .where(replies.c.prospect_id.is_not(None)).order_by(replies.c.id)):
        if int(rid) in have:
            continue
        sequence = (details or {}).get("sequence") if isinstance(details, dict) else None
        sequence = sequence if isinstance(sequence, dict) else {}
        kind, until = models.HoldKind.STOPPED, None
        if sequence.get("state") == models.HoldKind.PAUSED:
            try:
                until = date.fromisoformat(str(sequence.get("until")))
                kind = models.HoldKind.PAUSED
            except ValueError:
                until = None
        elif str(action or "") == "suppress":
            kind = models.HoldKind.SUPPRESSED
        reason = str(sequence.get("reason") or f"reply #{rid}")[:500]
        rows.append({"prospect_id": int(pid), "kind": str(kind), "until": until, "reason": reason,
                     "reply_id": int(rid), "created_at": now})
    if rows:
        conn.execute(holds.insert(), rows)


def _m008_batch_kinds(conn: Connection) -> None:
    """Batch kinds whose items are neither a prospect nor a reply (template variants, provider evaluation): what
    an item works on (`subject`) and what it produced (`result`)."""
    columns = {c["name"] for c in inspect(conn).get_columns("batch_items")}
    if "subject" not in columns:
        conn.execute(text("ALTER TABLE batch_items ADD COLUMN subject VARCHAR NOT NULL DEFAULT ''"))
    if "result" not in columns:
        conn.execute(text("ALTER TABLE batch_items ADD COLUMN result JSON NULL"))


MIGRATIONS: list[tuple[str, Callable[[Connection], None]]] = [
    ("001_initial", _m001_initial),
    ("002_stage_results", _m002_stage_results),
    ("003_ledger_indexes", _m003_ledger_indexes),
    ("004_money", _m004_money),
    ("005_people_identities", _m005_people_identities),
    ("006_batches_workers", _m006_batches_workers),
    ("007_sequence_holds", _m007_sequence_holds),
    ("008_batch_kinds", _m008_batch_kinds),
]


def applied(engine: Engine) -> list[str]:
    if not inspect(engine).has_table("schema_migrations"):
        return []
    with engine.connect() as conn:
        return [row[0] for row in conn.execute(text("SELECT name FROM schema_migrations ORDER BY name"))]


def migrate(engine: Engine) -> list[str]:
    """Apply pending migrations; returns the names applied now. Safe to call from several processes."""
    models.SchemaMigration.__table__.create(engine, checkfirst=True)  # type: ignore[attr-defined]
    done_now: list[str] = []
    for name, step in MIGRATIONS:
        with engine.connect() as conn:
            if is_sqlite(engine):
                conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"
            with conn.begin():
                if not is_sqlite(engine):
                    # Serialise concurrent start-ups (console + workers) on PostgreSQL.
                    conn.execute(text("SELECT pg_advisory_xact_lock(720001)"))
                seen = conn.execute(
                    text("SELECT 1 FROM schema_migrations WHERE name = :n"), {"n": name}
                ).first()
                if seen:
                    continue
                step(conn)
                conn.execute(
                    models.SchemaMigration.__table__.insert().values(  # type: ignore[attr-defined]
                        name=name, applied_at=models.utcnow()
                    )
                )
                done_now.append(name)
    return done_now
