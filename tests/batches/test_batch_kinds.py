"""Batch kinds are a registry the run loop asks; variant generation and the provider evaluation run as batches
in the worker with progress, the budget's pause and resume, and give the same results as their inline forms."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select

from core.app import App
from core.batches.creation import create_batch
from core.batches.foreground import evaluate_provider
from core.batches.kinds import KINDS, kind_of
from core.batches.kinds.evaluation import evaluation_of, labelled_rows
from core.batches.kinds.variants import bulk_report
from core.batches.lifecycle import BatchError, cancel_batch, resume_batch, start_batch, status
from core.batches.runs import run_pending
from core.experiments.variants import bulk_templates
from core.messages.library import get_template
from core.store.db import session_scope
from core.store.models import BatchKind, BatchStatus, ItemState, UsageEntry


def test_every_kind_is_registered_and_an_unknown_one_is_refused(app: App) -> None:
    assert set(KINDS) == set(BatchKind)
    with pytest.raises(BatchError, match="unknown batch kind 'translate'"):
        kind_of("translate")
    with pytest.raises(BatchError, match="unknown batch kind"):
        create_batch(app, [1], kind="translate")


def test_the_workers_evaluation_batch_scores_like_the_command_lines(app: App) -> None:
    inline = evaluate_provider(app)  # `replies eval`: the same kind, worked through in the foreground
    batch = create_batch(app, [], kind=BatchKind.EVALUATION, subjects=labelled_rows(app))
    assert batch.items_total == inline.labelled
    start_batch(app, batch.id)  # type: ignore[arg-type]
    [report] = run_pending(app, "w1")
    assert report.outcome == BatchStatus.DONE and report.processed == inline.labelled
    measured = evaluation_of(app, batch.id)  # type: ignore[arg-type]
    assert measured.n == inline.n and measured.accuracy == pytest.approx(inline.accuracy)
    assert measured.confusion == inline.confusion and measured.per_category == inline.per_category
    assert measured.models == inline.models and measured.stopped == ""
    with session_scope(app.engine) as s:
        billed = sum((e.cost_usd for e in s.exec(select(UsageEntry).where(UsageEntry.batch_id == batch.id))),
                     Decimal(0))
    assert measured.cost_usd == billed == status(app, batch.id).cost_usd > 0  # type: ignore[arg-type]


def test_the_evaluation_batch_pauses_at_the_budget_and_resumes(app: App, tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("text,category,received\n" + "".join(f"No thanks {i},not_interested,\n" for i in range(8)))
    app.set_budget_cap(Decimal("0.00002"))
    batch = create_batch(app, [], kind=BatchKind.EVALUATION, subjects=labelled_rows(app, path), concurrency=1,
                         options={"path": str(path)})
    start_batch(app, batch.id)  # type: ignore[arg-type]
    [report] = run_pending(app, "w1")
    assert report.outcome == BatchStatus.PAUSED_BUDGET
    paused = evaluation_of(app, batch.id)  # type: ignore[arg-type]
    assert paused.n < 8 and paused.stopped.startswith("paused: the budget ran out: ")
    app.set_budget_cap(Decimal(10))
    [again] = run_pending(app, "w1")  # the raised cap lets it resume by itself
    assert again.outcome == BatchStatus.DONE
    done = evaluation_of(app, batch.id)  # type: ignore[arg-type]
    assert done.n == 8 and done.stopped == "" and done.per_category["not_interested"].support == 8


def test_an_evaluation_of_a_broken_file_is_refused_before_it_is_made(app: App, tmp_path: Path) -> None:
    path = tmp_path / "labelled.csv"
    path.write_text("text,category,received\nhello,no_such_category,\n")
    with pytest.raises(ValueError, match="no_such_category"):
        create_batch(app, [], kind=BatchKind.EVALUATION, subjects=["1"], options={"path": str(path)})
    with pytest.raises(BatchError, match="labelled row numbers"):
        create_batch(app, [], kind=BatchKind.EVALUATION, subjects=["1", "two"])


def test_bulk_variants_run_as_a_batch_and_store_what_passes(demo_app: App) -> None:
    names = [t.name for t in bulk_templates(demo_app, "SaaS")]
    assert names
    batch = create_batch(demo_app, [], kind=BatchKind.VARIANTS, subjects=names, options={"n": 2, "industry": "SaaS"})
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    [report] = run_pending(demo_app, "w1")
    assert report.outcome == BatchStatus.DONE and report.processed == len(names)
    bulk = bulk_report(demo_app, batch.id)  # type: ignore[arg-type]
    assert [r.base for r in bulk.reports] == names and bulk.stopped == ""
    assert bulk.cost_usd == status(demo_app, batch.id).cost_usd > 0  # type: ignore[arg-type]
    for r in bulk.reports:
        for kept in r.kept:
            stored = get_template(demo_app, str(kept.name))
            assert stored is not None and stored.lineage["parent"] == r.base


def test_a_variants_batch_refuses_a_bad_count_and_a_cancelled_one_calls_nothing(demo_app: App) -> None:
    names = [t.name for t in bulk_templates(demo_app, "SaaS")]
    with pytest.raises(ValueError, match="1 to 10 variants"):
        create_batch(demo_app, [], kind=BatchKind.VARIANTS, subjects=names, options={"n": 11})
    batch = create_batch(demo_app, [], kind=BatchKind.VARIANTS, subjects=names, options={"n": 1})
    start_batch(demo_app, batch.id)  # type: ignore[arg-type]
    cancel_batch(demo_app, batch.id)  # type: ignore[arg-type]
    assert run_pending(demo_app, "w1") == []
    st = status(demo_app, batch.id)  # type: ignore[arg-type]
    assert st.calls == 0 and st.counts[ItemState.PENDING] == len(names)
    resume_batch(demo_app, batch.id)  # type: ignore[arg-type]
    [report] = run_pending(demo_app, "w1")
    assert report.outcome == BatchStatus.DONE
