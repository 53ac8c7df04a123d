from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlmodel import select

from core.store.db import get_engine, session_scope
from core.store.migrations import migrate
from core.store.models import UsageEntry, from_nanos, month_of, to_nanos


def test_money_round_trips_exactly(db_url: str) -> None:
    engine = get_engine(db_url)
    migrate(engine)
    now = datetime(2026, 11, 3, 12, tzinfo=UTC)
    with session_scope(engine) as s:
        for cost in ("0.000000028", "0.1", "12.345678901"):
            s.add(UsageEntry(created_at=now, month=month_of(now), task="t", model_requested="m",
                             cost_usd=Decimal(cost)))
    with session_scope(engine) as s:
        costs = [r.cost_usd for r in s.exec(select(UsageEntry).order_by(UsageEntry.id))]
        times = {r.created_at for r in s.exec(select(UsageEntry))}
    assert costs == [Decimal("0.000000028"), Decimal("0.100000000"), Decimal("12.345678901")]
    assert times == {now}


def test_naive_datetimes_are_refused(db_url: str) -> None:
    engine = get_engine(db_url)
    migrate(engine)
    with pytest.raises(Exception, match="timezone-aware"), session_scope(engine) as s:
        s.add(UsageEntry(created_at=datetime(2026, 1, 1), month="2026-01", task="t", model_requested="m"))


def test_nano_conversion() -> None:
    assert to_nanos(Decimal("1")) == 10**9
    assert from_nanos(to_nanos(Decimal("0.0000000015"))) == Decimal("0.000000002")  # half-even at the 9th place
