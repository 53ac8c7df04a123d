"""Pre-flight estimate: rung counts, a cost range that holds the actual cost, budget fit, sampling."""

from __future__ import annotations

from decimal import Decimal

from core.app import App
from core.batches.lifecycle import create_batch, start_batch, status
from core.batches.runs import run_pending
from core.costs.estimate import Estimate, estimate
from core.people.prospects import list_prospects


def test_counts_and_range_cover_the_real_run(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app)][:80]
    est = estimate(demo_app, ids)  # type: ignore[arg-type]
    assert est.prospects == 80
    assert est.template_only + est.model_written + est.needs_data <= 80
    assert est.reviewed > 0 and est.model_written > 0
    assert Decimal(0) < est.cost_low_usd < est.cost_high_usd
    assert est.fits
    b = create_batch(demo_app, ids)  # type: ignore[arg-type]
    start_batch(demo_app, b.id)  # type: ignore[arg-type]
    run_pending(demo_app, "w")
    actual = Decimal(status(demo_app, b.id).cost_usd)  # type: ignore[arg-type]
    assert actual <= est.cost_high_usd, (actual, est.as_json())
    assert actual >= est.cost_low_usd / 3, "the low end is in the right order of magnitude"


def test_does_not_fit_a_tiny_budget(demo_app: App) -> None:
    demo_app.set_budget_cap(Decimal("0.001"))
    est = estimate(demo_app, [p.id for p in list_prospects(demo_app)])  # type: ignore[misc]
    assert not est.fits and "not fit" in est.verdict


def test_template_only_choice_costs_nothing(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app) if not p.company_size or p.company_size <= 1000][:20]
    est = estimate(demo_app, ids, template_name="connection_request_plain")  # type: ignore[arg-type]
    assert est.model_written == 0 and est.cost_high_usd == 0


def test_scaling_from_a_sample() -> None:
    est = Estimate(prospects=2000, model_written=1000, cost_low_usd=Decimal("1"), cost_high_usd=Decimal("2"))
    est.scale(10000)
    assert (est.prospects, est.model_written, est.sampled) == (10000, 5000, 2000)
    assert est.cost_high_usd == Decimal("10")
