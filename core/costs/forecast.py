"""Projections of spend from the daily series: month-end and a year, with a band from daily variation.

Run-rate is the mean daily spend over the trailing window (at most 30 days, never before the first
recorded day, so a fresh install is not diluted by empty history). The band treats days as independent
draws: the month-end total varies by sd * sqrt(days left), shown as a 95% interval clipped at what is
already spent.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

Z95 = 1.959963984540054


@dataclass(frozen=True)
class Projection:
    daily_mean_usd: Decimal
    daily_sd_usd: Decimal
    days_observed: int
    days_left: int
    month_end_usd: Decimal
    month_end_low_usd: Decimal
    month_end_high_usd: Decimal
    annual_usd: Decimal


def days_left_in_month(today: date) -> int:
    """Whole days after today until the month ends (today counts as observed)."""
    return calendar.monthrange(today.year, today.month)[1] - today.day


def project(daily: Sequence[Decimal], spent_this_month: Decimal, today: date) -> Projection:
    """`daily` is the spend per day over the trailing window, oldest first, today last."""
    n = len(daily)
    left = days_left_in_month(today)
    if n == 0:
        zero = Decimal(0)
        return Projection(zero, zero, 0, left, spent_this_month, spent_this_month, spent_this_month, zero)
    values = [float(v) for v in daily]
    mean = sum(values) / n
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    centre = float(spent_this_month) + mean * left
    half = Z95 * sd * math.sqrt(left)
    q = Decimal("0.01")
    return Projection(
        daily_mean_usd=Decimal(str(mean)).quantize(Decimal("0.000001")),
        daily_sd_usd=Decimal(str(sd)).quantize(Decimal("0.000001")),
        days_observed=n,
        days_left=left,
        month_end_usd=Decimal(str(centre)).quantize(q),
        month_end_low_usd=max(spent_this_month, Decimal(str(centre - half))).quantize(q),
        month_end_high_usd=Decimal(str(centre + half)).quantize(q),
        annual_usd=Decimal(str(mean * 365)).quantize(q),
    )
