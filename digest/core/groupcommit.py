"""Group commit: many threads' small writes, made by one of them in one transaction.

Contract:
- `GroupCommit(write).submit(item)` returns once `write` has committed a batch holding
  item, or raises what that write raised (every item of a failed batch gets the error;
  none of it was written). The first thread to arrive writes the batch of everything
  submitted meanwhile; the others wait, holding no transaction, and when it is done the
  oldest of those who arrived during its write takes the next batch. Under a burst one
  transaction (on SQLite one hold of the write lock, one commit) carries many items
  instead of one each.
- `write` is called in the submitting threads, one batch at a time, never concurrently.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")


class _Waiting(Generic[T]):
    """One submitted item: its thread waits on ready, to be done or to lead."""

    __slots__ = ("error", "item", "lead", "ready")

    def __init__(self, item: T) -> None:
        self.item = item
        self.ready = threading.Event()
        self.lead = False
        self.error: BaseException | None = None


class GroupCommit(Generic[T]):
    """Write items submitted by many threads in batches, one batch at a time."""

    def __init__(self, write: Callable[[Sequence[T]], None]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[_Waiting[T]] = []
        self._busy = False

    def submit(self, item: T) -> None:
        """Return once item is written (with whatever else was waiting), or raise why not."""
        waiting = _Waiting(item)
        with self._lock:
            self._queue.append(waiting)
            lead = not self._busy
            self._busy = True
        if not lead:
            waiting.ready.wait()
            lead = waiting.lead
        if lead:
            self._lead()
        if waiting.error is not None:
            raise waiting.error

    def _lead(self) -> None:
        with self._lock:
            batch, self._queue = self._queue, []
        error: BaseException | None = None
        try:
            self._write([waiting.item for waiting in batch])
        except BaseException as exc:  # noqa: BLE001  (handed to every submitter of the batch)
            error = exc
        with self._lock:
            following = self._queue[0] if self._queue else None
            self._busy = following is not None
        if following is not None:
            following.lead = True
            following.ready.set()
        for waiting in batch:
            waiting.error = error
            waiting.ready.set()
