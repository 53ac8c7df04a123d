from sqlalchemy import inspect

from core.db import get_engine
from core.migrations import MIGRATIONS, applied, migrate


def test_migrations_apply_once_and_are_recorded(db_url: str) -> None:
    engine = get_engine(db_url)
    assert migrate(engine) == [name for name, _ in MIGRATIONS]
    assert migrate(engine) == []
    assert applied(engine) == [name for name, _ in MIGRATIONS]
    tables = set(inspect(engine).get_table_names())
    for table in ("prospects", "templates", "experiments", "assignments", "batches", "batch_items", "messages",
                  "usage_ledger", "replies", "price_overrides", "settings", "budget_months", "reservations"):
        assert table in tables


def test_sqlite_runs_in_wal_mode(db_url: str) -> None:
    engine = get_engine(db_url)
    migrate(engine)
    if engine.dialect.name == "sqlite":
        with engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
