"""Heartbeats: when the clock last ticked, and how many of its jobs failed.

Contract: every tick records one row per beating part (`record`, one upsert: the time,
the interval, the host, and the tick's job errors added to a running total), so any
process — a web worker on another machine, say — can tell how late the clock is
(`lag`). Like every domain function these flush and never commit.
"""

from __future__ import annotations

import datetime as dt
import socket

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import Heartbeat

CLOCK = "clock"


def record(session: Session, name: str, interval: float, errors: list[str],
           now: dt.datetime | None = None) -> None:
    """Record a beat of name now, adding errors (one text per failed job) to its count."""
    now = now or utcnow()
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    values = {"name": name, "beat_at": now, "interval_seconds": interval, "host": socket.gethostname(),
              "errors": len(errors), "last_error": errors[-1] if errors else None,
              "last_error_at": now if errors else None}
    statement = insert(Heartbeat).values(**values)
    changes = {"beat_at": statement.excluded.beat_at, "interval_seconds": interval,
               "host": statement.excluded.host, "errors": Heartbeat.errors + len(errors)}
    if errors:
        changes.update(last_error=errors[-1], last_error_at=now)
    session.execute(statement.on_conflict_do_update(index_elements=[Heartbeat.name], set_=changes))
    session.flush()


def get(session: Session, name: str = CLOCK) -> Heartbeat | None:
    """Return the heartbeat of name, or None if it never beat."""
    return session.scalar(select(Heartbeat).where(Heartbeat.name == name))


def lag(beat: Heartbeat, now: dt.datetime | None = None) -> float:
    """Return how many seconds the next beat is overdue (0 while on time)."""
    now = now or utcnow()
    return max(0.0, (now - beat.beat_at).total_seconds() - beat.interval_seconds)
