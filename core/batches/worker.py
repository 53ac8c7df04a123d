"""The background worker: one loop shared by the console's thread and `python -m core worker`.

The supervisor keeps a strong reference to its thread, never calls Streamlit, and records how its last
pass ended (batches processed, or the error), which the console shows. Every worker announces itself and
beats (`core.batches.heartbeat`) for as long as it runs. Stopping (the console shutting down, SIGTERM or Ctrl-C for
the process) sets an event: no new item is started, calls in flight get a few seconds, and everything the
worker still holds (items and budget holds) goes back before it exits, its row saying "stopped".
"""

from __future__ import annotations

import logging
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

from core.app import App
from core.batches import heartbeat
from core.batches.claims import new_worker_id
from core.batches.runs import RunReport, run_pending
from core.llm.tokens import warm_up

log = logging.getLogger("sam.worker")


@dataclass
class SupervisorState:
    """How the console's worker thread is doing (shown on the pages); its row in `workers` is `heartbeat`'s."""

    worker_id: str
    started_at: float = field(default_factory=time.time)
    passes: int = 0
    last_reports: list[RunReport] = field(default_factory=list)
    last_error: str = ""
    alive: bool = False


class WorkerSupervisor:
    def __init__(self, app: App, poll_s: float = 1.0) -> None:
        self.app = app
        self.poll_s = poll_s
        self.stop_event = threading.Event()
        self.state = SupervisorState(worker_id=new_worker_id())
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            return
        self.stop_event.clear()
        self._thread = threading.Thread(target=self._loop, name="sam-batch-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self) -> None:
        self.state.alive = True
        try:
            warm_up()
            with heartbeat.running(self.app, self.state.worker_id):
                while not self.stop_event.is_set():
                    try:
                        reports = run_pending(self.app, self.state.worker_id, stop=self.stop_event)
                        self.state.passes += 1
                        if reports:
                            self.state.last_reports = reports
                            self.state.last_error = ""
                    except Exception as exc:  # keep serving: record, log without data, retry after a pause
                        self.state.last_error = f"{type(exc).__name__}: {exc}"
                        log.error("worker pass failed: %s\n%s", self.state.last_error, traceback.format_exc(limit=3))
                        self.stop_event.wait(5)
                    self.stop_event.wait(self.poll_s)
        finally:
            self.state.alive = False


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGTERM and Ctrl-C (SIGINT) set `stop` instead of killing the process mid-write; a second one while
    stopping interrupts at once. Only in the main thread (signal handlers cannot be set elsewhere)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(signum: int, _frame: FrameType | None) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        log.warning("stopping: giving back claimed items", extra={"fields": {"signal": signal.Signals(signum).name}})
        stop.set()

    previous = {sig: signal.signal(sig, handle) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_forever(app: App, *, once: bool = False, poll_s: float = 1.0,
                stop: threading.Event | None = None) -> list[RunReport]:
    """`python -m core worker`: process runnable batches; with `once`, stop when none is left."""
    worker_id = new_worker_id()
    stop = stop or threading.Event()
    done: list[RunReport] = []
    warm_up()
    with stop_on_signals(stop), heartbeat.running(app, worker_id):
        try:
            while not stop.is_set():
                reports = run_pending(app, worker_id, stop=stop)
                done.extend(r for r in reports if r.processed)
                if once and not reports:
                    break
                if not any(r.processed for r in reports):
                    stop.wait(poll_s)  # nothing claimable yet (e.g. items held by a live worker)
        except KeyboardInterrupt:
            stop.set()
    return done
