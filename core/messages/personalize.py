"""One prospect through the pipeline: select a template, fill it, write only what needs writing, guard,
review when the prospect is worth it, and fall back to the safe template when anything fails.

The ladder (`choose_rung`) decides how much money a prospect may cost: template only, model writing, or
model writing plus premium review, from the prospect's value and the month's budget state. Every model
call goes through the gateway, so each token is reserved, logged and settled. The result carries a
step-by-step trace the Preview page shows and the batch runner stores.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

from core.app import App
from core.costs import budget
from core.costs.gateway import CallContext, Gateway
from core.llm.client import ChatResult
from core.llm.errors import BudgetExceededError, LLMError
from core.llm.tokens import count_messages
from core.messages import prompts
from core.messages.guards import GuardResult, all_passed, check_message, failed_reasons, load_banned_phrases
from core.messages.injection import InjectionFlag, screen_fields
from core.messages.library import markers as load_marker_descriptions
from core.messages.library import specs as library_specs
from core.messages.library import steps as load_step_specs
from core.messages.review import ReviewOutcome, review_message
from core.messages.structured import VerdictError, ask_json, extract_json_object
from core.messages.summaries import SummaryCache
from core.messages.templates import Rendered, TemplateSpec, fill_markers, preview_text, render, select_template
from core.messages.textfold import strip_invisible
from core.people.columns import parse_company_size

RUNG_TEMPLATE = "template_only"
RUNG_WRITE = "model_writing"
RUNG_REVIEW = "premium_review"

LONG_CONTEXT_CHARS = 400  # recent news longer than this is summarized first (context route)
SNIPPET_CAP = 110
TOP_VALUE_FACTOR = 5  # "highest-value" under throttling: company size above 5x the high-value threshold


@lru_cache(maxsize=4)
def banned_phrases(data_dir: Path) -> tuple[str, ...]:
    return tuple(load_banned_phrases(data_dir / "banned_phrases.txt"))


@dataclass
class TraceStep:
    name: str
    text: str
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)

    def as_json(self) -> dict[str, Any]:
        return {"name": self.name, "text": self.text, "model": self.model, "input_tokens": self.input_tokens,
                "output_tokens": self.output_tokens, "cost_usd": str(self.cost_usd)}


@dataclass
class Result:
    message: str
    template: str
    step: str
    state: str  # ready | fallback | needs_data | review_failed | failed
    rung: str
    selection_reason: str
    reason: str = ""
    used_ai: bool = False
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    guards: list[GuardResult] = field(default_factory=list)
    review: ReviewOutcome | None = None
    fallback: bool = False
    flags: list[InjectionFlag] = field(default_factory=list)
    trace: list[TraceStep] = field(default_factory=list)
    template_text: str = ""
    variant: str = ""

    def add_call(self, name: str, result: ChatResult, text: str) -> None:
        self.input_tokens += result.prompt_tokens
        self.output_tokens += result.completion_tokens
        self.cost_usd += result.cost_usd
        self.trace.append(TraceStep(name, text, result.model, result.prompt_tokens, result.completion_tokens,
                                    result.cost_usd))

    def note(self, name: str, text: str) -> None:
        self.trace.append(TraceStep(name, text))

    def guards_json(self) -> list[dict[str, Any]]:
        return [{"name": g.name, "passed": g.passed, "detail": g.detail} for g in self.guards]

    def as_json(self) -> dict[str, Any]:
        return {
            "message": self.message,
            "template": self.template,
            "step": self.step,
            "state": self.state,
            "rung": self.rung,
            "used_ai": self.used_ai,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": str(self.cost_usd),
            "guards": self.guards_json(),
            "review": self.review.as_json() if self.review else None,
            "fallback": self.fallback,
            "reason": self.reason,
            "selection_reason": self.selection_reason,
            "flags": [dataclasses.asdict(f) for f in self.flags],
        }


@dataclass(frozen=True)
class Options:
    """Per-run choices; the defaults suit a connection request from a premium LinkedIn account."""

    step: str = "connection_request"
    template_name: str | None = None
    assigned: str | None = None
    free_account: bool = False
    high_value_size: int = 1000
    budget_level: str = budget.LEVEL_NORMAL
    allow_review: bool = True


def is_high_value(company_size: int | None, threshold: int) -> bool:
    return company_size is not None and company_size > threshold


def choose_rung(needs_writing: bool, company_size: int | None, options: Options, flagged: bool) -> tuple[str, str]:
    """The progressive-enhancement ladder: (rung, why) from value, budget state and the injection screen."""
    level = options.budget_level
    if level in (budget.LEVEL_STOPPED, budget.LEVEL_TEMPLATE_ONLY):
        return RUNG_TEMPLATE, f"budget level {level}: no model calls"
    if flagged:
        return RUNG_TEMPLATE, "prospect fields flagged for prompt injection: no model sees them"
    threshold = options.high_value_size
    if level == budget.LEVEL_REVIEW_TOP:
        threshold = options.high_value_size * TOP_VALUE_FACTOR
    review = options.allow_review and is_high_value(company_size, threshold)
    if review:
        return RUNG_REVIEW, f"company size {company_size:,} is above {threshold:,}: premium review"
    if needs_writing:
        return RUNG_WRITE, "the template has writing markers"
    return RUNG_TEMPLATE, "plain variables only: no model needed"


class Pipeline:
    """Holds what one run shares: the gateway, the template library, step caps, markers, the summary cache."""

    def __init__(self, gw: Gateway | None, library: Sequence[TemplateSpec], data_dir: Path,
                 summaries: SummaryCache | None = None) -> None:
        self.gw = gw
        self.library = list(library)
        self.by_name = {t.name: t for t in self.library}
        self.steps = load_step_specs(data_dir)
        self.markers = load_marker_descriptions(data_dir)
        self.banned = banned_phrases(data_dir)
        self.summaries = summaries or SummaryCache()

    # ---- pieces ----
    def max_chars(self, step: str, free_account: bool) -> int:
        spec = self.steps[step]
        return spec.max_chars_free if free_account and spec.max_chars_free else spec.max_chars

    def safe_template(self, step: str) -> TemplateSpec:
        name = self.steps[step].safe_template
        if name not in self.by_name:
            raise LookupError(f"the safe template {name!r} for step {step!r} is not in the library")
        return self.by_name[name]

    def pick(self, fields: Mapping[str, str], options: Options) -> tuple[TemplateSpec, str]:
        if options.step not in self.steps:
            raise LookupError(f"unknown step {options.step!r}; steps: {', '.join(self.steps)}")
        if options.template_name:
            spec = self.by_name.get(options.template_name)
            if spec is None:
                raise LookupError(f"no template named {options.template_name!r}")
            return spec, f"chosen by hand: {spec.name}"
        size = parse_company_size(fields.get("company_size"))
        return select_template(options.step, fields.get("industry"), size, self.library, options.assigned)

    def check(self, text: str, fields: Mapping[str, str], template_text: str, max_chars: int) -> list[GuardResult]:
        inputs = {**fields, "__template__": template_text}
        return check_message(text, inputs=inputs, max_chars=max_chars, banned_phrases=self.banned)

    # ---- the pipeline ----
    async def run(self, fields: Mapping[str, str], options: Options, context: CallContext | None = None) -> Result:
        fields = {k: ("" if v is None else str(v)) for k, v in fields.items()}
        spec, why = self.pick(fields, options)
        result = Result(message="", template=spec.name, step=options.step, state="ready", rung=RUNG_TEMPLATE,
                        selection_reason=why, template_text=spec.text)
        result.note("select", f"{spec.name}: {why}")
        flags = screen_fields(fields)
        result.flags = flags
        if flags:
            result.note("injection screen", "; ".join(f"{f.field}: {f.detail}" for f in flags))
        max_chars = self.max_chars(options.step, options.free_account)

        rendered = render(spec.text, fields, self.markers)
        result.note("render", preview_text(rendered))
        if rendered.needs_data:
            result.state = "needs_data"
            result.reason = f"needs data: {', '.join(rendered.missing)}"
            result.note("hold", result.reason)
            return result

        size = parse_company_size(fields.get("company_size"))
        rung, rung_why = choose_rung(rendered.needs_writing, size, options, bool(flags))
        result.rung = rung
        result.note("ladder", f"{rung}: {rung_why}")

        if rendered.needs_writing:
            if rung == RUNG_TEMPLATE or self.gw is None:
                return self._fallback(result, fields, options, max_chars, rung_why if rung == RUNG_TEMPLATE
                                      else "no model available")
            try:
                texts = await self._write(rendered, fields, result, context)
            except BudgetExceededError:
                raise
            except (LLMError, VerdictError, ValueError) as exc:
                return self._fallback(result, fields, options, max_chars, f"model writing failed: {exc}")
            result.used_ai = True
            message = fill_markers(rendered, texts)
        else:
            message = rendered.text

        result.guards = self.check(message, fields, spec.text, max_chars)
        result.note("guards", _guard_summary(result.guards))
        if not all_passed(result.guards):
            return self._fallback(result, fields, options, max_chars,
                                  "guard failed: " + "; ".join(failed_reasons(result.guards)))
        result.message = message

        if rung == RUNG_REVIEW and self.gw is not None:
            try:
                outcome = await review_message(self.gw, message, fields, max_chars, context)
            except BudgetExceededError:
                raise
            except LLMError as exc:
                outcome = ReviewOutcome(status="failed", approved=False, score=None, issues=[], suggestions=[],
                                        problem=f"review call failed: {exc}")
            result.review = outcome
            for call, raw in zip(outcome.calls, outcome.raw, strict=True):
                result.add_call("review", call, raw)
            result.note("review verdict", _review_summary(outcome))
            if outcome.status != "ok":
                result.state = "review_failed"
                result.reason = outcome.problem
                return result
            if not outcome.approved:
                return self._fallback(result, fields, options, max_chars,
                                      "review did not approve: " + ("; ".join(outcome.issues) or "no reason given"))
        result.note("final", result.message)
        return result

    async def _summary(self, fields: dict[str, str], result: Result, context: CallContext | None) -> None:
        news = fields.get("recent_news", "")
        if len(news) <= LONG_CONTEXT_CHARS or self.gw is None:
            return
        company = fields.get("company_name", "")
        cached = self.summaries.get(company, news)
        if cached is not None:
            result.note("context summary (cached)", cached)
            fields["recent_news"] = cached
            return
        call = await self.gw.call("context", prompts.context_messages(company, news), context=context, stage="context",
                                  response_format=prompts.response_format("summary", {
                                      "type": "object", "properties": {"summary": {"type": "string"}},
                                      "required": ["summary"], "additionalProperties": False}))
        try:
            value = extract_json_object(call.content)
            summary = str(value["summary"]) if isinstance(value, dict) and value.get("summary") else ""
        except VerdictError:
            summary = ""
        summary = prompts.cap(summary or call.content, 300)
        result.add_call("context summary", call, summary)
        self.summaries.put(company, news, summary)
        fields["recent_news"] = summary

    async def _write(self, rendered: Rendered, fields: Mapping[str, str], result: Result,
                     context: CallContext | None) -> dict[str, str]:
        assert self.gw is not None
        working = dict(fields)
        await self._summary(working, result, context)
        markers = list(rendered.markers)
        messages = prompts.personalize_messages(markers, self.markers, working, snippet_cap=SNIPPET_CAP)
        fmt = prompts.response_format("snippets", prompts.markers_schema(markers))
        route = self.gw.route("personalize")
        result.note("prompt", _show_messages(messages) + f"\n\n[{count_messages(messages)} prompt tokens, "
                    f"route {route.model}, max_tokens {route.max_tokens}]")
        answer = await ask_json(self.gw, "personalize", messages, lambda content: _snippets(content, markers),
                                response_format=fmt, context=context)
        for i, call in enumerate(answer.calls):
            result.add_call("model output" if i == 0 else "model output (re-ask)", call, call.content)
        result.model = answer.model
        if answer.value is None:
            raise ValueError(f"the model's snippets were unusable twice ({answer.problem})")
        return answer.value

    def _fallback(self, result: Result, fields: Mapping[str, str], options: Options, max_chars: int,
                  why: str) -> Result:
        safe = self.safe_template(options.step)
        rendered = render(safe.text, fields, self.markers)
        result.fallback = True
        result.reason = why
        result.template = safe.name
        result.template_text = safe.text
        if rendered.needs_data or rendered.needs_writing:
            result.state = "needs_data"
            result.reason = f"{why}; the safe template {safe.name} cannot be filled either"
            return result
        result.message = rendered.text
        result.guards = self.check(rendered.text, fields, safe.text, max_chars)
        result.note("fallback", f"{safe.name}: {why}")
        result.note("guards (safe template)", _guard_summary(result.guards))
        if not all_passed(result.guards):
            result.state = "failed"
            result.reason = f"{why}; the safe template also failed: " + "; ".join(failed_reasons(result.guards))
            result.message = ""
            return result
        result.state = "fallback"
        result.note("final", result.message)
        return result


def _snippets(content: str, markers: Sequence[str]) -> dict[str, str]:
    value = extract_json_object(content)
    if not isinstance(value, dict):
        raise ValueError("the answer is not a JSON object")
    out: dict[str, str] = {}
    for marker in markers:
        text = value.get(marker)
        # Zero-width, bidi-control and tag characters show nothing: removed, so the guards check what is seen.
        text = " ".join(strip_invisible(text).split()) if isinstance(text, str) else ""
        if not text:
            raise ValueError(f"no text for {marker}")
        if len(text) > SNIPPET_CAP * 2:
            raise ValueError(f"{marker} is {len(text)} characters; at most {SNIPPET_CAP} were asked for")
        out[marker] = text
    return out


def _guard_summary(results: Sequence[GuardResult]) -> str:
    return "\n".join(f"{'PASS' if g.passed else 'FAIL'} {g.name}{': ' + g.detail if g.detail else ''}"
                     for g in results)


def _review_summary(outcome: ReviewOutcome) -> str:
    if outcome.status != "ok":
        return outcome.problem
    verdict = "approved" if outcome.approved else "not approved"
    lines = [f"{verdict}, score {outcome.score}"]
    lines += [f"issue: {i}" for i in outcome.issues] + [f"suggestion: {s}" for s in outcome.suggestions]
    return "\n".join(lines)


def _show_messages(messages: Sequence[Mapping[str, str]]) -> str:
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def parse_prospect_json(text: str) -> dict[str, str]:
    """A prospect typed as JSON on the command line or in the console."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"--prospect is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise ValueError("--prospect must be a JSON object of field -> value")
    return {str(k): "" if v is None else str(v) for k, v in value.items()}


def options_for(app: App, **overrides: Any) -> Options:
    """Options from the app's settings and the budget's current ladder level, plus explicit overrides."""
    base: dict[str, Any] = {"high_value_size": app.settings.high_value_company_size}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if "budget_level" not in base:
        base["budget_level"] = app.budget_state().level
    return Options(**base)


async def personalize_one(app: App, fields: Mapping[str, str], options: Options,
                          context: CallContext | None = None) -> Result:
    async with app.gateway() as gw:
        pipeline = Pipeline(gw, library_specs(app), app.settings.data_dir, app.summaries)
        return await pipeline.run(fields, options, context)


async def preview_sequence(app: App, fields: Mapping[str, str], **overrides: Any) -> list[Result]:
    """Every step of the prospect's sequence at once (safe steps excluded)."""
    async with app.gateway() as gw:
        pipeline = Pipeline(gw, library_specs(app), app.settings.data_dir, app.summaries)
        return [await pipeline.run(fields, options_for(app, step=step, **overrides)) for step in pipeline.steps]
