"""Premium review: a strict-JSON verdict on a message for a high-value prospect, never approved by default.

The reviewer is asked for `{approved, score, issues, suggestions}` with a strict JSON schema and
`provider.require_parameters` (so a provider that would silently drop `response_format` is not used).
Models still wrap JSON in prose or code fences, leave trailing commas, or get cut off; `parse_verdict`
recovers what can honestly be recovered and validates types with pydantic (a string "yes" is not a
boolean). One re-ask on invalid JSON; still invalid means "review failed", which is never an approval.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from core.costs.gateway import CallContext, Gateway
from core.llm.client import ChatResult
from core.messages import prompts
from core.messages.structured import VerdictError, ask_json, extract_json_object


class Verdict(BaseModel):
    model_config = ConfigDict(extra="ignore")
    approved: StrictBool
    score: float = Field(ge=0, le=10)
    issues: list[str]
    suggestions: list[str]


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
    answer = await ask_json(gw, "review", prompts.review_messages(message, fields, max_chars), parse_verdict,
                            response_format=prompts.response_format("review", prompts.REVIEW_SCHEMA),
                            context=context)
    outcome = ReviewOutcome(status="failed", approved=False, score=None, issues=[], suggestions=[],
                            model=answer.model, input_tokens=answer.input_tokens, output_tokens=answer.output_tokens,
                            cost_usd=answer.cost_usd, raw=answer.raw, calls=answer.calls)
    verdict = answer.value
    if verdict is None:
        outcome.problem = f"review failed: {answer.problem}"
        return outcome
    outcome.status = "ok"
    outcome.approved = verdict.approved
    outcome.score = verdict.score
    outcome.issues = verdict.issues
    outcome.suggestions = verdict.suggestions
    return outcome
