"""The classify kind: one item per stored reply, classified through the `classify_reply` route and routed
(`core.replies.classify.classify_and_route`). A reply the provider fails on ends failed and stays pending in the
inbox for a later run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from core.app import App
from core.batches import claims
from core.batches.halts import ProviderHalt
from core.batches.kinds.base import ItemKey, RunContext, Unclaimed, unique
from core.llm.errors import BudgetExceededError, LLMError
from core.replies.classify import classify_and_route
from core.store.models import BatchItem, ItemState


class ClassifyKind(Unclaimed):
    def check(self, app: App, *, step: str, template_name: str | None, options: dict[str, Any]) -> None:
        return None  # any stored reply can be classified

    def item_keys(self, *, prospect_ids: Sequence[int], reply_ids: Sequence[int],
                  subjects: Sequence[str]) -> list[ItemKey]:
        return [ItemKey(reply_id=int(r)) for r in unique(reply_ids)]

    async def prepare(self, run: RunContext, items: Sequence[BatchItem]) -> dict[int, Any]:
        return {int(i.id): None for i in items if i.id is not None}  # the reply is read as it is classified

    async def process(self, run: RunContext, item: BatchItem, prepared: Any) -> bool:
        item_id = int(item.id)  # type: ignore[arg-type]
        try:
            await classify_and_route(run.app, run.gw, item.reply_id, run.call_context(item))  # type: ignore[arg-type]
        except (BudgetExceededError, ProviderHalt):
            raise
        except (LLMError, ValueError, LookupError) as exc:
            error = f"classification failed: {exc}"
            return await run.writes(lambda conn: claims.finish_on(conn, item_id, run.worker_id, None, error))
        return await run.writes(lambda conn: claims.finish_plain_on(conn, item_id, run.worker_id, ItemState.READY))
