"""The editor's subscriber list (search, filters, keyset pages) and a reader's record."""

from __future__ import annotations

import datetime as dt

from digest.core.db import utcnow
from digest.core.models import (
    Consent,
    ConsentSource,
    Delivery,
    DeliveryState,
    EditorRole,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.domain import reports
from tests.support.editor import log_in, make_editor
from tests.support.workspace import demo_newsletter, sent_issue


def _readers(db, newsletter, count: int) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    for n in range(count):
        db.add(Subscription(
            subscriber=Subscriber(email=f"bulk{n:04d}@example.net", name=f"Bulk {n}"),
            newsletter=newsletter,
            status=SubscriptionStatus.PENDING if n % 10 == 0 else SubscriptionStatus.CONFIRMED,
            confirmed_at=None if n % 10 == 0 else now,
        ))
    db.commit()


def test_keyset_pages_cover_every_reader_once(db) -> None:  # type: ignore[no-untyped-def]
    """Walking the pages forward reaches every reader exactly once, newest first."""
    newsletter = demo_newsletter(db)
    _readers(db, newsletter, 120)
    seen: list[int] = []
    page = reports.search_subscribers(db, newsletter)
    assert page.total == 124 and page.newer is None
    while True:
        seen += [row.subscription.id for row in page.rows]
        if page.older is None:
            break
        page = reports.search_subscribers(db, newsletter, before=page.older)
    assert len(seen) == len(set(seen)) == 124
    assert seen == sorted(seen, reverse=True)
    back = reports.search_subscribers(db, newsletter, after=page.newer)
    assert [r.subscription.id for r in back.rows] == seen[50:100]
    assert back.older is not None and back.newer is not None


def test_search_and_filters(db) -> None:  # type: ignore[no-untyped-def]
    """Search finds address or name parts; status and section filters narrow the list."""
    newsletter = demo_newsletter(db)
    _readers(db, newsletter, 30)
    assert [r.subscriber.email for r in reports.search_subscribers(db, newsletter, search="GRACE").rows] == [
        "grace@example.com"
    ]
    assert reports.search_subscribers(db, newsletter, search="bulk 1").total == 11  # names "Bulk 1", "Bulk 10"…
    assert reports.search_subscribers(db, newsletter, status="pending").total == 3
    assert reports.search_subscribers(db, newsletter, search="%").total == 0
    tools = next(s for s in newsletter.sections if s.slug == "tools")
    news = next(s for s in newsletter.sections if s.slug == "news")
    # Readers who chose no section receive every section, so they count for each.
    tools_readers = {r.subscriber.email for r in reports.search_subscribers(db, newsletter, section_id=tools.id,
                                                                          search="example.com").rows}
    assert tools_readers == {"ada@example.com", "grace@example.com", "katherine@example.com"}
    news_readers = {r.subscriber.email for r in reports.search_subscribers(db, newsletter, section_id=news.id,
                                                                         search="example.com").rows}
    assert news_readers == {"ada@example.com", "alan@example.com", "katherine@example.com"}


def test_subscriber_pages_for_editors(client, db) -> None:  # type: ignore[no-untyped-def]
    """Any editor lists, filters and pages readers in the browser."""
    newsletter = demo_newsletter(db)
    _readers(db, newsletter, 60)
    make_editor(db)
    make_editor(db, "writer@example.com", EditorRole.EDITOR)
    log_in(client, "writer@example.com")
    html = client.get("/editor/subscribers").get_data(as_text=True)
    assert "64 readers match" in html
    assert "bulk0059@example.net" in html and "ada@example.com" not in html  # on page 2
    older = html.split('rel="next"')[0].rsplit('href="', 1)[1].split('"')[0].replace("&amp;", "&")
    assert "ada@example.com" in client.get(older).get_data(as_text=True)
    filtered = client.get("/editor/subscribers?status=pending&q=bulk").get_data(as_text=True)
    assert "6 readers match" in filtered and "bulk0010@example.net" in filtered
    assert '<option value="pending" selected>Pending</option>' in filtered  # the filter stays shown


def test_subscriber_record_shows_consent_and_deliveries(client, db) -> None:  # type: ignore[no-untyped-def]
    """A reader's page shows their consent (text, version, IP) and every issue sent to them."""
    newsletter = demo_newsletter(db)
    subscriber = Subscriber(email="record@example.org", name="Rec")
    subscription = Subscription(subscriber=subscriber, newsletter=newsletter, status=SubscriptionStatus.CONFIRMED,
                                confirmed_at=utcnow())
    subscription.consents.append(Consent(source=ConsentSource.FORM, ip="203.0.113.9", user_agent="Firefox",
                                         consent_text="I agree to the weekly mail.", consent_version="v7",
                                         confirmed_at=utcnow()))
    db.add(subscription)
    db.commit()
    issue = sent_issue(db, newsletter, "first", [], subject="The first issue", sent_at=utcnow() - dt.timedelta(days=3))
    db.add(Delivery(issue_id=issue.id, subscriber_id=subscriber.id, state=DeliveryState.FAILED_PERM,
                    attempts=1, smtp_code=550, smtp_response="5.1.1 no such user"))
    db.commit()
    subscriber_id = subscriber.id
    make_editor(db)
    log_in(client, "admin@example.com")
    html = client.get(f"/editor/subscribers/{subscriber_id}").get_data(as_text=True)
    for expected in ("record@example.org", "I agree to the weekly mail.", "version v7", "203.0.113.9",
                     "Firefox", "The first issue", "failed perm", "550 5.1.1 no such user"):
        assert expected in html
    assert client.get("/editor/subscribers/999999").status_code == 404
