"""The issue lifecycle, scheduling in named time zones, and the newsletter's weekly issue.

Contract:

- Statuses: draft → scheduled → sending → sent, plus paused (from sending) and cancelled
  (from anything not yet sent). Every change is a conditional UPDATE on the status it
  expects, so an editor, the scheduler and the senders racing each other can never
  move an issue twice or backwards; a refused action raises IssueError with a message
  for the person who asked.
- Times are stored in UTC. A date-time an editor picks is read in a named IANA zone and
  refused when that local time does not exist or occurs twice (a DST change).
- Starting an issue fans its ledger out (digest/deliveries.py) and then marks it
  sending; senders only ever touch sending issues, and check its status before every
  message, so pause, resume and cancel take effect within a message.
- An issue is sent once no delivery is pending, claimed, in flight or waiting for a
  retry. "Resend to failed" and "resend unknown" are explicit actions.
- The weekly schedule (send_weekday, send_time, time_zone, review_hours) assembles the
  week's issue from the posts published since the last issue, in section order,
  review_hours before the send time, once per local ISO week (UNIQUE(newsletter_id,
  period_key)); a second scheduler, a DST double fire or a restart cannot make a second
  one. An empty week creates no issue and leaves a ScheduleRun row saying so.
- Drafts and cancelled issues that never started sending can be deleted; their posts go
  back to the pool, and a deleted weekly issue's week is not assembled again.

Every function takes a Session and flushes; the caller (view, command, job) commits.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session

from digest.core.db import rowcount, utcnow
from digest.core.models import (
    DeliveryState,
    Issue,
    IssuePost,
    IssueStatus,
    Newsletter,
    Post,
    PostStatus,
    ScheduleOutcome,
    ScheduleRun,
    Section,
)
from digest.core.validation import Invalid, check_text, like_pattern, slugify, text
from digest.domain import deliveries, engagement, inbox, webhooks
from digest.domain.deliveries import DELIVERY, Counts, FanOutStep, Unclear
from digest.domain.newsletters import check_time_zone
from digest.domain.senders import Obstacle, current_obstacles
from digest.mail.render import preheader_problem

log = logging.getLogger(__name__)

# How long after its send time a weekly issue the scheduler missed still goes out.
LATE_GRACE = dt.timedelta(hours=6)
NOT_SENT = (IssueStatus.DRAFT, IssueStatus.SCHEDULED, IssueStatus.SENDING, IssueStatus.PAUSED)
# Only an issue that has not started can be changed; starting it freezes what it carries.
EDITABLE = (IssueStatus.DRAFT, IssueStatus.SCHEDULED)
# What can be deleted (and only before a fan-out): nothing of it ever reached a reader.
DELETABLE = (IssueStatus.DRAFT, IssueStatus.CANCELLED)
INTRO_LIMIT = 20_000


class IssueError(ValueError):
    """An action that does not fit the issue or its input; the message says why."""


# --- time zones ----------------------------------------------------------------------


def zone(name: str) -> ZoneInfo:
    """Return the IANA time zone called name, or raise IssueError."""
    problem = check_time_zone(name)
    if problem:
        raise IssueError(problem)
    return ZoneInfo(name)


def parse_local(text: str) -> dt.datetime:
    """Parse "YYYY-MM-DD HH:MM" (or ISO 8601 without offset) into a naive local date-time."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise IssueError(f"{text!r} is not a date and time like 2026-11-30 08:00") from None
    if value.tzinfo is not None:
        raise IssueError("give the local time without an offset, and the time zone by name")
    return value


def local_to_utc(local: dt.datetime, tz_name: str) -> dt.datetime:
    """Return the UTC instant of a naive local time in a zone; refuse times a DST change
    skips or repeats."""
    tz = zone(tz_name)
    first = local.replace(tzinfo=tz, fold=0)
    second = local.replace(tzinfo=tz, fold=1)
    if first.utcoffset() != second.utcoffset():
        as_utc = first.astimezone(dt.UTC)
        if as_utc.astimezone(tz).replace(tzinfo=None) != local:
            raise IssueError(
                f"{local:%Y-%m-%d %H:%M} does not exist in {tz_name}: the clocks skip it "
                "for daylight saving time; pick another time"
            )
        raise IssueError(
            f"{local:%Y-%m-%d %H:%M} happens twice in {tz_name} (the clocks go back that "
            "night); pick another time"
        )
    return first.astimezone(dt.UTC)


# --- lookups -------------------------------------------------------------------------


def get_issue(session: Session, issue_id: int) -> Issue:
    """Return the issue as the database has it now, or raise IssueError if there is none."""
    issue = session.get(Issue, issue_id, populate_existing=True)
    if issue is None:
        raise IssueError(f"there is no issue {issue_id}")
    return issue


def list_issues(
    session: Session,
    newsletter_id: int | None = None,
    before: int | None = None,
    limit: int | None = None,
) -> list[Issue]:
    """Return issues, newest first, optionally of one newsletter, older than the id before,
    at most limit."""
    query = select(Issue).order_by(Issue.id.desc()).limit(limit)
    if newsletter_id is not None:
        query = query.where(Issue.newsletter_id == newsletter_id)
    if before is not None:
        query = query.where(Issue.id < before)
    return list(session.scalars(query))


def sending_issue_ids(session: Session) -> list[int]:
    """Return the ids of issues senders should work on, oldest first."""
    return list(
        session.scalars(select(Issue.id).where(Issue.status == IssueStatus.SENDING).order_by(Issue.id))
    )


def due_issue_ids(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Return scheduled, not held issues whose time has come."""
    now = now or utcnow()
    return list(
        session.scalars(
            select(Issue.id)
            .where(
                Issue.status == IssueStatus.SCHEDULED,
                Issue.scheduled_at <= now,
                Issue.held.is_(False),
            )
            .order_by(Issue.scheduled_at, Issue.id)
        )
    )


# --- transitions ---------------------------------------------------------------------


def _move(
    session: Session,
    issue_id: int,
    sources: Sequence[IssueStatus],
    action: str,
    **values: object,
) -> Issue:
    """Apply values if the issue is in one of sources, atomically; raise IssueError if not."""
    result = session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status.in_(sources))
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    issue = get_issue(session, issue_id)
    if rowcount(result) != 1:
        raise IssueError(f"{named(issue)} is {issue.status.value}: it cannot be {action}")
    return issue


def named(issue: Issue) -> str:
    """Return how messages to editors name an issue: its subject, quoted."""
    subject = " ".join(issue.subject.split())
    return f"“{subject}”" if subject else "the untitled issue"


def _require_content(issue: Issue) -> None:
    if not issue.subject.strip():
        raise IssueError("the issue has no subject yet")
    if not issue.issue_posts:
        raise IssueError(f"{named(issue)} carries no posts")


def schedule_issue(
    session: Session,
    issue_id: int,
    local: dt.datetime,
    tz_name: str | None = None,
    now: dt.datetime | None = None,
) -> Issue:
    """Schedule (or reschedule) a draft or scheduled issue at a local time in a named zone
    (default: the newsletter's)."""
    issue = get_issue(session, issue_id)
    tz_name = tz_name or issue.newsletter.time_zone
    when = local_to_utc(local, tz_name)
    if when <= (now or utcnow()):
        raise IssueError(f"{local:%Y-%m-%d %H:%M} {tz_name} has passed; send it now instead")
    _require_content(issue)
    moved = _move(
        session, issue_id, (IssueStatus.DRAFT, IssueStatus.SCHEDULED), "scheduled",
        status=IssueStatus.SCHEDULED, scheduled_at=when, schedule_tz=tz_name,
    )
    webhooks.issue_event(session, "issue.scheduled", moved, now)
    return moved


def unschedule_issue(session: Session, issue_id: int) -> Issue:
    """Take a scheduled issue back to draft before it starts."""
    return _move(
        session, issue_id, (IssueStatus.SCHEDULED,), "unscheduled",
        status=IssueStatus.DRAFT, scheduled_at=None, schedule_tz=None,
    )


def send_now(session: Session, issue_id: int, now: dt.datetime | None = None) -> Issue:
    """Make a draft or scheduled issue due right away (the next tick or `issue send`
    starts it); a held issue is released."""
    issue = get_issue(session, issue_id)
    _require_content(issue)
    return _move(
        session, issue_id, (IssueStatus.DRAFT, IssueStatus.SCHEDULED), "sent now",
        status=IssueStatus.SCHEDULED, scheduled_at=now or utcnow(), held=False,
        schedule_tz=issue.schedule_tz or issue.newsletter.time_zone,
    )


def set_held(session: Session, issue_id: int, held: bool) -> Issue:
    """Hold a scheduled issue so it does not go out at its time, or release it."""
    return _move(
        session, issue_id, (IssueStatus.DRAFT, IssueStatus.SCHEDULED),
        "held" if held else "released", held=held,
    )


def start_issue_chunks(
    session: Session, issue_id: int, config: Mapping[str, Any], now: dt.datetime | None = None
) -> Iterator[FanOutStep]:
    """Fan a scheduled issue out chunk by chunk (yielding after each; the caller commits),
    then mark it sending. Safe to run twice or in two processes at once."""
    status = session.scalar(select(Issue.status).where(Issue.id == issue_id))
    if status is None:
        raise IssueError(f"there is no issue {issue_id}")
    if status != IssueStatus.SCHEDULED:
        return
    yield from deliveries.fan_out_chunks(session, issue_id, config)
    now = now or utcnow()
    started = rowcount(session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == IssueStatus.SCHEDULED)
        .values(status=IssueStatus.SENDING, fanned_out_at=now, started_at=now, pause_reason=None)
        .execution_options(synchronize_session=False)
    ))
    if started:
        log.info("issue %s: started sending", issue_id)


def start_issue(
    session: Session, issue_id: int, config: Mapping[str, Any], now: dt.datetime | None = None
) -> int:
    """Fan out and start a scheduled issue in this transaction; return rows added."""
    return sum(step.inserted for step in start_issue_chunks(session, issue_id, config, now))


def pause_issue(session: Session, issue_id: int, reason: str | None = None) -> Issue:
    """Pause a sending issue; senders stop before their next message."""
    issue = _move(
        session, issue_id, (IssueStatus.SENDING,), "paused",
        status=IssueStatus.PAUSED, pause_reason=reason,
    )
    if reason:
        log.warning("issue %s paused: %s", issue_id, reason)
    return issue


def resume_issue(session: Session, issue_id: int) -> Issue:
    """Resume a paused issue where it stopped."""
    return _move(
        session, issue_id, (IssueStatus.PAUSED,), "resumed",
        status=IssueStatus.SENDING, pause_reason=None,
    )


def cancel_issue(session: Session, issue_id: int, now: dt.datetime | None = None) -> Issue:
    """Cancel an issue that is not sent yet; deliveries not yet made stay pending, unsent."""
    return _move(
        session, issue_id, NOT_SENT, "cancelled",
        status=IssueStatus.CANCELLED, cancelled_at=now or utcnow(),
    )


def _resend(session: Session, issue_id: int, states: Sequence[DeliveryState], action: str) -> int:
    issue = get_issue(session, issue_id)
    if issue.status not in (IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT):
        raise IssueError(f"{named(issue)} is {issue.status.value}: it cannot be {action}")
    count = deliveries.resend(session, issue_id, states)
    if count and issue.status == IssueStatus.SENT:
        _move(
            session, issue_id, (IssueStatus.SENT,), action, status=IssueStatus.SENDING, sent_at=None
        )
    return count


def resend_failed(session: Session, issue_id: int) -> int:
    """Queue the issue again for readers whose delivery failed; return how many.

    Addresses suppressed since are skipped at send time."""
    return _resend(
        session, issue_id, (DeliveryState.FAILED_TEMP, DeliveryState.FAILED_PERM), "resent to failed"
    )


def resend_unknown(session: Session, issue_id: int) -> int:
    """Queue the issue again for readers whose delivery is unclear (they may get it twice)."""
    return _resend(session, issue_id, (DeliveryState.UNKNOWN,), "resent to unknown")


def finish_issue(session: Session, issue_id: int, now: dt.datetime | None = None) -> bool:
    """Mark a sending issue sent if no delivery needs a sender any more; return whether."""
    open_rows = exists().where(
        DELIVERY.c.issue_id == Issue.id,
        or_(
            DELIVERY.c.state.in_([s.value for s in deliveries.OPEN_STATES]),
            and_(
                DELIVERY.c.state == DeliveryState.FAILED_TEMP.value,
                DELIVERY.c.next_attempt_at.is_not(None),
            ),
        ),
    )
    done = rowcount(session.execute(
        update(Issue)
        .where(Issue.id == issue_id, Issue.status == IssueStatus.SENDING, ~open_rows)
        .values(status=IssueStatus.SENT, sent_at=now or utcnow())
        .execution_options(synchronize_session=False)
    )) == 1
    if done:
        log.info("issue %s: sent", issue_id)
        issue = get_issue(session, issue_id)
        engagement.record_reach(session, issue)
        webhooks.issue_event(session, "issue.sent", issue, now)
    return done


def finish_done_issues(session: Session, now: dt.datetime | None = None) -> list[int]:
    """Mark every sending issue without open deliveries sent; return their ids."""
    return [i for i in sending_issue_ids(session) if finish_issue(session, i, now)]


# --- progress ------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a send stands: counts per state, speed, time left and the unclear rows."""

    issue_id: int
    status: IssueStatus
    counts: Counts
    at: dt.datetime
    rate: float | None
    eta_seconds: float | None
    unclear: list[Unclear]
    pause_reason: str | None
    # What stops the senders now (while the issue is sending): SMTP down, hanging, refusing.
    obstacles: list[Obstacle]

    @property
    def fraction(self) -> float:
        """Return the share of deliveries settled, 0..1."""
        return self.counts.done / self.counts.total if self.counts.total else 1.0

    @property
    def label(self) -> str:
        """Return how the issue's status reads ("sent — 2 unclear")."""
        return status_label(self.status, self.counts[DeliveryState.UNKNOWN])


def status_label(status: IssueStatus, unclear: int) -> str:
    """Return how an issue's status reads: a sent issue with unclear deliveries is not
    plainly "sent" but "sent — N unclear"."""
    if status is IssueStatus.SENT and unclear:
        return f"sent — {unclear:,} unclear"
    return status.value


def unclear_action(issue_id: int) -> str:
    """Return what to do about an issue's unclear deliveries, for people and programs."""
    return (
        f"Their readers may or may not have the issue. To send it to them again (some may "
        f"get it twice): `digest issue resend {issue_id} --unknown`, or \"Resend to the "
        f"unclear\" on the issue's sending page."
    )


def issue_progress(
    session: Session,
    issue_id: int,
    previous: Progress | None = None,
    now: dt.datetime | None = None,
    heartbeat_seconds: float = 5.0,
) -> Progress:
    """Return an issue's progress; with the previous snapshot the rate is the current one,
    otherwise the average since it started. While it sends, the obstacles live senders
    (beating every heartbeat_seconds) report come with it."""
    issue = get_issue(session, issue_id)
    now = now or utcnow()
    counts = deliveries.counts(session, issue_id)
    rate: float | None = None
    if previous is not None and now > previous.at:
        rate = max(counts.done - previous.counts.done, 0) / (now - previous.at).total_seconds()
    elif issue.started_at is not None and issue.status == IssueStatus.SENDING:
        elapsed = (now - issue.started_at).total_seconds()
        rate = counts.done / elapsed if elapsed > 0 else None
    eta = counts.open / rate if rate else None
    return Progress(
        issue_id=issue_id,
        status=issue.status,
        counts=counts,
        at=now,
        rate=rate,
        eta_seconds=eta,
        unclear=deliveries.unclear_deliveries(session, issue_id),
        pause_reason=issue.pause_reason,
        obstacles=(
            current_obstacles(session, heartbeat_seconds, now)
            if issue.status == IssueStatus.SENDING else []
        ),
    )


# --- the weekly schedule -------------------------------------------------------------


@dataclass(frozen=True)
class WeeklySlot:
    """One week of a newsletter's schedule, in UTC."""

    period_key: str
    send_at: dt.datetime
    assemble_at: dt.datetime


def _slot(newsletter: Newsletter, monday: dt.date, tz: ZoneInfo) -> WeeklySlot:
    hour, minute = (int(part) for part in (newsletter.send_time or "").split(":"))
    day = monday + dt.timedelta(days=(newsletter.send_weekday or 1) - 1)
    # fold=0: a time the clocks repeat means its first occurrence; a skipped time lands
    # just after the jump (zoneinfo's reading), so every week has exactly one slot.
    send_at = dt.datetime.combine(day, dt.time(hour, minute), tzinfo=tz).astimezone(dt.UTC)
    year, week, _ = day.isocalendar()
    return WeeklySlot(
        period_key=f"{year}-W{week:02d}",
        send_at=send_at,
        assemble_at=send_at - dt.timedelta(hours=newsletter.review_hours),
    )


def weekly_slots(newsletter: Newsletter, now: dt.datetime) -> list[WeeklySlot]:
    """Return the schedule's slots of this local week and the next (none if unscheduled)."""
    if newsletter.send_weekday is None or not newsletter.send_time:
        return []
    tz = zone(newsletter.time_zone)
    today = now.astimezone(tz).date()
    monday = today - dt.timedelta(days=today.weekday())
    return [_slot(newsletter, monday + dt.timedelta(weeks=n), tz) for n in (0, 1)]


def next_weekly_slot(newsletter: Newsletter, now: dt.datetime | None = None) -> WeeklySlot | None:
    """Return the next slot whose send time is still ahead, for the editor to show."""
    now = now or utcnow()
    return next((s for s in weekly_slots(newsletter, now) if s.send_at > now), None)


@dataclass(frozen=True)
class Outlook:
    """What lies ahead: the next scheduled issue, the drafts waiting, the weekly slot, and a
    manually scheduled issue that goes out before that slot (its posts are not assembled)."""

    next_issue: Issue | None
    drafts: list[Issue]
    draft_count: int
    slot: WeeklySlot | None
    ahead_of_slot: Issue | None


def outlook(session: Session, newsletter: Newsletter, now: dt.datetime | None = None,
            drafts_shown: int = 5) -> Outlook:
    """Return what lies ahead for the newsletter, for the dashboard."""
    now = now or utcnow()
    mine = Issue.newsletter_id == newsletter.id
    next_issue = session.scalars(
        select(Issue).where(mine, Issue.status == IssueStatus.SCHEDULED)
        .order_by(Issue.scheduled_at, Issue.id).limit(1)
    ).first()
    drafts = list(session.scalars(
        select(Issue).where(mine, Issue.status == IssueStatus.DRAFT)
        .order_by(Issue.updated_at.desc(), Issue.id.desc()).limit(drafts_shown)
    ))
    draft_count = session.scalar(select(func.count()).where(mine, Issue.status == IssueStatus.DRAFT)) or 0
    slot = next_weekly_slot(newsletter, now)
    ahead = None
    if slot and next_issue and next_issue.period_key is None and next_issue.scheduled_at \
            and next_issue.scheduled_at <= slot.assemble_at:
        ahead = next_issue
    return Outlook(next_issue, drafts, draft_count, slot, ahead)


@dataclass(frozen=True)
class WeeklyOutcome:
    """What materialising one slot did: created an issue, found it there, or found no posts."""

    newsletter_id: int
    period_key: str
    outcome: str  # "created" | "exists" | "empty"
    issue_id: int | None = None


def _carried_post_ids() -> Any:
    return (
        select(IssuePost.post_id)
        .join(Issue, Issue.id == IssuePost.issue_id)
        .where(Issue.status != IssueStatus.CANCELLED)
    )


def suggested_subject(posts: Sequence[Post]) -> str:
    """Return the subject suggested for an issue carrying posts (in order).

    The preheader is left empty: each reader's is then made of their own pieces
    (digest.mail.render.DEFAULT_PREHEADER), which a shared line could not be."""
    return posts[0].title[:300] if posts else ""


def candidate_posts(session: Session, newsletter_id: int, now: dt.datetime) -> list[Post]:
    """Return published posts not in any live issue and published since the last issue,
    in section order then publication order."""
    last_issue_at = session.scalar(
        select(func.max(Issue.created_at)).where(
            Issue.newsletter_id == newsletter_id, Issue.status != IssueStatus.CANCELLED
        )
    )
    carried = _carried_post_ids()
    query = (
        select(Post)
        .join(Section, Section.id == Post.section_id)
        .where(
            Post.newsletter_id == newsletter_id,
            Post.status == PostStatus.PUBLISHED,
            Post.published_at <= now,
            Post.id.not_in(carried),
        )
        .order_by(Section.position, Post.published_at, Post.id)
    )
    if last_issue_at is not None:
        query = query.where(Post.published_at > last_issue_at)
    return list(session.scalars(query))


def _free_slug(session: Session, newsletter_id: int, base: str, issue_id: int | None = None) -> str:
    query = select(Issue.slug).where(Issue.newsletter_id == newsletter_id, Issue.slug.startswith(base))
    if issue_id is not None:
        query = query.where(Issue.id != issue_id)
    taken = set(session.scalars(query))
    slug, n = base, 2
    while slug in taken:
        slug, n = f"{base}-{n}", n + 1
    return slug


def _record_run(
    session: Session,
    newsletter_id: int,
    slot: WeeklySlot,
    outcome: ScheduleOutcome,
    issue_id: int | None,
    note: str,
    now: dt.datetime,
) -> bool:
    """Upsert the period's ScheduleRun; return whether the row is new."""
    insert = deliveries.upsert_insert(session)
    values = dict(
        newsletter_id=newsletter_id, period_key=slot.period_key, outcome=outcome.value,
        issue_id=issue_id, note=note, send_at=slot.send_at, checked_at=now,
    )
    existed = session.scalar(
        select(ScheduleRun.id).where(
            ScheduleRun.newsletter_id == newsletter_id, ScheduleRun.period_key == slot.period_key
        )
    )
    statement = insert(ScheduleRun.__table__).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["newsletter_id", "period_key"],
        set_={k: statement.excluded[k] for k in ("outcome", "issue_id", "note", "checked_at")},
    )
    session.execute(statement)
    return existed is None


def materialise_week(
    session: Session, config: Mapping[str, Any], newsletter: Newsletter, slot: WeeklySlot,
    now: dt.datetime,
) -> WeeklyOutcome:
    """Assemble the issue of one slot from the week's posts, once; record an empty week."""
    existing = session.scalar(
        select(Issue.id).where(
            Issue.newsletter_id == newsletter.id, Issue.period_key == slot.period_key
        )
    )
    if existing is not None:
        return WeeklyOutcome(newsletter.id, slot.period_key, "exists", existing)
    run = session.scalar(
        select(ScheduleRun).where(
            ScheduleRun.newsletter_id == newsletter.id, ScheduleRun.period_key == slot.period_key
        )
    )
    if run is not None and run.outcome == ScheduleOutcome.EMPTY and now >= slot.send_at:
        return WeeklyOutcome(newsletter.id, slot.period_key, "empty")
    if run is not None and run.outcome == ScheduleOutcome.CREATED:
        # The week's issue was assembled and an editor deleted it since: it stays deleted.
        return WeeklyOutcome(newsletter.id, slot.period_key, "exists")
    inbox.publish_accepted(session, config, newsletter, now)
    posts = candidate_posts(session, newsletter.id, now)
    if not posts:
        note = "No posts were published since the last issue, so no issue was assembled."
        if _record_run(session, newsletter.id, slot, ScheduleOutcome.EMPTY, None, note, now):
            log.info("newsletter %s, week %s: %s", newsletter.slug, slot.period_key, note)
        return WeeklyOutcome(newsletter.id, slot.period_key, "empty")
    subject = suggested_subject(posts)
    insert = deliveries.upsert_insert(session)
    statement = (
        insert(Issue.__table__)
        .values(
            newsletter_id=newsletter.id,
            slug=_free_slug(session, newsletter.id, slot.period_key.lower()),
            subject=subject,
            preheader="",
            intro_md="",
            status=IssueStatus.SCHEDULED.value,
            period_key=slot.period_key,
            held=False,
            scheduled_at=slot.send_at,
            schedule_tz=newsletter.time_zone,
            created_at=now,
            updated_at=now,
        )
        .on_conflict_do_nothing()
        .returning(Issue.__table__.c.id)
    )
    issue_id = session.scalar(statement)
    if issue_id is None:
        # Another scheduler assembled this week a moment ago.
        return WeeklyOutcome(newsletter.id, slot.period_key, "exists")
    session.execute(
        IssuePost.__table__.insert(),
        [{"issue_id": issue_id, "post_id": p.id, "position": i} for i, p in enumerate(posts)],
    )
    note = f"Assembled from {len(posts)} posts; goes out at the send time unless held."
    _record_run(session, newsletter.id, slot, ScheduleOutcome.CREATED, issue_id, note, now)
    log.info(
        "newsletter %s, week %s: assembled issue %s from %d posts",
        newsletter.slug, slot.period_key, issue_id, len(posts),
    )
    return WeeklyOutcome(newsletter.id, slot.period_key, "created", issue_id)


def materialise_weekly_issues(
    session: Session, config: Mapping[str, Any], now: dt.datetime | None = None
) -> list[WeeklyOutcome]:
    """Assemble every newsletter's weekly issue whose review window has opened.

    A slot is due from review_hours before its send time until LATE_GRACE after it: a
    scheduler that was down at the send time still assembles and sends the week's issue
    a little late rather than never, while a schedule set up mid-week does not fire off
    an issue for a send time long gone. An empty week is retried until its send time.
    """
    now = now or utcnow()
    outcomes = []
    newsletters = session.scalars(
        select(Newsletter).where(Newsletter.send_weekday.is_not(None), Newsletter.send_time.is_not(None))
    )
    for newsletter in newsletters:
        for slot in weekly_slots(newsletter, now):
            if slot.assemble_at <= now < slot.send_at + LATE_GRACE:
                outcomes.append(materialise_week(session, config, newsletter, slot, now))
    return outcomes


def schedule_runs(session: Session, newsletter_id: int, limit: int = 10) -> list[ScheduleRun]:
    """Return what the weekly schedule did for a newsletter's latest periods, newest first."""
    return list(
        session.scalars(
            select(ScheduleRun)
            .where(ScheduleRun.newsletter_id == newsletter_id)
            .order_by(ScheduleRun.send_at.desc())
            .limit(limit)
            .execution_options(populate_existing=True)
        )
    )


# --- building and editing an issue -----------------------------------------------------


@dataclass(frozen=True)
class IssueInput:
    """What the issue form carries (text, as a browser sends it)."""

    subject: str = ""
    preheader: str = ""
    intro_md: str = ""


def create_issue(session: Session, newsletter: Newsletter, now: dt.datetime | None = None) -> Issue:
    """Add a draft carrying every post published since the last issue, in section order,
    with the subject the weekly schedule would suggest."""
    now = now or utcnow()
    posts = candidate_posts(session, newsletter.id, now)
    subject = suggested_subject(posts)
    issue = Issue(
        newsletter_id=newsletter.id,
        slug=_free_slug(session, newsletter.id, slugify(subject, fallback="issue")),
        subject=subject,
        preheader="",
        intro_md="",
        status=IssueStatus.DRAFT,
        created_at=now,
        updated_at=now,
    )
    session.add(issue)
    session.flush()
    session.add_all(IssuePost(issue_id=issue.id, post_id=p.id, position=i) for i, p in enumerate(posts))
    session.flush()
    return get_issue(session, issue.id)


def _claim_for_edit(session: Session, issue_id: int) -> Issue:
    # A conditional UPDATE: a send starting at the same moment either waits for this
    # transaction or has already moved the issue on, and then the edit is refused.
    return _move(session, issue_id, EDITABLE, "changed", updated_at=utcnow())


def update_issue(session: Session, issue_id: int, data: IssueInput) -> Issue:
    """Change a draft or scheduled issue's subject, preheader and intro (it stays scheduled);
    raise Invalid listing every problem, or IssueError once it has started."""
    errors: dict[str, str] = {}
    subject = " ".join(text(data.subject, "subject", errors, required=True, max_length=300).split())
    preheader = text(data.preheader, "preheader", errors, max_length=300)
    if "preheader" not in errors and (problem := preheader_problem(preheader)):
        errors["preheader"] = problem
    intro = (data.intro_md or "").strip()
    if len(intro) > INTRO_LIMIT:
        errors["intro_md"] = f"The intro must be at most {INTRO_LIMIT:,} characters (it has {len(intro):,})."
    else:
        check_text(data.intro_md or "", "intro_md", errors, label="The intro", multiline=True)
    issue = _claim_for_edit(session, issue_id)
    if errors:
        raise Invalid(errors)
    issue.subject, issue.preheader, issue.intro_md = subject, preheader, intro
    # Not sent yet, so no public page has the old address: the slug follows the subject.
    issue.slug = _free_slug(session, issue.newsletter_id, slugify(subject, fallback="issue"), issue.id)
    session.flush()
    return issue


def _by_section(items: Sequence[IssuePost]) -> list[list[IssuePost]]:
    """Group items by section, sections in order of their first item, items in order."""
    groups: dict[int, list[IssuePost]] = {}
    for item in items:
        groups.setdefault(item.post.section_id, []).append(item)
    return list(groups.values())


def _renumber(session: Session, issue: Issue, items: Sequence[IssuePost]) -> None:
    """Store items' order, grouped by section as the email shows them (first post's section first)."""
    for position, item in enumerate(i for group in _by_section(items) for i in group):
        item.position = position
    session.flush()
    session.expire(issue, ["issue_posts"])


def move_post(session: Session, issue_id: int, post_id: int, offset: int) -> Issue:
    """Move a post of a draft or scheduled issue one place up (offset -1) or down (+1).

    The email groups posts by section, so the first post of a section moving up (the
    last moving down) moves its whole section past the neighbouring one."""
    issue = _claim_for_edit(session, issue_id)
    ordered = _by_section(issue.issue_posts)
    for g, group in enumerate(ordered):
        k = next((k for k, item in enumerate(group) if item.post_id == post_id), None)
        if k is None:
            continue
        if 0 <= k + offset < len(group):
            group[k], group[k + offset] = group[k + offset], group[k]
        elif 0 <= g + offset < len(ordered):
            ordered[g], ordered[g + offset] = ordered[g + offset], ordered[g]
        _renumber(session, issue, [item for group in ordered for item in group])
        return get_issue(session, issue_id)
    raise IssueError(f"{named(get_issue(session, issue_id))} does not carry that post")


def reorder_posts(session: Session, issue_id: int, post_ids: Sequence[int]) -> Issue:
    """Put a draft or scheduled issue's posts in the order of post_ids (every post it
    carries, once), grouped by section as the email shows them."""
    issue = _claim_for_edit(session, issue_id)
    by_post = {item.post_id: item for item in issue.issue_posts}
    if sorted(post_ids) != sorted(by_post):
        raise IssueError(f"{named(issue)} changed meanwhile: reload the page and move the post again")
    _renumber(session, issue, [by_post[post_id] for post_id in post_ids])
    return get_issue(session, issue_id)


def remove_post(session: Session, issue_id: int, post_id: int) -> Issue:
    """Take a post out of a draft or scheduled issue (a scheduled one keeps at least one)."""
    issue = _claim_for_edit(session, issue_id)
    item = next((item for item in issue.issue_posts if item.post_id == post_id), None)
    if item is None:
        raise IssueError(f"{named(issue)} does not carry that post")
    if len(issue.issue_posts) == 1 and issue.status == IssueStatus.SCHEDULED:
        raise IssueError("a scheduled issue must carry at least one post: unschedule it first")
    issue.issue_posts.remove(item)  # delete-orphan: the row goes at the flush
    _renumber(session, issue, issue.issue_posts)
    return get_issue(session, issue_id)


@dataclass(frozen=True)
class Pickable:
    """A published post an issue can take, and the other unsent draft carrying it, if any."""

    post: Post
    in_issue: Issue | None  # a draft it would be moved from


def addable_posts(
    session: Session, newsletter_id: int, issue_id: int, search: str = "", limit: int = 200
) -> list[Pickable]:
    """Return published posts this issue does not carry and no started, scheduled or sent
    issue carries (a draft's posts are offered, with that draft), newest first; search
    matches the title or the section's name."""
    taken_elsewhere = (
        select(IssuePost.post_id)
        .join(Issue, Issue.id == IssuePost.issue_id)
        .where(or_(Issue.id == issue_id, Issue.status.not_in([IssueStatus.DRAFT, IssueStatus.CANCELLED])))
    )
    query = (
        select(Post)
        .join(Section, Section.id == Post.section_id)
        .where(
            Post.newsletter_id == newsletter_id,
            Post.status == PostStatus.PUBLISHED,
            Post.id.not_in(taken_elsewhere),
        )
        .order_by(Post.published_at.desc(), Post.id.desc())
        .limit(limit)
    )
    words = search.strip()
    if words:
        pattern = like_pattern(words)
        query = query.where(or_(func.lower(Post.title).like(pattern, escape="\\"),
                                func.lower(Section.name).like(pattern, escape="\\")))
    found = list(session.scalars(query))
    drafts: dict[int, Issue] = {
        post_id: draft for post_id, draft in session.execute(
            select(IssuePost.post_id, Issue)
            .join(Issue, Issue.id == IssuePost.issue_id)
            .where(IssuePost.post_id.in_([p.id for p in found]), Issue.status == IssueStatus.DRAFT)
        )
    } if found else {}
    return [Pickable(post, drafts.get(post.id)) for post in found]


def add_post(session: Session, issue_id: int, post_id: int) -> Issue:
    """Add a published post to a draft or scheduled issue, at the end of its section; a
    post another draft carries moves here from it."""
    issue = _claim_for_edit(session, issue_id)
    post = session.get(Post, post_id)
    if post is None or post.newsletter_id != issue.newsletter_id:
        raise IssueError(f"there is no post {post_id} in this newsletter")
    if post.status != PostStatus.PUBLISHED:
        raise IssueError(f"“{post.title}” is not published: publish it first")
    holder = session.scalar(
        select(Issue).join(IssuePost, IssuePost.issue_id == Issue.id)
        .where(IssuePost.post_id == post_id, Issue.status != IssueStatus.CANCELLED)
    )
    if holder is not None and (holder.id == issue_id or holder.status != IssueStatus.DRAFT):
        raise IssueError(f"“{post.title}” is already in {named(holder)} ({holder.status.value})")
    if holder is not None:
        _claim_for_edit(session, holder.id)
        session.execute(delete(IssuePost).where(IssuePost.issue_id == holder.id, IssuePost.post_id == post_id))
        session.expire(holder, ["issue_posts"])
    items = list(issue.issue_posts)
    item = IssuePost(issue_id=issue_id, post_id=post_id, position=len(items))
    session.add(item)
    session.flush()
    _renumber(session, issue, [*items, item])
    return get_issue(session, issue_id)


def delete_issue(session: Session, issue_id: int, now: dt.datetime | None = None) -> Issue:
    """Delete a draft, or a cancelled issue that never started sending (it has no record);
    its posts are free for another issue. A weekly issue's week is not assembled again.
    Return the deleted issue (detached)."""
    issue = get_issue(session, issue_id)
    deletable = issue.status in DELETABLE and issue.fanned_out_at is None and issue.started_at is None
    if not deletable:
        raise IssueError(
            f"{named(issue)} is {issue.status.value}: only drafts and cancelled issues that "
            "never started sending can be deleted"
        )
    session.execute(delete(IssuePost).where(IssuePost.issue_id == issue_id))
    done = rowcount(session.execute(
        delete(Issue).where(
            Issue.id == issue_id,
            Issue.status.in_(DELETABLE),
            Issue.fanned_out_at.is_(None),
        ).execution_options(synchronize_session=False)
    )) == 1
    if not done:
        raise IssueError(f"{named(issue)} changed meanwhile: it cannot be deleted")
    if issue.period_key is not None:
        session.execute(
            update(ScheduleRun)
            .where(ScheduleRun.newsletter_id == issue.newsletter_id,
                   ScheduleRun.period_key == issue.period_key)
            .values(note="An editor deleted the week's issue: this week is not assembled again.",
                    checked_at=now or utcnow())
        )
    session.expunge(issue)
    return issue


def cancel_unstarted(session: Session, issue_id: int, now: dt.datetime | None = None) -> Issue:
    """Cancel a draft or scheduled issue (one that has started is paused or cancelled from
    its sending page)."""
    return _move(
        session, issue_id, EDITABLE, "cancelled here",
        status=IssueStatus.CANCELLED, cancelled_at=now or utcnow(),
    )
