"""Click redirects answered from memory, clicks written in batches.

Contract: `ClickRecorder.target` returns where a click goes from an in-process cache of
each issue's links (one query per issue per process, on first use); `record` appends the
click to a buffer and returns at once. A background thread, started on the first click,
writes the buffer every FLUSH_SECONDS in one INSERT and settles the ready clicks
(digest.domain.engagement.settle: safe in many processes at once, the database is the
truth). `stop` (called at exit) writes what is left, so a clean shutdown loses nothing
and a crash loses at most the last FLUSH_SECONDS of clicks.
"""

from __future__ import annotations

import atexit
import datetime as dt
import logging
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from flask import Flask

from digest.core.db import Database, utcnow
from digest.domain import engagement

log = logging.getLogger(__name__)

FLUSH_SECONDS = 1.0
SETTLE_EVERY = 5.0
ISSUES_CACHED = 64


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
        at: dt.datetime | None = None,
    ) -> None:
        """Buffer one click; it reaches the database within FLUSH_SECONDS."""
        event = {"issue_id": issue_id, "delivery_id": delivery_id, "link": link,
                 "at": at or utcnow(), "machine": machine}
        with self._lock:
            self._buffer.append(event)
            if self._thread is None:
                self._start()

    def flush(self) -> int:
        """Write the buffered clicks in one statement; return how many."""
        with self._lock:
            events, self._buffer = self._buffer, []
        if events:
            try:
                with self._database.session() as session:
                    engagement.record_events(session, events)
            except Exception:
                with self._lock:  # kept for the next flush rather than lost
                    self._buffer[:0] = events
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
