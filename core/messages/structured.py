"""Asking a model for JSON: recover what can honestly be recovered, and re-ask exactly once.

Models wrap JSON in prose or code fences, leave trailing commas, or get cut off at the token limit.
`extract_json_object` takes the first JSON object out of an answer; `ask_json` calls a task through the
gateway, parses the answer with the caller's validator, and on failure re-asks once, showing the model its
answer and what was wrong. Each call is a separate stage (`<task>#1`, `<task>#2`), so a batch item reclaimed
after a crash replays answers it already paid for.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

from core.costs.gateway import CallContext, Gateway
from core.llm.client import ChatResult
from core.messages import prompts

T = TypeVar("T")


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


@dataclass
class JsonAnswer(Generic[T]):
    value: T | None = None
    calls: list[ChatResult] = field(default_factory=list)
    problem: str = ""

    @property
    def raw(self) -> list[str]:
        return [c.content for c in self.calls]

    @property
    def model(self) -> str:
        return self.calls[-1].model if self.calls else ""

    @property
    def input_tokens(self) -> int:
        return sum(c.prompt_tokens for c in self.calls)

    @property
    def output_tokens(self) -> int:
        return sum(c.completion_tokens for c in self.calls)

    @property
    def cost_usd(self) -> Decimal:
        return sum((c.cost_usd for c in self.calls), Decimal(0))


async def ask_json(
    gw: Gateway,
    task: str,
    messages: list[dict[str, str]],
    parse: Callable[[str], T],
    *,
    response_format: dict[str, Any],
    context: CallContext | None = None,
    max_tokens: int | None = None,
) -> JsonAnswer[T]:
    """At most two calls; `value` is None (and `problem` says why) when both answers were unusable.

    `parse` raises ValueError (VerdictError included) for an answer it cannot accept.
    """
    answer: JsonAnswer[T] = JsonAnswer()
    for attempt in range(2):
        result = await gw.call(task, messages, response_format=response_format, context=context,
                               max_tokens=max_tokens, stage=f"{task}#{attempt + 1}")
        answer.calls.append(result)
        try:
            answer.value = parse(result.content)
        except ValueError as exc:
            answer.problem = str(exc)
            if attempt == 0:
                messages = prompts.reask_messages(messages, result.content, str(exc))
            continue
        answer.problem = ""
        return answer
    return answer
