"""Pre-flight estimate of a batch: which rung each prospect takes, tokens and cost as a range, budget fit.

Nothing is called: templates are selected and rendered exactly as the worker will, prompts are built and
counted with the real tokenizer, and costs are priced with the price book. The low end assumes typical answer
lengths; the high end assumes every call uses its full `max_tokens` and every JSON answer needs its one re-ask.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.app import App
from core.llm.tokens import count_messages
from core.messages import prompts
from core.messages.library import markers as marker_descriptions
from core.messages.library import specs as library_specs
from core.messages.personalize import (
    LONG_CONTEXT_CHARS,
    RUNG_REVIEW,
    RUNG_TEMPLATE,
    RUNG_WRITE,
    SNIPPET_CAP,
    Pipeline,
    choose_rung,
    options_for,
)
from core.messages.templates import render
from core.people.columns import parse_company_size
from core.people.prospects import prospect_fields
from core.store.db import session_scope
from core.store.models import Prospect, money_str, utcnow

TYPICAL_SNIPPET_TOKENS = 30  # per marker, JSON included
TYPICAL_SUMMARY_TOKENS = 45
TYPICAL_REVIEW_TOKENS = 40
TYPICAL_MESSAGE_CHARS = 220


@dataclass
class Estimate:
    prospects: int = 0
    template_only: int = 0
    model_written: int = 0
    reviewed: int = 0
    needs_data: int = 0
    flagged: int = 0
    summaries: int = 0
    input_tokens: int = 0
    output_tokens_low: int = 0
    output_tokens_high: int = 0
    cost_low_usd: Decimal = Decimal(0)
    cost_high_usd: Decimal = Decimal(0)
    remaining_usd: Decimal = Decimal(0)
    by_template: dict[str, int] = field(default_factory=dict)
    sampled: int | None = None  # prospects actually examined when the batch is large (figures scaled up)

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
            "prospects": self.prospects, "template_only": self.template_only, "model_written": self.model_written,
            "reviewed": self.reviewed, "needs_data": self.needs_data, "flagged": self.flagged,
            "context_summaries": self.summaries, "input_tokens": self.input_tokens,
            "output_tokens_low": self.output_tokens_low, "output_tokens_high": self.output_tokens_high,
            "cost_low_usd": money_str(self.cost_low_usd), "cost_high_usd": money_str(self.cost_high_usd),
            "remaining_usd": money_str(self.remaining_usd), "fits": self.fits, "verdict": self.verdict,
            "by_template": self.by_template, "sampled": self.sampled,
        }

    def scale(self, total: int) -> None:
        """Scale figures measured on a sample up to the whole batch."""
        if not self.prospects or total == self.prospects:
            return
        factor = Decimal(total) / Decimal(self.prospects)
        self.sampled = self.prospects
        for name in ("template_only", "model_written", "reviewed", "needs_data", "flagged", "summaries",
                     "input_tokens", "output_tokens_low", "output_tokens_high"):
            setattr(self, name, round(getattr(self, name) * factor))
        self.by_template = {k: round(v * factor) for k, v in self.by_template.items()}
        self.cost_low_usd *= factor
        self.cost_high_usd *= factor
        self.prospects = total


SAMPLE = 2000


def estimate(app: App, prospect_ids: Sequence[int], *, step: str = "connection_request",
             template_name: str | None = None) -> Estimate:
    """Estimate a batch; above 2,000 prospects an evenly spaced sample is examined and scaled up."""
    total = len(prospect_ids)
    if total > SAMPLE:
        stride = total / SAMPLE
        prospect_ids = [prospect_ids[int(i * stride)] for i in range(SAMPLE)]
    today = utcnow().date()
    routes = {t: app.routing.route(t, today) for t in ("personalize", "context", "review")}
    book = app.price_book()
    pipeline = Pipeline(None, library_specs(app), app.settings.data_dir)
    descriptions = marker_descriptions(app.settings.data_dir)
    options = options_for(app, step=step, template_name=template_name)
    est = Estimate(remaining_usd=app.budget_state().remaining_usd)
    companies: set[str] = set()

    def price(task: str, tokens_in: int, tokens_out: int) -> Decimal:
        return book.cost(routes[task].model, tokens_in, tokens_out)

    with session_scope(app.engine) as s:
        for start in range(0, len(prospect_ids), 500):
            chunk = list(prospect_ids[start:start + 500])
            rows = s.exec(Prospect.__table__.select().where(Prospect.id.in_(chunk))).all()  # type: ignore[attr-defined]
            for row in rows:
                fields = prospect_fields(Prospect.model_validate(dict(row._mapping)))
                est.prospects += 1
                spec, _ = pipeline.pick(fields, options)
                rendered = render(spec.text, fields, pipeline.markers)
                if rendered.needs_data:
                    est.needs_data += 1
                    continue
                flagged = bool(row.flags)  # screened at import
                est.flagged += flagged
                size = parse_company_size(fields.get("company_size"))
                rung, _ = choose_rung(rendered.needs_writing, size, options, flagged)
                est.by_template[spec.name] = est.by_template.get(spec.name, 0) + 1
                writes = rendered.needs_writing and rung != RUNG_TEMPLATE
                if writes:
                    est.model_written += 1
                    news = fields.get("recent_news", "")
                    if len(news) > LONG_CONTEXT_CHARS and fields.get("company_name", "").casefold() not in companies:
                        companies.add(fields.get("company_name", "").casefold())
                        est.summaries += 1
                        msgs = prompts.context_messages(fields.get("company_name", ""), news)
                        n_in = count_messages(msgs)
                        _add(est, price, "context", n_in, TYPICAL_SUMMARY_TOKENS, routes["context"].max_tokens)
                        fields = {**fields, "recent_news": news[:150]}
                    msgs = prompts.personalize_messages(list(rendered.markers), descriptions, fields,
                                                        snippet_cap=SNIPPET_CAP)
                    n_in = count_messages(msgs)
                    typical = TYPICAL_SNIPPET_TOKENS * len(rendered.markers)
                    _add(est, price, "personalize", n_in, typical, routes["personalize"].max_tokens, reask=True)
                elif rung == RUNG_TEMPLATE:
                    est.template_only += 1
                if rung == RUNG_REVIEW:
                    est.reviewed += 1
                    msgs = prompts.review_messages("x" * TYPICAL_MESSAGE_CHARS, fields, 300)
                    _add(est, price, "review", count_messages(msgs), TYPICAL_REVIEW_TOKENS,
                         routes["review"].max_tokens, reask=True)
                elif rung == RUNG_WRITE and not writes:
                    est.template_only += 1
    est.scale(total)
    return est


def _add(est: Estimate, price: Any, task: str, n_in: int, typical_out: int, max_out: int, reask: bool = False) -> None:
    est.input_tokens += n_in
    est.output_tokens_low += typical_out
    est.cost_low_usd += price(task, n_in, typical_out)
    # Worst case: the full max_tokens, and for JSON answers one re-ask resending the prompt plus the bad answer.
    high_in, high_out = (n_in * 2 + max_out, max_out * 2) if reask else (n_in, max_out)
    est.output_tokens_high += high_out
    est.cost_high_usd += price(task, high_in, high_out)
