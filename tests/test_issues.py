"""The issue lifecycle, scheduling in named time zones, and the weekly issue."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.cron import CronTrigger
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    Issue,
    IssuePost,
    IssueStatus,
    Newsletter,
    Post,
    PostStatus,
    ScheduleOutcome,
    ScheduleRun,
)
from digest.domain import issues
from digest.domain.issues import IssueError
from digest.engine.scheduler import tick
from tests.support.delivery import CONFIG, make_newsletter

BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC


def test_schedule_in_a_named_zone_is_stored_in_utc(db: Session) -> None:
    """08:00 in Berlin in winter is stored as 07:00 UTC, with the zone kept."""
    setup = make_newsletter(db)
    now = dt.datetime(2026, 11, 20, tzinfo=UTC)
    issue = issues.schedule_issue(db, setup.issue_id, dt.datetime(2026, 11, 30, 8, 0), "Europe/Berlin", now)
    db.commit()
    assert issue.status == IssueStatus.SCHEDULED
    assert issue.scheduled_at == dt.datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert issue.schedule_tz == "Europe/Berlin"


@pytest.mark.parametrize(
    ("local", "message"),
    [
        (dt.datetime(2026, 3, 29, 2, 30), "does not exist"),
        (dt.datetime(2026, 10, 25, 2, 30), "happens twice"),
        (dt.datetime(2026, 1, 1, 9, 0), "has passed"),
    ],
)
def test_schedule_refuses_skipped_repeated_and_past_times(db: Session, local: dt.datetime, message: str) -> None:
    """A local time the DST change skips or repeats, or one in the past, is refused; nothing changes."""
    setup = make_newsletter(db)
    now = dt.datetime(2026, 2, 1, tzinfo=UTC)
    with pytest.raises(IssueError, match=message):
        issues.schedule_issue(db, setup.issue_id, local, "Europe/Berlin", now)
    db.rollback()
    assert db.get(Issue, setup.issue_id).status == IssueStatus.DRAFT  # type: ignore[union-attr]


def test_unknown_zone_and_bad_date_are_clear_errors(db: Session) -> None:
    """A made-up time zone or a malformed date names the problem."""
    setup = make_newsletter(db)
    with pytest.raises(IssueError, match="Mars/Olympus is not a time zone name"):
        issues.schedule_issue(db, setup.issue_id, dt.datetime(2030, 1, 1, 8), "Mars/Olympus")
    with pytest.raises(IssueError, match="not a date and time"):
        issues.parse_local("next monday")


def test_reschedule_and_cancel_before_start(db: Session) -> None:
    """A scheduled issue can be moved, taken back to draft, cancelled; a cancelled one not resumed."""
    setup = make_newsletter(db)
    now = dt.datetime(2026, 11, 1, tzinfo=UTC)
    issues.schedule_issue(db, setup.issue_id, dt.datetime(2026, 11, 30, 8), None, now)
    moved = issues.schedule_issue(db, setup.issue_id, dt.datetime(2026, 12, 7, 9, 30), "America/New_York", now)
    assert moved.scheduled_at == dt.datetime(2026, 12, 7, 14, 30, tzinfo=UTC)
    assert issues.unschedule_issue(db, setup.issue_id).status == IssueStatus.DRAFT
    assert issues.cancel_issue(db, setup.issue_id).status == IssueStatus.CANCELLED
    with pytest.raises(IssueError, match="is cancelled: it cannot be resumed"):
        issues.resume_issue(db, setup.issue_id)
    with pytest.raises(IssueError, match="cannot be scheduled"):
        issues.schedule_issue(db, setup.issue_id, dt.datetime(2030, 1, 7, 9), None, now)


def test_an_issue_without_posts_cannot_go_out(db: Session) -> None:
    """Sending an empty issue is refused with a reason."""
    setup = make_newsletter(db)
    db.query(IssuePost).delete()
    db.commit()
    with pytest.raises(IssueError, match="carries no posts"):
        issues.send_now(db, setup.issue_id)


def test_start_fans_out_then_finishes_when_nothing_is_open(db: Session) -> None:
    """Starting creates one row per reader and marks the issue sending; it is sent once all settle."""
    setup = make_newsletter(db, readers=3)
    issues.send_now(db, setup.issue_id)
    assert issues.due_issue_ids(db) == [setup.issue_id]
    assert issues.start_issue(db, setup.issue_id, CONFIG) == 3
    db.commit()
    issue = issues.get_issue(db, setup.issue_id)
    assert issue.status == IssueStatus.SENDING and issue.started_at is not None
    assert issues.start_issue(db, setup.issue_id, CONFIG) == 0
    assert not issues.finish_issue(db, setup.issue_id)
    db.execute(update(Delivery).values(state="sent"))
    assert issues.finish_issue(db, setup.issue_id)
    db.commit()
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENT


def test_held_issue_does_not_start(app: Flask, db: Session) -> None:
    """A held scheduled issue stays put at its time; released, the next tick starts it."""
    setup = make_newsletter(db, readers=2)
    issues.send_now(db, setup.issue_id)
    issues.set_held(db, setup.issue_id, True)
    db.commit()
    assert tick(app).started == []
    issues.set_held(db, setup.issue_id, False)
    db.commit()
    assert tick(app).started == [setup.issue_id]


def test_pause_resume_and_resend_actions(db: Session) -> None:
    """Pause/resume only fit a sending/paused issue; resend puts failed or unclear rows back."""
    setup = make_newsletter(db, readers=4)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    with pytest.raises(IssueError, match="is sending: it cannot be resumed"):
        issues.resume_issue(db, setup.issue_id)
    issues.pause_issue(db, setup.issue_id, "SMTP login failed")
    assert issues.get_issue(db, setup.issue_id).pause_reason == "SMTP login failed"
    assert issues.resume_issue(db, setup.issue_id).pause_reason is None
    ids = list(db.scalars(select(Delivery.id).order_by(Delivery.id)))
    for delivery_id, state in zip(ids, ["sent", "failed_perm", "failed_temp", "unknown"]):
        db.execute(update(Delivery).where(Delivery.id == delivery_id).values(state=state))
    assert issues.finish_issue(db, setup.issue_id)
    assert issues.resend_failed(db, setup.issue_id) == 2
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENDING
    assert issues.resend_unknown(db, setup.issue_id) == 1
    db.commit()


# --- the weekly schedule ---------------------------------------------------------------


def _weekly(db: Session, weekday: int = 1, time: str = "08:00", review_hours: int = 24) -> Newsletter:
    setup = make_newsletter(db, readers=3)
    newsletter = db.get(Newsletter, setup.newsletter_id)
    assert newsletter is not None
    db.query(IssuePost).delete()
    db.query(Issue).delete()
    newsletter.send_weekday, newsletter.send_time, newsletter.review_hours = weekday, time, review_hours
    # Fixed dates keep these tests true whatever day they run on.
    db.execute(update(Post).values(published_at=dt.datetime(2026, 1, 5, tzinfo=UTC)))
    db.commit()
    return newsletter


def _publish(db: Session, newsletter: Newsletter, when: dt.datetime, title: str, section: int = 0) -> Post:
    post = Post(
        newsletter_id=newsletter.id, section_id=newsletter.sections[section].id, slug=title.lower().replace(" ", "-"),
        title=title, status=PostStatus.PUBLISHED, published_at=when,
    )
    db.add(post)
    db.commit()
    return post


def test_weekly_issue_is_assembled_review_hours_before_in_section_order(app: Flask, db: Session) -> None:
    """Sunday 08:00 Berlin (24 h before Monday 08:00) the week's issue appears, posts in section order."""
    newsletter = _weekly(db)
    db.query(Post).delete()
    db.commit()
    _publish(db, newsletter, dt.datetime(2026, 11, 25, 9, tzinfo=UTC), "A tool we like", section=1)
    _publish(db, newsletter, dt.datetime(2026, 11, 26, 9, tzinfo=UTC), "Big news")
    before = dt.datetime(2026, 11, 29, 6, 59, tzinfo=UTC)  # Sunday 07:59 in Berlin
    assert issues.materialise_weekly_issues(db, app.config, before) == []
    sunday = dt.datetime(2026, 11, 29, 7, 0, tzinfo=UTC)
    [outcome] = issues.materialise_weekly_issues(db, app.config, sunday)
    db.commit()
    assert outcome.outcome == "created" and outcome.period_key == "2026-W49"
    issue = issues.get_issue(db, outcome.issue_id)  # type: ignore[arg-type]
    assert issue.status == IssueStatus.SCHEDULED and not issue.held
    assert issue.scheduled_at == dt.datetime(2026, 11, 30, 7, 0, tzinfo=UTC)
    assert [p.post.title for p in issue.issue_posts] == ["Big news", "A tool we like"]
    assert issue.subject == "Big news"
    assert issues.due_issue_ids(db, sunday) == []
    assert issues.due_issue_ids(db, dt.datetime(2026, 11, 30, 7, 0, tzinfo=UTC)) == [issue.id]


def test_next_week_takes_only_posts_published_since(app: Flask, db: Session) -> None:
    """Posts already in last week's issue, or older than it, do not come back."""
    newsletter = _weekly(db)
    db.query(Post).delete()
    db.commit()
    _publish(db, newsletter, dt.datetime(2026, 11, 25, 9, tzinfo=UTC), "Old news")
    [first] = issues.materialise_weekly_issues(db, app.config, dt.datetime(2026, 11, 29, 8, tzinfo=UTC))
    db.commit()
    _publish(db, newsletter, dt.datetime(2026, 12, 2, 9, tzinfo=UTC), "New news")
    [second] = issues.materialise_weekly_issues(db, app.config, dt.datetime(2026, 12, 6, 8, tzinfo=UTC))
    db.commit()
    assert (first.period_key, second.period_key) == ("2026-W49", "2026-W50")
    titles = [p.post.title for p in issues.get_issue(db, second.issue_id).issue_posts]  # type: ignore[arg-type]
    assert titles == ["New news"]


def test_empty_week_creates_nothing_and_says_so(app: Flask, db: Session) -> None:
    """No posts: no issue, one ScheduleRun the editor can show; a late post before send time still makes it."""
    newsletter = _weekly(db)
    db.query(Post).delete()
    db.commit()
    sunday = dt.datetime(2026, 11, 29, 8, tzinfo=UTC)
    assert [o.outcome for o in issues.materialise_weekly_issues(db, app.config, sunday)] == ["empty"]
    db.commit()
    [run] = issues.schedule_runs(db, newsletter.id)
    assert run.outcome == ScheduleOutcome.EMPTY and run.period_key == "2026-W49"
    assert "No posts" in run.note
    assert db.scalar(select(func.count()).select_from(Issue)) == 0
    _publish(db, newsletter, dt.datetime(2026, 11, 29, 12, tzinfo=UTC), "Sunday scoop")
    [late] = issues.materialise_weekly_issues(db, app.config, dt.datetime(2026, 11, 29, 13, tzinfo=UTC))
    db.commit()
    assert late.outcome == "created"
    assert issues.schedule_runs(db, newsletter.id)[0].outcome == ScheduleOutcome.CREATED


def test_two_schedulers_in_one_week_make_one_issue(app: Flask, db: Session) -> None:
    """Ticking again and again in the window (as two schedulers would) leaves one issue per period."""
    newsletter = _weekly(db)
    for minute in range(0, 50, 7):
        tick(app, dt.datetime(2026, 11, 29, 8, minute, tzinfo=UTC))
    assert db.scalar(select(func.count()).select_from(Issue).where(Issue.newsletter_id == newsletter.id)) == 1


def test_dst_fall_back_double_fire_makes_one_issue(app: Flask, db: Session) -> None:
    """A Sunday 02:30 Berlin schedule fires twice on 25 October 2026 (per APScheduler's cron
    trigger); both fires together make one issue, sent once to each reader."""
    newsletter = _weekly(db, weekday=7, time="02:30", review_hours=0)
    db.query(Post).delete()
    _publish(db, newsletter, dt.datetime(2026, 10, 21, 9, tzinfo=UTC), "Autumn news")
    trigger = CronTrigger(day_of_week="sun", hour=2, minute=30, timezone=BERLIN)
    fires, previous = [], None
    now = dt.datetime(2026, 10, 24, 12, tzinfo=UTC)
    for _ in range(2):
        previous = trigger.get_next_fire_time(previous, previous or now)
        fires.append(previous)
        previous = previous + dt.timedelta(seconds=1) if previous else previous
    assert [f.astimezone(UTC).hour for f in fires] == [0, 1]  # the same wall time, twice
    reports = [tick(app, fire.astimezone(UTC)) for fire in fires]
    assert [o.outcome for o in reports[0].weekly] == ["created"]
    assert [o.outcome for o in reports[1].weekly] == ["exists"]
    issue_ids = list(db.scalars(select(Issue.id)))
    assert len(issue_ids) == 1 and reports[0].started == issue_ids
    assert db.scalar(select(func.count()).select_from(Delivery)) == 3


def test_missed_send_time_sends_late_only_within_grace(app: Flask, db: Session) -> None:
    """A scheduler down over Monday 08:00 and back at 10:00 still sends the week's issue;
    a schedule first seen on Wednesday does not send one for Monday."""
    _weekly(db)
    report = tick(app, dt.datetime(2026, 11, 30, 9, tzinfo=UTC))  # Monday 10:00 in Berlin
    assert [o.outcome for o in report.weekly] == ["created"]
    assert len(report.started) == 1


def test_schedule_set_mid_week_waits_for_the_next_slot(app: Flask, db: Session) -> None:
    """Setting up "Mondays 08:00" on a Wednesday makes the first issue the next Monday's."""
    _weekly(db)
    assert tick(app, dt.datetime(2026, 12, 2, 9, tzinfo=UTC)).weekly == []
    [outcome] = tick(app, dt.datetime(2026, 12, 6, 8, tzinfo=UTC)).weekly
    assert outcome.period_key == "2026-W50"


def test_next_weekly_slot_for_the_editor(db: Session) -> None:
    """The editor can show when the next issue is assembled and sent, across a DST change."""
    newsletter = _weekly(db)
    slot = issues.next_weekly_slot(newsletter, dt.datetime(2026, 3, 25, tzinfo=UTC))
    assert slot is not None and slot.period_key == "2026-W14"
    assert slot.send_at == dt.datetime(2026, 3, 30, 6, 0, tzinfo=UTC)  # 08:00 CEST
    assert slot.assemble_at == dt.datetime(2026, 3, 29, 6, 0, tzinfo=UTC)
    assert db.scalars(select(ScheduleRun)).all() == []


def test_cancelled_weekly_issue_is_not_rebuilt(app: Flask, db: Session) -> None:
    """Cancelling the week's issue means no issue that week, not a fresh copy at the next tick."""
    _weekly(db)
    [outcome] = tick(app, dt.datetime(2026, 11, 29, 8, tzinfo=UTC)).weekly
    issues.cancel_issue(db, outcome.issue_id)  # type: ignore[arg-type]
    db.commit()
    [again] = tick(app, dt.datetime(2026, 11, 29, 9, tzinfo=UTC)).weekly
    assert again.outcome == "exists"
    assert db.scalar(select(func.count()).select_from(Issue)) == 1


def test_progress_reports_rate_and_eta(db: Session) -> None:
    """Progress has counts per state, a rate from the previous snapshot and an ETA."""
    setup = make_newsletter(db, readers=4)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    t0 = utcnow()
    first = issues.issue_progress(db, setup.issue_id, now=t0)
    assert first.counts.total == 4 and first.fraction == 0
    ids = list(db.scalars(select(Delivery.id).order_by(Delivery.id)))[:2]
    db.execute(update(Delivery).where(Delivery.id.in_(ids)).values(state="sent"))
    db.commit()
    second = issues.issue_progress(db, setup.issue_id, first, now=t0 + dt.timedelta(seconds=2))
    assert second.rate == 1.0 and second.eta_seconds == 2.0 and second.fraction == 0.5
