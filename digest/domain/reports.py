"""Read-side figures for the editor: subscriber search and records, growth, issue results.

Contract: nothing here writes. Subscriber lists page by keyset (the subscription id), so
page N costs the same as page 1 with any number of readers. Weeks are ISO weeks in the
newsletter's time zone. Per-issue figures come from the delivery ledger: delivered =
sent, bounced = refused for good (failed_perm), failed = temporary failures still
retrying and unclear outcomes (failed_temp, unknown), queued = not yet attempted;
unsubscribed = readers of the newsletter who unsubscribed between the issue's start
and the next issue's start. An issue's record adds the reports that came back about it
(bounces, complaints) and lists its failed, unclear or bounced deliveries.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, and_, case, exists, func, literal, not_, or_, select
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload
from sqlalchemy.sql import ColumnElement

from digest.core.db import utcnow
from digest.core.models import (
    BounceKind,
    Delivery,
    DeliveryState,
    Issue,
    IssueStatus,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from digest.core.validation import like_pattern
from digest.domain.suppression import suppression_for

SUBSCRIBER_PAGE = 50
DELIVERY_HISTORY = 200
PROBLEMS_SHOWN = 200
_CATEGORY = {
    DeliveryState.SENT: "delivered",
    DeliveryState.FAILED_PERM: "bounced",
    DeliveryState.FAILED_TEMP: "failed",
    DeliveryState.UNKNOWN: "failed",
    DeliveryState.PENDING: "queued",
    DeliveryState.CLAIMED: "queued",
    DeliveryState.SENDING: "queued",
    DeliveryState.SKIPPED: "skipped",
}


@dataclass(frozen=True)
class SubscriberRow:
    """One line of the subscriber list."""

    subscriber: Subscriber
    subscription: Subscription


@dataclass(frozen=True)
class SubscriberPage:
    """A page of readers with the keys of its neighbours (None when there is none)."""

    rows: list[SubscriberRow]
    total: int
    older: int | None
    newer: int | None


def search_subscribers(session: Session, newsletter: Newsletter, *, search: str = "",
                       status: str = "", section_id: int | None = None,
                       before: int | None = None, after: int | None = None,
                       limit: int = SUBSCRIBER_PAGE) -> SubscriberPage:
    """Return readers matching the filters, newest first, one keyset page at a time."""
    conditions = [Subscription.newsletter_id == newsletter.id]
    words = search.strip().lower()
    if words:
        pattern = like_pattern(words)
        conditions.append(
            or_(
                func.lower(Subscriber.email).like(pattern, escape="\\"),
                func.lower(Subscriber.name).like(pattern, escape="\\"),
            )
        )
    if status in {s.value for s in SubscriptionStatus}:
        conditions.append(Subscription.status == SubscriptionStatus(status))
    if section_id:
        chose = exists().where(
            SubscriptionSection.subscription_id == Subscription.id,
            SubscriptionSection.section_id == section_id,
        )
        chose_any = exists().where(SubscriptionSection.subscription_id == Subscription.id)
        # A reader who chose no section receives every section.
        conditions.append(or_(chose, not_(chose_any)))
    base = (
        select(Subscriber, Subscription)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(and_(*conditions))
    )
    counting = select(func.count()).select_from(Subscription)
    if words:
        counting = counting.join(Subscriber)
    total = session.scalar(counting.where(and_(*conditions))) or 0
    if after is not None:
        page = base.where(Subscription.id > after).order_by(Subscription.id.asc())
        found = list(session.execute(page.limit(limit + 1)))
        more_newer = len(found) > limit
        found = list(reversed(found[:limit]))
    else:
        page = base.order_by(Subscription.id.desc())
        if before is not None:
            page = page.where(Subscription.id < before)
        found = list(session.execute(page.limit(limit + 1)))
        more_older = len(found) > limit
        found = found[:limit]
    rows = [SubscriberRow(subscriber=s, subscription=sub) for s, sub in found]
    if not rows:
        return SubscriberPage(rows=[], total=total, older=None, newer=None)
    first, last = rows[0].subscription.id, rows[-1].subscription.id
    if after is not None:
        newer = first if more_newer else None
        older = last if _exists(session, base.where(Subscription.id < last)) else None
    else:
        older = last if more_older else None
        newer = first if _exists(session, base.where(Subscription.id > first)) else None
    return SubscriberPage(rows=rows, total=total, older=older, newer=newer)


def _exists(session: Session, query: Select[Subscriber, Subscription]) -> bool:
    return session.execute(query.limit(1)).first() is not None


@dataclass(frozen=True)
class DeliveryLine:
    """One issue a reader was sent (or is being sent)."""

    delivery: Delivery
    issue: Issue


@dataclass(frozen=True)
class SubscriberRecord:
    """Everything the editor may see about one reader."""

    subscriber: Subscriber
    subscriptions: list[Subscription]
    deliveries: list[DeliveryLine]
    suppression: Suppression | None = None


def subscriber_record(session: Session, config: Mapping[str, Any],
                      subscriber_id: int) -> SubscriberRecord | None:
    """Return a reader with their subscriptions, consents, deliveries and suppression, or None."""
    subscriber = session.scalar(
        select(Subscriber)
        .where(Subscriber.id == subscriber_id)
        .options(
            selectinload(Subscriber.subscriptions).selectinload(Subscription.consents),
            selectinload(Subscriber.subscriptions).selectinload(Subscription.sections),
            selectinload(Subscriber.subscriptions).selectinload(Subscription.newsletter),
        )
    )
    if subscriber is None:
        return None
    lines = session.execute(
        select(Delivery, Issue)
        .join(Issue, Issue.id == Delivery.issue_id)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.id.desc())
        .limit(DELIVERY_HISTORY)
    )
    return SubscriberRecord(
        subscriber=subscriber,
        subscriptions=list(subscriber.subscriptions),
        deliveries=[DeliveryLine(delivery=d, issue=i) for d, i in lines],
        suppression=suppression_for(session, config, subscriber.email),
    )


@dataclass(frozen=True)
class WeekPoint:
    """Readers in one local ISO week: newly confirmed, unsubscribed, and the total after."""

    start: dt.date
    confirmed: int
    unsubscribed: int
    readers: int

    @property
    def label(self) -> str:
        """Return the week as "2026-W48"."""
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"


def _week_start(moment: dt.datetime, tz: ZoneInfo) -> dt.date:
    day = moment.astimezone(tz).date()
    return day - dt.timedelta(days=day.isoweekday() - 1)


def _week_index(column: InstrumentedAttribute[dt.datetime | None], bounds: list[dt.datetime],
                low: int = 0, high: int | None = None) -> ColumnElement[int]:
    """Return a CASE giving the week (index into bounds) of column; a binary search in SQL."""
    high = len(bounds) if high is None else high
    if high - low == 1:
        return literal(low)
    middle = (low + high) // 2
    return case((column < bounds[middle], _week_index(column, bounds, low, middle)),
                else_=_week_index(column, bounds, middle, high))


def _per_week(session: Session, newsletter: Newsletter, column: InstrumentedAttribute[dt.datetime | None],
              bounds: list[dt.datetime]) -> list[int]:
    week = _week_index(column, bounds)
    counts = [0] * len(bounds)
    rows = session.execute(
        select(week, func.count())
        .where(Subscription.newsletter_id == newsletter.id, Subscription.confirmed_at.is_not(None),
               column >= bounds[0])
        .group_by(week)
    )
    for index, count in rows:
        counts[index] = count
    return counts


def growth(session: Session, newsletter: Newsletter, weeks: int = 26,
           now: dt.datetime | None = None, min_weeks: int | None = None) -> list[WeekPoint]:
    """Return the last `weeks` weeks of confirmations, unsubscribes and the reader count.

    With min_weeks, leading weeks before the first reader are dropped down to that many.
    """
    tz = ZoneInfo(newsletter.time_zone)
    first_week = _week_start(now or utcnow(), tz) - dt.timedelta(weeks=weeks - 1)
    starts = [first_week + dt.timedelta(weeks=i) for i in range(weeks)]
    # Each local Monday midnight as a UTC instant.
    bounds = [dt.datetime.combine(day, dt.time(), tzinfo=tz).astimezone(dt.UTC) for day in starts]
    # The database counts per week; no reader row travels to Python.
    joined_before, left_before = session.execute(
        select(func.sum(case((Subscription.confirmed_at < bounds[0], 1), else_=0)),
               func.sum(case((Subscription.unsubscribed_at < bounds[0], 1), else_=0)))
        .where(Subscription.newsletter_id == newsletter.id, Subscription.confirmed_at.is_not(None))
    ).one()
    before = int(joined_before or 0) - int(left_before or 0)
    confirmed = _per_week(session, newsletter, Subscription.confirmed_at, bounds)
    left = _per_week(session, newsletter, Subscription.unsubscribed_at, bounds)
    points = []
    readers = before
    for i, start in enumerate(starts):
        readers += confirmed[i] - left[i]
        points.append(WeekPoint(start, confirmed[i], left[i], readers))
    if min_weeks is not None:
        while len(points) > min_weeks and points[0].readers == 0 and points[0].unsubscribed == 0:
            points.pop(0)
    return points


@dataclass
class IssueFigures:
    """Delivery results of one issue."""

    issue: Issue
    counts: dict[str, int] = field(default_factory=dict)
    unsubscribed: int = 0

    @property
    def delivered(self) -> int:
        """Return how many readers the issue reached."""
        return self.counts.get("delivered", 0)

    @property
    def bounced(self) -> int:
        """Return how many addresses refused the issue for good."""
        return self.counts.get("bounced", 0)

    @property
    def failed(self) -> int:
        """Return how many deliveries failed for now or have an unclear outcome."""
        return self.counts.get("failed", 0)

    @property
    def queued(self) -> int:
        """Return how many deliveries are not attempted yet."""
        return self.counts.get("queued", 0)

    @property
    def total(self) -> int:
        """Return the number of deliveries in the ledger."""
        return sum(self.counts.values())


def _started(issue: Issue) -> dt.datetime:
    return issue.started_at or issue.sent_at or issue.scheduled_at or issue.created_at


_STARTED = (IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT)
_START = func.coalesce(Issue.started_at, Issue.sent_at, Issue.created_at)


def issue_figures(session: Session, newsletter: Newsletter, limit: int = 12) -> list[IssueFigures]:
    """Return delivery figures of the newsletter's last `limit` issues that started sending."""
    issues = list(
        session.scalars(
            select(Issue)
            .where(Issue.newsletter_id == newsletter.id, Issue.status.in_(_STARTED))
            .order_by(_START.desc())
            .limit(limit)
        )
    )
    issues.sort(key=_started)
    return _figures(session, newsletter.id, issues)


def _figures(session: Session, newsletter_id: int, issues: list[Issue]) -> list[IssueFigures]:
    """Count the ledger of issues (sorted by start); each issue gets the unsubscribes until
    the next one in the list started."""
    figures = {issue.id: IssueFigures(issue) for issue in issues}
    if not issues:
        return []
    counts = session.execute(
        select(Delivery.issue_id, Delivery.state, func.count())
        .where(Delivery.issue_id.in_(figures))
        .group_by(Delivery.issue_id, Delivery.state)
    )
    for issue_id, state, count in counts:
        bucket = figures[issue_id].counts
        bucket[_CATEGORY[state]] = bucket.get(_CATEGORY[state], 0) + count
    starts = [_started(issue) for issue in issues]
    unsubscribed = session.scalars(
        select(Subscription.unsubscribed_at).where(
            Subscription.newsletter_id == newsletter_id,
            Subscription.unsubscribed_at >= starts[0],
        )
    )
    for moment in unsubscribed:
        assert moment is not None  # NULL fails the >= above
        index = bisect.bisect_right(starts, moment) - 1
        if index >= 0:
            figures[issues[index].id].unsubscribed += 1
    return [figures[issue.id] for issue in issues]


@dataclass(frozen=True)
class ProblemDelivery:
    """A delivery the editor should know about: failed, unclear, or reported back as bounced."""

    delivery_id: int
    subscriber_id: int | None
    email: str | None
    state: DeliveryState
    attempts: int
    code: int | None
    reply: str | None
    bounce: BounceKind | None
    at: dt.datetime


@dataclass(frozen=True)
class IssueRecord:
    """What became of one issue: its figures, the reports that came back, its problems."""

    figures: IssueFigures
    bounces: dict[BounceKind, int]
    problems: list[ProblemDelivery]
    problem_total: int

    @property
    def duration(self) -> dt.timedelta | None:
        """Return how long the send took, from start to sent (or cancelled)."""
        issue = self.figures.issue
        end = issue.sent_at or issue.cancelled_at
        if issue.started_at is None or end is None:
            return None
        return max(end - issue.started_at, dt.timedelta(0))

    @property
    def average_rate(self) -> float | None:
        """Return the deliveries settled per second over the whole send."""
        duration = self.duration
        settled = self.figures.total - self.figures.queued
        if not duration or not duration.total_seconds():
            return None
        return settled / duration.total_seconds()


_PROBLEM = or_(
    Delivery.state.in_([DeliveryState.FAILED_TEMP, DeliveryState.FAILED_PERM, DeliveryState.UNKNOWN]),
    Delivery.bounce.is_not(None),
)


def issue_record(session: Session, issue: Issue, limit: int = PROBLEMS_SHOWN) -> IssueRecord:
    """Return an issue's record: figures (unsubscribes until the next issue started), bounce
    reports per kind, and its failed, unclear or bounced deliveries (the first `limit`)."""
    following = session.scalars(
        select(Issue)
        .where(
            Issue.newsletter_id == issue.newsletter_id,
            Issue.id != issue.id,
            Issue.status.in_(_STARTED),
            _START > _started(issue),
        )
        .order_by(_START)
        .limit(1)
    ).first()
    figures = _figures(session, issue.newsletter_id, [issue, *([following] if following else [])])[0]
    bounces: dict[BounceKind, int] = {
        kind: count
        for kind, count in session.execute(
            select(Delivery.bounce, func.count())
            .where(Delivery.issue_id == issue.id, Delivery.bounce.is_not(None))
            .group_by(Delivery.bounce)
        )
        if kind is not None  # never: the WHERE excludes NULL
    }
    problem_total = session.scalar(
        select(func.count()).select_from(Delivery).where(Delivery.issue_id == issue.id, _PROBLEM)
    ) or 0
    rows = session.execute(
        select(Delivery, Subscriber.email)
        .outerjoin(Subscriber, Subscriber.id == Delivery.subscriber_id)
        .where(Delivery.issue_id == issue.id, _PROBLEM)
        .order_by(Delivery.id)
        .limit(limit)
    )
    problems = [
        ProblemDelivery(
            delivery_id=d.id, subscriber_id=d.subscriber_id, email=email, state=d.state,
            attempts=d.attempts, code=d.smtp_code,
            reply=d.bounce_detail if d.bounce and d.state is DeliveryState.SENT else d.smtp_response,
            bounce=d.bounce, at=d.bounced_at or d.updated_at,
        )
        for d, email in rows
    ]
    return IssueRecord(figures, bounces, problems, problem_total)


def suppression_counts(session: Session) -> dict[SuppressionReason, int]:
    """Return how many addresses the suppression list holds for each reason."""
    rows = session.execute(
        select(Suppression.reason, func.count()).group_by(Suppression.reason)
    )
    return {reason: count for reason, count in rows}
