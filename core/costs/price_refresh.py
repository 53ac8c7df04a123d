"""Refresh the price book from the provider's `GET /models` (OpenRouter: USD per token, as strings).

Only routed models are stored, each with the date it was read; the stored prices then take precedence
over the shipped overrides and the genai-prices data until the next refresh.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from core.app import App
from core.costs.prices import PriceRow
from core.store.db import session_scope
from core.store.models import PriceOverride, utcnow

MTOK = Decimal(1_000_000)


def parse_models(payload: Any) -> dict[str, tuple[Decimal, Decimal]]:
    """model id -> (input, output) USD per million tokens, skipping entries without valid prices."""
    if not isinstance(payload, dict) or not isinstance(payload.get("data"), list):
        raise ValueError("the /models answer has no 'data' list")
    out: dict[str, tuple[Decimal, Decimal]] = {}
    for entry in payload["data"]:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        pricing = entry.get("pricing") or {}
        try:
            prompt = Decimal(str(pricing["prompt"]))
            completion = Decimal(str(pricing["completion"]))
        except (KeyError, TypeError, InvalidOperation):
            continue
        if prompt < 0 or completion < 0 or not prompt.is_finite() or not completion.is_finite():
            continue
        out[entry["id"]] = ((prompt * MTOK).normalize(), (completion * MTOK).normalize())
    return out


@dataclass(frozen=True)
class PriceRefresh:
    fetched_at: datetime
    source: str
    updated: list[PriceRow]
    not_listed: list[str]  # routed models the provider's list does not carry (their prices stay as they were)

    def as_json(self) -> dict[str, Any]:
        return {"fetched_at": self.fetched_at.isoformat(), "source": self.source,
                "updated": [{k: v for k, v in r.as_json().items() if k != "source"} for r in self.updated],
                "not_listed": self.not_listed}


async def refresh_prices(app: App) -> PriceRefresh:
    """Read the provider's prices of the routed models and store them over the book's other layers."""
    async with app.gateway() as gw:
        payload = await gw.client.get_json("/models")
    prices = parse_models(payload)
    now = utcnow()
    source = f"{app.settings.llm_provider} /models"
    updated: list[PriceRow] = []
    missing: list[str] = []
    with session_scope(app.engine) as s:
        for model in app.routing.models():
            if model not in prices:
                missing.append(model)
                continue
            inp, out = prices[model]
            row = s.get(PriceOverride, model) or PriceOverride(model=model, input_per_mtok="0", output_per_mtok="0")
            row.input_per_mtok, row.output_per_mtok = format(inp, "f"), format(out, "f")
            row.source, row.fetched_at = source, now
            s.add(row)
            updated.append(PriceRow(model, inp, out, source))
    app.invalidate_prices()
    return PriceRefresh(now, source, updated, missing)
