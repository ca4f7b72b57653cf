"""Sender processes: who is alive, and what stops them.

Contract: every process that sends registers one `sender` row (host, pid) and beats its
`heartbeat_at` every DIGEST_HEARTBEAT_SECONDS; the deliveries it claims name it
(`delivery.sender_id`). A sender is dead when its pid no longer runs on this host, or
when its heartbeat is older than STALE_BEATS intervals; a living sender takes over the
rows in flight of dead ones (`deliveries.take_over`) and deletes their rows, so a crash
costs seconds, not a lease. The row also carries the obstacle its process meets now
(SMTP server unreachable, refusing, hanging), since when and when it tries again, for
every process to show; a sender clears it when it passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import delete, insert, select, update

from digest.core.db import rowcount, utcnow
from digest.core.models import Sender
from digest.domain.deliveries import Executor

SENDER = Sender.__table__
# A heartbeat older than this many intervals means the process is gone (or cut off from
# the database long enough that its claims are better served by someone else).
STALE_BEATS = 3


def register(executor: Executor, host: str, pid: int, now: dt.datetime | None = None) -> int:
    """Add this process's sender row; return its id."""
    now = now or utcnow()
    result = executor.execute(
        insert(SENDER).values(host=host[:255], pid=pid, started_at=now, heartbeat_at=now)
        .returning(SENDER.c.id)
    )
    sender_id: int = result.scalar_one()
    return sender_id


def beat(executor: Executor, sender_id: int, now: dt.datetime | None = None) -> bool:
    """Record that the sender is alive; return False when its row is gone (it was taken
    for dead: register again)."""
    statement = update(SENDER).where(SENDER.c.id == sender_id).values(heartbeat_at=now or utcnow())
    return rowcount(executor.execute(statement)) == 1


def retire(executor: Executor, sender_id: int) -> None:
    """Delete the sender's row (it stopped cleanly, or it is dead and its rows taken over)."""
    executor.execute(delete(SENDER).where(SENDER.c.id == sender_id))


@dataclass(frozen=True)
class Known:
    """A sender row as liveness checks read it."""

    id: int
    host: str
    pid: int
    heartbeat_at: dt.datetime


def dead_senders(
    executor: Executor,
    *,
    host: str,
    pid_running: Callable[[int], bool],
    interval: float,
    trust_staleness: bool,
    exclude: int | None = None,
    now: dt.datetime | None = None,
) -> list[int]:
    """Return the ids of dead senders: on this host with their pid gone, or (when
    trust_staleness: the caller's own heartbeats got through for a while, so a stale one
    is not the database's fault) silent for STALE_BEATS intervals."""
    now = now or utcnow()
    stale_before = now - dt.timedelta(seconds=interval * STALE_BEATS)
    rows = executor.execute(select(SENDER.c.id, SENDER.c.host, SENDER.c.pid, SENDER.c.heartbeat_at))
    dead = []
    for row in rows:
        known = Known(row.id, row.host, row.pid, _aware(row.heartbeat_at))
        if known.id == exclude:
            continue
        if (known.host == host[:255] and not pid_running(known.pid)) or (
            trust_staleness and known.heartbeat_at < stale_before
        ):
            dead.append(known.id)
    return dead


def _aware(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def set_obstacle(
    executor: Executor,
    sender_id: int,
    obstacle: str,
    retry_at: dt.datetime | None,
    now: dt.datetime | None = None,
) -> None:
    """Record what stops the sender; the `since` of an obstacle that goes on is kept."""
    now = now or utcnow()
    executor.execute(
        update(SENDER)
        .where(SENDER.c.id == sender_id, SENDER.c.obstacle.is_distinct_from(obstacle))
        .values(obstacle=obstacle[:2000], obstacle_since=now)
    )
    executor.execute(update(SENDER).where(SENDER.c.id == sender_id).values(retry_at=retry_at))


def clear_obstacle(executor: Executor, sender_id: int) -> None:
    """The obstacle passed: forget it."""
    executor.execute(
        update(SENDER)
        .where(SENDER.c.id == sender_id, SENDER.c.obstacle.is_not(None))
        .values(obstacle=None, obstacle_since=None, retry_at=None)
    )


@dataclass(frozen=True)
class Obstacle:
    """What stops sending now, since when, and when the next try is."""

    text: str
    since: dt.datetime
    retry_at: dt.datetime | None
    senders: int

    def describe(self, now: dt.datetime | None = None, zone: dt.tzinfo = dt.UTC) -> str:
        """Return one line: the obstacle, since when (in zone) and the wait before the next try."""
        line = f"{self.text} — since {self.since.astimezone(zone):%H:%M:%S %Z}"
        if self.retry_at is not None:
            wait = round((self.retry_at - (now or utcnow())).total_seconds())
            line += f", retrying in {wait} s" if wait > 0 else ", retrying now"
        return line


def current_obstacles(
    executor: Executor, interval: float, now: dt.datetime | None = None
) -> list[Obstacle]:
    """Return the obstacles live senders report, the longest-standing first (one per text)."""
    now = now or utcnow()
    alive_after = now - dt.timedelta(seconds=interval * STALE_BEATS)
    rows = executor.execute(
        select(SENDER.c.obstacle, SENDER.c.obstacle_since, SENDER.c.retry_at)
        .where(SENDER.c.obstacle.is_not(None), SENDER.c.heartbeat_at >= alive_after)
        .order_by(SENDER.c.obstacle_since)
    )
    found: dict[str, Obstacle] = {}
    for text, since, retry_at in rows:
        seen = found.get(text)
        if seen is None:
            found[text] = Obstacle(text, _aware(since), retry_at and _aware(retry_at), 1)
        else:
            found[text] = Obstacle(text, seen.since, seen.retry_at, seen.senders + 1)
    return list(found.values())

