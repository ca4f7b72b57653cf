"""Feed intake: sources read by real local HTTP servers into the inbox, and what editors do there."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select

from digest import create_app
from digest.core.models import InboxItem, InboxState, Issue, Newsletter, Post, PostStatus, Source
from digest.domain import inbox, issues, sources
from digest.domain.feeds import FeedError, canonical_url, page_metadata, parse_feed
from digest.engine import feeds
from tests.support.apps import get_db_of
from tests.support.http import Received, Reply, serving
from tests.support.readers import load_newsletter

NOW = dt.datetime(2026, 12, 5, 10, 0, tzinfo=dt.UTC)


def rss(*items: tuple[str, str, str], title: str = "Lab notes") -> bytes:
    """Return an RSS 2.0 document with (guid, link, description) items."""
    body = "".join(
        f"<item><title>Item {guid}</title><link>{link}</link><guid isPermaLink=\"false\">{guid}"
        f"</guid><description><![CDATA[{summary}]]></description>"
        f"<pubDate>Fri, 04 Dec 2026 09:00:00 GMT</pubDate></item>"
        for guid, link, summary in items
    )
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>{title}</title>'
            f"<link>https://lab.example.org/</link>{body}</channel></rss>").encode()


@pytest.fixture
def feed_app(app_overrides: dict[str, Any]) -> Iterator[Flask]:
    """An app allowed to fetch from 127.0.0.1 (the test servers), with the demo newsletter."""
    app = create_app({**app_overrides, "ALLOW_PRIVATE_URLS": True, "FEED_MAX_BYTES": 200_000})
    load_newsletter(app)
    yield app
    get_db_of(app).dispose()


def _add(app: Flask, url: str, section: str = "news") -> int:
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        return sources.add_source(session, newsletter, url, section, now=NOW).id


def _items(app: Flask) -> list[InboxItem]:
    with get_db_of(app).sessionmaker() as session:
        return list(session.scalars(select(InboxItem).order_by(InboxItem.id)))


def _source(app: Flask, source_id: int) -> Source:
    with get_db_of(app).sessionmaker() as session:
        found = session.get(Source, source_id)
        assert found is not None
        return found


def test_a_second_fetch_sends_the_validators_back_and_adds_nothing(feed_app: Flask) -> None:
    """Does the clock's second fetch send If-None-Match / If-Modified-Since, get a 304, and
    leave the inbox as it was?"""
    document = rss(("a1", "https://lab.example.org/a1", "First"),
                   ("a2", "https://lab.example.org/a2", "Second"))

    def answer(request: Received) -> Reply:
        if request.headers.get("if-none-match") == '"v1"':
            return Reply(304, {"ETag": '"v1"'})
        return Reply(200, {"Content-Type": "application/rss+xml", "ETag": '"v1"',
                           "Last-Modified": "Fri, 04 Dec 2026 09:00:00 GMT"}, document)

    with serving(answer) as server:
        source_id = _add(feed_app, f"{server.url}/feed.xml")
        first = feeds.fetch_sources(feed_app, NOW)
        assert first.added == {source_id: 2}
        later = NOW + dt.timedelta(hours=2)
        second = feeds.fetch_sources(feed_app, later)
        assert second.unchanged == [source_id] and not second.added
        assert len(server.received) == 2
        assert "if-none-match" not in server.received[0].headers
        assert server.received[1].headers["if-none-match"] == '"v1"'
        assert server.received[1].headers["if-modified-since"] == "Fri, 04 Dec 2026 09:00:00 GMT"
    assert [i.title for i in _items(feed_app)] == ["Item a1", "Item a2"]
    source = _source(feed_app, source_id)
    assert source.title == "Lab notes" and source.last_status == 304 and source.last_error is None
    assert source.next_fetch_at == later + dt.timedelta(hours=1)


def test_the_clock_only_fetches_due_sources(feed_app: Flask) -> None:
    """Is a source read once per interval, not on every tick?"""
    with serving(lambda _r: Reply(200, {}, rss(("x", "https://lab.example.org/x", "")))) as server:
        _add(feed_app, f"{server.url}/feed.xml")
        feeds.fetch_sources(feed_app, NOW)
        feeds.fetch_sources(feed_app, NOW + dt.timedelta(minutes=30))
        assert len(server.received) == 1
        feeds.fetch_sources(feed_app, NOW + dt.timedelta(minutes=61))
        assert len(server.received) == 2


def test_duplicates_by_canonical_url_or_guid_appear_once(feed_app: Flask) -> None:
    """Do the same article with tracking parameters, the same GUID under another link, and the
    same article in a second feed all land as one inbox item?"""
    first = rss(("g1", "https://news.example.org/story?id=7&utm_source=rss&utm_medium=feed", "A"),
                ("g1", "https://news.example.org/other-link-same-guid", "A again"),
                ("g2", "https://news.example.org/story?id=7&fbclid=abc#comments", "A third"))
    second = rss(("h9", "https://NEWS.example.org:443/story?gclid=zz&id=7", "Elsewhere"),
                 ("h10", "https://news.example.org/new", "B"), title="Aggregator")

    def answer(request: Received) -> Reply:
        return Reply(200, {}, first if request.path == "/one" else second)

    with serving(answer) as server:
        _add(feed_app, f"{server.url}/one")
        _add(feed_app, f"{server.url}/two", "tools")
        report = feeds.fetch_sources(feed_app, NOW)
        assert sorted(report.added.values()) == [1, 1]
        feeds.fetch_sources(feed_app, NOW + dt.timedelta(days=1))
    items = _items(feed_app)
    assert [i.url for i in items] == [
        "https://news.example.org/story?id=7&utm_source=rss&utm_medium=feed",
        "https://news.example.org/new",
    ]
    assert [i.source_name for i in items] == ["Lab notes", "Aggregator"]
    assert canonical_url("HTTPS://Example.org:443/a?utm_campaign=x&b=1&mc_eid=2#top") == \
        "https://example.org/a?b=1"


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<rss version="2.0"><channel><title>&lol3;</title><item><title>&lol3;</title>
<link>https://evil.example.org/</link></item></channel></rss>"""


def test_hostile_feeds_are_refused_or_cleaned(feed_app: Flask) -> None:
    """Are entity bombs and oversized feeds refused (the source says why and backs off),
    script in summaries removed, and items with unreadable dates kept without a date?"""
    dirty = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Dirty</title>'
             b"<item><title>Ok &lt;b&gt;bold&lt;/b&gt;</title><link>https://d.example.org/1</link>"
             b"<description><![CDATA[<p>Read <script>alert('x')</script>this "
             b"<img src=x onerror=alert(1)> <a href=\"javascript:alert(2)\">now</a></p>]]>"
             b"</description><pubDate>Someday, 99 Smarch 20x6</pubDate></item>"
             b"<item><title>No link</title><link>javascript:alert(3)</link></item>"
             b"</channel></rss>")
    answers = {"/bomb": BILLION_LAUGHS, "/huge": b"<rss>" + b"x" * 300_000 + b"</rss>",
               "/dirty": dirty}
    with serving(lambda r: Reply(200, {"Content-Type": "application/rss+xml"},
                                 answers[r.path])) as server:
        bomb = _add(feed_app, f"{server.url}/bomb")
        huge = _add(feed_app, f"{server.url}/huge")
        dirty_id = _add(feed_app, f"{server.url}/dirty")
        report = feeds.fetch_sources(feed_app, NOW)
    assert set(report.failed) == {bomb, huge} and report.added == {dirty_id: 1}
    assert "entities" in (_source(feed_app, bomb).last_error or "")
    assert "cap" in (_source(feed_app, huge).last_error or "")
    failed = _source(feed_app, bomb)
    assert failed.failures == 1 and failed.next_fetch_at == NOW + dt.timedelta(hours=1)
    [item] = _items(feed_app)
    assert item.title == "Ok bold"
    assert item.summary == "Read this now"
    assert item.published_at is None
    with pytest.raises(FeedError):
        parse_feed(BILLION_LAUGHS)


def test_a_failing_source_backs_off_and_recovers(feed_app: Flask) -> None:
    """Does each failure in a row double the wait (up to a day), and a success reset it?"""
    state = {"ok": False}

    def answer(_request: Received) -> Reply:
        if state["ok"]:
            return Reply(200, {}, rss(("r", "https://r.example.org/", "")))
        return Reply(503, {}, b"down")

    with serving(answer) as server:
        source_id = _add(feed_app, f"{server.url}/feed")
        moment = NOW
        waits = []
        for _ in range(3):
            feeds.fetch_sources(feed_app, moment)
            source = _source(feed_app, source_id)
            waits.append(source.next_fetch_at - moment)
            moment = source.next_fetch_at
        assert waits == [dt.timedelta(hours=1), dt.timedelta(hours=2), dt.timedelta(hours=4)]
        assert source.last_error == "The server answered 503." and source.failures == 3
        state["ok"] = True
        feeds.fetch_sources(feed_app, moment)
    source = _source(feed_app, source_id)
    assert source.failures == 0 and source.last_error is None and source.last_status == 200
    assert sources.backoff(30, dt.timedelta(hours=1)) == dt.timedelta(days=1)


def test_a_source_on_a_private_address_is_refused_without_the_setting(app: Flask) -> None:
    """Without DIGEST_ALLOW_PRIVATE_URLS, is a feed on 127.0.0.1 never requested?"""
    load_newsletter(app)
    with serving(lambda _r: Reply(200, {}, rss())) as server:
        source_id = _add(app, f"{server.url}/feed")
        report = feeds.fetch_sources(app, NOW)
        assert not server.received
    assert "loopback" in report.failed[source_id]


def test_json_feed_is_read_by_hand() -> None:
    """Is a JSON Feed read (items, relative links, summaries, dates), and junk left out?"""
    document = (b'{"version": "https://jsonfeed.org/version/1.1", "title": "JF",'
                b'"home_page_url": "https://jf.example.org/", "items": ['
                b'{"id": "1", "url": "/posts/1", "title": "One", "content_html": "<b>hi</b>",'
                b' "date_published": "2026-12-01T10:00:00+01:00"},'
                b'{"id": "2", "title": "No url"}, 7,'
                b'{"id": "3", "url": "https://jf.example.org/3", "summary": "s",'
                b' "date_published": "yesterday"}]}')
    feed = parse_feed(document, "application/feed+json")
    assert feed.title == "JF"
    assert [(e.url, e.title, e.summary, e.guid) for e in feed.entries] == [
        ("https://jf.example.org/posts/1", "One", "hi", "1"),
        ("https://jf.example.org/3", "https://jf.example.org/3", "s", "3"),
    ]
    assert feed.entries[0].published_at == dt.datetime(2026, 12, 1, 9, 0, tzinfo=dt.UTC)
    assert feed.entries[1].published_at is None
    with pytest.raises(FeedError):
        parse_feed(b'{"items": 3}')
    # Control characters and lone surrogates (which PostgreSQL refuses) never get through.
    (odd,) = parse_feed(b'{"items": [{"id": 7, "url": "https://x.example.org/", "title": '
                        b'"Bell\\u0007 \\ud800here", "summary": "<script>x</script>ok"},'
                        b'{"id": "8", "url": "https://x.example.org/\\ud800"}]}').entries
    assert (odd.title, odd.summary, odd.guid) == ("Bell here", "ok", "7")


def test_accepting_makes_a_draft_with_link_and_attribution_and_dismissing_hides(
        feed_app: Flask) -> None:
    """Does accepting an item make a draft post (edited summary, link, source named) in the
    source's section, and dismissing take an item out of the inbox for good?"""
    with serving(lambda _r: Reply(200, {}, rss(
            ("k1", "https://k.example.org/1", "Keep me"),
            ("k2", "https://k.example.org/2", "Drop me")))) as server:
        source_id = _add(feed_app, f"{server.url}/feed", "tools")
        feeds.fetch_sources(feed_app, NOW)
        with get_db_of(feed_app).session() as session:
            newsletter = session.scalars(select(Newsletter)).one()
            keep, drop = inbox.list_items(session, newsletter).items[::-1]
            post = inbox.accept(session, keep, summary="My own words.")
            inbox.dismiss(session, drop)
            assert post.status is PostStatus.DRAFT and post.section.slug == "tools"
            assert post.link_url == "https://k.example.org/1" and post.summary == "My own words."
            assert post.body_md == f"Found via [Lab notes]({server.url}/feed)."
            assert inbox.list_items(session, newsletter).total == 0
            with pytest.raises(Exception, match="already accepted"):
                inbox.accept(session, keep)
        # The feed still lists both: neither comes back.
        feeds.fetch_sources(feed_app, NOW + dt.timedelta(days=1))
    states = [i.state for i in _items(feed_app)]
    assert states == [InboxState.ACCEPTED, InboxState.DISMISSED]
    assert _source(feed_app, source_id).failures == 0


def test_the_weekly_assembly_pulls_accepted_items_when_set(feed_app: Flask) -> None:
    """With "include accepted" on, does the weekly issue publish and carry the drafts accepted
    from the inbox (and leave them out when it is off)?"""
    with get_db_of(feed_app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        item, _ = inbox.save_link(session, newsletter, "https://saved.example.org/a",
                                  "A saved page", "Worth reading.")
        post_id = inbox.accept(session, item).id
        session.execute(Issue.__table__.delete().where(Issue.newsletter_id == newsletter.id))
    monday = dt.datetime(2026, 12, 13, 12, 0, tzinfo=dt.UTC)  # a Sunday: Monday's slot is due
    with get_db_of(feed_app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        issues.materialise_weekly_issues(session, feed_app.config, monday)
        issue = session.scalars(select(Issue).where(Issue.period_key.is_not(None))).one()
        assert post_id not in [p.post_id for p in issue.issue_posts]
        session.execute(Issue.__table__.delete())
        inbox.set_include_accepted(session, newsletter, True)
    with get_db_of(feed_app).session() as session:
        issues.materialise_weekly_issues(session, feed_app.config, monday + dt.timedelta(days=7))
        issue = session.scalars(select(Issue).where(Issue.period_key.is_not(None))).one()
        assert post_id in [p.post_id for p in issue.issue_posts]
        post = session.get(Post, post_id)
        assert post is not None and post.status is PostStatus.PUBLISHED


def test_a_saved_link_gets_its_title_and_description_from_the_page(feed_app: Flask) -> None:
    """Does the clock read og:title (then <title>) and the description of a saved page, and
    does saving the same page again (tracking parameters aside) give the same item?"""
    page = (b"<html><head><title>Plain title</title>"
            b'<meta property="og:title" content="The &amp; real title">'
            b'<meta name="description" content="What it is about <script>x</script>">'
            b"</head><body><p>text</p></body></html>")
    with serving(lambda _r: Reply(200, {"Content-Type": "text/html; charset=utf-8"}, page)) as server:
        with get_db_of(feed_app).session() as session:
            newsletter = session.scalars(select(Newsletter)).one()
            item, created = inbox.save_link(session, newsletter, f"{server.url}/article")
            assert created and item.page_pending and item.title == f"{server.url}/article"
            again, created = inbox.save_link(session, newsletter,
                                             f"{server.url}/article?utm_source=x")
            assert not created and again.id == item.id
        assert feeds.read_saved_pages(feed_app) == 1
    [saved] = _items(feed_app)
    assert saved.title == "The & real title" and not saved.page_pending
    assert saved.summary == "What it is about <script>x</script>"
    assert page_metadata(b"<title>Only &lt;this&gt;</title>").title == "Only <this>"
    with get_db_of(feed_app).sessionmaker() as session:
        assert session.scalar(select(func.count()).select_from(InboxItem)) == 1
