"""Command-line verbs for imports, batches, review and export (registered by `core.__main__`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

from core import cli
from core.cli import CLIError, emit

MAX_FILE_BYTES = 50 * 1024 * 1024


def _read(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise CLIError(f"{path} is {p.stat().st_size / 1e6:.0f} MB; the limit is 50 MB")
    return p.read_bytes()


def cmd_import(args: argparse.Namespace) -> None:
    from core.prospects import import_prospects

    emit(import_prospects(cli.app(), _read(args.file)).as_json(), args.json)


class ProgressBar:
    """A progress line on stderr (the JSON result stays alone on stdout)."""

    def __init__(self, total: int) -> None:
        self.total = max(total, 1)
        self.started = time.monotonic()
        self.lock = threading.Lock()

    def __call__(self, done: int) -> None:
        with self.lock:
            elapsed = time.monotonic() - self.started
            rate = done / elapsed if elapsed > 0 else 0.0
            width = 30
            filled = int(width * min(done, self.total) / self.total)
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} "
                             f"{rate:6.1f}/s")
            sys.stderr.flush()

    def close(self) -> None:
        sys.stderr.write("\n")
        sys.stderr.flush()


def _run_foreground(batch_id: int) -> dict[str, Any]:
    from core.batches import get_batch, new_worker_id, status, work_batch

    app = cli.app()
    batch = get_batch(app, batch_id)
    already = status(app, batch_id)["done"]
    bar = ProgressBar(batch.items_total)
    bar(already)
    try:
        asyncio.run(work_batch(app, batch_id, new_worker_id(), progress=lambda n: bar(already + n)))
    finally:
        bar.close()
    return _summary(batch_id)


def _summary(batch_id: int) -> dict[str, Any]:
    from core.batches import status

    st = status(cli.app(), batch_id)
    return {"batch_id": st["batch_id"], "status": st["status"], "items": st["items"],
            "counts": {k: v for k, v in st["counts"].items() if v}, "cost_usd": st["cost_usd"],
            "input_tokens": st["input_tokens"], "output_tokens": st["output_tokens"], "error": st["error"]}


def cmd_batch_run(args: argparse.Namespace) -> None:
    from core.batches import create_batch, start_batch, unsent_prospects
    from core.prospects import import_prospects

    app = cli.app()
    report = import_prospects(app, _read(args.file))
    ids = unsent_prospects(app, report.prospect_ids + report.existing_ids, args.step)
    if not ids:
        raise CLIError(f"nothing to run: {report.rows} rows, {report.accepted} new, {report.duplicates} duplicates, "
                       f"{report.suppressed} suppressed, {len(report.rejected)} rejected, and every stored "
                       f"prospect already has a {args.step} message")
    batch = create_batch(app, ids, step=args.step, template_name=args.template, concurrency=args.concurrency,
                         name=Path(args.file).name)
    assert batch.id is not None
    start_batch(app, batch.id)
    result = _run_foreground(batch.id)
    result["import"] = report.as_json()
    emit(result, args.json)


def cmd_batch_resume(args: argparse.Namespace) -> None:
    from core.batches import get_batch, resume_batch

    app = cli.app()
    resume_batch(app, args.id)
    if get_batch(app, args.id).status not in ("queued", "running"):
        raise CLIError(f"batch {args.id} cannot be resumed (status {get_batch(app, args.id).status})")
    emit(_run_foreground(args.id), args.json)


def cmd_batch_status(args: argparse.Namespace) -> None:
    from core.batches import status

    emit(status(cli.app(), args.id), args.json)


def cmd_batch_list(args: argparse.Namespace) -> None:
    from core.batches import list_batches

    emit({"batches": [{"batch_id": b.id, "name": b.name, "status": b.status, "items": b.items_total,
                       "created_at": b.created_at.isoformat()} for b in list_batches(cli.app())]}, args.json)


def cmd_batch_cancel(args: argparse.Namespace) -> None:
    from core.batches import cancel_batch, get_batch

    app = cli.app()
    changed = cancel_batch(app, args.id)
    emit({"batch_id": args.id, "cancelled": changed, "status": get_batch(app, args.id).status}, args.json)


def cmd_batch_approve(args: argparse.Namespace) -> None:
    from core.batches import get_batch
    from core.review_queue import approve_passed

    if not args.passed:
        raise CLIError("say which messages to approve: --passed approves every message whose guards and review passed")
    app = cli.app()
    get_batch(app, args.id)
    emit({"batch_id": args.id, "approved": approve_passed(app, args.id)}, args.json)


def cmd_export(args: argparse.Namespace) -> None:
    from core.batches import get_batch
    from core.review_queue import export_file

    app = cli.app()
    get_batch(app, args.id)
    result = export_file(app, args.id, args.format)
    out = Path(args.out)
    if not out.parent.exists():
        raise CLIError(f"the folder {out.parent} does not exist")
    out.write_bytes(result.data)
    emit({"batch_id": args.id, "rows": result.rows, "withheld": result.withheld,
          "withheld_reason": result.reason if result.withheld else "", "summary": result.summary(), "out": str(out),
          "format": args.format}, args.json)


def cmd_worker(args: argparse.Namespace) -> None:
    from core.worker import run_forever

    reports = run_forever(cli.app(), once=args.once)
    emit({"batches": [{"batch_id": r.batch_id, "processed": r.processed, "outcome": r.outcome} for r in reports]},
         args.json)


def register(sub: Any, add: Any) -> None:
    imp = add("import", cmd_import, "import prospects from a CSV file")
    imp.add_argument("file")

    batch = sub.add_parser("batch", help="batch runs").add_subparsers(dest="batch_cmd", required=True)
    run = add("run", cmd_batch_run, "import FILE and run a batch in the foreground", batch)
    run.add_argument("file")
    run.add_argument("--template", help="use this template for every prospect (default: chosen by rule)")
    run.add_argument("--concurrency", type=int, default=None)
    run.add_argument("--step", default="connection_request")
    for name, func, help_ in (("resume", cmd_batch_resume, "resume a paused, cancelled or interrupted batch"),
                              ("status", cmd_batch_status, "progress and cost of a batch"),
                              ("cancel", cmd_batch_cancel, "stop a batch (items in flight finish)")):
        add(name, func, help_, batch).add_argument("id", type=int)
    add("list", cmd_batch_list, "every batch", batch)
    appr = add("approve", cmd_batch_approve, "approve messages of a batch", batch)
    appr.add_argument("id", type=int)
    appr.add_argument("--passed", action="store_true", help="every message whose guards and review passed")

    exp = add("export", cmd_export, "write a batch's approved messages to a file")
    exp.add_argument("id", type=int)
    exp.add_argument("--out", required=True)
    exp.add_argument("--format", choices=("csv", "json"), default="csv")

    worker = add("worker", cmd_worker, "process queued batches (the same loop the console runs)")
    worker.add_argument("--once", action="store_true", help="exit when no batch has work left")
