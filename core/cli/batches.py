"""Command-line verbs for imports, batches, review and export (registered by `core.__main__`)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from core.cli import base as cli
from core.cli.base import AddCommand, CLIError, emit
from core.store.models import BatchStatus
from core.wording import noun_for, plural

MAX_FILE_BYTES = 50 * 1024 * 1024


def _read(path: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise CLIError(f"no such file: {path}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise CLIError(f"{path} is {p.stat().st_size / 1e6:.0f} MB; the limit is 50 MB")
    return p.read_bytes()


def cmd_import(args: argparse.Namespace) -> None:
    from core.people.prospects import import_prospects

    emit(import_prospects(cli.app(), _read(args.file)).as_json(), args.json)


class ProgressBar:
    """A progress line on stderr (the JSON result stays alone on stdout).

    On a terminal the line is redrawn in place; elsewhere (a log file, CI) a full line is written at most once
    a second, and once more at the end. The rate counts only this run's items, and is shown once a second
    has passed, so a resume never starts with the items done before it nor a rate from a near-zero time.
    """

    MIN_RATE_S = 1.0  # no rate before this much time
    TTY_EVERY_S = 0.1
    LOG_EVERY_S = 1.0

    def __init__(self, total: int, *, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.total = max(total, 1)
        self.stream = stream or sys.stderr
        self.clock = clock
        self.started = clock()
        self.lock = threading.Lock()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.first: int | None = None  # items already done when the bar started
        self.last_shown = -float("inf")
        self.last_done: int | None = None
        self.shown_done: int | None = None

    def rate(self, done: int, now: float) -> float | None:
        elapsed = now - self.started
        if elapsed < self.MIN_RATE_S or self.first is None:
            return None
        return (done - self.first) / elapsed

    def line(self, done: int, now: float) -> str:
        width = 30
        filled = int(width * min(done, self.total) / self.total)
        rate = self.rate(done, now)
        shown = f"{rate:6.1f}/s" if rate is not None else "     —/s"
        return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {shown}"

    def __call__(self, done: int) -> None:
        with self.lock:
            now = self.clock()
            if self.first is None:
                self.first = done
            self.last_done = done
            every = self.TTY_EVERY_S if self.tty else self.LOG_EVERY_S
            if now - self.last_shown < every and done < self.total:
                return
            self._write(done, now)

    def _write(self, done: int, now: float) -> None:
        self.last_shown = now
        self.shown_done = done
        self.stream.write(("\r" if self.tty else "") + self.line(done, now) + ("" if self.tty else "\n"))
        self.stream.flush()

    def note(self, text: str) -> None:
        """A line of its own (e.g. what the run waits for), the bar redrawn after it on a terminal."""
        with self.lock:
            self.stream.write(("\n" if self.tty else "") + text + "\n")
            if self.tty and self.last_done is not None:
                self._write(self.last_done, self.clock())
            self.stream.flush()

    def close(self) -> None:
        with self.lock:
            if self.last_done is not None and self.last_done != self.shown_done:
                self._write(self.last_done, self.clock())
            if self.tty:
                self.stream.write("\n")
            self.stream.flush()


def _run_foreground(batch_id: int) -> dict[str, Any]:
    """Work the batch here until it is finished (or paused, or cancelled): items that live workers hold are
    waited for, saying which worker has them; items of dead or silent workers are taken back."""
    from core.batches import heartbeat
    from core.batches.claims import new_worker_id
    from core.batches.lifecycle import get_batch, status
    from core.batches.runs import work_batch
    from core.batches.worker import stop_on_signals
    from core.store.models import ItemState

    app = cli.app()
    batch = get_batch(app, batch_id)
    worker_id = new_worker_id()
    stop = threading.Event()
    bar = ProgressBar(batch.items_total)
    already = status(app, batch_id).done
    bar(already)
    said = ""
    try:
        with stop_on_signals(stop), heartbeat.running(app, worker_id) as beat:
            while not stop.is_set():
                asyncio.run(work_batch(app, batch_id, worker_id, stop=stop,
                                       progress=lambda n, base=already: bar(base + n)))
                already = status(app, batch_id).done
                heartbeat.reap(app, spare=worker_id)
                st = status(app, batch_id)
                if not st.active or stop.is_set():
                    break
                if st.counts[ItemState.PENDING]:
                    continue  # given back meanwhile (a silent worker's, or a failed write's): work them
                holders = heartbeat.holders(app, batch_id)
                if not holders:
                    continue  # nothing held and nothing pending: the next pass marks it done
                waiting = "; ".join(_holder_text(h.worker, h.owner, h.items) for h in holders)
                if waiting != said:
                    bar.note(f"waiting: {waiting}")
                    said = waiting
                stop.wait(max(0.2, beat.interval))
    finally:
        bar.close()
    if stop.is_set():
        raise KeyboardInterrupt
    return _summary(batch_id)


def _holder_text(row: Any, owner: str, items: int) -> str:
    from core.store.models import utcnow

    if row is None:
        return (f"{plural(items, 'item')} {noun_for(items, 'is', 'are')} held by {owner}, which never announced "
                f"itself; {noun_for(items, 'it goes', 'they go')} back when its lease ends")
    ago = (utcnow() - row.last_beat_at).total_seconds()
    return f"worker {row.host} pid {row.pid} ({row.state}, last beat {ago:.0f} s ago) holds {plural(items, 'item')}"


def _summary(batch_id: int) -> dict[str, Any]:
    from core.batches.lifecycle import status

    st = status(cli.app(), batch_id).as_json()
    return {"batch_id": st["batch_id"], "status": st["status"], "label": st["label"], "items": st["items"],
            "counts": {k: v for k, v in st["counts"].items() if v}, "cost_usd": st["cost_usd"],
            "input_tokens": st["input_tokens"], "output_tokens": st["output_tokens"], "error": st["error"],
            "errors": st["errors"], "last_error": st["last_error"]}


def _finish(result: dict[str, Any], as_json: bool) -> None:
    """Print the result; a batch that did not finish (paused, cancelled) exits 3 with the reason on stderr."""
    emit(result, as_json)
    if result["status"] != BatchStatus.DONE:
        print(f"error: batch {result['batch_id']} is {result['label']}" + (f": {result['error']}" if result["error"]
                                                                             and result["error"] not in result["label"]
                                                                             else ""), file=sys.stderr)
        raise SystemExit(3)


def _check_run_inputs(args: argparse.Namespace) -> None:
    """Refuse a run that would fail every item (an unknown template or step) before importing anything."""
    from core.batches.lifecycle import check_template_and_step

    check_template_and_step(cli.app(), args.template, args.step)


def cmd_batch_run(args: argparse.Namespace) -> None:
    from core.batches.creation import create_batch
    from core.batches.kinds.personalize import unsent_prospects
    from core.batches.lifecycle import start_batch
    from core.people.prospects import import_prospects

    app = cli.app()
    data = _read(args.file)
    _check_run_inputs(args)
    report = import_prospects(app, data)
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
    _finish(result, args.json)


def cmd_batch_estimate(args: argparse.Namespace) -> None:
    """What running FILE as a batch would cost, by a dry run of the batch pipeline (nothing stored or sent)."""
    from core.costs.estimate import estimate_people, file_people

    data = _read(args.file)
    _check_run_inputs(args)
    people = file_people(data)
    if not people:
        raise CLIError(f"{args.file} has no prospect a batch could run")
    est = estimate_people(cli.app(), people, step=args.step, template_name=args.template)
    if args.json:
        emit(est.as_json(), True)
        return
    print(estimate_table(est))


def estimate_table(est: Any) -> str:
    """The estimate as a plain table: one line per tile, a total, the budget verdict."""
    from core.costs.money import usd

    lines = [f"{'':<16}{'prospects':>10}{'low':>14}{'high':>14}"]
    for t in est.tiles:
        lines.append(f"{t.label:<16}{t.prospects:>10,}{usd(t.cost_low_usd):>14}{usd(t.cost_high_usd):>14}")
    lines.append(f"{'Total':<16}{est.prospects:>10,}{usd(est.cost_low_usd):>14}{usd(est.cost_high_usd):>14}")
    if est.sampled:
        lines.append(f"Estimated from an evenly spaced sample of {est.sampled:,} prospects.")
    if est.flagged:
        lines.append(f"{est.flagged:,} prospect{'s' if est.flagged != 1 else ''} carry prompt-injection text: "
                     "plain templates only.")
    lines.append(f"Budget left {usd(est.remaining_usd)}: this batch {est.verdict}.")
    return "\n".join(lines)


def cmd_batch_resume(args: argparse.Namespace) -> None:
    from core.batches.lifecycle import ACTIVE, get_batch, resume_batch

    app = cli.app()
    resume_batch(app, args.id)
    if get_batch(app, args.id).status not in ACTIVE:
        raise CLIError(f"batch {args.id} cannot be resumed (status {get_batch(app, args.id).status})")
    _finish(_run_foreground(args.id), args.json)


def cmd_batch_status(args: argparse.Namespace) -> None:
    from core.batches.lifecycle import status

    emit(status(cli.app(), args.id).as_json(), args.json)


def cmd_batch_list(args: argparse.Namespace) -> None:
    from core.batches.lifecycle import list_batches

    emit({"batches": [{"batch_id": b.id, "name": b.name, "status": b.status, "items": b.items_total,
                       "created_at": b.created_at.isoformat()} for b in list_batches(cli.app())]}, args.json)


def cmd_batch_cancel(args: argparse.Namespace) -> None:
    from core.batches.lifecycle import cancel_batch, get_batch

    app = cli.app()
    changed = cancel_batch(app, args.id)
    emit({"batch_id": args.id, "cancelled": changed, "status": get_batch(app, args.id).status}, args.json)


def cmd_batch_approve(args: argparse.Namespace) -> None:
    from core.batches.lifecycle import get_batch
    from core.messages.approvals import approve_passed

    if not args.passed:
        raise CLIError("say which messages to approve: --passed approves every message whose guards and review passed")
    app = cli.app()
    get_batch(app, args.id)
    emit({"batch_id": args.id, "approved": approve_passed(app, args.id)}, args.json)


def cmd_export(args: argparse.Namespace) -> None:
    from core.batches.lifecycle import get_batch
    from core.messages.approvals import export_file

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
    from core.batches.worker import run_forever

    reports = run_forever(cli.app(), once=args.once)
    emit({"batches": [{"batch_id": r.batch_id, "processed": r.processed, "outcome": r.outcome} for r in reports]},
         args.json)


def register(sub: Any, add: AddCommand) -> None:
    imp = add("import", cmd_import, "import prospects from a CSV file")
    imp.add_argument("file")

    batch = sub.add_parser("batch", help="batch runs").add_subparsers(dest="batch_cmd", required=True)
    run = add("run", cmd_batch_run, "import FILE and run a batch in the foreground", batch)
    run.add_argument("file")
    run.add_argument("--template", help="use this template for every prospect (default: chosen by rule)")
    run.add_argument("--concurrency", type=int, default=None)
    run.add_argument("--step", default="connection_request")
    est = add("estimate", cmd_batch_estimate, "what running FILE as a batch would cost (a dry run: nothing is "
              "stored or sent)", batch)
    est.add_argument("file")
    est.add_argument("--template", help="use this template for every prospect (default: chosen by rule)")
    est.add_argument("--step", default="connection_request")
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
