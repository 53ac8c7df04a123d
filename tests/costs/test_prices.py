from datetime import date
from decimal import Decimal

import pytest

from core.costs.prices import Price, UnknownModelPrice, current_book, retirement_warnings, seed_book


def test_snapshot_overrides_and_genai_prices() -> None:
    book = current_book()
    assert book.price("mistralai/mistral-7b-instruct").input_per_mtok == Decimal("0.028")
    assert book.price("mistralai/mistral-nemo").output_per_mtok == Decimal("0.04")
    llama = book.price("meta-llama/llama-3-8b-instruct")
    assert (llama.input_per_mtok, llama.output_per_mtok) == (Decimal("0.03"), Decimal("0.06"))
    assert llama.source.startswith("genai-prices")
    assert book.cost("anthropic/claude-sonnet-4.5", 1000, 1000) == Decimal("0.018")
    assert book.price("anthropic/claude-sonnet-5.5").input_per_mtok == Decimal("2")


def test_costs_are_decimal_and_exact() -> None:
    cost = current_book().cost("mistralai/mistral-7b-instruct", 1_000_000, 1_000_000)
    assert cost == Decimal("0.082") and isinstance(cost, Decimal)


def test_tiered_prices_come_from_the_package() -> None:
    # Sonnet 4.5 charges more above 200K prompt tokens; the package knows the tiers.
    assert current_book().cost("anthropic/claude-sonnet-4.5", 300_000, 0) == Decimal("1.8")


def test_refreshed_prices_win() -> None:
    refreshed = {"mistralai/mistral-7b-instruct": Price("mistralai/mistral-7b-instruct", Decimal("1"),
                                                        Decimal("2"), "openrouter /models 2026-11-25")}
    assert current_book(refreshed=refreshed).cost("mistralai/mistral-7b-instruct", 10**6, 0) == Decimal("1")


def test_unknown_model() -> None:
    with pytest.raises(UnknownModelPrice):
        current_book().cost("nobody/none-1b", 1, 1)


def test_seed_book_reproduces_the_seed_rates() -> None:
    seed = seed_book()
    # $0.0007 per 1K tokens: 45M tokens cost $31.50, not the $63,000 the seed's table claims.
    assert seed.cost("mistralai/mistral-7b-instruct", 45_000_000, 0) == Decimal("31.5")
    assert seed.price("some/other-model").input_per_mtok == Decimal("1")


def test_retirement_warnings() -> None:
    model = "anthropic/claude-sonnet-4.5"
    assert retirement_warnings([model], date(2026, 10, 1)) == []
    soon = retirement_warnings([model], date(2026, 11, 25))
    assert soon and "in 5 days" in soon[0] and "claude-sonnet-5.5" in soon[0]
    assert "retired on 2026-11-30" in retirement_warnings([model], date(2026, 12, 2))[0]


def test_worst_case_is_the_dearest_priced_model_times_its_learned_factor() -> None:
    book = current_book()
    models = ["mistralai/mistral-7b-instruct", "nobody/none-1b", "mistralai/mistral-nemo"]
    dearest = max(book.cost(m, 500, 300) for m in models if book.has(m))
    assert book.worst_case(models, 500, 300) == dearest
    factored = book.worst_case(models, 500, 300, {"mistralai/mistral-nemo": Decimal(3)})
    assert factored == max(book.cost("mistralai/mistral-7b-instruct", 500, 300),
                           (book.cost("mistralai/mistral-nemo", 500, 300) * 3).quantize(Decimal("1e-9")))
    with pytest.raises(UnknownModelPrice):
        book.worst_case(["nobody/none-1b"], 1, 1)
