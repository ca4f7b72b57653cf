"""Web answers first: background work of this process steps aside while it answers requests.

Contract:
- The web app counts the requests this process is answering: `counted(wsgi_app)` wraps
  it (digest.create_app), `answering()` counts one block.
- A background loop calls `step_aside(limit)` between two units of work: it returns at
  once when no request is being answered, else when the last one is answered or after
  limit seconds, whichever comes first. So the sender of an issue keeps going, at a pace
  the web leaves it, and a signup burst during a send is answered as if the send were not
  there.
- Why: one Python process runs Python on one core at a time. A send that keeps its full
  pace through a burst takes that core from the answers: measured, signups fell from 300
  to 220 a second with a p99 of 1.7 s, while the send took 630 messages a second.
- The count is this process's own; other processes (a `digest worker`, Celery) never
  wait for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

_lock = threading.Condition()
_answering = 0


@contextmanager
def answering() -> Iterator[None]:
    """Count one request as being answered while the block runs."""
    global _answering
    with _lock:
        _answering += 1
    try:
        yield
    finally:
        with _lock:
            _answering -= 1
            if not _answering:
                _lock.notify_all()


def step_aside(limit: float) -> None:
    """Wait until no request is being answered, at most limit seconds."""
    if not _answering:
        return
    with _lock:
        _lock.wait_for(lambda: not _answering, limit)


def counted(wsgi_app: WSGIApplication) -> WSGIApplication:
    """Return wsgi_app counting each request while it is answered (its answer's body
    included, unless streamed)."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        with answering():
            return wsgi_app(environ, start_response)

    return app
