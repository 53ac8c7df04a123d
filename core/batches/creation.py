"""Creating a batch: the kind named checks its inputs and takes its items' claims, in the transaction that writes
the batch and its items. Apart from `lifecycle` because it asks the registry of kinds, and the kinds use
`lifecycle` (status, errors, claims): this way neither imports the other in a circle."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import text

from core.app import App
from core.batches.kinds import kind_of
from core.batches.lifecycle import BatchError, get_batch
from core.store.db import immediate
from core.store.models import Batch, BatchItem, BatchKind, BatchStatus, ItemState, utcnow


def create_batch(
    app: App,
    prospect_ids: Sequence[int],
    *,
    step: str = "connection_request",
    template_name: str | None = None,
    concurrency: int | None = None,
    name: str = "",
    kind: str = BatchKind.PERSONALIZE,
    reply_ids: Sequence[int] = (),
    subjects: Sequence[str] = (),
    options: dict[str, Any] | None = None,
) -> Batch:
    """A draft batch with one pending item per prospect (personalize), per reply (classify) or per subject (the
    kinds whose items are neither: a template name, a labelled row). The kind checks its inputs first.

    A personalize batch takes each prospect's (prospect, step) claim in the same transaction: a prospect already
    in another batch for this step (still to do, or its message written) is left out, and a batch left with
    nothing raises BatchError naming the batch that has them. Two people pressing Run on one upload, or two
    `batch run` of one file at once, so make one batch's worth of calls.
    """
    handler = kind_of(kind)
    concurrency = concurrency or app.settings.worker_concurrency
    if not 1 <= concurrency <= 256:
        raise BatchError("concurrency must be between 1 and 256")
    handler.check(app, step=step, template_name=template_name, options=options or {})
    keys = handler.item_keys(prospect_ids=prospect_ids, reply_ids=reply_ids, subjects=subjects)
    if not keys:
        raise BatchError("nothing to run: the batch would have no items")
    now = utcnow()
    naive = now.replace(tzinfo=None)
    with immediate(app.engine) as conn:
        batch_id = int(conn.execute(Batch.__table__.insert().values(  # type: ignore[attr-defined]
            name=name or f"{BatchKind(kind).label} {now:%Y-%m-%d %H:%M}", status=BatchStatus.DRAFT, kind=kind,
            step=step, template_name=template_name, concurrency=concurrency, items_total=0, options=options or {},
            error="", created_at=now)).inserted_primary_key[0])
        keys = handler.claim(conn, batch_id, keys, step, naive)
        rows = [{"batch_id": batch_id, "prospect_id": k.prospect_id, "reply_id": k.reply_id, "subject": k.subject,
                 "step": step, "state": ItemState.PENDING, "attempts": 0, "error": "", "updated_at": now}
                for k in keys]
        for start in range(0, len(rows), 1000):
            conn.execute(BatchItem.__table__.insert(), rows[start:start + 1000])  # type: ignore[attr-defined]
        conn.execute(text("UPDATE batches SET items_total = :n WHERE id = :b"), {"n": len(rows), "b": batch_id})
    return get_batch(app, batch_id)
