"""Pre-flight estimate: a dry run of the batch pipeline whose range holds the actual cost, tiles that add up,
budget fit, sampling, and the figures a script reads."""

from __future__ import annotations

import csv
import io
import random
from decimal import Decimal

from core.app import App
from core.batches.creation import create_batch
from core.batches.lifecycle import start_batch, status
from core.batches.runs import run_pending
from core.costs.estimate import SAMPLE, Estimate, Tile, TileKind, estimate
from core.messages.library import list_templates
from core.people.prospects import import_prospects, list_prospects
from core.store.models import utcnow

STEPS = ("connection_request", "follow_up_1", "follow_up_2")
INDUSTRIES = ("SaaS", "Fintech", "Healthcare", "Manufacturing", "Retail", "Logistics", "")
NEWS = (
    "",
    "{c} opened a second office in Lisbon.",
    "{c} raised a Series B round led by a growth fund and plans to double its sales team this year.",
    # long news (over 400 characters) is summarized first, once per company
    " ".join(["{c} announced a partnership with a regional bank to bring real-time payments to small merchants,"
              " with a pilot across three cities, new hires in engineering and support, and a roadmap that adds"
              " invoicing, payroll and lending features over the next eighteen months."] * 2),
)


def _batch_csv(rng: random.Random, batch: int, rows: int) -> bytes:
    """Prospects of one generated batch: mixed sizes (some above the review threshold), news lengths,
    industries, a few with a missing job title; companies repeat within a batch."""
    companies = [f"Company {batch}-{k}" for k in range(max(1, rows // 3))]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["first_name", "last_name", "company_name", "job_title", "industry", "company_size",
                     "linkedin_url", "email", "recent_news"])
    for i in range(rows):
        company = rng.choice(companies)
        size = rng.choice(["", "12", "240", "900", "1500", "4000", "12000", "64000"])
        title = rng.choice(["Head of Growth", "VP Sales", "CTO", "Founder", ""])
        news = rng.choice(NEWS).format(c=company)
        writer.writerow([f"Ana{batch}x{i}", f"Lopez{i}", company, title, rng.choice(INDUSTRIES), size,
                         f"https://www.linkedin.com/in/gen-{batch}-{i}", f"gen{batch}.{i}@example.com", news])
    return out.getvalue().encode()


def _run(app: App, ids: list[int], step: str, template: str | None) -> Decimal:
    b = create_batch(app, ids, step=step, template_name=template)
    start_batch(app, b.id)  # type: ignore[arg-type]
    run_pending(app, "w")
    return Decimal(status(app, b.id).cost_usd)  # type: ignore[arg-type]


def _check_tiles(est: Estimate) -> None:
    assert sum(t.prospects for t in est.tiles) == est.prospects
    assert sum((t.cost_low_usd for t in est.tiles), Decimal(0)) == est.cost_low_usd
    assert sum((t.cost_high_usd for t in est.tiles), Decimal(0)) == est.cost_high_usd
    assert est.template_only + est.model_written + est.reviewed + est.needs_data == est.prospects


def test_the_range_holds_the_actual_cost_of_twenty_generated_batches(demo_app: App) -> None:
    rng = random.Random(13)
    templates = {step: [t.name for t in list_templates(demo_app, step)] for step in STEPS}
    ratios = []
    for batch in range(20):
        rows = rng.choice([1, 2, 5, 9, 14, 22])
        step = rng.choice(STEPS)
        template = rng.choice([None, None, *templates[step]])
        report = import_prospects(demo_app, _batch_csv(rng, batch, rows))
        ids = report.prospect_ids
        assert len(ids) == rows
        est = estimate(demo_app, ids, step=step, template_name=template)
        assert est.prospects == rows
        _check_tiles(est)
        actual = _run(demo_app, ids, step, template)
        assert est.cost_low_usd <= actual <= est.cost_high_usd, (batch, step, template, actual, est.as_json())
        if actual:
            ratios.append((est.cost_low_usd / actual, est.cost_high_usd / actual))
    assert len(ratios) >= 10, "most generated batches call a model"
    # The low end is what a run with the simulator's answers costs; a little below it only when concurrent
    # items of one company both summarize. The high end is a bound (every output token, every re-ask), so it
    # sits far above; it must not grow without reason (a review's 400 output tokens against ~40 used).
    assert min(low for low, _ in ratios) > Decimal("0.98")
    assert max(high for _, high in ratios) < 20


def test_the_demo_batch_is_covered_and_review_counted(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app)][:80]
    est = estimate(demo_app, ids)  # type: ignore[arg-type]
    assert est.prospects == 80 and est.reviewed > 0 and est.model_written > 0
    _check_tiles(est)
    assert Decimal(0) < est.cost_low_usd < est.cost_high_usd
    assert est.fits
    actual = _run(demo_app, ids, "connection_request", None)  # type: ignore[arg-type]
    assert est.cost_low_usd <= actual <= est.cost_high_usd, (actual, est.as_json())


def test_the_estimate_writes_nothing_and_spends_nothing(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app)][:30]
    spent = demo_app.budget_state().spent_usd
    requests = sum(demo_app.simulator.requests.values())  # type: ignore[union-attr]
    est = estimate(demo_app, ids)  # type: ignore[arg-type]
    assert est.cost_low_usd > 0
    assert demo_app.budget_state().spent_usd == spent
    assert sum(demo_app.simulator.requests.values()) == requests  # type: ignore[union-attr]


def test_does_not_fit_a_tiny_budget(demo_app: App) -> None:
    demo_app.set_budget_cap(Decimal("0.001"))
    est = estimate(demo_app, [p.id for p in list_prospects(demo_app)])  # type: ignore[misc]
    assert not est.fits and "not fit" in est.verdict


def test_template_only_choice_costs_nothing(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app) if not p.company_size or p.company_size <= 1000][:20]
    est = estimate(demo_app, ids, template_name="connection_request_plain")  # type: ignore[arg-type]
    assert est.model_written == 0 and est.cost_high_usd == 0
    _check_tiles(est)


def test_scaling_from_a_sample() -> None:
    tiles = (Tile(TileKind.TEMPLATE_ONLY, "Template only", 1000, Decimal(0), Decimal(0)),
             Tile(TileKind.MODEL_WRITTEN, "Model-written", 1000, Decimal("1"), Decimal("2")))
    est = Estimate(prospects=2000, tiles=tiles, cost_low_usd=Decimal("1"), cost_high_usd=Decimal("2"))
    scaled = est.scaled(10000)
    assert (scaled.prospects, scaled.model_written, scaled.sampled) == (10000, 5000, 2000)
    assert scaled.cost_high_usd == Decimal("10")
    assert sum(t.prospects for t in scaled.tiles) == 10000


def test_a_large_batch_is_sampled(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app)]
    assert len(ids) < SAMPLE
    many = (ids * (SAMPLE // len(ids) + 2))[: SAMPLE + 500]
    est = estimate(demo_app, many)  # type: ignore[arg-type]
    assert est.prospects == len(many) and est.sampled == SAMPLE
    _check_tiles(est)


def test_json_has_what_scripts_read(demo_app: App) -> None:
    ids = [p.id for p in list_prospects(demo_app)][:10]
    data = estimate(demo_app, ids).as_json()  # type: ignore[arg-type]
    assert {"cost_low_usd", "cost_high_usd", "tiles", "prospects", "fits"} <= set(data)
    assert sum(t["prospects"] for t in data["tiles"]) == data["prospects"] == 10
    assert Decimal(data["cost_low_usd"]) <= Decimal(data["cost_high_usd"])


def test_a_review_the_guards_stopped_in_the_dry_run_stays_in_the_high_end(demo_app: App) -> None:
    # A long template: the simulator's snippet takes the message past the step's 300 characters, so the guards
    # stop it and the run sends no review; a real model's shorter snippet would pass and go to review.
    from core.messages.library import add_template

    text = ("Hi {{ first_name }}, {{ recent_achievement }} " + "I work with teams on outbound that reads as "
            "written by a person, and I keep notes on what works for groups your size in your market. " * 2).strip()
    add_template(demo_app, "connection_request_long", "connection_request", text)
    report = import_prospects(demo_app, (
        b"first_name,company_name,industry,company_size,email,recent_news\n"
        b"Ines,Bigco,SaaS,50000,ines@example.com,Bigco opened a new research campus in Porto this spring.\n"))
    est = estimate(demo_app, report.prospect_ids, template_name="connection_request_long")
    [reviewed] = [t for t in est.tiles if t.key == TileKind.REVIEWED]
    assert reviewed.prospects == 1
    actual = _run(demo_app, report.prospect_ids, "connection_request", "connection_request_long")
    review = demo_app.routing.route("review", utcnow().date())
    at_least = demo_app.price_book().worst_case(review.models, 0, review.max_tokens)
    assert est.cost_low_usd <= actual < at_least <= est.cost_high_usd, "the possible review is in the high end"
