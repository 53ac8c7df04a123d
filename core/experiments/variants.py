"""Template variants written by a model, kept only when they are safe to put into an experiment.

The seed's `optimizeTemplate` asks Llama 3 8B to rewrite a template "based on performance data". Here
that call goes through the gateway (routed, reserved, logged like every other call) with the house
prompt (`prompts.SYSTEM["optimize_template"]`, JSON answer with a strict schema), and every candidate the
model returns is untrusted text that must earn its place in the library:

1. it parses as a template (`templates.analyze`),
2. it uses exactly the base template's plain variables and writing markers (a variant that drops
   `{{ recent_achievement }}` or invents `{{ discount_code }}` would not be comparable, or would block
   every prospect),
3. a rendering with sample prospect values and placeholder sentences in the markers passes every guard
   (length for the step, banned phrases, links or contacts not in the base template, markup, echoes of
   the prompt).

A candidate that fails is discarded and the report says why. A kept one is stored with
`library.add_template` under a fresh name `<base>_v<k>`, with `parent_id` pointing at the base and a
`lineage` record of the prompt, date, model and cost of the call that wrote it.

Bulk generation (every template of an industry at once) is priced before it runs: `estimate_bulk`
counts the prompt tokens and prices each call at the route's worst case, which is also what the budget
reserves. It runs as a batch in the worker (`core.batches.kinds.variants`, one item per template), which calls
`generate_with` for each.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from core.app import App
from core.costs import budget
from core.costs.gateway import CallContext, Gateway
from core.costs.prices import UnknownModelPrice
from core.costs.routing import Route
from core.llm.errors import BudgetExceededError, LLMError
from core.llm.tokens import count_messages, count_text
from core.messages.guards import check_message, failed_reasons
from core.messages.library import add_template, get_template, list_templates, markers, steps
from core.messages.personalize import banned_phrases
from core.messages.prompts import optimize_messages, response_format
from core.messages.structured import VerdictError, extract_json_object
from core.messages.templates import TemplateError, analyze, fill_markers, render
from core.store.models import Template, money_str, utcnow

TASK = "optimize_template"
MAX_VARIANTS = 10  # per call: more would not fit a small model's answer reliably
MAX_OUTPUT_TOKENS = 4096  # Llama 3 8B has an 8K context; the prompt needs the rest
NAME_LIMIT = 80  # library.add_template's limit

VARIANTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"variants": {"type": "array", "items": {"type": "string"}}},
    "required": ["variants"],
    "additionalProperties": False,
}

# Sample prospect used to render candidates for the guards: realistic lengths, no links or contacts.
SAMPLE_FIELDS: dict[str, str] = {
    "first_name": "Alexandra",
    "last_name": "Morgan",
    "company_name": "Northwind Analytics",
    "job_title": "Head of Revenue Operations",
    "industry": "Software",
    "company_size": "250",
    "linkedin_url": "https://www.linkedin.com/in/alexandra-morgan-sample",
    "email": "alexandra.morgan@example.com",
    "recent_news": "Northwind Analytics opened a new office in Lisbon to serve European customers.",
    "notes": "Prefers short messages.",
    "sender_account": "sample-sender",
}
# What a model typically writes into a marker (about 90 characters, the personalization snippet size).
SAMPLE_MARKER_TEXT: dict[str, str] = {
    "recent_achievement": "Congratulations on opening the Lisbon office, a big step for serving European customers.",
    "company_insight": "Northwind's reporting product seems to be winning mid-market teams that outgrew spreadsheets.",
    "industry_trend": "Revenue teams everywhere are being asked to forecast with fewer tools and tighter budgets.",
}
GENERIC_MARKER_TEXT = "Your team's move into new markets this year stood out when I read about Northwind."


@dataclass
class Candidate:
    """One text the model proposed, and what became of it."""

    text: str
    kept: bool
    reason: str = ""  # why it was discarded; empty when kept
    name: str | None = None  # library name when kept
    sample: str = ""  # the guarded rendering with sample values (empty when it did not render)

    def as_json(self) -> dict[str, Any]:
        return {"text": self.text, "kept": self.kept, "reason": self.reason, "name": self.name,
                "sample": self.sample}


@dataclass
class VariantReport:
    base: str
    step: str
    requested: int
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    candidates: list[Candidate] = field(default_factory=list)
    problem: str = ""  # the answer could not be used at all (call failed, no JSON, truncated)
    messages: list[dict[str, str]] = field(default_factory=list)

    @property
    def kept(self) -> list[Candidate]:
        return [c for c in self.candidates if c.kept]

    @property
    def discarded(self) -> list[Candidate]:
        return [c for c in self.candidates if not c.kept]

    def as_json(self) -> dict[str, Any]:
        return {
            "base": self.base,
            "step": self.step,
            "requested": self.requested,
            "model": self.model,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost_usd": money_str(self.cost_usd),
            "kept": [c.name for c in self.kept],
            "discarded": len(self.discarded),
            "candidates": [c.as_json() for c in self.candidates],
            "problem": self.problem,
        }


# --------------------------------------------------------------------------------------------------
# Checking one candidate (pure: no database, no model)
# --------------------------------------------------------------------------------------------------


def _names(items: Sequence[str] | frozenset[str]) -> str:
    return ", ".join(f"{{{{ {n} }}}}" for n in sorted(items))


def sample_values(variables: frozenset[str] | set[str]) -> dict[str, str]:
    """Sample prospect values for every variable a template uses (custom ones get a short phrase)."""
    return {v: SAMPLE_FIELDS.get(v, f"sample {v.replace('_', ' ')}") for v in variables}


def sample_rendering(text: str, marker_descriptions: Mapping[str, str]) -> str:
    """The template rendered with sample values and a realistic sentence in each marker."""
    info = analyze(text, marker_descriptions)
    rendered = render(text, sample_values(info.variables), marker_descriptions)
    texts = {m: SAMPLE_MARKER_TEXT.get(m, GENERIC_MARKER_TEXT) for m in info.markers}
    return fill_markers(rendered, texts) if rendered.needs_writing else rendered.text


def check_candidate(
    candidate: str,
    base_text: str,
    marker_descriptions: Mapping[str, str],
    *,
    max_chars: int,
    banned: Sequence[str] = (),
) -> tuple[str, str]:
    """(reason it is refused or "", sample rendering or "") for one model-written variant of base_text.

    Links, e-mail addresses and phone numbers are allowed only when the sample prospect or the *base*
    template has them: a candidate cannot vouch for a link it introduced itself.
    """
    try:
        info = analyze(candidate, marker_descriptions)
    except TemplateError as exc:
        return f"not a valid template: {exc}", ""
    base = analyze(base_text, marker_descriptions)
    problems = []
    if base.markers - info.markers:
        problems.append(f"drops marker(s) {_names(base.markers - info.markers)}")
    if info.markers - base.markers:
        problems.append(f"adds marker(s) {_names(info.markers - base.markers)}")
    if base.variables - info.variables:
        problems.append(f"drops variable(s) {_names(base.variables - info.variables)}")
    if info.variables - base.variables:
        problems.append(f"adds variable(s) {_names(info.variables - base.variables)}")
    if problems:
        return "; ".join(problems) + " (a variant must keep exactly the base template's tags)", ""
    sample = sample_rendering(candidate, marker_descriptions)
    inputs = {**sample_values(info.variables), "__template__": base_text}
    results = check_message(sample, inputs=inputs, max_chars=max_chars, banned_phrases=banned)
    failed = failed_reasons(results)
    if failed:
        return "guard failed on a sample rendering: " + "; ".join(failed), sample
    return "", sample


def parse_variants(content: str) -> list[Any]:
    """The `variants` list of a model's JSON answer; raises VerdictError when there is none."""
    value = extract_json_object(content)
    if not isinstance(value, dict) or not isinstance(value.get("variants"), list):
        raise VerdictError('the answer has no "variants" list')
    return list(value["variants"])


# --------------------------------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------------------------------


def base_template(app: App, name: str) -> Template:
    base = get_template(app, name)
    if base is None:
        raise LookupError(f"no template named {name!r}")
    if base.step not in steps(app.settings.data_dir):
        raise ValueError(f"{name!r} is a safe fallback template (step {base.step!r}); only templates of a "
                         "sequence step get variants")
    return base


def check_count(n: int) -> None:
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_VARIANTS:
        raise ValueError(f"ask for 1 to {MAX_VARIANTS} variants at a time, got {n!r}")


def output_tokens_for(base_text: str, n: int, route: Route) -> int:
    """Enough output tokens for n variants as long as the base plus the JSON around them.

    The route's max_tokens (300 for optimize_template) suits one connection note, not three follow-ups
    of 1,000 characters; a cut-off answer would be paid for and unusable.
    """
    per_variant = math.ceil(count_text(base_text) * 1.3) + 16
    return max(route.max_tokens, min(MAX_OUTPUT_TOKENS, n * per_variant + 32))


def _unique_name(app: App, base_name: str, taken: set[str]) -> str:
    k = 1
    while True:
        suffix = f"_v{k}"
        name = base_name[: NAME_LIMIT - len(suffix)] + suffix
        if name not in taken and get_template(app, name) is None:
            taken.add(name)
            return name
        k += 1


def performance_data(performance: Mapping[str, Any] | None) -> dict[str, Any]:
    data = dict(performance or {})
    try:
        json.dumps(data)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"performance data must be plain JSON values (numbers, text, lists): {exc}") from None
    return data


async def generate_with(app: App, gw: Gateway, base: Template, n: int, performance: dict[str, Any], *,
                        context: CallContext | None = None) -> VariantReport:
    """n variants of `base` through `gw` (a batch item's gateway and `context` when run by the variants batch
    kind, `core.batches.kinds.variants`); the kept ones are stored in the library."""
    data_dir = app.settings.data_dir
    marker_descriptions = markers(data_dir)
    max_chars = steps(data_dir)[base.step].max_chars
    messages = optimize_messages(base.text, performance, n, max_chars)
    report = VariantReport(base=base.name, step=base.step, requested=n, messages=messages)
    route = gw.route(TASK)
    try:
        result = await gw.call(TASK, messages, response_format=response_format("template_variants", VARIANTS_SCHEMA),
                               max_tokens=output_tokens_for(base.text, n, route), context=context,
                               stage=None if context is None else TASK)
    except BudgetExceededError:
        raise
    except LLMError as exc:
        report.problem = f"the model call failed: {exc}"
        return report
    report.model = result.model
    report.input_tokens, report.output_tokens = result.prompt_tokens, result.completion_tokens
    report.cost_usd = result.cost_usd
    try:
        raw = parse_variants(result.content)
    except VerdictError as exc:
        cut = " (the answer was cut off at the token limit)" if result.finish_reason == "length" else ""
        report.problem = f"the answer could not be read: {exc}{cut}"
        return report

    banned = banned_phrases(data_dir)
    seen = {" ".join(base.text.split())}
    taken: set[str] = set()
    date = utcnow().isoformat()
    limit = 2 * n  # a runaway answer is not checked (or stored) without end
    for item in raw[:limit]:
        if not isinstance(item, str) or not item.strip():
            report.candidates.append(Candidate(text=str(item)[:2000], kept=False, reason="not a text"))
            continue
        text = item.strip()
        key = " ".join(text.split())
        if key in seen:
            same = "the same as the base template" if key == " ".join(base.text.split()) else "a repeat"
            report.candidates.append(Candidate(text=text, kept=False, reason=same))
            continue
        seen.add(key)
        reason, sample = check_candidate(text, base.text, marker_descriptions, max_chars=max_chars, banned=banned)
        if reason:
            report.candidates.append(Candidate(text=text, kept=False, reason=reason, sample=sample))
            continue
        name = _unique_name(app, base.name, taken)
        lineage = {"parent": base.name, "prompt": messages, "date": date, "cost_usd": money_str(result.cost_usd),
                   "model": result.model, "performance": performance,
                   "cost_note": f"cost of the one call that proposed {len(raw)} candidate(s)"}
        variables = sorted(analyze(text, marker_descriptions).variables)  # the base's, already accepted
        try:
            add_template(app, name, base.step, text, industry=base.industry, size_band=base.size_band,
                         parent_id=base.id, lineage=lineage, custom_fields=variables)
        except (TemplateError, ValueError) as exc:
            report.candidates.append(Candidate(text=text, kept=False, reason=f"refused by the library: {exc}",
                                               sample=sample))
            continue
        report.candidates.append(Candidate(text=text, kept=True, name=name, sample=sample))
    if len(raw) > n:
        ignored = f"; only the first {limit} were checked" if len(raw) > limit else ""
        report.problem = f"the model returned {len(raw)} candidates for {n} asked{ignored}"
    return report


async def generate_variants(app: App, base_template_name: str, n: int,
                            performance: dict[str, Any] | None = None) -> VariantReport:
    """Ask the optimize_template route for n variants of a template; store the ones that pass the checks.

    Raises LookupError for an unknown template, ValueError for a bad count or a safe template, and
    BudgetExceededError when the month's budget cannot cover the call. Other call failures and unreadable
    answers are reported in `VariantReport.problem` (the call's cost, if any, is still in the ledger).
    """
    check_count(n)
    base = base_template(app, base_template_name)
    data = performance_data(performance)
    async with app.gateway() as gw:
        return await generate_with(app, gw, base, n, data)


# --------------------------------------------------------------------------------------------------
# Bulk generation per industry
# --------------------------------------------------------------------------------------------------


def bulk_templates(app: App, industry: str | None) -> list[Template]:
    """Templates that bulk generation works on: an industry's (None: untargeted ones), excluding safe
    fallbacks and templates that are themselves generated variants."""
    wanted = " ".join((industry or "").split()).casefold()
    step_names = set(steps(app.settings.data_dir))
    return [t for t in list_templates(app)
            if t.step in step_names and t.parent_id is None
            and " ".join((t.industry or "").split()).casefold() == wanted]


def industries(app: App) -> list[str]:
    """Industries that have at least one template (for choosing a bulk run)."""
    return sorted({t.industry for t in list_templates(app) if t.industry}, key=str.casefold)


@dataclass
class BulkEstimate:
    industry: str | None
    n_per_template: int
    model: str
    templates: list[dict[str, Any]]  # name, step, prompt_tokens, max_output_tokens, worst_case_usd
    worst_case_usd: Decimal
    typical_usd: Decimal  # prompt plus variants as long as the base, at the route's first model

    def as_json(self) -> dict[str, Any]:
        return {"industry": self.industry, "n_per_template": self.n_per_template, "model": self.model,
                "calls": len(self.templates), "templates": self.templates,
                "worst_case_usd": money_str(self.worst_case_usd), "typical_usd": money_str(self.typical_usd)}


def _estimate(app: App, templates: Sequence[Template], n: int, industry: str | None) -> BulkEstimate:
    check_count(n)
    route = app.routing.route(TASK, utcnow().date())
    data_dir = app.settings.data_dir
    rows: list[dict[str, Any]] = []
    worst = typical = Decimal(0)
    factors = budget.cost_factors(app.engine)
    for t in templates:
        messages = optimize_messages(t.text, {}, n, steps(data_dir)[t.step].max_chars)
        prompt_tokens = count_messages(messages)
        max_out = output_tokens_for(t.text, n, route)
        cost = app.price_book().worst_case(route.models, prompt_tokens, max_out, factors)
        likely_out = min(max_out, n * (count_text(t.text) + 8) + 16)
        try:
            likely = app.price_book().cost(route.model, prompt_tokens, likely_out)
        except UnknownModelPrice:
            likely = cost
        rows.append({"name": t.name, "step": t.step, "prompt_tokens": prompt_tokens, "max_output_tokens": max_out,
                     "worst_case_usd": money_str(cost)})
        worst += cost
        typical += likely
    return BulkEstimate(industry=industry, n_per_template=n, model=route.model, templates=rows,
                        worst_case_usd=worst, typical_usd=typical)


def estimate_bulk(app: App, industry: str | None, n_per_template: int) -> BulkEstimate:
    """What bulk generation (a variants batch) would cost: one call per template, priced before anything is sent."""
    return _estimate(app, bulk_templates(app, industry), n_per_template, industry)


def estimate_variants(app: App, base_template_name: str, n: int) -> BulkEstimate:
    """What `generate_variants` would cost for one template (the same pricing as `estimate_bulk`)."""
    base = base_template(app, base_template_name)
    return _estimate(app, [base], n, base.industry)


@dataclass
class BulkReport:
    industry: str | None
    reports: list[VariantReport]
    stopped: str = ""  # why the run ended early (budget), else empty

    @property
    def cost_usd(self) -> Decimal:
        return sum((r.cost_usd for r in self.reports), Decimal(0))

    def as_json(self) -> dict[str, Any]:
        return {"industry": self.industry, "cost_usd": money_str(self.cost_usd), "stopped": self.stopped,
                "kept": sum(len(r.kept) for r in self.reports), "reports": [r.as_json() for r in self.reports]}


__all__ = [
    "BulkEstimate",
    "BulkReport",
    "Candidate",
    "VariantReport",
    "bulk_templates",
    "check_candidate",
    "estimate_bulk",
    "estimate_variants",
    "generate_variants",
    "industries",
    "parse_variants",
    "sample_rendering",
]
