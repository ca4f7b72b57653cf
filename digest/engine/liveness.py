"""This process as a sender: its heartbeat, the takeover of dead senders' claims, and the
obstacle it meets, all in its `sender` row.

Contract: `liveness_for(app).start()` registers the process and beats every
DIGEST_HEARTBEAT_SECONDS in a thread of its own, so a sender thread stuck on a slow SMTP
server never looks dead. Each beat also takes over the rows in flight of dead senders
(digest.domain.senders: pid gone on this host, or silent for a few intervals) and writes
the obstacle the sender threads report (`report` / `clear`), so every process sees it.
Staleness is trusted only once this process's own beats have gone through for a few
intervals: after a database outage every heartbeat is old, and nobody is dead for that.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass

from flask import Flask

from digest.core.db import Database, utcnow
from digest.domain import deliveries, senders

log = logging.getLogger(__name__)


def pid_running(pid: int) -> bool:
    """Return whether process pid runs on this host (a zombie does not)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except FileNotFoundError:
        return False
    except OSError:
        pass
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class _Report:
    text: str
    since: dt.datetime
    retry_at: dt.datetime | None


class Liveness:
    """One process's sender row, kept alive by a heartbeat thread."""

    def __init__(self, database: Database, interval: float, ambiguous: str = "hold") -> None:
        self.database = database
        self.interval = interval
        self.ambiguous = ambiguous
        self.host = socket.gethostname()
        self.sender_id: int | None = None
        self._reports: dict[str, _Report] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._users = 0
        self._healthy_since: float | None = None
        self._first_beat = threading.Event()

    def start(self) -> Liveness:
        """Start beating (once per process however many pools use it) and wait a moment
        for the first beat, so the first claims already name this sender; return self."""
        with self._lock:
            self._users += 1
            if self._thread is None:
                self._stop.clear()
                self._first_beat.clear()
                self._thread = threading.Thread(target=self._run, name="digest-heartbeat", daemon=True)
                self._thread.start()
        self._first_beat.wait(self.interval)
        return self

    def stop(self) -> None:
        """Stop beating once the last user stops, and retire the sender row."""
        with self._lock:
            self._users -= 1
            if self._users > 0 or self._thread is None:
                return
            thread, self._thread = self._thread, None
        self._stop.set()
        thread.join(10)
        if self.sender_id is not None:
            try:
                with self.database.engine.begin() as conn:
                    deliveries.take_over(conn, [self.sender_id], self.ambiguous)
                    senders.retire(conn, self.sender_id)
            except Exception:  # noqa: BLE001  (a dead row is taken over by the next sender)
                log.warning("sender %s: could not retire its row", self.sender_id, exc_info=True)
            self.sender_id = None

    def report(self, who: str, text: str, retry_in: float | None = None) -> None:
        """Say what stops the caller (a sender thread) now; kept until clear(who)."""
        now = utcnow()
        retry_at = now + dt.timedelta(seconds=retry_in) if retry_in is not None else None
        with self._lock:
            seen = self._reports.get(who)
            since = seen.since if seen is not None and seen.text == text else now
            self._reports[who] = _Report(text, since, retry_at)

    def clear(self, who: str) -> None:
        """The caller's obstacle passed."""
        with self._lock:
            self._reports.pop(who, None)

    def beat(self) -> None:
        """Register if needed, record the heartbeat and the obstacle, take over the dead."""
        with self._lock:
            reports = sorted(self._reports.values(), key=lambda r: r.since)
        with self.database.engine.begin() as conn:
            if self.sender_id is None or not senders.beat(conn, self.sender_id):
                self.sender_id = senders.register(conn, self.host, os.getpid())
            if reports:
                first = reports[0]
                senders.set_obstacle(conn, self.sender_id, first.text, first.retry_at, first.since)
            else:
                senders.clear_obstacle(conn, self.sender_id)
        healthy = self._healthy_since = self._healthy_since or time.monotonic()
        trusted = time.monotonic() - healthy >= self.interval * senders.STALE_BEATS
        with self.database.engine.begin() as conn:
            dead = senders.dead_senders(
                conn, host=self.host, pid_running=pid_running, interval=self.interval,
                trust_staleness=trusted, exclude=self.sender_id,
            )
            if not dead:
                return
            taken = deliveries.take_over(conn, dead, self.ambiguous)
            for sender_id in dead:
                senders.retire(conn, sender_id)
        log.warning(
            "took over from %d dead sender(s): %d claims back in the queue, %d unclear sends marked",
            len(dead), taken.returned, taken.unclear,
        )

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.beat()
            except Exception:  # noqa: BLE001  (a database outage must not end the heartbeat)
                self._healthy_since = None
                log.warning("heartbeat: the database is unreachable", exc_info=True)
            self._first_beat.set()
            self._stop.wait(self.interval)


def liveness_for(app: Flask) -> Liveness:
    """Return the app's Liveness, made on first use (not started)."""
    found: Liveness | None = app.extensions.get("digest.liveness")
    if found is None:
        found = app.extensions.setdefault(
            "digest.liveness",
            Liveness(app.extensions["digest.db"], app.config["HEARTBEAT_SECONDS"], app.config["AMBIGUOUS"]),
        )
    return found
