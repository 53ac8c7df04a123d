"""Wiring: one `App` object holding settings, database, routing, prices and the LLM provider.

The console, the CLI and workers all start from `open_app()`, which applies migrations. It knows nothing of
the demo data: callers that want it start from `core.demo.open_demo_app()` (so demo -> app, never back).
The LLM client is created per event loop (`async with app.gateway()`), because an httpx2 connection pool
belongs to the loop that opened it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal

from sqlalchemy.engine import Engine
from sqlmodel import select

from core import logs
from core.config import Settings, load_settings
from core.costs import budget
from core.costs.gateway import Gateway
from core.costs.prices import Price, PriceBook, current_book, retirement_warnings
from core.costs.routing import RoutingTable, load_routing
from core.llm.client import LLMClient, RetryPolicy
from core.messages.summaries import SummaryCache
from core.sim.simulator import Faults, Simulator
from core.store.commits import GroupCommitter
from core.store.db import get_engine, session_scope
from core.store.migrations import migrate
from core.store.models import PriceOverride, utcnow

BUDGET_KEY = "monthly_budget_usd"  # before migration 004_money: the Spend page's cap, one for every month


@dataclass
class App:
    settings: Settings
    engine: Engine
    routing: RoutingTable
    simulator: Simulator | None = None
    summaries: SummaryCache = field(default_factory=lambda: SummaryCache())
    _book: PriceBook | None = field(default=None, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # ---- prices ----
    def price_book(self) -> PriceBook:
        with self._lock:
            if self._book is None:
                self._book = current_book(self.settings.data_dir, self.refreshed_prices())
            return self._book

    def refreshed_prices(self) -> dict[str, Price]:
        with session_scope(self.engine) as s:
            rows = s.exec(select(PriceOverride)).all()
        return {
            r.model: Price(r.model, Decimal(r.input_per_mtok), Decimal(r.output_per_mtok),
                           f"{r.source} {r.fetched_at.date().isoformat()}")
            for r in rows
        }

    def invalidate_prices(self) -> None:
        with self._lock:
            self._book = None
        if self.simulator is not None:
            self.simulator.price_book = self.price_book()

    # ---- budget ----
    def budget_cap(self, month: str | None = None) -> Decimal:
        """The month's cap: as stored for the month (set by a person, or MONTHLY_BUDGET_USD at the last start),
        else MONTHLY_BUDGET_USD."""
        return budget.cap_info(self.engine, self.settings.monthly_budget_usd, month).cap_usd

    def recent_budget_cap(self) -> Decimal:
        """The cap a month seen for the first time starts with: MONTHLY_BUDGET_USD (the gateway asks on every
        call; the cap in force for reservations is the one stored in `budget_months`)."""
        return self.settings.monthly_budget_usd

    def cap_info(self, month: str | None = None) -> budget.CapInfo:
        """The month's cap, who set it, and why MONTHLY_BUDGET_USD is or is not it."""
        return budget.cap_info(self.engine, self.settings.monthly_budget_usd, month)

    def set_budget_cap(self, amount: Decimal, month: str | None = None, *,
                       source: str = budget.CAP_FROM_SPEND_PAGE) -> None:
        """A person sets a month's cap (default: this month, from the Spend page); it is kept for that month
        even if MONTHLY_BUDGET_USD changes, which applies again from the next month."""
        if not amount.is_finite() or amount < 0:
            raise ValueError("the monthly budget must be a non-negative amount of USD")
        budget.set_cap(self.engine, amount, month, source=source)

    def budget_state(self, month: str | None = None) -> budget.BudgetState:
        return budget.budget_state(self.engine, self.budget_cap(), self.settings.throttle_at, month)

    # ---- warnings shown on every page ----
    def warnings(self, today: date | None = None) -> list[str]:
        today = today or utcnow().date()
        routed = [self.routing.entries[t]["model"] for t in self.routing.entries]
        return retirement_warnings(routed, today, self.settings.data_dir) + self.budget_state().alerts

    # ---- the LLM ----
    def client(self, policy: RetryPolicy | None = None, max_in_flight: int | None = None) -> LLMClient:
        s = self.settings
        if s.is_simulated:
            assert self.simulator is not None
            return LLMClient(s.base_url, transport=self.simulator.transport(), policy=policy,
                             price_book=self.price_book(), provider_name="simulator", max_in_flight=max_in_flight)
        return LLMClient(s.base_url, s.api_key, policy=policy, price_book=self.price_book(),
                         provider_name=s.llm_provider, max_in_flight=max_in_flight)

    @asynccontextmanager
    async def gateway(self, policy: RetryPolicy | None = None,
                      max_in_flight: int | None = None) -> AsyncIterator[Gateway]:
        """A gateway for one async run: its HTTP client (at most `max_in_flight` requests on the wire) and
        its group committer, both closed when the run ends."""
        client = self.client(policy, max_in_flight)
        writes = GroupCommitter(self.engine)
        try:
            yield Gateway(self.engine, client, self.routing, self.price_book(), cap=self.recent_budget_cap,
                          provider=self.settings.llm_provider, writes=writes)
        finally:
            try:
                await client.aclose()
            finally:
                await writes.aclose()


def open_app(settings: Settings | None = None) -> App:
    """Start the engine: settings, migrations, price book and provider (the demo data: `core.demo`)."""
    settings = settings or load_settings()
    logs.configure()
    engine = get_engine(settings.database_url)
    migrate(engine)
    app = App(settings=settings, engine=engine, routing=load_routing(settings.data_dir))
    if settings.is_simulated:
        app.simulator = Simulator(app.price_book(), Faults(latency_ms=settings.simulator_latency_ms))
    cap = budget.apply_env_cap(engine, settings.monthly_budget_usd)
    if not cap.env_applies and cap.cap_usd != settings.monthly_budget_usd:
        logging.getLogger("sam.budget").warning("MONTHLY_BUDGET_USD not applied this month",
                                                extra={"fields": {"message": cap.message}})
    return app
