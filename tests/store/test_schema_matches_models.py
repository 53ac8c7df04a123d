"""A database built by the migrations alone has the tables the models describe: the same columns with the same
types and nullability, primary keys, unique keys and indexes (on PostgreSQL too when TEST_DATABASE_URL is set).

Migration 1 spells out its DDL instead of creating today's models, so a model change without its migration
shows up here rather than on an upgraded database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Table, inspect
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

from core.store.db import get_engine
from core.store.migrations import _M001_DDL, migrate

# Indexes a migration adds that no model declares (003: covering indexes of the spend summary, one of them
# on an expression, which a model column cannot say).
MIGRATION_ONLY_INDEXES = {"ix_usage_month_task_model", "ix_usage_day_cost"}
# Reflection spells a few types differently from the DDL that made them.
SAME_TYPE = {"DOUBLE PRECISION": "FLOAT", "TIMESTAMP WITHOUT TIME ZONE": "TIMESTAMP", "DATETIME": "TIMESTAMP"}


def _type(engine: Engine, type_: Any) -> str:
    compiled = type_.compile(dialect=engine.dialect).upper()
    return SAME_TYPE.get(compiled, compiled)


def _uniques(engine: Engine, table: str) -> set[tuple[str, ...]]:
    """Column sets the database keeps unique, whether by a constraint or a unique index."""
    inspector = inspect(engine)
    found = {tuple(u["column_names"]) for u in inspector.get_unique_constraints(table)}
    found |= {tuple(i["column_names"]) for i in inspector.get_indexes(table) if i["unique"]}
    return found


def _model_uniques(table: Table) -> set[tuple[str, ...]]:
    found = {tuple(c.name for c in con.columns) for con in table.constraints
             if con.__class__.__name__ == "UniqueConstraint"}
    found |= {tuple(c.name for c in i.columns) for i in table.indexes if i.unique}
    found |= {(c.name,) for c in table.columns if c.unique}
    return found


@pytest.fixture
def migrated(db_url: str) -> Engine:
    engine = get_engine(db_url)
    migrate(engine)
    return engine


def test_every_model_table_is_made_by_the_migrations(migrated: Engine) -> None:
    tables = set(inspect(migrated).get_table_names())
    assert set(SQLModel.metadata.tables) - tables == set(), "a model table no migration creates"
    assert tables - set(SQLModel.metadata.tables) == set(), "a table the migrations create that no model describes"


@pytest.mark.parametrize("name", sorted(SQLModel.metadata.tables))
def test_columns_match_the_model(migrated: Engine, name: str) -> None:
    table = SQLModel.metadata.tables[name]
    inspector = inspect(migrated)
    reflected = {c["name"]: c for c in inspector.get_columns(name)}
    assert set(reflected) == {c.name for c in table.columns}, f"{name}: columns differ"
    for column in table.columns:
        found = reflected[column.name]
        assert _type(migrated, found["type"]) == _type(migrated, column.type), f"{name}.{column.name}: type"
        nullable = column.nullable and not column.primary_key
        assert bool(found["nullable"]) == bool(nullable), f"{name}.{column.name}: nullability"
    assert inspector.get_pk_constraint(name)["constrained_columns"] == [c.name for c in table.primary_key.columns]


@pytest.mark.filterwarnings("ignore:Skipped unsupported reflection of expression-based index")
@pytest.mark.parametrize("name", sorted(SQLModel.metadata.tables))
def test_keys_and_indexes_match_the_model(migrated: Engine, name: str) -> None:
    table = SQLModel.metadata.tables[name]
    inspector = inspect(migrated)
    assert _uniques(migrated, name) == _model_uniques(table), f"{name}: unique keys"
    # The index behind a UNIQUE constraint is the constraint's (compared above), not one of the model's indexes.
    indexes = {i["name"]: (tuple(i["column_names"]), bool(i["unique"])) for i in inspector.get_indexes(name)
               if i["name"] not in MIGRATION_ONLY_INDEXES and not i.get("duplicates_constraint")
               and not str(i["name"]).startswith("sqlite_autoindex")}
    wanted = {str(i.name): (tuple(c.name for c in i.columns), bool(i.unique)) for i in table.indexes}
    assert indexes == wanted, f"{name}: indexes"
    foreign = {(tuple(f["constrained_columns"]), f["referred_table"], tuple(f["referred_columns"]))
               for f in inspector.get_foreign_keys(name)}
    wanted_fk = {((fk.parent.name,), fk.column.table.name, (fk.column.name,)) for fk in table.foreign_keys}
    assert foreign == wanted_fk, f"{name}: foreign keys"


def test_migration_1_is_its_own_ddl_not_todays_models() -> None:
    """Columns added by later migrations are not in migration 1 (it would otherwise break their ALTERs)."""
    batch_items = _M001_DDL.split("CREATE TABLE batch_items")[1].split(");")[0]
    budget_months = _M001_DDL.split("CREATE TABLE budget_months")[1].split(");")[0]
    assert "subject" not in batch_items and "result" not in batch_items
    assert "cap_source" not in budget_months and "held_settled_usd" not in budget_months
