"""The price book: what a model costs per token, where that figure came from, and when a model retires.

Three layers, first match wins: prices refreshed from OpenRouter's `/models` (stored in the database,
dated), the overrides shipped in `data/prices.json` (the November 2026 snapshot where it differs from the
package), and the maintained `genai-prices` package (offline data with tiered prices). The seed document's
own rates form a separate named book, `seed`, used only by scenarios. All money is `Decimal`.

A provider-reported `usage.cost` is always the cost of a call; the price book is for estimates, forecasts,
budget reservations, and for calls whose server sent no cost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from genai_prices import Usage, calc_price

from core import datafiles
from core.config import DATA_DIR
from core.wording import plural

MTOK = Decimal(1_000_000)
NANO = Decimal("1e-9")  # money is stored in nano-dollars


class UnknownModelPrice(LookupError):
    """No layer of the price book knows this model."""


@dataclass(frozen=True)
class Price:
    model: str
    input_per_mtok: Decimal
    output_per_mtok: Decimal
    source: str  # "openrouter refresh 2026-11-20", "data/prices.json 2026-11-01", "genai-prices 0.2.3", "seed"
    tiered: bool = False

    def linear_cost(self, input_tokens: int, output_tokens: int) -> Decimal:
        return (Decimal(input_tokens) * self.input_per_mtok + Decimal(output_tokens) * self.output_per_mtok) / MTOK


@dataclass(frozen=True)
class Lifecycle:
    model: str
    retires_on: date
    replacement: str | None
    note: str


def _genai_price(model: str) -> Price | None:
    from genai_prices import __version__ as genai_version

    for provider in ("openrouter", None):
        try:
            calc = calc_price(Usage(input_tokens=0, output_tokens=0), model_ref=model, provider_id=provider)
        except LookupError:
            continue
        prices = calc.model.prices
        inp, out = prices.input_mtok, prices.output_mtok
        tiered = hasattr(inp, "tiers") or hasattr(out, "tiers")
        return Price(
            model=model,
            input_per_mtok=Decimal(getattr(inp, "base", inp) or 0),
            output_per_mtok=Decimal(getattr(out, "base", out) or 0),
            source=f"genai-prices {genai_version} ({calc.provider.id})",
            tiered=tiered,
        )
    return None


def _genai_cost(model: str, input_tokens: int, output_tokens: int) -> Decimal:
    for provider in ("openrouter", None):
        try:
            calc = calc_price(
                Usage(input_tokens=input_tokens, output_tokens=output_tokens), model_ref=model, provider_id=provider
            )
        except LookupError:
            continue
        return Decimal(calc.total_price)
    raise UnknownModelPrice(model)


def file_overrides(data_dir: Path = DATA_DIR) -> dict[str, Price]:
    raw = datafiles.read_json(data_dir / "prices.json")
    as_of = raw.get("as_of", "")
    return {
        model: Price(model, Decimal(p["input_per_mtok"]), Decimal(p["output_per_mtok"]), f"data/prices.json {as_of}")
        for model, p in raw["models"].items()
    }


def load_lifecycle(data_dir: Path = DATA_DIR) -> tuple[dict[str, Lifecycle], int]:
    """Announced retirements, parsed again only when the file changes: routing reads them on every call (the
    result is shared between callers, read-only)."""
    return datafiles.load(data_dir / "model_lifecycle.json", _lifecycle_from)


def _lifecycle_from(path: Path, raw: Any) -> tuple[dict[str, Lifecycle], int]:
    out = {
        model: Lifecycle(model, date.fromisoformat(v["retires_on"]), v.get("replacement"), v.get("note", ""))
        for model, v in raw["models"].items()
    }
    return out, int(raw.get("warn_days", 30))


class PriceBook:
    """Prices for a set of models; `cost` is the one function that turns tokens into dollars."""

    def __init__(
        self,
        name: str,
        overrides: Mapping[str, Price],
        *,
        use_genai: bool = True,
        default: Price | None = None,
    ) -> None:
        self.name = name
        self._overrides = dict(overrides)
        self._use_genai = use_genai
        self._default = default
        self._cache: dict[str, Price | None] = {}

    def price(self, model: str) -> Price:
        if model in self._overrides:
            return self._overrides[model]
        if model not in self._cache:
            self._cache[model] = _genai_price(model) if self._use_genai else None
        found = self._cache[model]
        if found is not None:
            return found
        if self._default is not None:
            return Price(model, self._default.input_per_mtok, self._default.output_per_mtok, self._default.source)
        raise UnknownModelPrice(f"no price for model {model!r} in the {self.name} price book")

    def has(self, model: str) -> bool:
        try:
            self.price(model)
        except UnknownModelPrice:
            return False
        return True

    def cost(self, model: str, input_tokens: int, output_tokens: int) -> Decimal:
        """USD for one call; tiered genai-prices entries are priced by the package itself."""
        price = self.price(model)
        if price.tiered and model not in self._overrides:
            return _genai_cost(model, input_tokens, output_tokens)
        return price.linear_cost(input_tokens, output_tokens)

    def worst_case(self, models: Sequence[str], prompt_tokens: int, max_tokens: int,
                   factors: Mapping[str, Decimal] | None = None) -> Decimal:
        """The most one call can cost: the dearest priced model it may be routed to, its prompt at input price
        plus every allowed output token, each model times the factor learned for a provider that billed above
        its price list. This is the one worst case: budget holds, variant and reply bounds and the batch
        estimate's high end all use it. Raises UnknownModelPrice when no model of the route has a price."""
        factors = factors or {}
        costs = []
        for model in models:
            try:
                base = self.cost(model, prompt_tokens, max_tokens)
            except UnknownModelPrice:
                continue
            costs.append((base * factors.get(model, Decimal(1))).quantize(NANO))
        if not costs:
            raise UnknownModelPrice(f"no price for any of the models {', '.join(models)}")
        return max(costs)

    def rows(self, models: Iterable[str]) -> list[PriceRow]:
        """What the book says about each model (unknown models included, as such)."""
        rows = []
        for model in models:
            try:
                p = self.price(model)
            except UnknownModelPrice:
                rows.append(PriceRow(model, None, None, "unknown"))
                continue
            rows.append(PriceRow(model, p.input_per_mtok, p.output_per_mtok,
                                 p.source + (" (tiered above 200K prompt tokens)" if p.tiered else "")))
        return rows


@dataclass(frozen=True)
class PriceRow:
    model: str
    input_per_mtok: Decimal | None  # None: no layer of the book knows the model
    output_per_mtok: Decimal | None
    source: str

    def as_json(self) -> dict[str, str]:
        def text(value: Decimal | None) -> str:
            return "" if value is None else format(value, "f")

        return {"model": self.model, "input_per_mtok": text(self.input_per_mtok),
                "output_per_mtok": text(self.output_per_mtok), "source": self.source}


def current_book(data_dir: Path = DATA_DIR, refreshed: Mapping[str, Price] | None = None) -> PriceBook:
    """The live book: refreshed (database) prices over file overrides over genai-prices."""
    overrides = file_overrides(data_dir)
    overrides.update(refreshed or {})
    return PriceBook("current", overrides)


def seed_book(data_dir: Path = DATA_DIR) -> PriceBook:
    """The seed document's own per-1K rates, converted to per-million."""
    raw = datafiles.read_json(data_dir / "seed_prices.json")
    thousand = Decimal(1000)
    overrides = {
        model: Price(model, Decimal(r["input"]) * thousand, Decimal(r["output"]) * thousand, "original cost plan")
        for model, r in raw["per_1k"].items()
    }
    d = raw["default_per_1k"]
    default = Price("*", Decimal(d["input"]) * thousand, Decimal(d["output"]) * thousand,
                    "original cost plan's default rate")
    return PriceBook("seed", overrides, use_genai=False, default=default)


def retirement_notes(
    models: Iterable[str], today: date, data_dir: Path = DATA_DIR
) -> dict[str, str]:
    """model -> a warning, for each model that is retired or retires within the configured window."""
    lifecycle, warn_days = load_lifecycle(data_dir)
    notes: dict[str, str] = {}
    for model in sorted(set(models)):
        info = lifecycle.get(model)
        if info is None:
            continue
        days = (info.retires_on - today).days
        repl = f"; replacement: {info.replacement}" if info.replacement else ""
        if days < 0:
            notes[model] = f"{model} retired on {info.retires_on.isoformat()}{repl}."
        elif days <= warn_days:
            when = "today" if days == 0 else f"in {plural(days, 'day')}"
            notes[model] = f"{model} retires on {info.retires_on.isoformat()} ({when}){repl}."
    return notes


def retirement_warnings(
    models: Iterable[str], today: date, data_dir: Path = DATA_DIR
) -> list[str]:
    """Warnings for models that are retired or retire within the configured window."""
    return list(retirement_notes(models, today, data_dir).values())


def is_retired(model: str, today: date, data_dir: Path = DATA_DIR) -> bool:
    return bool(retired((model,), today, data_dir))


def retired(models: Iterable[str], today: date, data_dir: Path = DATA_DIR) -> set[str]:
    """Those of ``models`` retired by ``today`` (the lifecycle file read once for all of them)."""
    lifecycle = load_lifecycle(data_dir)[0]
    return {m for m in models if (info := lifecycle.get(m)) is not None and info.retires_on <= today}
