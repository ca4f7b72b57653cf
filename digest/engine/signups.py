"""The engine's half of a public signup: act on the requests the web recorded.

Contract:
- `take_signups(database, config)` acts on waiting SignupRequest rows, oldest first, in
  short transactions so SQLite's write lock is never held long and signups keep
  answering at once: the rows are claimed (SKIP LOCKED on PostgreSQL, so two processes
  never take the same one); those of new addresses are acted on together
  (digest.domain.subscribers.signup.take_new_readers), a few others one by one
  (`take_request`), each deleted in the same transaction. A crash repeats none and
  loses none.
- A request the domain fails on (a bug, not bad input: that was refused at the door) is
  kept with its error, logged, and not retried; the others go on. A database that fails
  (down, full, locked) fails the whole chunk, which stays waiting for the next run.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from digest.core.db import Database
from digest.core.models import SignupRequest
from digest.domain.subscribers.signup import take_new_readers, take_request

log = logging.getLogger(__name__)

# Requests claimed per transaction: those of new addresses take a few statements together.
CHUNK = 50
# Of those, the ones acted on one by one (known addresses), which cost a few statements
# each: on SQLite every transaction holds the write lock, which the signups being
# answered wait for, so it stays short. The rest wait for the next transaction.
ONE_BY_ONE = 3


def take_signups(
    database: Database,
    config: Mapping[str, Any],
    *,
    limit: int | None = None,
    now: dt.datetime | None = None,
) -> int:
    """Act on up to limit waiting signup requests (all when None); return how many."""
    taken = 0
    while limit is None or taken < limit:
        size = CHUNK if limit is None else min(CHUNK, limit - taken)
        done, claimed = _take_chunk(database, config, size, now)
        taken += done
        if not done or (done == claimed < size):
            # The queue ran dry: another look now would be a write transaction for nothing.
            break
    return taken


def waiting_signups(database: Database) -> int:
    """Return how many signup requests wait for the engine."""
    with database.session() as session:
        return session.scalar(
            select(func.count()).select_from(SignupRequest).where(SignupRequest.error.is_(None))
        ) or 0


def _take_chunk(
    database: Database, config: Mapping[str, Any], size: int, now: dt.datetime | None
) -> tuple[int, int]:
    """Act on the oldest waiting requests (at most size); return how many were acted on
    and how many were waiting (the known addresses past ONE_BY_ONE wait for the next)."""
    with database.session() as session:
        requests = session.scalars(
            select(SignupRequest)
            .where(SignupRequest.error.is_(None))
            .order_by(SignupRequest.id)
            .limit(size)
            .with_for_update(skip_locked=True)
        ).all()
        if not requests:
            return 0, 0
        others = take_new_readers(session, config, requests, now)
        for request in others[:ONE_BY_ONE]:
            request_id = request.id
            try:
                with session.begin_nested():
                    take_request(session, config, request, now)
            except OperationalError:
                raise
            except Exception as exc:  # noqa: BLE001  (one broken request must not block the rest)
                log.exception("signup request %s could not be taken", request_id)
                failed = session.get(SignupRequest, request_id)
                if failed is not None:
                    failed.error = f"{type(exc).__name__}: {exc}"[:2000]
        return len(requests) - len(others) + min(len(others), ONE_BY_ONE), len(requests)
