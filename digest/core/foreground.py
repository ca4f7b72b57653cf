"""Web answers first: background work of this process steps aside while it answers requests.

Contract:
- The web app counts the requests this process is answering: `counted(wsgi_app)` wraps
  it (digest.create_app), `answering()` counts one block.
- A background loop calls `step_aside(limit)` between two units of work: it returns at
  once when no request has been answered for QUIET_SECONDS, else when that quiet comes or
  after limit seconds, whichever is first. So a send keeps going, at one unit per limit
  through a burst that never pauses and at full pace again QUIET_SECONDS after it ends,
  and a signup burst during a send is answered almost as if the send were not there.
- Why: one Python process runs Python on one core at a time. A send that keeps its full
  pace through a burst takes that core from the answers: measured, signups offered at 300
  a second were answered at 220 with a p99 of 1.7 s while the send kept its full pace.
- The count is this process's own; other processes (a `digest worker`, Celery) never
  wait for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

# A pause in the answers this long ends a burst (signups 300 a second apart arrive
# every 3 ms): waiting only for no answer at all would let a send into every gap.
QUIET_SECONDS = 0.01

_lock = threading.Condition()
_answering = 0
_last_answered = float("-inf")


@contextmanager
def answering() -> Iterator[None]:
    """Count one request as being answered while the block runs."""
    global _answering, _last_answered
    with _lock:
        _answering += 1
    try:
        yield
    finally:
        with _lock:
            _answering -= 1
            _last_answered = time.monotonic()
            if not _answering:
                _lock.notify_all()


def step_aside(limit: float) -> None:
    """Wait until no request has been answered for QUIET_SECONDS, at most limit seconds."""
    now = time.monotonic()
    if not _answering and now - _last_answered >= QUIET_SECONDS:
        return
    deadline = now + limit
    with _lock:
        while (now := time.monotonic()) < deadline:
            if _answering:
                _lock.wait(deadline - now)
                continue
            quiet = now - _last_answered
            if quiet >= QUIET_SECONDS:
                return
            _lock.wait(min(QUIET_SECONDS - quiet, deadline - now))


def counted(wsgi_app: WSGIApplication) -> WSGIApplication:
    """Return wsgi_app counting each request while it is answered (its answer's body
    included, unless streamed)."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with answering():
            return wsgi_app(environ, start_response)

    return app
