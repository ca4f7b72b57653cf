"""Click redirects answered from memory, clicks written in batches.

Contract: `ClickRecorder.target` returns where a click goes from an in-process cache of
each issue's links (one query per issue per process, on first use); `record` appends the
click to a buffer and returns at once. A background thread, started on the first click,
writes the buffer every FLUSH_SECONDS in one INSERT and settles the ready clicks
(digest.domain.engagement.settle: safe in many processes at once, the database is the
truth). `stop` (called at exit) writes what is left, so a clean shutdown loses nothing
and a crash loses at most the last FLUSH_SECONDS of clicks.

A flood cannot grow the buffer or the writes without bound: each client address (an
IPv6 /64) has its clicks recorded up to DIGEST_CLICK_RECORD_LIMIT, and the buffer holds
at most BUFFER_LIMIT clicks (the database away); clicks past either are not recorded,
counted and logged, and the reader is sent on all the same.
"""

from __future__ import annotations

import atexit
import datetime as dt
import ipaddress
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from flask import Flask
from limits import parse_many

from digest.core.db import Database, utcnow
from digest.domain import engagement

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
SETTLE_EVERY = 5.0
ISSUES_CACHED = 64
BUFFER_LIMIT = 50_000  # clicks held while the database does not take them
ADDRESSES_COUNTED = 100_000  # client addresses counted at once; past it, a new one is not


def _client(address: str | None) -> str:
    """Return the unit a rate limit counts: the address, or its /64 for IPv6 (one host's
    share of addresses)."""
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return address or ""
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class _PerClient:
    """Fixed-window counts of the clicks recorded per client, for a limits-notation rate
    ("600 per minute;5000 per hour")."""

    def __init__(self, spec: str) -> None:
        self._windows = [(item.amount, item.get_expiry()) for item in parse_many(spec)]
        self._counts: dict[tuple[str, int, int], int] = {}

    def allow(self, client: str, now: float) -> bool:
        """Count one click of client and return whether it is within every limit."""
        keys = [(client, seconds, int(now // seconds)) for _, seconds in self._windows]
        counts = self._counts
        if any(counts.get(key, 0) >= amount for key, (amount, _) in zip(keys, self._windows, strict=True)):
            return False
        if keys[0] not in counts and len(counts) >= ADDRESSES_COUNTED * len(self._windows):
            return False
        for key in keys:
            counts[key] = counts.get(key, 0) + 1
        return True

    def prune(self, now: float) -> None:
        """Forget the windows that have ended."""
        self._counts = {
            key: n for key, n in self._counts.items() if key[2] >= int(now // key[1])
        }


class ClickRecorder:
    """One process's click buffer and link cache (see the module doc)."""

    def __init__(self, database: Database, config: Mapping[str, Any]) -> None:
        self._database = database
        self._config = config
        self._buffer: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._targets: OrderedDict[int, dict[int, str]] = OrderedDict()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_settle = 0.0
        self._per_client = _PerClient(config["CLICK_RECORD_LIMIT"])
        self.over_limit = 0  # clicks not recorded since start: over a client's limit …
        self.overflow = 0  # … or past the buffer's bound
        self._reported = (0, 0)

    def target(self, issue_id: int, link: int) -> str | None:
        """Return the URL of an issue's link, or None for a link it does not have."""
        with self._lock:
            links = self._targets.get(issue_id)
            if links is not None:
                self._targets.move_to_end(issue_id)
        if links is None or link not in links:
            with self._database.reader() as session:
                links = engagement.link_targets(session, issue_id)
            with self._lock:
                self._targets[issue_id] = links
                while len(self._targets) > ISSUES_CACHED:
                    self._targets.popitem(last=False)
        return links.get(link)

    def record(
        self, issue_id: int, delivery_id: int, link: int, machine: str | None,
        address: str | None = None, at: dt.datetime | None = None,
    ) -> bool:
        """Buffer one click from a client address; it reaches the database within
        FLUSH_SECONDS. Return False when it is not recorded (see the module doc)."""
        event = {"issue_id": issue_id, "delivery_id": delivery_id, "link": link,
                 "at": at or utcnow(), "machine": machine}
        client = _client(address)
        with self._lock:
            if self._thread is None:
                self._start()
            if not self._per_client.allow(client, time.monotonic()):
                self.over_limit += 1
                return False
            if len(self._buffer) >= BUFFER_LIMIT:
                self.overflow += 1
                return False
            self._buffer.append(event)
            return True

    def flush(self) -> int:
        """Write the buffered clicks in one statement; return how many."""
        with self._lock:
            events, self._buffer = self._buffer, []
            self._per_client.prune(time.monotonic())
            dropped = (self.over_limit, self.overflow)
        if dropped != self._reported:
            log.warning(
                "clicks: %d not recorded over DIGEST_CLICK_RECORD_LIMIT (a client's limit), "
                "%d past the buffer's bound of %d, since the process started (readers were "
                "sent on all the same)", *dropped, BUFFER_LIMIT,
            )
            self._reported = dropped
        if events:
            try:
                with self._database.session() as session:
                    engagement.record_events(session, events)
            except Exception:
                with self._lock:  # kept for the next flush rather than lost, up to the bound
                    self._buffer[:0] = events
                    excess = len(self._buffer) - BUFFER_LIMIT
                    if excess > 0:
                        del self._buffer[BUFFER_LIMIT:]
                        self.overflow += excess
                raise
        return len(events)

    def settle(self, now: dt.datetime | None = None) -> int:
        """Count the clicks ready to settle; return how many."""
        with self._database.session() as session:
            return engagement.settle(session, self._config, now)

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="digest-clicks", daemon=True)
        self._thread.start()
        atexit.register(self.stop)

    def _run(self) -> None:
        clock = 0.0
        while not self._stop.wait(FLUSH_SECONDS):
            clock += FLUSH_SECONDS
            try:
                self.flush()
                if clock - self._last_settle >= SETTLE_EVERY:
                    self._last_settle = clock
                    self.settle()
            except Exception:  # noqa: BLE001  (the database is back next second; clicks wait)
                log.exception("clicks: writing a batch failed")

    def stop(self) -> None:
        """Stop the thread and write what is buffered."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=10)
        self.flush()


def recorder(app: Flask) -> ClickRecorder:
    """Return the app's click recorder, made on first use."""
    found: ClickRecorder | None = app.extensions.get("digest.clicks")
    if found is None:
        found = app.extensions.setdefault(
            "digest.clicks", ClickRecorder(app.extensions["digest.db"], app.config)
        )
    return found
