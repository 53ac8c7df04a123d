"""Database engines and sessions for SQLite (embedded default, WAL) and PostgreSQL.

One engine per URL per process. SQLite gets WAL, a busy timeout and foreign keys, and `immediate()` opens
a write transaction up front (`BEGIN IMMEDIATE`) so read-then-write sequences such as budget reservation
cannot interleave. On PostgreSQL the same helper is an ordinary transaction: the statements that need
atomicity there are conditional updates or `FOR UPDATE` locks.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine
from sqlmodel import Session, create_engine

_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # Let SQLAlchemy's transaction control be the only one (pysqlite's implicit BEGIN would defeat
    # BEGIN IMMEDIATE), then set the pragmas every connection needs.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    mode = conn.info.pop("sqlite_begin", "BEGIN")
    conn.exec_driver_sql(mode)


def get_engine(url: str) -> Engine:
    """The process-wide engine for `url` (created, with its pragmas, on first use)."""
    with _lock:
        engine = _engines.get(url)
        if engine is not None:
            return engine
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
            event.listen(engine, "begin", _sqlite_begin)
        else:
            engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=40)
        _engines[url] = engine
        return engine


def dispose_engine(url: str) -> None:
    with _lock:
        engine = _engines.pop(url, None)
    if engine is not None:
        engine.dispose()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error."""
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def immediate(engine: Engine) -> Iterator[Connection]:
    """A write transaction that takes SQLite's write lock at BEGIN; plain transaction elsewhere."""
    with engine.connect() as conn:
        if is_sqlite(engine):
            conn.info["sqlite_begin"] = "BEGIN IMMEDIATE"
        with conn.begin():
            yield conn


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))
