"""Where the rate limits count in one process: limits' memory storage without its sweeper.

limits' own memory storage starts a thread whenever its last one ended (every 10 ms
under steady traffic), and each walks every key: with per-IP limits during a signup
burst that costs a few per cent of the process's CPU. This one keeps a fixed-window
counter per key, forgets an expired one when it meets it, and drops every expired one
at most once every SWEEP_SECONDS, in the request that notices. It supports the fixed
window only: Flask-Limiter's default strategy, the one digest uses (the `memory://`
setting selects it; any other storage URL is handed to limits).
"""

from __future__ import annotations

import threading
import time
from typing import Any

from limits.storage import Storage

SCHEME = "digest-memory"
SWEEP_SECONDS = 10.0


class FixedWindowMemory(Storage):
    """Fixed-window counters in this process's memory."""

    STORAGE_SCHEME = [SCHEME]

    def __init__(self, uri: str | None = None, wrap_exceptions: bool = False, **options: Any) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, float]] = {}  # key: (count, end of its window)
        self._next_sweep = time.time() + SWEEP_SECONDS

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        """Errors this storage may raise (none of its own)."""
        return ValueError

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        """Add amount to key's count, starting a window of expiry seconds if none is open."""
        now = time.time()
        with self._lock:
            if now >= self._next_sweep:
                self._windows = {k: w for k, w in self._windows.items() if w[1] > now}
                self._next_sweep = now + SWEEP_SECONDS
            count, end = self._windows.get(key, (0, 0.0))
            if end <= now:
                count, end = 0, now + expiry
            count += amount
            self._windows[key] = (count, end)
            return count

    def get(self, key: str) -> int:
        """Return key's count in its open window (0 when none is open)."""
        count, end = self._windows.get(key, (0, 0.0))
        return count if end > time.time() else 0

    def get_expiry(self, key: str) -> float:
        """Return when key's window ends (now when none is open)."""
        now = time.time()
        _count, end = self._windows.get(key, (0, now))
        return end if end > now else now

    def check(self) -> bool:
        """Return whether the storage works (memory always does)."""
        return True

    def reset(self) -> int | None:
        """Forget every count; return how many keys there were."""
        with self._lock:
            count = len(self._windows)
            self._windows = {}
        return count

    def clear(self, key: str) -> None:
        """Forget key's count."""
        with self._lock:
            self._windows.pop(key, None)
