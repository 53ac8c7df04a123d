"""Batches the command line works through itself, in the foreground, instead of leaving them to a worker: the
same kinds, claims, budget pauses and ledger rows as the worker's run, so a command never has a second loop
of its own. (`batch run` has its own progress line and signal handling in `core.cli.batches`.)"""

from __future__ import annotations

import asyncio
from pathlib import Path

from core.app import App
from core.batches.claims import new_worker_id
from core.batches.creation import create_batch
from core.batches.kinds.evaluation import evaluation_of, labelled_rows
from core.batches.lifecycle import start_batch
from core.batches.runs import work_batch
from core.replies.evaluation import ProviderEvaluation
from core.store.models import BatchKind


def evaluate_provider(app: App, path: Path | None = None) -> ProviderEvaluation:
    """The active provider measured on the labelled replies (default `data/replies_labelled.csv`): an evaluation
    batch, as the Replies page queues it, worked through now. Calls are real calls: reserved, logged, billed.
    A budget that runs out pauses the batch; `stopped` then says how far it got."""
    options = {"path": str(path)} if path else {}
    batch = create_batch(app, [], kind=BatchKind.EVALUATION, subjects=labelled_rows(app, path), options=options,
                         name=f"provider evaluation on {(path or Path('the shipped labelled replies')).name}")
    batch_id = int(batch.id)  # type: ignore[arg-type]
    start_batch(app, batch_id)
    asyncio.run(work_batch(app, batch_id, new_worker_id()))
    return evaluation_of(app, batch_id)
