"""Dashboard figures (growth per week, per-issue results) and their charts."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

from sqlalchemy import select

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    Issue,
    IssuePost,
    IssueStatus,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SubscriptionStatus,
)
from digest.domain import issues, posts, reports
from digest.web.editor import charts
from tests.support.editor import log_in, make_editor
from tests.support.workspace import demo_newsletter, sent_issue

NOW = dt.datetime(2026, 11, 25, 12, 0, tzinfo=dt.UTC)  # a Wednesday


def _reader(db, newsletter, n: int, confirmed: dt.datetime | None, left: dt.datetime | None = None) -> Subscriber:  # type: ignore[no-untyped-def]
    subscriber = Subscriber(email=f"r{n}@example.net")
    db.add(Subscription(subscriber=subscriber, newsletter=newsletter, confirmed_at=confirmed, unsubscribed_at=left,
                        status=SubscriptionStatus.UNSUBSCRIBED if left else SubscriptionStatus.CONFIRMED))
    return subscriber


def test_growth_counts_weeks_in_the_newsletter_time_zone(db) -> None:  # type: ignore[no-untyped-def]
    """Confirmations and unsubscribes land in the local ISO week; the total carries over."""
    newsletter = demo_newsletter(db)  # four readers confirmed 20 days before now (real time)
    for sub in db.scalars(select(Subscription)):
        sub.confirmed_at = NOW - dt.timedelta(weeks=40)  # long before the window
    # Sunday 23:30 UTC is already Monday in Berlin: next week there.
    _reader(db, newsletter, 1, dt.datetime(2026, 11, 15, 23, 30, tzinfo=dt.UTC))
    _reader(db, newsletter, 2, dt.datetime(2026, 11, 15, 22, 30, tzinfo=dt.UTC))
    _reader(db, newsletter, 3, dt.datetime(2026, 11, 3, tzinfo=dt.UTC), left=dt.datetime(2026, 11, 24, tzinfo=dt.UTC))
    _reader(db, newsletter, 4, None)  # pending: not a reader yet
    db.commit()
    weeks = reports.growth(db, newsletter, weeks=4, now=NOW)
    assert [w.label for w in weeks] == ["2026-W45", "2026-W46", "2026-W47", "2026-W48"]
    assert [w.confirmed for w in weeks] == [1, 1, 1, 0]
    assert [w.unsubscribed for w in weeks] == [0, 0, 0, 1]
    assert [w.readers for w in weeks] == [5, 6, 7, 6]


def test_issue_figures_from_the_ledger(db) -> None:  # type: ignore[no-untyped-def]
    """Delivered, bounced, failed and later unsubscribes are counted per issue."""
    newsletter = demo_newsletter(db)
    first = sent_issue(db, newsletter, "one", [], sent_at=NOW - dt.timedelta(days=14))
    second = sent_issue(db, newsletter, "two", [], sent_at=NOW - dt.timedelta(days=7))
    states = [DeliveryState.SENT] * 5 + [DeliveryState.FAILED_PERM, DeliveryState.FAILED_TEMP,
                                         DeliveryState.UNKNOWN, DeliveryState.PENDING]
    for state in states:
        db.add(Delivery(issue_id=first.id, state=state))
    db.add(Delivery(issue_id=second.id, state=DeliveryState.SENT))
    _reader(db, newsletter, 10, NOW - dt.timedelta(days=30), left=NOW - dt.timedelta(days=10))  # after "one"
    _reader(db, newsletter, 11, NOW - dt.timedelta(days=30), left=NOW - dt.timedelta(days=1))  # after "two"
    _reader(db, newsletter, 12, NOW - dt.timedelta(days=30), left=NOW - dt.timedelta(days=20))  # before both
    db.commit()
    figures = {f.issue.slug: f for f in reports.issue_figures(db, newsletter)}
    one = figures["one"]
    assert (one.delivered, one.bounced, one.failed, one.queued, one.unsubscribed) == (5, 1, 2, 1, 1)
    assert (figures["two"].delivered, figures["two"].unsubscribed) == (1, 1)
    assert [f.issue.slug for f in reports.issue_figures(db, newsletter)] == ["one", "two"]


def test_chart_geometry_scales_to_the_data() -> None:
    """The tallest bar reaches the top tick; a zero draws nothing; labels thin out."""
    chart = charts.bars(["a", "b", "c"], {"x": [0, 50, 100]}, {"x": "things"})
    heights = [bar.height for bar in chart.bars]
    assert heights[0] == 0 and heights[2] == 2 * heights[1]
    assert chart.ticks[-1].label == "100" and chart.bars[2].y == chart.ticks[-1].y
    assert charts.nice_max(0) == 1 and charts.nice_max(7) == 10 and charts.nice_max(101) == 200
    many = charts.line([str(n) for n in range(26)], list(range(26)), "readers")
    assert len(many.labels) <= 14 and many.line.count(",") == 26


def test_dashboard_draws_accessible_charts(client, db) -> None:  # type: ignore[no-untyped-def]
    """The dashboard has SVG charts with a title and description, and the figures as tables."""
    newsletter = demo_newsletter(db)
    issue = sent_issue(db, newsletter, "one", [], subject="The first issue")
    db.add(Delivery(issue_id=issue.id, state=DeliveryState.SENT))
    db.commit()
    make_editor(db)
    log_in(client, "admin@example.com")
    response = client.get("/editor/")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert len(re.findall(r'<svg [^>]*role="img" aria-labelledby="[^"]+-title [^"]+-desc"', html)) == 4  # readers, weekly, delivery, clicks
    assert "<title id=\"readers-chart-title\">Readers at the end of each week</title>" in html
    assert "<table" in html and "The first issue" in html
    assert "style=" not in html and "<script>" not in html  # nothing the CSP would block


def test_dashboard_charts_label_weeks_by_their_local_monday(client, db) -> None:  # type: ignore[no-untyped-def]
    """A reader confirmed in the first minutes of last week's Monday in Auckland (Sunday in
    UTC) counts in last week, which the charts name by that Monday's ISO date (its month
    and day under the axis)."""
    newsletter = demo_newsletter(db)
    newsletter.time_zone = "Pacific/Auckland"
    zone = ZoneInfo("Pacific/Auckland")
    for sub in db.scalars(select(Subscription)):
        sub.confirmed_at = utcnow() - dt.timedelta(weeks=40)
    today = utcnow().astimezone(zone).date()
    this_monday = today - dt.timedelta(days=today.weekday())
    last_monday = this_monday - dt.timedelta(weeks=1)
    confirmed = dt.datetime.combine(last_monday, dt.time(0, 30), tzinfo=zone).astimezone(dt.UTC)
    assert confirmed.weekday() == 6  # Sunday in UTC: bucketed by the UTC date it would fall a week early
    _reader(db, newsletter, 1, confirmed)
    db.commit()
    make_editor(db)
    log_in(client, "admin@example.com")
    html = client.get("/editor/").get_data(as_text=True)
    assert f"<title>{last_monday.isoformat()}: 1 new readers</title>" in html
    earlier = (last_monday - dt.timedelta(weeks=1)).isoformat()
    assert f"<title>{earlier}: 0 new readers</title>" in html
    labels = re.findall(r'<text x="[\d.]+" y="[\d.]+" text-anchor="middle">([^<]+)</text>',
                        html.split('id="weekly-chart-title"')[1].split("</svg>")[0])
    assert labels and labels[-1] == this_monday.isoformat()[5:] and len(labels) <= 13
    assert all(re.fullmatch(r"\d{2}-\d{2}", label) for label in labels), labels


def test_dashboard_without_a_newsletter(client, db) -> None:  # type: ignore[no-untyped-def]
    """A fresh install's dashboard tells the admin what to do first."""
    make_editor(db)
    log_in(client, "admin@example.com")
    assert b"Fill in the settings" in client.get("/editor/").data


def test_growth_skips_empty_weeks_before_the_first_reader(db) -> None:  # type: ignore[no-untyped-def]
    """A young newsletter's chart starts near its first reader, not with months of zeros."""
    newsletter = demo_newsletter(db)
    for sub in db.scalars(select(Subscription)):
        sub.confirmed_at = NOW - dt.timedelta(weeks=2)
    db.commit()
    weeks = reports.growth(db, newsletter, weeks=26, now=NOW, min_weeks=8)
    assert len(weeks) == 8 and weeks[-1].readers == 4
    assert len(reports.growth(db, newsletter, weeks=26, now=NOW)) == 26


def test_dashboard_looks_ahead(client, db) -> None:  # type: ignore[no-untyped-def]
    """The dashboard shows the next scheduled issue (when, to how many readers, a link to its
    preview), the drafts waiting, and the weekly schedule's next assembly; an issue
    scheduled by hand before that assembly is named there."""
    newsletter = demo_newsletter(db)
    for sub in db.scalars(select(Subscription)):
        sub.status = SubscriptionStatus.UNSUBSCRIBED
    news, tools = (s for s in newsletter.sections if s.slug in ("news", "tools"))
    for n, chosen in enumerate([news, news, tools], 1):
        subscription = Subscription(subscriber=Subscriber(email=f"ahead{n}@example.net"), newsletter=newsletter,
                                    status=SubscriptionStatus.CONFIRMED, confirmed_at=NOW)
        db.add(subscription)
        db.flush()
        db.add(SubscriptionSection(subscription_id=subscription.id, section_id=chosen.id))
    post = next(p for p in posts.list_posts(db, newsletter, status="published").posts if p.section_id == news.id)
    issue = Issue(newsletter=newsletter, slug="by-hand", subject="Picked by hand", status=IssueStatus.SCHEDULED,
                  scheduled_at=utcnow() + dt.timedelta(minutes=30), schedule_tz="Europe/Berlin")
    db.add(issue)
    db.flush()
    issue.issue_posts = [IssuePost(post_id=post.id, position=0)]
    db.commit()
    slot = issues.next_weekly_slot(newsletter)
    assert slot is not None
    make_editor(db)
    log_in(client, "admin@example.com")
    html = client.get("/editor/").get_data(as_text=True)

    card = html[html.index('id="next-issue"'):html.index('id="drafts"')]
    assert "Picked by hand" in card and f'href="/editor/issues/{issue.id}/preview"' in card
    assert re.search(r"2 readers <span class=\"muted\">\(1 more chose only sections without a post\)", card)
    local = issue.scheduled_at.astimezone(ZoneInfo("Europe/Berlin"))  # type: ignore[union-attr]
    assert f"{local:%Y-%m-%d %H:%M}" in card

    drafts = html[html.index('id="drafts"'):html.index('id="weekly-next"')]
    demo_draft = db.scalar(select(Issue).where(Issue.status == IssueStatus.DRAFT))
    assert demo_draft is not None
    assert "Drafts waiting: 1" in drafts and f'href="/editor/issues/{demo_draft.id}"' in drafts

    weekly = html[html.index('id="weekly-next"'):]
    assemble = slot.assemble_at.astimezone(ZoneInfo("Europe/Berlin"))
    assert re.search(rf"Next assembly</dt><dd><time [^>]*>{assemble:%Y-%m-%d %H:%M} ", weekly)
    assert "“Picked by hand”, scheduled by hand, goes out first" in weekly
    db.rollback()  # this session's read would hold SQLite's lock against the page's writes
    listing = client.get("/editor/issues").get_data(as_text=True)
    assert re.search(r'id="ahead-of-slot"><a href="/editor/issues/\d+">“Picked by hand”</a>, scheduled by hand for <time', listing)


def test_dashboard_with_nothing_ahead(client, db) -> None:  # type: ignore[no-untyped-def]
    """Without a scheduled issue, drafts or weekly schedule, the cards say so."""
    newsletter = demo_newsletter(db)
    newsletter.send_weekday = None
    for issue in db.scalars(select(Issue).where(Issue.status == IssueStatus.DRAFT)):
        db.delete(issue)
    db.commit()
    make_editor(db)
    log_in(client, "admin@example.com")
    html = client.get("/editor/").get_data(as_text=True)
    assert "No issue is scheduled." in html and "No draft is waiting." in html
    assert "No weekly schedule: issues go out only when scheduled." in html
