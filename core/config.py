"""Settings read from the environment (and Streamlit secrets handed in by the UI).

One frozen `Settings` object is built at start-up; a bad value stops start-up with a `ConfigError` that
names the variable, so an operator never discovers a typo half-way through a batch. The API key is kept
out of `repr` so it cannot leak into logs or the settings page.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, Literal

from core.logs import scrub

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_ROOT / "data"
DEFAULT_OPENROUTER_BASE_URL = "https://openrouter.ai/api/v1"
PROVIDERS = ("simulator", "openrouter", "openai")

Provider = Literal["simulator", "openrouter", "openai"]


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


@dataclass(frozen=True)
class Settings:
    database_url: str
    llm_provider: Provider
    openrouter_base_url: str = DEFAULT_OPENROUTER_BASE_URL
    llm_base_url: str | None = None
    monthly_budget_usd: Decimal = Decimal("12000")
    throttle_at: Decimal = Decimal("0.10")
    high_value_company_size: int = 1000
    worker_concurrency: int = 16
    simulator_latency_ms: int = 0
    batch_lease_s: int = 120
    worker_silent_s: float = 15.0
    data_dir: Path = DATA_DIR
    openrouter_api_key: str | None = field(default=None, repr=False)
    llm_api_key: str | None = field(default=None, repr=False)

    @property
    def api_key(self) -> str | None:
        """The key for the active provider (never display it; see `describe`)."""
        if self.llm_provider == "openrouter":
            return self.openrouter_api_key
        if self.llm_provider == "openai":
            return self.llm_api_key
        return None

    @property
    def base_url(self) -> str:
        if self.llm_provider == "openrouter":
            return self.openrouter_base_url
        if self.llm_provider == "openai":
            return self.llm_base_url or ""
        return "http://simulator.local/api/v1"

    @property
    def is_simulated(self) -> bool:
        return self.llm_provider == "simulator"

    def describe(self) -> list[dict[str, str]]:
        """Every setting as rows for display: secrets appear as 'set' / 'not set', never their value."""
        return [
            {"variable": "DATABASE_URL", "value": scrub(self.database_url)},
            {"variable": "LLM_PROVIDER", "value": self.llm_provider},
            {"variable": "OPENROUTER_API_KEY", "value": "set" if self.openrouter_api_key else "not set"},
            {"variable": "OPENROUTER_BASE_URL", "value": self.openrouter_base_url},
            {"variable": "LLM_BASE_URL", "value": self.llm_base_url or ""},
            {"variable": "LLM_API_KEY", "value": "set" if self.llm_api_key else "not set"},
            {"variable": "MONTHLY_BUDGET_USD", "value": str(self.monthly_budget_usd)},
            {"variable": "THROTTLE_AT", "value": str(self.throttle_at)},
            {"variable": "HIGH_VALUE_COMPANY_SIZE", "value": str(self.high_value_company_size)},
            {"variable": "WORKER_CONCURRENCY", "value": str(self.worker_concurrency)},
            {"variable": "SIMULATOR_LATENCY_MS", "value": str(self.simulator_latency_ms)},
            {"variable": "BATCH_LEASE_SECONDS", "value": str(self.batch_lease_s)},
            {"variable": "WORKER_SILENT_SECONDS", "value": f"{self.worker_silent_s:g}"},
        ]


def default_database_url(data_dir: Path = DATA_DIR) -> str:
    return f"sqlite:///{data_dir / 'console.db'}"


def _decimal(name: str, raw: str, *, minimum: Decimal, maximum: Decimal | None = None) -> Decimal:
    try:
        value = Decimal(raw.strip())
    except InvalidOperation:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from None
    if not value.is_finite() or value < minimum or (maximum is not None and value > maximum):
        bound = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise ConfigError(f"{name} must be {bound}, got {raw!r}")
    return value


def _int(name: str, raw: str, *, minimum: int, maximum: int) -> int:
    try:
        value = int(raw.strip())
    except ValueError:
        raise ConfigError(f"{name} must be a whole number, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be between {minimum} and {maximum}, got {raw!r}")
    return value


def _url(name: str, raw: str) -> str:
    value = raw.strip().rstrip("/")
    if not value.startswith(("http://", "https://")):
        raise ConfigError(f"{name} must be an http(s) URL, got {raw!r}")
    return value


def load_settings(
    env: Mapping[str, str] | None = None, secrets: Mapping[str, Any] | None = None
) -> Settings:
    """Build settings from `env` (default: the process environment), with `secrets` filling gaps."""
    source: dict[str, str] = {}
    for key, value in (secrets or {}).items():
        if isinstance(value, str | int | float):
            source[key.upper()] = str(value)
    source.update({k: v for k, v in (os.environ if env is None else env).items() if v != ""})

    data_dir = Path(source.get("SAM_DATA_DIR", str(DATA_DIR)))
    database_url = source.get("DATABASE_URL") or default_database_url(data_dir)
    if not database_url.startswith(("sqlite://", "postgresql")):
        raise ConfigError(
            f"DATABASE_URL must start with sqlite:// or postgresql+psycopg://, got {scrub(database_url)!r}"
        )

    key = source.get("OPENROUTER_API_KEY")
    provider = source.get("LLM_PROVIDER", "").strip().lower() or ("openrouter" if key else "simulator")
    if provider not in PROVIDERS:
        raise ConfigError(f"LLM_PROVIDER must be one of {', '.join(PROVIDERS)}, got {provider!r}")
    if provider == "openrouter" and not key:
        raise ConfigError("LLM_PROVIDER is openrouter but OPENROUTER_API_KEY is not set")
    llm_base_url = _url("LLM_BASE_URL", source["LLM_BASE_URL"]) if source.get("LLM_BASE_URL") else None
    if provider == "openai" and not llm_base_url:
        raise ConfigError("LLM_PROVIDER is openai but LLM_BASE_URL is not set (e.g. http://127.0.0.1:11434/v1)")

    return Settings(
        database_url=database_url,
        llm_provider=provider,  # type: ignore[arg-type]
        openrouter_base_url=_url(
            "OPENROUTER_BASE_URL", source.get("OPENROUTER_BASE_URL", DEFAULT_OPENROUTER_BASE_URL)
        ),
        llm_base_url=llm_base_url,
        monthly_budget_usd=_decimal(
            "MONTHLY_BUDGET_USD", source.get("MONTHLY_BUDGET_USD", "12000"), minimum=Decimal(0)
        ),
        throttle_at=_decimal(
            "THROTTLE_AT", source.get("THROTTLE_AT", "0.10"), minimum=Decimal(0), maximum=Decimal(1)
        ),
        high_value_company_size=_int(
            "HIGH_VALUE_COMPANY_SIZE", source.get("HIGH_VALUE_COMPANY_SIZE", "1000"), minimum=0, maximum=10**9
        ),
        worker_concurrency=_int(
            "WORKER_CONCURRENCY", source.get("WORKER_CONCURRENCY", "16"), minimum=1, maximum=256
        ),
        simulator_latency_ms=_int(
            "SIMULATOR_LATENCY_MS", source.get("SIMULATOR_LATENCY_MS", "0"), minimum=0, maximum=60_000
        ),
        batch_lease_s=_int("BATCH_LEASE_SECONDS", source.get("BATCH_LEASE_SECONDS", "120"), minimum=1, maximum=86_400),
        worker_silent_s=float(_decimal("WORKER_SILENT_SECONDS", source.get("WORKER_SILENT_SECONDS", "15"),
                                       minimum=Decimal("0.5"), maximum=Decimal(3600))),
        data_dir=data_dir,
        openrouter_api_key=key,
        llm_api_key=source.get("LLM_API_KEY"),
    )
