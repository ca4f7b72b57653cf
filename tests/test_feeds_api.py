"""Sources and the inbox through /api/v1 (answers checked against the OpenAPI document),
the `digest sources` commands, and the workspace forms."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from digest import create_app
from digest.core.models import EditorRole, InboxItem, Newsletter, Source
from digest.domain import sources
from digest.engine import feeds
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.delivery import digest_process, process_env
from tests.support.http import Received, Reply, serving
from tests.support.readers import load_newsletter
from tests.support.waiting import wait_until

SOURCES = "/api/v1/newsletters/weekly-model/sources"
INBOX = "/api/v1/newsletters/weekly-model/inbox"
FEED = (b'<?xml version="1.0"?><rss version="2.0"><channel><title>Lab</title>'
        b"<item><title>One</title><link>https://lab.example.org/1</link><guid>1</guid>"
        b"<description>First &lt;script&gt;alert(1)&lt;/script&gt;item</description></item>"
        b"</channel></rss>")


@pytest.fixture
def feed_app(app_overrides: dict[str, Any]) -> Iterator[Flask]:
    """An app that may fetch from 127.0.0.1, with the demo newsletter."""
    app = create_app({**app_overrides, "ALLOW_PRIVATE_URLS": True})
    load_newsletter(app)
    yield app
    get_db_of(app).dispose()


@pytest.fixture
def api(feed_app: Flask) -> ApiClient:
    """An editor's (not an admin's) API client."""
    return ApiClient(feed_app.test_client(),
                     make_token(feed_app, "pen@example.com", EditorRole.EDITOR))


def test_sources_through_the_api(feed_app: Flask, api: ApiClient) -> None:
    """An editor adds a source (201, due at once), sees it listed with its health, gets 409
    for the same feed again or an unknown section, 422 for a non-URL, and removes it."""
    created = api.post(SOURCES, json={"url": "https://lab.example.org/feed.xml",
                                      "section": "tools"})
    assert created.status_code == 201
    source = created.get_json()
    assert source["section"]["slug"] == "tools" and source["last_fetch_at"] is None
    assert created.headers["Location"].endswith(f"/api/v1/sources/{source['id']}")
    assert api.get(SOURCES).get_json()["sources"] == [source]
    again = api.post(SOURCES, json={"url": "https://lab.example.org/feed.xml", "section": "news"})
    assert again.status_code == 409 and "already" in again.get_json()["fields"]["url"]
    unknown = api.post(SOURCES, json={"url": "https://other.example.org/", "section": "nope"})
    assert unknown.status_code == 409 and "nope" in unknown.get_json()["fields"]["section"]
    assert api.post(SOURCES, json={"url": "ftp://x", "section": "news"}).status_code == 422
    assert api.delete(f"/api/v1/sources/{source['id']}").status_code == 204
    assert api.get(f"/api/v1/sources/{source['id']}").status_code == 404


def test_inbox_through_the_api(feed_app: Flask, api: ApiClient) -> None:
    """Items a source brought are listed; accepting one gives a draft post with the edited
    summary and the attribution; a dismissed one is refused a second decision (409); a saved
    link is 201 the first time and 200 (the same item) with tracking parameters added."""
    with serving(lambda _r: Reply(200, {}, FEED)) as server:
        api.post(SOURCES, json={"url": f"{server.url}/feed", "section": "news"})
        feeds.fetch_sources(feed_app)
    (item,) = api.get(INBOX).get_json()["items"]
    assert item["title"] == "One" and item["source"] == "Lab"
    assert item["summary"] == "First item" and item["state"] == "new"
    accepted = api.post(f"/api/v1/inbox/{item['id']}/accept", json={"summary": "Mine."})
    assert accepted.status_code == 200
    post = accepted.get_json()["post"]
    assert post["status"] == "draft" and post["summary"] == "Mine."
    assert post["link_url"] == "https://lab.example.org/1"
    assert post["body_md"] == f"Found via [Lab]({server.url}/feed)."
    assert accepted.get_json()["item"]["post_id"] == post["id"]
    assert api.post(f"/api/v1/inbox/{item['id']}/dismiss").status_code == 409
    assert api.get(INBOX).get_json()["total"] == 0
    assert api.get(f"{INBOX}?state=accepted").get_json()["total"] == 1

    saved = api.post(INBOX, json={"url": "https://example.org/read?utm_source=x",
                                  "title": "Worth it", "description": "Because."})
    assert saved.status_code == 201 and saved.get_json()["page_pending"] is False
    same = api.post(INBOX, json={"url": "https://example.org/read?fbclid=1"})
    assert same.status_code == 200 and same.get_json()["id"] == saved.get_json()["id"]
    dismissed = api.post(f"/api/v1/inbox/{saved.get_json()['id']}/dismiss")
    assert dismissed.status_code == 200 and dismissed.get_json()["state"] == "dismissed"
    assert api.post(f"/api/v1/inbox/{saved.get_json()['id']}/accept").status_code == 409
    assert api.post("/api/v1/inbox/999999/accept").status_code == 404


def test_sources_commands(feed_app: Flask) -> None:
    """`digest sources add URL --section SLUG`, `list`, `fetch` and `remove` do what they say."""
    runner = feed_app.test_cli_runner()
    def answer(request: Received) -> Reply:
        if request.headers.get("if-none-match") == '"1"':
            return Reply(304)
        return Reply(200, {"ETag": '"1"'}, FEED)

    with serving(answer) as server:
        added = runner.invoke(args=["sources", "add", f"{server.url}/feed", "--section", "news"])
        assert added.exit_code == 0, added.output
        assert "section news" in added.output
        bad = runner.invoke(args=["sources", "add", f"{server.url}/x", "--section", "nope"])
        assert bad.exit_code != 0 and "There is no section 'nope'" in bad.output
        fetched = runner.invoke(args=["sources", "fetch"])
        assert fetched.exit_code == 0, fetched.output
        assert "1 new item." in fetched.output
        again = runner.invoke(args=["sources", "fetch"])
        assert "not changed since the last fetch" in again.output
        assert server.received[1].headers["if-none-match"] == '"1"'
    listed = runner.invoke(args=["sources", "list"])
    assert f"{server.url}/feed" in listed.output and "\tok" in listed.output
    with get_db_of(feed_app).session() as session:
        source_id = session.scalars(select(Source.id)).one()
    removed = runner.invoke(args=["sources", "remove", str(source_id)])
    assert removed.exit_code == 0 and "is removed" in removed.output
    with get_db_of(feed_app).session() as session:
        assert session.scalars(select(Source)).all() == []
        assert len(session.scalars(select(InboxItem)).all()) == 1  # the item stays


def test_a_failing_fetch_command_says_why_and_exits_non_zero(feed_app: Flask) -> None:
    """`digest sources fetch` names a failing source's error and exits 1."""
    runner = feed_app.test_cli_runner()
    with serving(lambda _r: Reply(200, {}, b"<html>not a feed</html>")) as server:
        runner.invoke(args=["sources", "add", f"{server.url}/page", "--section", "news"])
        result = runner.invoke(args=["sources", "fetch"])
    assert result.exit_code == 1
    assert "not an RSS or Atom feed" in result.output


def test_the_scheduler_process_reads_sources_by_itself(feed_app: Flask, tmp_path: Path) -> None:
    """Does a real `digest scheduler` read a new source within seconds (its clock's feed job)
    and then leave it alone until the interval has passed?"""
    with serving(lambda _r: Reply(200, {}, FEED)) as server:
        with get_db_of(feed_app).session() as session:
            newsletter = session.scalars(select(Newsletter)).one()
            sources.add_source(session, newsletter, f"{server.url}/feed", "news")
        env = process_env(feed_app, ALLOW_PRIVATE_URLS="true", TICK_SECONDS=1)
        log = tmp_path / "scheduler.log"
        with digest_process(["scheduler"], env, log):
            wait_until(lambda: _item_count(feed_app) == 1, timeout=30,
                       what=lambda: log.read_text(errors="replace")[-2000:])
            time.sleep(3)  # three more ticks of the feed job
        assert len(server.received) == 1


def _item_count(app: Flask) -> int:
    with get_db_of(app).sessionmaker() as session:
        return len(session.scalars(select(InboxItem)).all())
