"""The personalize kind: one item per prospect, a message for one sequence step through the personalization
ladder (`core.messages.personalize`), with the prospect's experiment arm when an experiment runs on the step.

A prospect whose sequence a reply stopped or paused, or who is on the do-not-contact list, is skipped: its item
ends without a message (and without a call), and its step claim goes back.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Connection
from sqlmodel import select

from core.app import App
from core.batches import claims
from core.batches.halts import ProviderHalt
from core.batches.kinds.base import ItemKey, RunContext, unique
from core.batches.lifecycle import check_template_and_step, claim_steps
from core.experiments.assignment import AssignmentPlan, plan_assignments, store_assignments_on
from core.llm.errors import BudgetExceededError, LLMError
from core.messages.personalize import Result, options_for
from core.people.prospects import prospect_fields
from core.store.db import session_scope
from core.store.models import BatchItem, Message, Prospect, Reply


@dataclass
class Prepared:
    """What a claimed item needs, read once per claimed chunk instead of once per item."""

    prospect: Prospect | None
    halted: bool  # a reply or the do-not-contact list may stop this prospect: check it in detail
    assigned: tuple[str, str] | None  # (template name, arm name) of the prospect's experiment arm
    budget_level: str


class PersonalizeKind:
    def check(self, app: App, *, step: str, template_name: str | None, options: dict[str, Any]) -> None:
        check_template_and_step(app, template_name, step)

    def item_keys(self, *, prospect_ids: Sequence[int], reply_ids: Sequence[int],
                  subjects: Sequence[str]) -> list[ItemKey]:
        return [ItemKey(prospect_id=int(p)) for p in unique(prospect_ids)]

    def claim(self, conn: Connection, batch_id: int, keys: list[ItemKey], step: str, now: datetime) -> list[ItemKey]:
        """Each prospect's (prospect, step) claim: a prospect another batch has for this step is left out."""
        kept = set(claim_steps(conn, batch_id, [int(k.prospect_id) for k in keys if k.prospect_id is not None],
                               step, now))
        return [k for k in keys if k.prospect_id in kept]

    async def prepare(self, run: RunContext, items: Sequence[BatchItem]) -> dict[int, Any]:
        prospect_ids = [i.prospect_id for i in items if i.prospect_id is not None]
        prospects, halted, plan, level = await asyncio.to_thread(_read_chunk, run.app, prospect_ids, run.batch.step)
        assigned: dict[int, tuple[str, str]] = {}
        if plan is not None:  # new experiment assignments go through the committer, like every write of the worker
            assigned = await run.writes(lambda conn: store_assignments_on(conn, plan)) if plan.rows else plan.known
        return {int(i.id): Prepared(prospects.get(i.prospect_id), i.prospect_id in halted,  # type: ignore[arg-type]
                                    assigned.get(i.prospect_id), level)  # type: ignore[arg-type]
                for i in items if i.id is not None}

    async def process(self, run: RunContext, item: BatchItem, prepared: Any) -> bool:
        prep: Prepared = prepared
        prospect = prep.prospect
        prospect_id = prospect.id if prospect is not None else None

        async def done(result: Result | None, error: str = "") -> bool:
            return await run.writes(lambda conn: claims.finish_on(conn, int(item.id), run.worker_id,  # type: ignore[arg-type]
                                                                  result, error, run.batch_id, prospect_id, item.step))

        if prospect is None:
            return await done(None, "the prospect no longer exists")
        halt = await asyncio.to_thread(halt_reason, run.app, prospect.id) if prep.halted else ""
        if halt:
            return await done(None, halt)
        assigned = prep.assigned
        try:
            options = options_for(run.app, step=item.step, template_name=None if assigned else run.batch.template_name,
                                  assigned=assigned[0] if assigned else None, budget_level=prep.budget_level)
            result = await run.pipeline.run(prospect_fields(prospect), options, run.call_context(item, prospect.id))
            if assigned:
                result.variant = assigned[1]
        except (BudgetExceededError, ProviderHalt):
            raise
        except (LLMError, LookupError, ValueError) as exc:
            return await done(None, f"{type(exc).__name__}: {exc}")
        return await done(result)


def _read_chunk(app: App, prospect_ids: list[int], step: str) -> tuple[dict[int, Prospect], set[int],
                                                                       AssignmentPlan | None, str]:
    with session_scope(app.engine) as s:
        prospects = {int(p.id): p for p in s.exec(select(Prospect).where(  # type: ignore[arg-type]
            Prospect.id.in_(prospect_ids))).all()}  # type: ignore[union-attr]
    return prospects, maybe_halted(app, prospect_ids), _assignment_plan(app, prospect_ids, step), \
        app.budget_state().level


def _assignment_plan(app: App, prospect_ids: Sequence[int], step: str) -> AssignmentPlan | None:
    """Experiment arms for a chunk of prospects on this step, read only (None, in one query, when none runs);
    the new assignments are written by the caller through its committer."""
    if not prospect_ids:
        return None
    plan = plan_assignments(app, prospect_ids, step)
    return plan if plan.known or plan.rows else None


def unsent_prospects(app: App, prospect_ids: Sequence[int], step: str) -> list[int]:
    """The prospects among `prospect_ids` to message at this step: none that already has a message for it (so
    a re-uploaded file never pays twice), and none whose sequence a reply stopped or paused."""
    if not prospect_ids:
        return []
    done: set[int] = set()
    with session_scope(app.engine) as s:
        for start in range(0, len(prospect_ids), 500):
            chunk = list(prospect_ids[start:start + 500])
            done.update(s.exec(select(Message.prospect_id).where(  # type: ignore[arg-type]
                Message.prospect_id.in_(chunk), Message.step == step)).all())  # type: ignore[union-attr]
    halted = {p for p in maybe_halted(app, prospect_ids) if halt_reason(app, p)}
    return [p for p in prospect_ids if p not in done and p not in halted]


def maybe_halted(app: App, prospect_ids: Sequence[int]) -> set[int]:
    """Prospects that replied or are on the do-not-contact list under any identity they are known by (asked of
    `core.people.identity`): the only ones whose sequence may be halted."""
    from core.people.identity import suppressed_prospects

    replied: set[int] = set()
    with session_scope(app.engine) as s:
        for start in range(0, len(prospect_ids), 500):
            chunk = list(prospect_ids[start:start + 500])
            replied.update(i for i in s.exec(select(Reply.prospect_id).where(  # type: ignore[arg-type]
                Reply.prospect_id.in_(chunk))).all() if i is not None)  # type: ignore[union-attr]
        suppressed = set(suppressed_prospects(s, list(prospect_ids)))
    return replied | suppressed


def halt_reason(app: App, prospect_id: int | None) -> str:
    """Why the sequence must not message this prospect now ("" when it may): on the do-not-contact list, or a
    reply since the batch began."""
    from core.people.identity import is_suppressed
    from core.replies.holds import paused_until, sequence_stopped

    if prospect_id is None:
        return ""
    with session_scope(app.engine) as s:
        if is_suppressed(s, prospect_id):
            return "skipped: the prospect is on the do-not-contact list; nothing was written or paid for"
    if sequence_stopped(app, prospect_id):
        return "skipped: the prospect replied or is on the do-not-contact list; the sequence is stopped"
    until = paused_until(app, prospect_id)
    return f"skipped: out of office; the sequence is paused until {until.isoformat()}" if until else ""
