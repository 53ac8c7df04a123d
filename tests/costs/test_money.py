"""The one money formatter: cents from a dollar up, two significant digits below."""

from __future__ import annotations

from decimal import Decimal

import pytest

from core.costs.money import usd


@pytest.mark.parametrize(("amount", "shown"), [
    (Decimal("12000"), "$12,000.00"),
    (Decimal("31.5"), "$31.50"),
    (Decimal("1"), "$1.00"),
    (Decimal("0.995"), "$1.00"),
    (Decimal("0.42"), "$0.42"),
    (Decimal("0.5"), "$0.50"),
    (Decimal("0.0123"), "$0.012"),
    (Decimal("0.00375"), "$0.0038"),
    (Decimal("0.000002852"), "$0.0000029"),
    (Decimal("0"), "$0.00"),
    (Decimal("-0.25"), "-$0.25"),
    (Decimal("-1500.004"), "-$1,500.00"),
    (2.5, "$2.50"),
    ("0.0001", "$0.0001"),
    (Decimal("0.00102"), "$0.001"),
    (None, "—"),
])
def test_one_precision_rule(amount: Decimal | float | str | None, shown: str) -> None:
    assert usd(amount) == shown


def test_markdown_escapes_the_dollar() -> None:
    assert usd(Decimal("63000"), markdown=True) == "\\$63,000.00"
