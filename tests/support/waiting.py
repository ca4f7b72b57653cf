"""Waiting in tests: poll until something holds, with a deadline, never a fixed sleep.

Contract: `wait_until` returns as soon as the predicate holds (so a fast machine waits
little) and fails after `timeout` seconds naming what it waited for (so a slow one fails
clearly instead of racing on).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 30.0,
    what: str | Callable[[], str] = "",
    *,
    every: float = 0.1,
) -> T:
    """Poll predicate every `every` seconds until it returns something truthy; return that.

    Fail after timeout seconds; `what` names what was awaited (a callable is asked at that
    moment, e.g. for the tail of a log).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            described = what() if callable(what) else what
            raise AssertionError(f"timed out after {timeout:g} s waiting for {described or predicate}")
        time.sleep(every)
