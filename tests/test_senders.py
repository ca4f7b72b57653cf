"""Sender liveness: who counts as dead, and what a living sender takes over from them."""

from __future__ import annotations

import datetime as dt
import socket
import subprocess
import time

from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import Delivery, Sender
from digest.domain import deliveries, issues, senders
from digest.engine.liveness import Liveness
from tests.support.apps import get_db_of
from tests.support.delivery import CONFIG, make_newsletter, states


def _sending_issue(db: Session, readers: int) -> int:
    setup = make_newsletter(db, readers=readers)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    return setup.issue_id


def _claim_as(db: Session, issue_id: int, sender_id: int, owner: str, count: int) -> list[int]:
    """Claim count rows for sender_id; mark the first one `sending` (its end went out)."""
    claimed = deliveries.claim(db, issue_id, owner, count, 300, sender_id=sender_id)
    db.execute(update(Delivery).where(Delivery.id == claimed[0].id).values(state="sending"))
    db.commit()
    return [c.id for c in claimed]


def _dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def test_a_dead_pid_on_this_host_is_taken_over_at_the_first_beat(app: Flask, db: Session) -> None:
    """A sender whose process is gone from this host: the next beat of a living sender
    returns its claims to the queue and marks its message in flight unclear, at once."""
    issue_id = _sending_issue(db, 5)
    dead = senders.register(db, socket.gethostname(), _dead_pid())
    db.commit()
    _claim_as(db, issue_id, dead, "dead:owner", 3)
    Liveness(get_db_of(app), interval=5).beat()
    assert states(db, issue_id) == {"pending": 4, "unknown": 1}
    assert dead not in db.scalars(select(Sender.id)).all()


def test_a_silent_sender_elsewhere_is_dead_only_once_our_own_beats_got_through(
    app: Flask, db: Session
) -> None:
    """A sender on another host silent for three intervals is taken over, but only by a
    sender whose own heartbeats have gone through that long: straight after a database
    outage every heartbeat is old, and nobody is dead for that. A living one is never."""
    issue_id = _sending_issue(db, 6)
    old = utcnow() - dt.timedelta(seconds=20)
    silent = senders.register(db, "elsewhere", 4242, now=old)
    alive = senders.register(db, "elsewhere", 4343)
    db.commit()
    _claim_as(db, issue_id, silent, "silent:owner", 2)
    _claim_as(db, issue_id, alive, "alive:owner", 2)
    liveness = Liveness(get_db_of(app), interval=5)
    liveness.beat()  # just back: its own beats are not trusted yet
    assert states(db, issue_id) == {"pending": 2, "claimed": 2, "sending": 2}
    liveness._healthy_since = time.monotonic() - 16  # beating for more than 3 intervals
    liveness.beat()
    assert states(db, issue_id) == {"pending": 3, "claimed": 1, "sending": 1, "unknown": 1}
    assert set(db.scalars(select(Sender.id))) == {alive, liveness.sender_id}
