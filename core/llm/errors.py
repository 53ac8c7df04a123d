"""Typed errors of the LLM client, so callers branch on the kind of failure, not on strings.

    LLMError
     ├── RequestRejected          the request itself is wrong: never retried
     │    ├── BadRequestError       400
     │    ├── AuthError             401 (bad or missing key)
     │    └── ModerationError       403 (do not resend the same input)
     ├── OutOfCreditsError        402 (halt; the in-flight-budget 402 is retried instead)
     ├── RateLimitedError         429 that outlasted the retries, or a Retry-After longer than the cap
     ├── ProviderUnavailableError 408/5xx/connection errors that outlasted the retries
     ├── DeadlineExceededError    the call's overall deadline passed
     ├── MalformedResponseError   a 200 whose body is not a chat completion
     └── BudgetExceededError      the month's budget cannot cover the call (raised before sending)
"""

from __future__ import annotations

from core.llm.secrets import scrub


class LLMError(Exception):
    """Base of every client error. `status` is the HTTP status when there was one."""

    kind = "error"
    retryable = False

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0, code: str = "") -> None:
        message = scrub(message)  # a provider's text may echo a key or an Authorization header
        super().__init__(message)
        self.message = message
        self.status = status
        self.attempts = attempts
        self.code = code

    def __str__(self) -> str:
        return self.message


class RequestRejected(LLMError):
    kind = "rejected"


class BadRequestError(RequestRejected):
    kind = "bad_request"


class AuthError(RequestRejected):
    kind = "auth"


class ModerationError(RequestRejected):
    kind = "moderation"


class OutOfCreditsError(LLMError):
    kind = "out_of_credits"


class RateLimitedError(LLMError):
    kind = "rate_limited"


class ProviderUnavailableError(LLMError):
    kind = "unavailable"


class DeadlineExceededError(LLMError):
    kind = "deadline"


class MalformedResponseError(LLMError):
    kind = "malformed"


class BudgetExceededError(LLMError):
    kind = "budget"
