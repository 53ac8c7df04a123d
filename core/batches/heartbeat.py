"""Worker rows and heartbeats: who works, what each holds, and what goes back the moment one falls silent.

Why: a lease alone cannot tell a slow call from a dead worker. A lease short enough to recover quickly from a
crash expires under a call that is merely slow, and another worker pays for the item again; one long enough for
slow calls leaves a dead worker's items (and its budget holds) stuck for minutes. So every worker (the console's
thread, `python -m core worker`, a foreground `batch run`) announces itself in `workers` and beats every
`WORKER_SILENT_SECONDS / 5` from a thread of its own. Each beat renews the leases of every item it holds (so a
call in flight is never taken over, however long it takes) and returns the items and holds of any worker whose
last beat is older than `WORKER_SILENT_SECONDS`. A worker that stops cleanly (SIGTERM, Ctrl-C, the console
shutting down) gives its items and holds back itself and says "stopped".

While a batch runs, the beats go through that batch's group committer (`core.store.commits`), so the process has
one writer; between batches they write directly.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection

from core.app import App
from core.costs.budget import _release as release_hold
from core.store.commits import GroupCommitter, Write
from core.store.db import immediate
from core.store.models import ItemState, ReservationState, WorkerState, as_utc, utcnow

_CLAIMED, _PENDING, _HELD = ItemState.CLAIMED.value, ItemState.PENDING.value, ReservationState.HELD.value

log = logging.getLogger("sam.heartbeat")

BEATS_PER_SILENCE = 5  # a worker is silent after missing this many beats
SHOWN_FOR = timedelta(hours=24)  # stopped or silent workers stay on the Batches page this long


def beat_interval(silent_s: float, lease_s: float) -> float:
    """Seconds between beats: several per silence window, and several per lease, so neither runs out."""
    return max(0.05, min(silent_s / BEATS_PER_SILENCE, lease_s / 3))


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None)


# ---------------------------------------------------------------------------------------------------------
# The writes (each a function of a connection, so it can run inside the group committer)
# ---------------------------------------------------------------------------------------------------------

def announce_on(conn: Connection, worker_id: str, now: datetime | None = None) -> None:
    """Insert (or revive) this worker's row."""
    now = _naive(now or utcnow())
    host, pid = _host_pid(worker_id)
    conn.execute(text(
        "INSERT INTO workers (id, host, pid, started_at, last_beat_at, items_held, state) "
        "VALUES (:w, :h, :p, :now, :now, 0, :alive) "
        "ON CONFLICT (id) DO UPDATE SET last_beat_at = :now, state = :alive, stopped_at = NULL"),
        {"w": worker_id, "h": host, "p": pid, "now": now, "alive": WorkerState.ALIVE.value})


def beat_on(conn: Connection, worker_id: str, lease_s: float, now: datetime | None = None) -> int:
    """Renew the lease of every item this worker holds and record the beat; returns the items held."""
    now = now or utcnow()
    held = conn.execute(text(
        f"UPDATE batch_items SET lease_expires_at = :exp WHERE lease_owner = :w AND state = '{_CLAIMED}'"),
        {"exp": _naive(now + timedelta(seconds=lease_s)), "w": worker_id}).rowcount
    updated = conn.execute(text(
        "UPDATE workers SET last_beat_at = :now, items_held = :n, state = :alive, stopped_at = NULL WHERE id = :w"),
        {"now": _naive(now), "n": held, "w": worker_id, "alive": WorkerState.ALIVE.value}).rowcount
    if not updated:
        announce_on(conn, worker_id, now)
        conn.execute(text("UPDATE workers SET items_held = :n WHERE id = :w"), {"n": held, "w": worker_id})
    return int(held)


def give_back_on(conn: Connection, worker_id: str) -> tuple[int, int]:
    """Put a worker's claimed items back to pending and return its budget holds: (items, holds)."""
    items = conn.execute(text(
        f"UPDATE batch_items SET state = '{_PENDING}', lease_owner = NULL, lease_expires_at = NULL "
        f"WHERE lease_owner = :w AND state = '{_CLAIMED}'"), {"w": worker_id}).rowcount
    holds = [int(r[0]) for r in conn.execute(text(
        f"SELECT id FROM reservations WHERE owner = :w AND state = '{_HELD}'"), {"w": worker_id})]
    for rid in holds:
        release_hold(conn, rid, ReservationState.SWEPT)
    return int(items), len(holds)


def reap_on(conn: Connection, silent_s: float, now: datetime | None = None,
            spare: str | None = None) -> dict[str, tuple[int, int]]:
    """Give back the items and holds of every worker silent for longer than `silent_s` (never `spare`, the
    caller itself); returns what each gave back. Only workers that still hold something are looked at."""
    now = now or utcnow()
    silent = [str(r[0]) for r in conn.execute(text(
        "SELECT w.id FROM workers w WHERE w.state = :alive AND w.last_beat_at < :before AND ("
        f"EXISTS (SELECT 1 FROM batch_items i WHERE i.lease_owner = w.id AND i.state = '{_CLAIMED}') OR "
        f"EXISTS (SELECT 1 FROM reservations r WHERE r.owner = w.id AND r.state = '{_HELD}'))"),
        {"alive": WorkerState.ALIVE.value, "before": _naive(now - timedelta(seconds=silent_s))})]
    out: dict[str, tuple[int, int]] = {}
    for worker_id in silent:
        if worker_id == spare:
            continue
        items, holds = give_back_on(conn, worker_id)
        conn.execute(text("UPDATE workers SET items_held = 0 WHERE id = :w"), {"w": worker_id})
        if items or holds:
            out[worker_id] = (items, holds)
    return out


def stop_on(conn: Connection, worker_id: str, now: datetime | None = None) -> tuple[int, int]:
    """A clean exit: give everything back and say "stopped"."""
    given = give_back_on(conn, worker_id)
    conn.execute(text("UPDATE workers SET state = :stopped, items_held = 0, stopped_at = :now WHERE id = :w"),
                 {"stopped": WorkerState.STOPPED.value, "now": _naive(now or utcnow()), "w": worker_id})
    return given


def reap(app: App, now: datetime | None = None, spare: str | None = None) -> dict[str, tuple[int, int]]:
    """`reap_on` in a transaction of its own (resume, the Batches page's figures)."""
    with immediate(app.engine) as conn:
        returned = reap_on(conn, app.settings.worker_silent_s, now, spare)
    _log_reaped(returned)
    return returned


def _log_reaped(returned: dict[str, tuple[int, int]]) -> None:
    for worker_id, (items, holds) in returned.items():
        log.warning("silent worker's work given back", extra={"fields": {
            "worker": worker_id, "items": items, "holds": holds}})


# ---------------------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerRow:
    id: str
    host: str
    pid: int
    started_at: datetime
    last_beat_at: datetime
    items_held: int
    state: str  # alive | silent | stopped (silent: alive in the table, but its beats stopped)
    stopped_at: datetime | None
    batches: tuple[int, ...] = ()  # the batches whose items it holds

    def as_json(self) -> dict[str, Any]:
        return {"worker": self.id, "host": self.host, "pid": self.pid, "state": self.state,
                "started_at": self.started_at.isoformat(), "last_beat_at": self.last_beat_at.isoformat(),
                "items_held": self.items_held}


def list_workers(app: App, now: datetime | None = None, shown_for: timedelta = SHOWN_FOR) -> list[WorkerRow]:
    """Workers seen lately, alive first; the items each holds are counted from the items themselves."""
    now = now or utcnow()
    with app.engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT w.id, w.host, w.pid, w.started_at, w.last_beat_at, w.state, w.stopped_at, "
            f"(SELECT COUNT(*) FROM batch_items i WHERE i.lease_owner = w.id AND i.state = '{_CLAIMED}') "
            "FROM workers w WHERE w.last_beat_at >= :since ORDER BY w.last_beat_at DESC"),
            {"since": _naive(now - shown_for)}).all()
        held_in: dict[str, list[int]] = {}
        for owner, batch_id in conn.execute(text(
                f"SELECT DISTINCT lease_owner, batch_id FROM batch_items WHERE state = '{_CLAIMED}' AND "
                "lease_owner IS NOT NULL ORDER BY batch_id")):
            held_in.setdefault(str(owner), []).append(int(batch_id))
    silent_before = now - timedelta(seconds=app.settings.worker_silent_s)
    out = []
    for wid, host, pid, started, beat, state, stopped, held in rows:
        last = as_utc(beat)
        silent = state == WorkerState.ALIVE and last < silent_before
        shown = WorkerState.SILENT.value if silent else str(state)
        out.append(WorkerRow(str(wid), str(host), int(pid), as_utc(started), last, int(held), shown,
                             as_utc(stopped) if stopped is not None else None, tuple(held_in.get(str(wid), ()))))
    order = {WorkerState.ALIVE: 0, WorkerState.SILENT: 1, WorkerState.STOPPED: 2}
    return sorted(out, key=lambda w: order.get(w.state, 3))


@dataclass(frozen=True)
class Holder:
    """A lease owner of a batch's claimed items."""

    worker: WorkerRow | None  # None for an owner that never announced itself
    owner: str
    items: int


def holders(app: App, batch_id: int, now: datetime | None = None) -> list[Holder]:
    """Who holds a batch's claimed items, by lease owner."""
    with app.engine.connect() as conn:
        rows = conn.execute(text(
            f"SELECT lease_owner, COUNT(*) FROM batch_items WHERE batch_id = :b AND state = '{_CLAIMED}' "
            "GROUP BY lease_owner ORDER BY lease_owner"), {"b": batch_id}).all()
    known = {w.id: w for w in list_workers(app, now, shown_for=timedelta(days=3650))}
    return [Holder(known.get(str(owner)), str(owner), int(n)) for owner, n in rows]


# ---------------------------------------------------------------------------------------------------------
# The beating thread
# ---------------------------------------------------------------------------------------------------------

class Heartbeat:
    """Announces a worker, beats from a thread of its own, and gives everything back when stopped."""

    def __init__(self, app: App, worker_id: str) -> None:
        self.app = app
        self.worker_id = worker_id
        self.interval = beat_interval(app.settings.worker_silent_s, app.settings.batch_lease_s)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._committer: GroupCommitter | None = None
        self._lock = threading.Lock()
        self.beats = 0
        self.last_error = ""

    def start(self) -> None:
        with immediate(self.app.engine) as conn:
            announce_on(conn, self.worker_id)
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.worker_id}", daemon=True)
        self._thread.start()

    def stop(self) -> tuple[int, int]:
        """Stop beating, give back what this worker still holds, mark it stopped; returns (items, holds)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(max(5.0, 2 * self.interval))
        with immediate(self.app.engine) as conn:
            return stop_on(conn, self.worker_id)

    @contextlib.contextmanager
    def through(self, committer: GroupCommitter) -> Iterator[None]:
        """Send the beats through this committer while the block runs (a batch's writes)."""
        with self._lock:
            previous, self._committer = self._committer, committer
        try:
            yield
        finally:
            with self._lock:
                self._committer = previous

    def beat(self) -> int:
        """One beat now: renew, record, reap. Returns the items held."""
        settings = self.app.settings
        now = utcnow()

        def write(conn: Connection) -> tuple[int, dict[str, tuple[int, int]]]:
            held = beat_on(conn, self.worker_id, settings.batch_lease_s, now)
            return held, reap_on(conn, settings.worker_silent_s, now, spare=self.worker_id)

        held, reaped = self._run(write)
        self.beats += 1
        _log_reaped(reaped)
        return held

    def _run(self, write: Write[Any]) -> Any:
        with self._lock:
            committer = self._committer
        if committer is not None and not committer.closed:
            try:
                return committer.submit(write).result(timeout=max(30.0, self.app.settings.worker_silent_s))
            except RuntimeError:  # closed between the check and the submit: write directly
                pass
        with immediate(self.app.engine) as conn:
            return write(conn)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
                self.last_error = ""
            except Exception as exc:  # a missed beat is retried at the next one; say so once per kind
                message = f"{type(exc).__name__}: {exc}"[:300]
                if message != self.last_error:
                    log.error("heartbeat failed", extra={"fields": {"worker": self.worker_id, "error": message}})
                self.last_error = message


_running: dict[str, tuple[Heartbeat, int]] = {}
_running_lock = threading.Lock()


@contextlib.contextmanager
def running(app: App, worker_id: str) -> Iterator[Heartbeat]:
    """This worker's heartbeat for the block (nested blocks of one worker share it; the outermost stops it)."""
    with _running_lock:
        entry = _running.get(worker_id)
        if entry is None:
            beat = Heartbeat(app, worker_id)
            beat.start()
            _running[worker_id] = (beat, 1)
        else:
            beat = entry[0]
            _running[worker_id] = (beat, entry[1] + 1)
    try:
        yield beat
    finally:
        with _running_lock:
            beat, count = _running[worker_id]
            if count > 1:
                _running[worker_id] = (beat, count - 1)
                last = False
            else:
                del _running[worker_id]
                last = True
        if last:
            beat.stop()


def _host_pid(worker_id: str) -> tuple[str, int]:
    """Host and process id from a worker id made by `core.batches.claims.new_worker_id` (host:pid:random)."""
    parts = worker_id.split(":")
    if len(parts) >= 3 and parts[-2].isdigit():
        return ":".join(parts[:-2]), int(parts[-2])
    return socket.gethostname(), os.getpid()
