"""Premium review: a strict-JSON verdict on a message for a high-value prospect, never approved by default.

The reviewer is asked for `{approved, score, issues, suggestions}` with a strict JSON schema and
`provider.require_parameters` (so a provider that would silently drop `response_format` is not used).
Models still wrap JSON in prose or code fences, leave trailing commas, or get cut off; `parse_verdict`
recovers what can honestly be recovered and validates types with pydantic (a string "yes" is not a
boolean). One re-ask on invalid JSON; still invalid means "review failed", which is never an approval.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from core import prompts
from core.gateway import CallContext, Gateway
from core.llm.client import ChatResult


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    approved: StrictBool
    score: float = Field(ge=0, le=10)
    issues: list[str]
    suggestions: list[str]


class VerdictError(ValueError):
    """The reviewer's answer is not a valid verdict; the message says what is wrong, for the re-ask."""


_FENCE_RE = re.compile(r"```(?:json|JSON)?\s*(.*?)```", re.S)
_TRAILING_COMMA_RE = re.compile(r",\s*([}\]])")


def extract_json_object(text: str) -> Any:
    """The first JSON object in a model's answer: inside code fences or prose, trailing commas tolerated."""
    if not text or not text.strip():
        raise VerdictError("the answer is empty")
    fenced = _FENCE_RE.search(text)
    candidate = fenced.group(1) if fenced else text
    start = candidate.find("{")
    if start < 0:
        raise VerdictError("the answer contains no JSON object")
    depth, in_string, escaped, end = 0, False, False, -1
    for i, ch in enumerate(candidate[start:], start):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                end = i
                break
    if end < 0:
        raise VerdictError("the JSON object is cut off (truncated answer)")
    raw = _TRAILING_COMMA_RE.sub(r"\1", candidate[start:end + 1])
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise VerdictError(f"the JSON does not parse: {exc}") from None


def parse_verdict(text: str) -> Verdict:
    value = extract_json_object(text)
    if not isinstance(value, dict):
        raise VerdictError("the JSON is not an object")
    try:
        return Verdict.model_validate(value)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'answer'}: {err['msg']}"
                             for err in exc.errors())
        raise VerdictError(f"the verdict has the wrong shape: {problems}") from None


@dataclass
class ReviewOutcome:
    status: str  # "ok" | "failed"
    approved: bool
    score: float | None
    issues: list[str]
    suggestions: list[str]
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: Decimal = Decimal(0)
    raw: list[str] = field(default_factory=list)
    problem: str = ""
    calls: list[ChatResult] = field(default_factory=list)

    def as_json(self) -> dict[str, Any]:
        return {"status": self.status, "approved": self.approved, "score": self.score, "issues": self.issues,
                "suggestions": self.suggestions, "model": self.model, "problem": self.problem,
                "cost_usd": str(self.cost_usd)}


async def review_message(
    gw: Gateway, message: str, fields: Mapping[str, Any], max_chars: int, context: CallContext | None = None
) -> ReviewOutcome:
    """Ask the premium reviewer; at most one re-ask; never approve without a valid verdict."""
    messages = prompts.review_messages(message, fields, max_chars)
    fmt = prompts.response_format("review", prompts.REVIEW_SCHEMA)
    outcome = ReviewOutcome(status="failed", approved=False, score=None, issues=[], suggestions=[])
    for attempt in range(2):
        result = await gw.call("review", messages, response_format=fmt, context=context, stage=f"review#{attempt + 1}")
        outcome.calls.append(result)
        outcome.raw.append(result.content)
        outcome.model = result.model
        outcome.input_tokens += result.prompt_tokens
        outcome.output_tokens += result.completion_tokens
        outcome.cost_usd += result.cost_usd
        try:
            verdict = parse_verdict(result.content)
        except VerdictError as exc:
            outcome.problem = str(exc)
            if attempt == 0:
                messages = prompts.reask_messages(messages, result.content, str(exc))
            continue
        outcome.status = "ok"
        outcome.problem = ""
        outcome.approved = verdict.approved
        outcome.score = verdict.score
        outcome.issues = verdict.issues
        outcome.suggestions = verdict.suggestions
        return outcome
    outcome.problem = f"review failed: {outcome.problem}"
    return outcome
