"""The variants kind: bulk variant generation as a batch, one item per base template (`core.experiments.variants`
writes, checks and stores the variants; this kind runs it in the worker, so it has progress, cancel and the
budget's pause like any batch). Each item keeps its `VariantReport` in `batch_items.result`."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlmodel import select

from core.app import App
from core.batches import claims
from core.batches.halts import ProviderHalt
from core.batches.kinds.base import ItemKey, RunContext, Unclaimed, unique
from core.batches.lifecycle import get_batch
from core.experiments import variants
from core.llm.errors import BudgetExceededError
from core.store.db import session_scope
from core.store.models import BatchItem, BatchStatus, ItemState


class VariantsKind(Unclaimed):
    """Options: `n` (variants per template) and `performance` (plain JSON given to the prompt)."""

    def check(self, app: App, *, step: str, template_name: str | None, options: dict[str, Any]) -> None:
        variants.check_count(options.get("n"))
        variants.performance_data(options.get("performance"))

    def item_keys(self, *, prospect_ids: Sequence[int], reply_ids: Sequence[int],
                  subjects: Sequence[str]) -> list[ItemKey]:
        return [ItemKey(subject=str(name)) for name in unique(subjects)]

    async def prepare(self, run: RunContext, items: Sequence[BatchItem]) -> dict[int, Any]:
        return {int(i.id): None for i in items if i.id is not None}

    async def process(self, run: RunContext, item: BatchItem, prepared: Any) -> bool:
        item_id = int(item.id)  # type: ignore[arg-type]
        options = run.batch.options
        try:
            base = variants.base_template(run.app, item.subject)
            report = await variants.generate_with(run.app, run.gw, base, int(options["n"]),
                                                  variants.performance_data(options.get("performance")),
                                                  context=run.call_context(item))
        except (BudgetExceededError, ProviderHalt):
            raise
        except (LookupError, ValueError) as exc:  # the template was archived or changed since the batch was made
            error = f"{type(exc).__name__}: {exc}"
            return await run.writes(lambda conn: claims.finish_plain_on(conn, item_id, run.worker_id,
                                                                        ItemState.FAILED, error))
        state = ItemState.FAILED if report.problem and not report.kept else ItemState.READY
        return await run.writes(lambda conn: claims.finish_plain_on(conn, item_id, run.worker_id, state,
                                                                    report.problem, report.as_json()))


def bulk_report(app: App, batch_id: int) -> variants.BulkReport:
    """What a variants batch produced so far, one report per template worked on."""
    batch = get_batch(app, batch_id)
    with session_scope(app.engine) as s:
        items = list(s.exec(select(BatchItem).where(BatchItem.batch_id == batch_id).order_by(
            BatchItem.id)).all())  # type: ignore[arg-type]
    reports = [_report(i.result) for i in items if i.result]
    stopped = ""
    if batch.status == BatchStatus.PAUSED_BUDGET:
        left = sum(1 for i in items if i.state in (ItemState.PENDING, ItemState.CLAIMED))
        stopped = f"paused at the budget with {left} template{'s' if left != 1 else ''} still to do"
    return variants.BulkReport(industry=batch.options.get("industry"), reports=reports, stopped=stopped)


def _report(data: dict[str, Any]) -> variants.VariantReport:
    return variants.VariantReport(
        base=str(data["base"]), step=str(data["step"]), requested=int(data["requested"]), model=str(data["model"]),
        input_tokens=int(data["input_tokens"]), output_tokens=int(data["output_tokens"]),
        cost_usd=Decimal(str(data["cost_usd"])), problem=str(data["problem"]),
        candidates=[variants.Candidate(text=c["text"], kept=bool(c["kept"]), reason=c["reason"], name=c["name"],
                                       sample=c["sample"]) for c in data["candidates"]])
