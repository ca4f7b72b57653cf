"""Read-side figures for the editor: subscriber search and records, growth, issue results.

Contract: nothing here writes. Subscriber lists page by keyset (the subscription id), so
page N costs the same as page 1 with any number of readers. Weeks are ISO weeks in the
newsletter's time zone. Per-issue figures come from the delivery ledger: delivered =
sent, bounced = refused for good (failed_perm), failed = temporary failures still
retrying and unclear outcomes (failed_temp, unknown), queued = not yet attempted;
unsubscribed = readers of the newsletter who unsubscribed between the issue's start
and the next issue's start.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import and_, exists, func, not_, or_, select
from sqlalchemy.orm import Session, selectinload

from digest.db import utcnow
from digest.models import (
    Delivery,
    DeliveryState,
    Issue,
    IssueStatus,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SubscriptionStatus,
)

SUBSCRIBER_PAGE = 50
DELIVERY_HISTORY = 200
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


def _escape_like(value: str) -> str:
    return value.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def search_subscribers(session: Session, newsletter: Newsletter, *, search: str = "",
                       status: str = "", section_id: int | None = None,
                       before: int | None = None, after: int | None = None,
                       limit: int = SUBSCRIBER_PAGE) -> SubscriberPage:
    """Return readers matching the filters, newest first, one keyset page at a time."""
    conditions = [Subscription.newsletter_id == newsletter.id]
    words = search.strip().lower()
    if words:
        pattern = f"%{_escape_like(words)}%"
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
    total = session.scalar(
        select(func.count()).select_from(Subscription).join(Subscriber).where(and_(*conditions))
    ) or 0
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


def _exists(session: Session, query) -> bool:  # type: ignore[no-untyped-def]
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


def subscriber_record(session: Session, subscriber_id: int) -> SubscriberRecord | None:
    """Return a reader with their subscriptions, consents and delivery history, or None."""
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


def growth(session: Session, newsletter: Newsletter, weeks: int = 26,
           now: dt.datetime | None = None, min_weeks: int | None = None) -> list[WeekPoint]:
    """Return the last `weeks` weeks of confirmations, unsubscribes and the reader count.

    With min_weeks, leading weeks before the first reader are dropped down to that many.
    """
    tz = ZoneInfo(newsletter.time_zone)
    this_week = _week_start(now or utcnow(), tz)
    first_week = this_week - dt.timedelta(weeks=weeks - 1)
    confirmed: Counter[dt.date] = Counter()
    left: Counter[dt.date] = Counter()
    before = 0
    rows = session.execute(
        select(Subscription.confirmed_at, Subscription.unsubscribed_at).where(
            Subscription.newsletter_id == newsletter.id, Subscription.confirmed_at.is_not(None)
        )
    )
    for confirmed_at, unsubscribed_at in rows:
        start = _week_start(confirmed_at, tz)
        if start < first_week:
            before += 1
        else:
            confirmed[start] += 1
        if unsubscribed_at is not None:
            gone = _week_start(unsubscribed_at, tz)
            if gone < first_week:
                before -= 1
            else:
                left[gone] += 1
    points = []
    readers = before
    for i in range(weeks):
        start = first_week + dt.timedelta(weeks=i)
        readers += confirmed[start] - left[start]
        points.append(WeekPoint(start, confirmed[start], left[start], readers))
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


def issue_figures(session: Session, newsletter: Newsletter, limit: int = 12) -> list[IssueFigures]:
    """Return delivery figures of the newsletter's last `limit` issues that started sending."""
    issues = list(
        session.scalars(
            select(Issue)
            .where(
                Issue.newsletter_id == newsletter.id,
                Issue.status.in_([IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT]),
            )
            .order_by(func.coalesce(Issue.started_at, Issue.sent_at, Issue.created_at).desc())
            .limit(limit)
        )
    )
    issues.sort(key=_started)
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
            Subscription.newsletter_id == newsletter.id,
            Subscription.unsubscribed_at >= starts[0],
        )
    )
    for moment in unsubscribed:
        index = bisect.bisect_right(starts, moment) - 1
        if index >= 0:
            figures[issues[index].id].unsubscribed += 1
    return [figures[issue.id] for issue in issues]
