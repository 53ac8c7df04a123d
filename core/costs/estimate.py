"""Pre-flight estimate of a batch: a dry run of the very pipeline the batch runs, priced instead of called.

Each prospect goes through `core.messages.personalize.Pipeline` exactly as the worker sends it (template
selection, rendering, the injection screen, the ladder, the context summary, snippets, guards, review,
fallback), but the gateway it talks to is a `PricingGateway`: it routes and builds every request as the real
gateway does, counts its prompt with the real tokenizer, and prices it instead of sending it. What it answers
is the offline simulator's answer to that prompt, so the pipeline takes the path a run takes and the estimate
cannot drift from what a run does.

- The low end: every call the pipeline makes, each answer as long as the simulator's (one plain sentence per
  snippet, a one-sentence summary, a bare verdict), every JSON answer usable at the first try, one context
  summary per company.
- The high end: the same calls at their worst case (`PriceBook.worst_case`: the dearest routed model, every
  allowed output token, learned cost factors), every JSON answer needing its one re-ask (the bad answer sent
  back at full length), a summary for every prospect with long news (concurrent items of one company may each
  summarize), the parts of a prompt that grow with a model's answers (the summary in the snippet prompt, the
  message under review) at their longest, and the review of a message the guards stopped in the dry run (a real
  model's message may pass them).

Not counted: transport retries of failed attempts (unbilled, except a request that timed out after it was
sent, which is booked at its hold), prospects a reply or the do-not-contact list stops during the run (they
cost nothing), and experiment arms assigned at run time (the estimate prices the template chosen by rule).
Above `SAMPLE` prospects an evenly spaced sample is run and the figures are scaled up.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from core.app import App
from core.costs import budget
from core.costs.gateway import CallContext, build_request
from core.costs.prices import NANO, PriceBook, UnknownModelPrice
from core.costs.routing import Route, RoutingTable
from core.llm.client import ChatResult
from core.llm.tokens import count_messages, count_text
from core.messages import prompts
from core.messages.library import specs as library_specs
from core.messages.personalize import RUNG_REVIEW, RUNG_WRITE, SNIPPET_CAP, Options, Pipeline, Result, options_for
from core.messages.structured import VerdictError, extract_json_object
from core.messages.summaries import SummaryCache
from core.people.prospects import prospect_fields
from core.sim.simulator import answer as typical_answer
from core.store.db import session_scope
from core.store.models import Prospect, money_str, utcnow

SAMPLE = 2000
SUMMARY_CAP = 300  # the pipeline keeps at most this much of a context summary (`prompts.cap(summary, 300)`)
REASK_LIMIT = 2000  # characters of a bad answer a re-ask sends back (`prompts.reask_messages`)
REASK_PROBLEM_TOKENS = 64  # the re-ask's "that answer was not valid: ..." line, generously

class TileKind(StrEnum):
    """The tiles of the estimate, in the order the console shows them: every prospect lands in exactly one."""

    TEMPLATE_ONLY = "template_only"
    MODEL_WRITTEN = "model_written"
    REVIEWED = "reviewed"
    NEEDS_DATA = "needs_data"


TILE_LABELS: dict[TileKind, str] = {
    TileKind.TEMPLATE_ONLY: "Template only",
    TileKind.MODEL_WRITTEN: "Model-written",
    TileKind.REVIEWED: "Premium review",
    TileKind.NEEDS_DATA: "Needs data",
}


@dataclass(frozen=True)
class Tile:
    """One group of prospects of the estimate, with what it costs at the low and the high end."""

    key: TileKind
    label: str
    prospects: int
    cost_low_usd: Decimal
    cost_high_usd: Decimal

    def as_json(self) -> dict[str, Any]:
        return {"key": str(self.key), "label": self.label, "prospects": self.prospects,
                "cost_low_usd": money_str(self.cost_low_usd), "cost_high_usd": money_str(self.cost_high_usd)}


@dataclass(frozen=True)
class Estimate:
    prospects: int = 0
    tiles: tuple[Tile, ...] = ()
    flagged: int = 0  # prospects whose fields carry prompt-injection text (template only)
    summaries: int = 0  # context summaries at the low end (one per company)
    calls_low: int = 0
    calls_high: int = 0
    input_tokens: int = 0
    output_tokens_low: int = 0
    output_tokens_high: int = 0
    cost_low_usd: Decimal = Decimal(0)
    cost_high_usd: Decimal = Decimal(0)
    remaining_usd: Decimal = Decimal(0)
    by_template: dict[str, int] = field(default_factory=dict)
    sampled: int | None = None  # prospects actually run when the batch is large (figures scaled up)

    def _tile(self, key: TileKind) -> int:
        return sum(t.prospects for t in self.tiles if t.key == key)

    @property
    def template_only(self) -> int:
        return self._tile(TileKind.TEMPLATE_ONLY)

    @property
    def model_written(self) -> int:
        return self._tile(TileKind.MODEL_WRITTEN)

    @property
    def reviewed(self) -> int:
        return self._tile(TileKind.REVIEWED)

    @property
    def needs_data(self) -> int:
        return self._tile(TileKind.NEEDS_DATA)

    @property
    def fits(self) -> bool:
        return self.cost_high_usd <= self.remaining_usd

    @property
    def verdict(self) -> str:
        if self.cost_high_usd <= self.remaining_usd:
            return "fits the remaining budget even at the high end"
        if self.cost_low_usd <= self.remaining_usd:
            return "may not fit: the high end exceeds the remaining budget; the batch pauses if the budget runs out"
        return "does not fit the remaining budget; the batch will pause when the budget runs out"

    def as_json(self) -> dict[str, Any]:
        return {
            "prospects": self.prospects, "sampled": self.sampled,
            "cost_low_usd": money_str(self.cost_low_usd), "cost_high_usd": money_str(self.cost_high_usd),
            "tiles": [t.as_json() for t in self.tiles],
            "template_only": self.template_only, "model_written": self.model_written, "reviewed": self.reviewed,
            "needs_data": self.needs_data, "flagged": self.flagged, "context_summaries": self.summaries,
            "calls_low": self.calls_low, "calls_high": self.calls_high, "input_tokens": self.input_tokens,
            "output_tokens_low": self.output_tokens_low, "output_tokens_high": self.output_tokens_high,
            "remaining_usd": money_str(self.remaining_usd), "fits": self.fits, "verdict": self.verdict,
            "by_template": self.by_template,
        }

    def scaled(self, total: int) -> Estimate:
        """The figures of a sample scaled up to the whole batch (tiles still add up to the prospects)."""
        if not self.prospects or total == self.prospects:
            return self
        factor = Decimal(total) / Decimal(self.prospects)
        counts = _apportion([t.prospects for t in self.tiles], total)
        tiles = tuple(replace(t, prospects=n, cost_low_usd=_money(t.cost_low_usd * factor),
                              cost_high_usd=_money(t.cost_high_usd * factor)) for t, n in zip(self.tiles, counts,
                                                                                              strict=True))

        def up(n: int) -> int:
            return int((n * factor).to_integral_value(ROUND_HALF_EVEN))

        return replace(
            self, prospects=total, tiles=tiles, sampled=self.prospects, flagged=up(self.flagged),
            summaries=up(self.summaries), calls_low=up(self.calls_low), calls_high=up(self.calls_high),
            input_tokens=up(self.input_tokens), output_tokens_low=up(self.output_tokens_low),
            output_tokens_high=up(self.output_tokens_high),
            cost_low_usd=sum((t.cost_low_usd for t in tiles), Decimal(0)),
            cost_high_usd=sum((t.cost_high_usd for t in tiles), Decimal(0)),
            by_template=dict(zip(self.by_template, _apportion(list(self.by_template.values()), total), strict=True)),
        )


def _money(value: Decimal) -> Decimal:
    return value.quantize(NANO, rounding=ROUND_HALF_EVEN)


def _apportion(counts: Sequence[int], total: int) -> list[int]:
    """Scale counts to sum to `total` (largest remainder), so scaled tiles still add up."""
    whole = sum(counts)
    if not whole:
        return list(counts)
    exact = [Decimal(c) * total / whole for c in counts]
    floors = [int(x) for x in exact]
    order = sorted(range(len(counts)), key=lambda i: exact[i] - floors[i], reverse=True)
    for i in order[: total - sum(floors)]:
        floors[i] += 1
    return floors


@dataclass(frozen=True)
class PricedCall:
    """One call the dry run would make, as priced at one end of the range."""

    task: str
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Decimal


class PricingGateway:
    """Stands where the gateway stands in the pipeline: routes and builds each request as the gateway does
    (`core.costs.gateway.build_request`), then prices it instead of sending it, and answers with the
    simulator's answer to the prompt. `worst=False` prices the low end, `worst=True` the high end."""

    def __init__(self, routing: RoutingTable, book: PriceBook, *, worst: bool, today: date,
                 factors: Mapping[str, Decimal] | None = None) -> None:
        self.routing = routing
        self.book = book
        self.worst = worst
        self.factors = dict(factors or {})
        self._today = today
        self._routes: dict[str, Route] = {}
        self.calls: list[PricedCall] = []
        # Characters a real model's answers may add to later prompts of the same prospect: the summary below its
        # cap (the snippet prompt grows), the snippets below the longest the pipeline accepts (the message under
        # review grows).
        self._summary_short_by = 0
        self._snippets_short_by = 0

    def route(self, task: str) -> Route:
        if task not in self._routes:
            self._routes[task] = self.routing.route(task, self._today)
        return self._routes[task]

    def take(self) -> list[PricedCall]:
        """The calls priced since the last `take` (one prospect's)."""
        calls, self.calls = self.calls, []
        self._summary_short_by = self._snippets_short_by = 0
        return calls

    async def call(self, task: str, messages: list[dict[str, str]], *, response_format: dict[str, Any] | None = None,
                   max_tokens: int | None = None, context: CallContext | None = None,
                   stage: str | None = None) -> ChatResult:
        route = self.route(task)
        request = build_request(route, messages, response_format=response_format, max_tokens=max_tokens)
        content = typical_answer(messages)
        prompt = count_messages(messages)
        if self.worst:
            prompt += self._growth(task, messages)
            cost = self.book.worst_case(route.models, prompt, request.max_tokens, self.factors)
            self.calls.append(PricedCall(task, route.model, prompt, request.max_tokens, cost))
            if stage is not None and stage.endswith("#1"):  # `ask_json`: the answer may need its one re-ask
                again = prompt + min(request.max_tokens, REASK_LIMIT) + REASK_PROBLEM_TOKENS
                cost = self.book.worst_case(route.models, again, request.max_tokens, self.factors)
                self.calls.append(PricedCall(task, route.model, again, request.max_tokens, cost))
        else:
            model = next((m for m in route.models if self.book.has(m)), None)
            if model is None:
                raise UnknownModelPrice(f"no price for any model routed for {task}: {', '.join(route.models)}")
            out = min(count_text(content), request.max_tokens)
            self.calls.append(PricedCall(task, model, prompt, out, self.book.cost(model, prompt, out)))
        if task == "context":
            self._summary_short_by = max(0, SUMMARY_CAP - len(_answer_object(content).get("summary", content)))
        elif task == "personalize":
            snippets = _answer_object(content)
            self._snippets_short_by = sum(max(0, 2 * SNIPPET_CAP - len(str(v))) for v in snippets.values())
        return ChatResult(content=content, finish_reason="stop", model=route.model, prompt_tokens=prompt,
                          completion_tokens=count_text(content), cost_usd=Decimal(0), cost_source="estimated",
                          latency_ms=0, request_id="", attempts=1)

    def _growth(self, task: str, messages: Sequence[Mapping[str, str]]) -> int:
        """Prompt tokens a real model's answers can add to this prompt beyond the simulator's (a token per
        character, the most a plain-text character takes): a longer summary in the snippet prompt, longer
        snippets in the message under review (up to the step's limit, past which the guards stop it)."""
        if task == "personalize":
            return self._summary_short_by
        if task == "review":
            user = next((str(m.get("content", "")) for m in reversed(messages) if m.get("role") == "user"), "")
            data = prompts.read_data(user)
            room = max(0, int(data.get("max_chars") or 0) - len(str(data.get("message", ""))))
            return min(room, self._snippets_short_by)
        return 0


def _answer_object(content: str) -> dict[str, Any]:
    """The JSON object of a simulated answer ({} when it has none)."""
    try:
        value = extract_json_object(content)
    except VerdictError:
        return {}
    return value if isinstance(value, dict) else {}


class _ReadThroughSummaries(SummaryCache):
    """The low end: a company's summary is paid once, and not at all when this process already holds it."""

    def __init__(self, shared: SummaryCache) -> None:
        super().__init__()
        self.shared = shared

    def get(self, company: str, text: str) -> str | None:
        return super().get(company, text) or self.shared.get(company, text)


class _NoSummaries(SummaryCache):
    """The high end: concurrent items of one company may each pay for its summary."""

    def get(self, company: str, text: str) -> str | None:
        return None

    def put(self, company: str, text: str, summary: str) -> None:
        return None


def _review_the_guards_skipped(gw: PricingGateway, pipeline: Pipeline, result: Result,
                               fields: Mapping[str, str], options: Options) -> list[PricedCall]:
    """The high end of a prospect on the review rung whose model-written message the guards stopped in the dry
    run: a real model's message may pass them and go to review, at worst as long as the step allows."""
    traced = {step.name for step in result.trace}
    stopped = result.fallback and result.reason.startswith("guard failed")
    if result.rung != RUNG_REVIEW or not stopped or "model output" not in traced or "review" in traced:
        return []
    route = gw.route("review")
    max_chars = pipeline.max_chars(options.step, options.free_account)
    prompt = count_messages(prompts.review_messages("", fields, max_chars)) + max_chars
    calls = []
    for tokens in (prompt, prompt + min(route.max_tokens, REASK_LIMIT) + REASK_PROBLEM_TOKENS):  # and its re-ask
        calls.append(PricedCall("review", route.model, tokens, route.max_tokens,
                                gw.book.worst_case(route.models, tokens, route.max_tokens, gw.factors)))
    return calls


def _tile_of(result: Result, calls: Sequence[PricedCall]) -> TileKind:
    if result.state == "needs_data" and not calls:
        return TileKind.NEEDS_DATA
    if result.rung == RUNG_REVIEW:
        return TileKind.REVIEWED
    if result.rung == RUNG_WRITE:
        return TileKind.MODEL_WRITTEN
    return TileKind.TEMPLATE_ONLY


def _read_fields(app: App, prospect_ids: Sequence[int]) -> list[dict[str, str]]:
    found: dict[int, dict[str, str]] = {}
    wanted = list(dict.fromkeys(prospect_ids))
    with session_scope(app.engine) as s:
        for start in range(0, len(wanted), 500):
            chunk = wanted[start:start + 500]
            rows = s.exec(Prospect.__table__.select().where(Prospect.id.in_(chunk))).all()  # type: ignore[attr-defined]
            for row in rows:
                found[row.id] = prospect_fields(Prospect.model_validate(dict(row._mapping)))
    return [found[i] for i in prospect_ids if i in found]


async def _dry_run(app: App, people: Sequence[Mapping[str, str]], options: Options) -> Estimate:
    today = utcnow().date()
    book = app.price_book()
    library = library_specs(app)
    data_dir = app.settings.data_dir
    low_gw = PricingGateway(app.routing, book, worst=False, today=today)
    high_gw = PricingGateway(app.routing, book, worst=True, today=today, factors=budget.cost_factors(app.engine))
    low = Pipeline(low_gw, library, data_dir, _ReadThroughSummaries(app.summaries))  # type: ignore[arg-type]
    high = Pipeline(high_gw, library, data_dir, _NoSummaries())  # type: ignore[arg-type]
    counts = dict.fromkeys(TILE_LABELS, 0)
    costs_low = dict.fromkeys(TILE_LABELS, Decimal(0))
    costs_high = dict.fromkeys(TILE_LABELS, Decimal(0))
    by_template: dict[str, int] = {}
    flagged = summaries = calls_low = calls_high = tokens_in = out_low = out_high = 0
    for fields in people:
        result = await low.run(fields, options)
        priced_low = low_gw.take()
        result_high = await high.run(fields, options)
        priced_high = high_gw.take() + _review_the_guards_skipped(high_gw, high, result_high, fields, options)
        tile = _tile_of(result, priced_low)
        counts[tile] += 1
        costs_low[tile] += sum((c.cost_usd for c in priced_low), Decimal(0))
        costs_high[tile] += sum((c.cost_usd for c in priced_high), Decimal(0))
        spec, _ = low.pick(fields, options)
        by_template[spec.name] = by_template.get(spec.name, 0) + 1
        flagged += bool(result.flags)
        summaries += sum(c.task == "context" for c in priced_low)
        calls_low += len(priced_low)
        calls_high += len(priced_high)
        tokens_in += sum(c.input_tokens for c in priced_low)
        out_low += sum(c.output_tokens for c in priced_low)
        out_high += sum(c.output_tokens for c in priced_high)
    tiles = tuple(Tile(key, label, counts[key], _money(costs_low[key]), _money(costs_high[key]))
                  for key, label in TILE_LABELS.items())
    return Estimate(
        prospects=len(people), tiles=tiles, flagged=flagged, summaries=summaries, calls_low=calls_low,
        calls_high=calls_high, input_tokens=tokens_in, output_tokens_low=out_low, output_tokens_high=out_high,
        cost_low_usd=sum((t.cost_low_usd for t in tiles), Decimal(0)),
        cost_high_usd=sum((t.cost_high_usd for t in tiles), Decimal(0)),
        remaining_usd=app.budget_state().remaining_usd, by_template=by_template,
    )


def _sample(items: Sequence[Any]) -> Sequence[Any]:
    if len(items) <= SAMPLE:
        return items
    stride = len(items) / SAMPLE
    return [items[int(i * stride)] for i in range(SAMPLE)]


def estimate_people(app: App, people: Sequence[Mapping[str, str]], *, step: str = "connection_request",
                    template_name: str | None = None) -> Estimate:
    """Estimate a batch of these prospects (their template fields, as `prospect_fields` gives them)."""
    options = options_for(app, step=step, template_name=template_name)
    return asyncio.run(_dry_run(app, _sample(people), options)).scaled(len(people))


def estimate(app: App, prospect_ids: Sequence[int], *, step: str = "connection_request",
             template_name: str | None = None) -> Estimate:
    """Estimate a batch of these stored prospects by a dry run; above `SAMPLE` prospects an evenly spaced
    sample is run and scaled up. Writes nothing and calls no model."""
    options = options_for(app, step=step, template_name=template_name)
    people = _read_fields(app, _sample(prospect_ids))
    return asyncio.run(_dry_run(app, people, options)).scaled(len(prospect_ids))


def file_people(data: bytes) -> list[dict[str, str]]:
    """The prospects a CSV file would import, as template fields, without storing anything (rows the import
    would reject, and in-file duplicates, left out)."""
    from core.people.prospects import build_prospect
    from core.people.reading import RowError, open_table
    from core.people.rows import ProspectParser

    table = open_table(data)
    parser = ProspectParser(table.headers)
    people = []
    for record in table.records():
        if isinstance(record, RowError):
            continue
        kind, row = parser.parse(*record)
        if kind == "row" and not isinstance(row, RowError):
            people.append(prospect_fields(build_prospect(row.fields, row.custom, row.identity, "estimate")))
    return people
