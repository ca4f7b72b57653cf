"""The send rate shared by every sender on every machine: a token bucket in one row.

Contract: with DIGEST_SEND_RATE = r, all senders together start at most r messages per
second (plus a burst of about one second's worth). Each `acquire()` reserves tokens with
one `UPDATE … RETURNING` on the `send_rate` row, timed by the database's clock so
machines with different clocks agree; a reservation that takes the bucket below zero
returns how long its holder must wait, so waiting senders queue up fairly without
polling. A 421 or 454 reply halves the rate in use (at most once per few seconds, so a
burst of refusals counts once); it then recovers linearly to the full rate over about a
minute.
"""

from __future__ import annotations

import threading

from sqlalchemy import text

from digest.core.db import Database

RECOVERY_SECONDS = 60.0
SLOWDOWN_EVERY_SECONDS = 5.0
SLOWEST_FACTOR = 0.05

_NOW = {
    "postgresql": "extract(epoch from clock_timestamp())",
    "sqlite": "((julianday('now') - 2440587.5) * 86400.0)",
}
_LEAST = {"postgresql": "LEAST", "sqlite": "MIN"}
_GREATEST = {"postgresql": "GREATEST", "sqlite": "MAX"}


class SendRateLimiter:
    """This process's handle on the shared bucket (the `send_rate` row); thread-safe."""

    def __init__(self, database: Database, rate: float, name: str = "smtp") -> None:
        self.database = database
        self.rate = rate
        self.name = name
        self.burst = max(1.0, rate)
        # Reserving a few tokens per round trip keeps database writes to ~20/s per
        # sender at high rates, at the cost of bursts of 1/20 s worth of messages.
        self.chunk = max(1, int(rate / 20))
        self._lock = threading.Lock()
        self._held = 0
        self._ready = False
        dialect = database.dialect
        now, least, greatest = _NOW[dialect], _LEAST[dialect], _GREATEST[dialect]
        self._ensure = text(
            "INSERT INTO send_rate (name, tokens, stamp, factor, slowed_at) "
            f"VALUES (:name, :burst, {now}, 1.0, 0) ON CONFLICT (name) DO NOTHING"
        )
        self._take = text(
            "UPDATE send_rate SET "
            f"tokens = {least}(:burst, tokens + ({now} - stamp) * :rate * factor) - :n, "
            f"factor = {least}(1.0, factor + ({now} - stamp) / :recovery), "
            f"stamp = {now} "
            "WHERE name = :name RETURNING tokens, factor"
        )
        self._slow = text(
            f"UPDATE send_rate SET factor = {greatest}(:slowest, factor * 0.5), slowed_at = {now} "
            f"WHERE name = :name AND slowed_at < {now} - :every"
        )

    def acquire(self) -> float:
        """Take one message's token; return the seconds to wait before sending it."""
        with self._lock:
            if self._held > 0:
                self._held -= 1
                return 0.0
            tokens: float
            factor: float
            with self.database.engine.begin() as conn:
                if not self._ready:
                    conn.execute(self._ensure, {"name": self.name, "burst": self.burst})
                    self._ready = True
                tokens, factor = conn.execute(
                    self._take,
                    {
                        "name": self.name,
                        "burst": self.burst,
                        "rate": self.rate,
                        "n": self.chunk,
                        "recovery": RECOVERY_SECONDS,
                    },
                ).one()
            self._held = self.chunk - 1
            if tokens >= 0:
                return 0.0
            return -tokens / (self.rate * max(factor, SLOWEST_FACTOR))

    def slow_down(self) -> bool:
        """Halve the shared rate after a 421/454; return whether this call did it."""
        with self._lock:
            self._held = 0
            with self.database.engine.begin() as conn:
                if not self._ready:
                    conn.execute(self._ensure, {"name": self.name, "burst": self.burst})
                    self._ready = True
                changed = conn.execute(
                    self._slow,
                    {"name": self.name, "slowest": SLOWEST_FACTOR, "every": SLOWDOWN_EVERY_SECONDS},
                ).rowcount
            return changed == 1
