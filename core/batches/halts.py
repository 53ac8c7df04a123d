"""Provider failures that are not the item's fault: the batch pauses instead of burning every item.

A rejected key, an empty account, an outage or rate limiting past the retries would fail every other item the
same way; the gateway a kind is given in a batch (`ProviderFence`) turns them into `ProviderHalt`, which no kind
catches: the item goes back to pending and the run loop pauses the batch with the reason.
"""

from __future__ import annotations

from typing import Any

from core.llm.errors import (
    AuthError,
    BudgetExceededError,
    LLMError,
    OutOfCreditsError,
    ProviderUnavailableError,
    RateLimitedError,
)


class ProviderHalt(Exception):  # not an LLMError on purpose: the pipeline must not turn it into a fallback
    """The provider refuses every call (a rejected key, no credits, an outage past the retries): the batch
    pauses with `reason` and the item goes back, instead of every item being burned into a fallback."""

    def __init__(self, reason: str, cause: LLMError) -> None:
        super().__init__(reason)
        self.reason = reason
        self.cause = cause


def provider_halt_reason(exc: BaseException) -> str:
    """The pause reason for an error that no other item would escape, or "" for one of this item."""
    if isinstance(exc, AuthError):
        return "the provider rejected the key"
    if isinstance(exc, OutOfCreditsError):
        return "the provider account is out of credits"
    if isinstance(exc, ProviderUnavailableError):
        return "the provider is unavailable (the outage outlasted the retries)"
    if isinstance(exc, RateLimitedError):
        return "the provider kept refusing calls as rate-limited past the retries"
    return ""


class ProviderFence:
    """The gateway as a kind sees it in a batch: a provider-wide failure raises ProviderHalt, which the
    pipeline does not catch (it falls back only on LLMError and its own errors)."""

    def __init__(self, gw: Any) -> None:
        self._gw = gw

    def __getattr__(self, name: str) -> Any:
        return getattr(self._gw, name)

    async def call(self, *args: Any, **kwargs: Any) -> Any:
        try:
            return await self._gw.call(*args, **kwargs)
        except BudgetExceededError:
            raise
        except LLMError as exc:
            reason = provider_halt_reason(exc)
            if reason:
                raise ProviderHalt(reason, exc) from exc
            raise
