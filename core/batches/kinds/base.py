"""What a batch kind is: the seam between the run loop and the work one item stands for.

The run loop (`core.batches.runs`) claims items, renews their leases, pauses on the budget or the provider and
honours cancel and shutdown, for every kind alike. A kind says which items a batch of it has (`item_keys`,
after `check` refused inputs that would fail every item), reads what a claimed chunk needs in one go
(`prepare`), and works one item (`process`), ending it with one fenced write (`core.batches.claims`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any, Protocol

from sqlalchemy.engine import Connection

from core.app import App
from core.costs.gateway import CallContext
from core.store.models import Batch, BatchItem


@dataclass(frozen=True)
class ItemKey:
    """What one item of a new batch works on: a prospect, a reply, or a subject (a template name, a row)."""

    prospect_id: int | None = None
    reply_id: int | None = None
    subject: str = ""


@dataclass
class RunContext:
    """One worker's pass over one batch, as a kind sees it."""

    app: App
    batch: Batch
    gw: Any  # the batch's gateway behind `core.batches.halts.ProviderFence`
    worker_id: str

    @property
    def batch_id(self) -> int:
        return int(self.batch.id)  # type: ignore[arg-type]

    @property
    def writes(self) -> Any:
        """The batch's group committer: every write of the worker goes through it (`core.store.commits`)."""
        return self.gw.writes

    def call_context(self, item: BatchItem, prospect_id: int | None = None) -> CallContext:
        """The gateway context of an item: its ledger rows name the batch, and a reclaimed item replays the
        answers already paid for (only a reclaimed item, attempts > 1, can have any)."""
        return CallContext(batch_id=self.batch_id, prospect_id=prospect_id, item_id=item.id,
                           replay=item.attempts > 1, owner=self.worker_id)

    @cached_property
    def pipeline(self) -> Any:
        """The personalization ladder over this batch's gateway, built once per pass."""
        from core.messages.library import specs
        from core.messages.personalize import Pipeline

        return Pipeline(self.gw, specs(self.app), self.app.settings.data_dir, self.app.summaries)


class Kind(Protocol):
    """One kind of batch. Implementations are registered in `core.batches.kinds.KINDS`."""

    def check(self, app: App, *, step: str, template_name: str | None, options: dict[str, Any]) -> None:
        """Raise BatchError (or ValueError, LookupError) for inputs that would fail every item."""
        ...

    def item_keys(self, *, prospect_ids: Sequence[int], reply_ids: Sequence[int],
                  subjects: Sequence[str]) -> list[ItemKey]:
        """The items of a new batch, without repeats, in order."""
        ...

    def claim(self, conn: Connection, batch_id: int, keys: list[ItemKey], step: str, now: datetime) -> list[ItemKey]:
        """The keys this batch may have, in the transaction that creates it (a kind that writes a prospect's
        sequence step takes its claim here); raise BatchError when none is left."""
        ...

    async def prepare(self, run: RunContext, items: Sequence[BatchItem]) -> dict[int, Any]:
        """What each claimed item needs, read (and, through `run.writes`, written) once per chunk; by item id."""
        ...

    async def process(self, run: RunContext, item: BatchItem, prepared: Any) -> bool:
        """Work one item and finish it; False when its lease was lost (nothing was written). BudgetExceededError
        and ProviderHalt propagate: the item goes back and the batch pauses."""
        ...


def unique(values: Sequence[Any]) -> list[Any]:
    return list(dict.fromkeys(values))


class Unclaimed:
    """For kinds whose items claim nothing beyond themselves (no prospect's sequence step is written)."""

    def claim(self, conn: Connection, batch_id: int, keys: list[ItemKey], step: str, now: datetime) -> list[ItemKey]:
        return keys
