"""What pressing Run on an uploaded file would do at one sequence step: which of its prospects a new batch
would message, and which are left out (already in a batch for this step, already written, or halted).

Why it exists: "one batch per upload" used to be a key in the browser session, so a reload, a second tab or a
colleague saw the Run button again for a file whose batch was already running. The answer belongs to the
database, where the (prospect, step) claims already make a second batch impossible: a prospect claimed by a
batch that is not cancelled is that batch's to write. The Batches page asks here; creating the batch stays
`create_batch`, which takes the same claims atomically.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import text

from core.app import App
from core.batches.kinds.personalize import unsent_prospects
from core.store.models import BatchStatus

_CHUNK = 500


@dataclass(frozen=True)
class RunPlan:
    """The prospects of one upload at one step, split by what a new batch would do with them."""

    step: str
    to_run: tuple[int, ...]  # a new batch would message these, in the file's order
    in_batches: dict[int, int]  # batch id -> how many of the file's prospects it holds for this step, latest first
    left_out: int  # not in a batch, yet not to run: already written, or a reply or do-not-contact halted them

    @property
    def held(self) -> int:
        """How many of the file's prospects batches already hold for this step."""
        return sum(self.in_batches.values())

    @property
    def latest_batch(self) -> int | None:
        """The most recent batch holding some of the file's prospects for this step, if any."""
        return next(iter(self.in_batches), None)


def claimed_by(app: App, prospect_ids: Sequence[int], step: str) -> dict[int, int]:
    """prospect id -> the batch (not cancelled) that holds its claim for `step`. A cancelled batch's claims do
    not count: a new batch takes them over (see `create_batch`)."""
    found: dict[int, int] = {}
    ids = sorted({int(p) for p in prospect_ids})
    with app.engine.connect() as conn:
        for start in range(0, len(ids), _CHUNK):
            chunk = ", ".join(str(p) for p in ids[start:start + _CHUNK])
            rows = conn.execute(text(
                "SELECT c.prospect_id, c.batch_id FROM step_claims c JOIN batches b ON b.id = c.batch_id "
                f"WHERE c.step = :s AND b.status <> :cancelled AND c.prospect_id IN ({chunk})"),
                {"s": step, "cancelled": BatchStatus.CANCELLED.value}).all()
            found.update({int(p): int(b) for p, b in rows})
    return found


def plan_run(app: App, prospect_ids: Sequence[int], step: str) -> RunPlan:
    """Which of an upload's prospects a batch for `step` would message now, and why the others are left out."""
    ids = list(dict.fromkeys(int(p) for p in prospect_ids))
    claims = claimed_by(app, ids, step)
    unsent = set(unsent_prospects(app, ids, step))
    to_run = tuple(p for p in ids if p in unsent and p not in claims)
    per_batch: dict[int, int] = {}
    for batch_id in sorted(claims.values(), reverse=True):
        per_batch[batch_id] = per_batch.get(batch_id, 0) + 1
    return RunPlan(step=step, to_run=to_run, in_batches=per_batch,
                   left_out=len(ids) - len(to_run) - len(claims))
