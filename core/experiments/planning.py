"""Plan an experiment before starting it: sends per arm, and the weeks they take at a weekly volume.

Sends per arm come from the baseline rate, the minimum detectable effect (absolute), power and alpha, with
the Holm (Bonferroni first step) alpha for A/B/n (`core.experiments.stats`). The verdict is withheld until
every arm reaches the planned sample.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MAX_ARMS = 8


@dataclass(frozen=True)
class Plan:
    per_arm: int
    arms: int
    total: int
    weeks: float | None  # None when no weekly volume was given

    def as_json(self) -> dict[str, Any]:
        return {"per_arm": self.per_arm, "arms": self.arms, "total": self.total,
                "weeks": None if self.weeks is None else round(self.weeks, 2)}


def plan(baseline_rate: float, mde_abs: float, power: float = 0.8, alpha: float = 0.05, arms: int = 2,
         sends_per_week: int | None = None) -> Plan:
    """Sends per arm (Holm-adjusted for A/B/n) and the weeks they take at sends_per_week in total."""
    from core.experiments import stats  # statsmodels takes over a second to import; assignment alone does not need it

    if arms < 2 or arms > MAX_ARMS:
        raise ValueError(f"an experiment has 2 to {MAX_ARMS} arms (control included), got {arms}")
    per_arm = stats.sample_size_per_arm(baseline_rate, mde_abs, power, alpha, n_treatments=arms - 1)
    weeks = None if sends_per_week is None else stats.weeks_to_sample(per_arm, arms, sends_per_week)
    return Plan(per_arm=per_arm, arms=arms, total=per_arm * arms, weeks=weeks)
