import pytest
from sqlalchemy import inspect

from core.store.db import get_engine
from core.store.migrations import MIGRATIONS, applied, migrate
from tests.conftest import PG_URL


def test_migrations_apply_once_and_are_recorded(db_url: str) -> None:
    engine = get_engine(db_url)
    assert migrate(engine) == [name for name, _ in MIGRATIONS]
    assert migrate(engine) == []
    assert applied(engine) == [name for name, _ in MIGRATIONS]
    tables = set(inspect(engine).get_table_names())
    for table in ("prospects", "templates", "experiments", "assignments", "batches", "batch_items", "messages",
                  "usage_ledger", "replies", "price_overrides", "settings", "budget_months", "reservations"):
        assert table in tables


@pytest.mark.skipif(bool(PG_URL), reason="WAL is a SQLite setting; this run uses PostgreSQL (TEST_DATABASE_URL)")
def test_sqlite_runs_in_wal_mode(db_url: str) -> None:
    engine = get_engine(db_url)
    assert engine.dialect.name == "sqlite"
    migrate(engine)
    with engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
