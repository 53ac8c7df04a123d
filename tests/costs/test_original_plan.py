"""The original cost plan's tables recomputed on both books: claims, ratios, split bounds, the unit slip."""

from __future__ import annotations

import json
from decimal import Decimal

import pytest

from core.costs.original_plan import (
    PERSONALIZATION,
    QUALITY_REVIEW,
    SEED_HYBRID,
    HybridRow,
    HybridTable,
    all_premium_comparison,
    hybrid_headlines,
    hybrid_table,
    primary_table_claims,
    split_bounds,
    unit_slip_check,
)
from core.costs.prices import Price, PriceBook, current_book, seed_book

MISTRAL = "mistralai/mistral-7b-instruct"
LLAMA = "meta-llama/llama-3-8b-instruct"
SONNET = "anthropic/claude-sonnet-4.5"


def _row(table: HybridTable, model: str) -> HybridRow:
    return next(r for r in table.rows if r.model == model)


# ---- the seed's figures -----------------------------------------------------------------------------------


def test_hybrid_table_shape_is_exactly_the_cli_contract() -> None:
    table = hybrid_table(seed_book()).as_json()
    assert set(table) == {"book", "rows", "total_computed_usd", "total_claimed_usd", "ratio"}
    assert [set(r) for r in table["rows"]] == [
        {"task", "model", "tokens", "computed_usd", "claimed_usd", "ratio"}
    ] * 3
    assert [r["model"] for r in table["rows"]] == [MISTRAL, LLAMA, SONNET]
    assert [r["tokens"] for r in table["rows"]] == [45_000_000, 8_000_000, 2_000_000]
    assert table["rows"][0]["claimed_usd"] == "63000"
    json.dumps(table)  # JSON-ready: money is text, not Decimal


@pytest.mark.parametrize("share", ["0", "0.25", "0.75", "1"])
def test_seed_book_mistral_is_31_50_for_any_split(share: str) -> None:
    table = hybrid_table(seed_book(), {PERSONALIZATION: Decimal(share)})
    row = _row(table, MISTRAL)
    assert row.computed_usd == Decimal("31.50")
    assert row.claimed_usd == Decimal("63000")
    assert row.ratio == 2000


def test_seed_book_figures_at_the_default_split() -> None:
    table = hybrid_table(seed_book())
    assert table.book == "seed"
    # Llama: 60% of 8M at $0.0005/1K + 40% at $0.0008/1K = 2.40 + 2.56
    assert _row(table, LLAMA).computed_usd == Decimal("4.96")
    # Claude at the seed's $0.015 / $0.075 per 1K: 1.5M in = 22.50, 0.5M out = 37.50
    sonnet = _row(table, SONNET)
    assert sonnet.computed_usd == Decimal("60")
    assert sonnet.ratio == 1000
    assert table.total_computed_usd == Decimal("96.46")
    assert table.total_claimed_usd == Decimal("133400")
    assert table.ratio == (Decimal(133400) / Decimal("96.46")).quantize(Decimal("0.01"))


def test_claude_at_the_seed_rates_follows_the_split() -> None:
    all_input = _row(hybrid_table(seed_book(), {QUALITY_REVIEW: 1}), SONNET)
    all_output = _row(hybrid_table(seed_book(), {"Quality Review": 0}), SONNET)
    assert all_input.computed_usd == Decimal("30")  # 2M × $0.015/1K
    assert all_output.computed_usd == Decimal("150")  # 2M × $0.075/1K


def test_current_book_figures() -> None:
    table = hybrid_table(current_book())
    assert table.book == "current"
    # 33.75M × $0.028/M + 11.25M × $0.054/M
    assert _row(table, MISTRAL).computed_usd == Decimal("1.5525")
    assert _row(table, LLAMA).computed_usd == Decimal("0.336")
    # Sonnet's long-context tier is per request; a year of small reviews pays the base $3 / $15
    assert _row(table, SONNET).computed_usd == Decimal("12")
    assert table.total_computed_usd == Decimal("13.8885")


def test_ratio_is_null_when_nothing_is_computed() -> None:
    free = PriceBook("free", {m: Price(m, Decimal(0), Decimal(0), "test") for m in (MISTRAL, LLAMA, SONNET)},
                     use_genai=False)
    table = hybrid_table(free)
    assert all(r.ratio is None for r in table.rows) and table.ratio is None
    assert table.as_json()["total_computed_usd"] == "0" and table.as_json()["ratio"] is None


def test_input_share_is_validated() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        hybrid_table(seed_book(), {PERSONALIZATION: Decimal("1.2")})
    with pytest.raises(ValueError, match="unknown task"):
        hybrid_table(seed_book(), {"summaries": Decimal("0.5")})


@pytest.mark.parametrize("book", [seed_book(), current_book()], ids=["seed", "current"])
def test_claims_are_orders_of_magnitude_high_for_any_split(book: PriceBook) -> None:
    bounds = split_bounds(book)
    by_model = {b.model: b for b in bounds}
    for model in (MISTRAL, LLAMA):
        assert (by_model[model].min_ratio or 0) >= 1000
    assert all((b.min_ratio or 0) >= 100 for b in bounds)
    # The bounds really do bracket the computed figure at a mid split
    for seed_row in SEED_HYBRID:
        mid = _row(hybrid_table(book, {seed_row.task: Decimal("0.37")}), seed_row.model).computed_usd
        assert by_model[seed_row.model].low_usd <= mid <= by_model[seed_row.model].high_usd


def test_headlines_say_it_plainly() -> None:
    lines = hybrid_headlines(hybrid_table(seed_book()))
    assert lines[0] == ("At the original cost plan's own rates Mistral 7B costs $31.50 for 45M tokens a year, "
                        "not $63,000.00 (2,000x).")
    assert hybrid_headlines(hybrid_table(current_book()))[0].startswith("At current prices Mistral 7B costs $1.55")


def test_all_premium_recomputed() -> None:
    seed = all_premium_comparison(seed_book())
    # 55M tokens on Sonnet at the seed's rates, each task at its default split
    assert seed.all_premium_computed_usd == Decimal("1722")
    assert seed.hybrid_computed_usd == Decimal("96.46")
    assert seed.reduction_computed_pct == Decimal("94.40")
    assert seed.as_json()["all_premium_claimed_usd"] == "534000" and seed.as_json()["reduction_claimed_pct"] == "75"
    assert seed.reduction_implied_by_claims_pct == Decimal("75.02")
    current = all_premium_comparison(current_book())
    assert current.all_premium_computed_usd == Decimal("344.4")
    assert current.reduction_computed_pct == Decimal("95.97")
    with pytest.raises(ValueError, match="no price"):
        all_premium_comparison(current_book(), premium_model="nobody/none-1b")


def test_primary_table_has_no_computable_counterpart() -> None:
    rows = primary_table_claims(seed_book())
    assert [r.claimed_annual_usd for r in rows] == [Decimal(76860), Decimal(71370), Decimal(142740)]
    assert not any(hasattr(r, "computed_usd") for r in rows), "no volume: nothing to recompute"
    # At the seed's $0.0007/1K the Mistral claim implies 109.8 billion tokens a year, 2,000x the hybrid's 55M
    assert rows[0].implied_tokens_low == rows[0].implied_tokens_high == 109_800_000_000


def test_unit_slip_explains_two_of_three_claims() -> None:
    assert [r.matches for r in unit_slip_check(seed_book())] == [True, True, False]
