"""This process as a sender: its heartbeat, the takeover of dead senders' claims, and the
obstacle it meets, all in its `sender` row.

Contract: `liveness_for(app).start()` registers the process and beats every
DIGEST_HEARTBEAT_SECONDS in a thread of its own, so a sender thread stuck on a slow SMTP
server never looks dead. Each beat also takes over the rows in flight of dead senders
(digest.domain.senders: pid gone on this host, or silent for a few intervals) and writes
the obstacle the sender threads report (`report` / `clear`), so every process sees it.
Staleness is trusted only once this process's own beats have gone through for a few
intervals: after a database outage every heartbeat is old, and nobody is dead for that.

While a beat fails on the database, the outage cannot be written where the others read
obstacles, so it is kept where they can still see it: in this process's memory
(`outage()`, which /healthz shows) and in a small file in the instance folder
(`database-outage.json`, which every command shows next to its own database error:
`read_outage`). The first beat that goes through removes both, and obstacles the sender
threads reported about the database are never written once it answers again.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

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


OUTAGE_FILE = "database-outage.json"
# What the sender threads' reports about the database start with.
DATABASE_TROUBLE = "database unreachable"


@dataclass(frozen=True)
class _Report:
    text: str
    since: dt.datetime
    retry_at: dt.datetime | None


@dataclass(frozen=True)
class Outage:
    """The database as a process finds it: unreachable since when, why, and who says so."""

    since: dt.datetime
    reason: str
    pid: int
    host: str
    retry_seconds: float

    def describe(self) -> str:
        """Return one line for the operator."""
        return (f"{DATABASE_TROUBLE} since {self.since:%H:%M:%S} UTC ({self.reason}), "
                f"as digest process {self.pid} on {self.host} finds it, retrying every "
                f"{self.retry_seconds:g} s")


def read_outage(instance_path: str | Path) -> Outage | None:
    """Return the outage a running process of this host recorded in the instance folder, if any."""
    try:
        data = json.loads((Path(instance_path) / OUTAGE_FILE).read_text())
        outage = Outage(dt.datetime.fromisoformat(data["since"]), str(data["reason"]),
                        int(data["pid"]), str(data["host"]), float(data["retry_seconds"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    # A process killed during the outage leaves its file behind: it speaks no more.
    if outage.host == socket.gethostname() and not pid_running(outage.pid):
        return None
    return outage


class Liveness:
    """One process's sender row, kept alive by a heartbeat thread."""

    def __init__(
        self, database: Database, interval: float, ambiguous: str = "hold",
        outage_file: Path | None = None,
    ) -> None:
        self.database = database
        self.outage_file = outage_file
        self._outage: Outage | None = None
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
        self._up()  # a stopped process retries no more: its word on an outage goes with it
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

    def outage(self) -> Outage | None:
        """Return the database outage this process's heartbeat meets now, if any."""
        return self._outage

    def beat(self) -> None:
        """Register if needed, record the heartbeat and the obstacle, take over the dead."""
        with self._lock:
            # The database answers this beat: what the senders said about it is over.
            reports = sorted(
                (r for r in self._reports.values() if not r.text.startswith(DATABASE_TROUBLE)),
                key=lambda r: r.since,
            )
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
            except Exception as exc:  # noqa: BLE001  (a database outage must not end the heartbeat)
                self._healthy_since = None
                log.warning("heartbeat: the database is unreachable", exc_info=True)
                self._down(exc)
            else:
                self._up()
            self._first_beat.set()
            self._stop.wait(self.interval)

    def _down(self, exc: Exception) -> None:
        orig = getattr(exc, "orig", None) or exc
        reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0][:300]
        since = self._outage.since if self._outage is not None else utcnow()
        self._outage = Outage(since, reason, os.getpid(), self.host, self.interval)
        if self.outage_file is None:
            return
        record = {"since": since.isoformat(), "reason": reason, "pid": os.getpid(),
                  "host": self.host, "retry_seconds": self.interval}
        temporary = self.outage_file.with_name(f".{self.outage_file.name}.{os.getpid()}")
        try:
            temporary.write_text(json.dumps(record))
            temporary.replace(self.outage_file)
        except OSError:
            log.warning("heartbeat: cannot record the outage in %s", self.outage_file, exc_info=True)

    def _up(self) -> None:
        if self._outage is None:
            return
        log.info("heartbeat: the database answers again (unreachable since %s)", self._outage.since)
        self._outage = None
        if self.outage_file is not None:
            self.outage_file.unlink(missing_ok=True)


def liveness_for(app: Flask) -> Liveness:
    """Return the app's Liveness, made on first use (not started)."""
    found: Liveness | None = app.extensions.get("digest.liveness")
    if found is None:
        found = app.extensions.setdefault(
            "digest.liveness",
            Liveness(app.extensions["digest.db"], app.config["HEARTBEAT_SECONDS"], app.config["AMBIGUOUS"],
                     Path(app.instance_path) / OUTAGE_FILE),
        )
    return found
