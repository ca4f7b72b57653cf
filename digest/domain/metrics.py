"""Figures for monitoring, read from the database at the moment they are asked for.

Contract: `figures` answers from the ledger and the heartbeat rows only, so every process
(the web app, a private listener beside the scheduler) reports the same numbers however
many senders run elsewhere; it reads and never writes. Totals that only grow (signups,
unsubscribes, SMTP replies, job errors) are counts of recorded rows, so a restart loses
none of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    Issue,
    IssueStatus,
    Subscription,
    TransactionalMail,
    TransactionalState,
)
from digest.domain import heartbeats

RATE_WINDOW = dt.timedelta(minutes=1)
# Rows of a sending issue that still have to go out.
QUEUED = (DeliveryState.PENDING, DeliveryState.CLAIMED, DeliveryState.SENDING, DeliveryState.FAILED_TEMP)


@dataclass
class Figures:
    """What /metrics reports."""

    deliveries: dict[str, int] = field(default_factory=dict)
    queue_depth: dict[str, int] = field(default_factory=dict)
    send_rate: float = 0.0
    smtp_replies: dict[str, int] = field(default_factory=dict)
    signups: int = 0
    confirmed: int = 0
    unsubscribes: int = 0
    tick_lag: float | None = None
    last_tick: dt.datetime | None = None
    job_errors: int = 0


def figures(session: Session, now: dt.datetime | None = None) -> Figures:
    """Return the service's figures as they stand now."""
    now = now or utcnow()
    result = Figures()
    counts = dict(session.execute(select(Delivery.state, func.count()).group_by(Delivery.state)).all())
    result.deliveries = {state.value: counts.get(state, 0) for state in DeliveryState}
    result.queue_depth["deliveries"] = session.scalar(
        select(func.count()).select_from(Delivery).join(Issue, Issue.id == Delivery.issue_id)
        .where(Issue.status == IssueStatus.SENDING, Delivery.state.in_(QUEUED))
    ) or 0
    result.queue_depth["transactional"] = session.scalar(
        select(func.count()).select_from(TransactionalMail)
        .where(TransactionalMail.state == TransactionalState.PENDING)
    ) or 0
    recent = session.scalar(
        select(func.count()).select_from(Delivery)
        .where(Delivery.state == DeliveryState.SENT, Delivery.sent_at > now - RATE_WINDOW)
    ) or 0
    result.send_rate = recent / RATE_WINDOW.total_seconds()
    replies = session.execute(
        select(Delivery.smtp_code, func.count()).where(Delivery.smtp_code.is_not(None))
        .group_by(Delivery.smtp_code)
    ).all()
    for code, n in replies:
        if code is None:
            continue
        reply_class = f"{code // 100}xx"
        result.smtp_replies[reply_class] = result.smtp_replies.get(reply_class, 0) + n
    result.signups = session.scalar(select(func.count()).select_from(Subscription)) or 0
    result.confirmed = session.scalar(
        select(func.count()).select_from(Subscription).where(Subscription.confirmed_at.is_not(None))
    ) or 0
    result.unsubscribes = session.scalar(
        select(func.count()).select_from(Subscription).where(Subscription.unsubscribed_at.is_not(None))
    ) or 0
    beat = heartbeats.get(session)
    if beat is not None:
        result.tick_lag = heartbeats.lag(beat, now)
        result.last_tick = beat.beat_at
        result.job_errors = beat.errors
    return result
