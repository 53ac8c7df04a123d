from decimal import Decimal

import pytest

from core.config import ConfigError, load_settings


def test_defaults_use_simulator_and_sqlite() -> None:
    s = load_settings({})
    assert s.llm_provider == "simulator"
    assert s.database_url.startswith("sqlite:///") and s.database_url.endswith("data/console.db")
    assert s.monthly_budget_usd == Decimal("12000")
    assert s.throttle_at == Decimal("0.10")
    assert s.is_simulated


def test_key_selects_openrouter_and_is_never_shown() -> None:
    s = load_settings({"OPENROUTER_API_KEY": "sk-or-v1-secret"})
    assert s.llm_provider == "openrouter"
    assert "sk-or-v1-secret" not in repr(s)
    shown = {r["variable"]: r["value"] for r in s.describe()}
    assert shown["OPENROUTER_API_KEY"] == "set"
    assert "sk-or-v1-secret" not in str(s.describe())


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"MONTHLY_BUDGET_USD": "lots"}, "MONTHLY_BUDGET_USD"),
        ({"MONTHLY_BUDGET_USD": "-5"}, "MONTHLY_BUDGET_USD"),
        ({"THROTTLE_AT": "1.5"}, "THROTTLE_AT"),
        ({"LLM_PROVIDER": "gpt"}, "LLM_PROVIDER"),
        ({"LLM_PROVIDER": "openrouter"}, "OPENROUTER_API_KEY"),
        ({"LLM_PROVIDER": "openai"}, "LLM_BASE_URL"),
        ({"LLM_BASE_URL": "localhost:11434"}, "LLM_BASE_URL"),
        ({"DATABASE_URL": "mysql://x"}, "DATABASE_URL"),
        ({"WORKER_CONCURRENCY": "0"}, "WORKER_CONCURRENCY"),
        ({"HIGH_VALUE_COMPANY_SIZE": "big"}, "HIGH_VALUE_COMPANY_SIZE"),
    ],
)
def test_bad_values_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        load_settings(env)


def test_openai_compatible_server() -> None:
    s = load_settings({"LLM_PROVIDER": "openai", "LLM_BASE_URL": "http://127.0.0.1:11434/v1/"})
    assert s.base_url == "http://127.0.0.1:11434/v1"
    assert s.api_key is None


def test_secrets_fill_gaps_but_environment_wins() -> None:
    s = load_settings({"MONTHLY_BUDGET_USD": "50"}, secrets={"MONTHLY_BUDGET_USD": 70, "THROTTLE_AT": "0.2"})
    assert s.monthly_budget_usd == Decimal("50")
    assert s.throttle_at == Decimal("0.2")

