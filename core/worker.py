"""The background worker: one loop shared by the console's thread and `python -m core worker`.

The supervisor keeps a strong reference to its thread, never calls Streamlit, and records how its last
pass ended (batches processed, or the error), which the console shows. Stopping sets an event; items in
flight are released back to pending so another worker (or a restart) picks them up.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from dataclasses import dataclass, field

from core.app import App
from core.batches import RunReport, new_worker_id, run_pending
from core.llm.tokens import warm_up

log = logging.getLogger("sam.worker")


@dataclass
class WorkerState:
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
        self.state = WorkerState(worker_id=new_worker_id())
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


def run_forever(app: App, *, once: bool = False, poll_s: float = 1.0) -> list[RunReport]:
    """`python -m core worker`: process runnable batches; with `once`, stop when none is left."""
    worker_id = new_worker_id()
    stop = threading.Event()
    done: list[RunReport] = []
    warm_up()
    try:
        while True:
            reports = run_pending(app, worker_id, stop=stop)
            done.extend(r for r in reports if r.processed)
            if once and not reports:
                return done
            if not any(r.processed for r in reports):
                time.sleep(poll_s)  # nothing claimable yet (e.g. leases of a dead worker still running)
    except KeyboardInterrupt:
        stop.set()
        return done
