"""The evaluation kind: the active provider measured on the labelled replies as a batch, one item per labelled
row (its subject is the row number), so it runs in the worker with progress, cancel and the budget's pause.
Each item keeps the label and the routed verdict in `batch_items.result`; `evaluation_of` scores them with
`core.replies.rules.evaluate` into the same `ProviderEvaluation` the command line's inline run returns."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlmodel import select

from core.app import App
from core.batches import claims
from core.batches.halts import ProviderHalt
from core.batches.kinds.base import ItemKey, RunContext, Unclaimed, unique
from core.batches.lifecycle import ACTIVE, BatchError, get_batch, status_label
from core.llm.errors import BudgetExceededError, LLMError
from core.replies.classify import VerdictStatus, classify
from core.replies.evaluation import LABELLED_FILE, ProviderEvaluation, evaluate, load_labelled
from core.replies.routing import routing_config
from core.store.db import session_scope
from core.store.models import BatchItem, BatchStatus, ItemState, money_str


def labelled_path(app: App, options: dict[str, Any]) -> Path:
    """The labelled replies a batch evaluates on (option `path`; default the shipped file)."""
    return Path(options["path"]) if options.get("path") else app.settings.data_dir / LABELLED_FILE


def labelled_rows(app: App, path: Path | None = None) -> list[str]:
    """The subjects of an evaluation batch: every labelled row's number, from 1."""
    return [str(n) for n in range(1, len(load_labelled(path or app.settings.data_dir / LABELLED_FILE)) + 1)]


class EvaluationKind(Unclaimed):
    """Options: `path` (a labelled-replies CSV; default `data/replies_labelled.csv`)."""

    def check(self, app: App, *, step: str, template_name: str | None, options: dict[str, Any]) -> None:
        load_labelled(labelled_path(app, options))  # ValueError names the file and line of a bad row

    def item_keys(self, *, prospect_ids: Sequence[int], reply_ids: Sequence[int],
                  subjects: Sequence[str]) -> list[ItemKey]:
        rows = unique([str(row) for row in subjects])
        wrong = [row for row in rows if not row.isdigit() or int(row) < 1]
        if wrong:
            raise BatchError(f"an evaluation's items are labelled row numbers from 1; got {wrong[0]!r}")
        return [ItemKey(subject=row) for row in rows]

    async def prepare(self, run: RunContext, items: Sequence[BatchItem]) -> dict[int, Any]:
        labelled = load_labelled(labelled_path(run.app, run.batch.options))
        return {int(i.id): labelled[int(i.subject) - 1] if 0 < int(i.subject) <= len(labelled) else None
                for i in items if i.id is not None}

    async def process(self, run: RunContext, item: BatchItem, prepared: Any) -> bool:
        item_id = int(item.id)  # type: ignore[arg-type]
        if prepared is None:
            error = f"labelled row {item.subject} is no longer in the file"
            return await run.writes(lambda conn: claims.finish_plain_on(conn, item_id, run.worker_id,
                                                                        ItemState.FAILED, error))
        text, truth, received = prepared
        try:
            verdict = await classify(run.gw, text, received, run.call_context(item), config=routing_config(run.app))
        except (BudgetExceededError, ProviderHalt):
            raise
        except LLMError as exc:
            error = f"labelled row {item.subject}: {exc}"[:300]
            return await run.writes(lambda conn: claims.finish_plain_on(conn, item_id, run.worker_id,
                                                                        ItemState.FAILED, error))
        result = {"truth": truth, "predicted": verdict.category, "model": verdict.model,
                  "cost_usd": money_str(verdict.cost_usd), "input_tokens": verdict.input_tokens,
                  "output_tokens": verdict.output_tokens, "status": verdict.status}
        return await run.writes(lambda conn: claims.finish_plain_on(conn, item_id, run.worker_id, ItemState.READY,
                                                                    "", result))


def evaluation_of(app: App, batch_id: int) -> ProviderEvaluation:
    """The evaluation an evaluation batch has measured so far (`stopped` says why it is not complete)."""
    batch = get_batch(app, batch_id)
    with session_scope(app.engine) as s:
        items = list(s.exec(select(BatchItem).where(BatchItem.batch_id == batch_id).order_by(
            BatchItem.id)).all())  # type: ignore[arg-type]
    results = [i.result for i in items if i.state == ItemState.READY and i.result]
    errors = [i.error for i in items if i.state == ItemState.FAILED and i.error]
    scored = evaluate((r["truth"], r["predicted"]) for r in results)
    stopped = ""
    if batch.status != BatchStatus.DONE:
        left = sum(1 for i in items if i.state in (ItemState.PENDING, ItemState.CLAIMED))
        state = "still running" if batch.status in ACTIVE else status_label(batch.status, 0, batch.error)
        stopped = f"{state}: {len(results)} of {len(items)} classified, {left} to do"
    return ProviderEvaluation(
        n=scored.n, accuracy=scored.accuracy, per_category=scored.per_category, confusion=scored.confusion,
        provider=app.settings.llm_provider, labelled=len(items),
        models=dict(Counter(r["model"] for r in results if r["model"])),
        cost_usd=sum((Decimal(r["cost_usd"]) for r in results), Decimal(0)),
        input_tokens=sum(int(r["input_tokens"]) for r in results),
        output_tokens=sum(int(r["output_tokens"]) for r in results),
        fallbacks=sum(1 for r in results if r["status"] == VerdictStatus.UNCLEAR), errors=errors, stopped=stopped)
