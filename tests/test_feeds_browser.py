"""Feed intake in Debian's headless Chromium: add a source, accept an item, see it in the issue preview."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from digest import create_app
from digest.engine.scheduler import intake
from tests.support.apps import BASE_URL, get_db_of
from tests.support.browser import (
    chromium,
    live_server,
    log_in_editor,
    preview_mail_text,
    screenshot_path,
)
from tests.support.editor import PASSWORD, make_editor
from tests.support.http import Received, Reply, serving
from tests.support.workspace import demo_newsletter

pytestmark = pytest.mark.browser
TITLE = "A tokenizer twice as fast, measured"
FEED = f"""<?xml version="1.0"?><rss version="2.0"><channel><title>Lab notes</title>
<link>https://lab.example.org/</link>
<item><title>{TITLE}</title><link>https://lab.example.org/fast?utm_source=rss</link>
<guid>lab-1</guid><pubDate>Fri, 04 Dec 2026 09:00:00 GMT</pubDate>
<description><![CDATA[<p>Benchmarks <script>document.title='owned'</script>on real text.</p>]]></description>
</item></channel></rss>""".encode()


ARTICLE = b"""<!doctype html><html><head><title>Plain title</title>
<meta property="og:title" content="The open graph title">
<meta name="description" content="What the page is about."></head><body>Text</body></html>"""


def _site(request: Received) -> Reply:
    if request.path == "/ok":
        return Reply(200, {}, FEED)
    if request.path == "/article":
        return Reply(200, {"Content-Type": "text/html; charset=utf-8"}, ARTICLE)
    return Reply(500)


def _shot(page: Any, name: str) -> None:
    path: Path = screenshot_path(f"feeds/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


@pytest.fixture
def feed_app(app_overrides: dict[str, Any]) -> Iterator[Flask]:
    """An app whose outbound requests may reach the local feed server."""
    app = create_app({**app_overrides, "ALLOW_PRIVATE_URLS": True})
    yield app
    get_db_of(app).dispose()


def test_add_a_source_accept_an_item_and_see_it_in_the_issue_preview(
        feed_app: Flask, db: Session) -> None:
    """An editor adds a feed on the Sources page, the clock reads it, the item waits in the
    Inbox with its script removed, the editor rewrites its summary and accepts it, publishes
    the draft, builds an issue and finds the item, linked and attributed, in the preview."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    db.rollback()
    with serving(lambda _r: Reply(200, {"Content-Type": "application/rss+xml"}, FEED)) as feed, \
            live_server(feed_app) as base, \
            chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        log_in_editor(page, base, "admin@example.com", PASSWORD)

        nav = page.locator("nav[aria-label=Editor]").bounding_box()
        assert nav and nav["height"] < 40  # the admin's navigation stays one line at 1280 px
        page.click("nav[aria-label=Editor] >> text=Posts")
        page.click("a.button:has-text('Inbox')")
        page.click("a.button:has-text('Sources')")
        page.wait_for_selector("h1:has-text('Sources')")
        page.fill("#url", f"{feed.url}/feed.xml")
        page.select_option("#section", label="Engineers")
        page.click("button:has-text('Add source')")
        page.wait_for_selector(".flash-success")
        assert "not read yet" in page.inner_text("table.list")

        intake(feed_app)  # the clock's feed job
        page.reload()
        row = page.inner_text("table.list")
        assert "Lab notes" in row and "ok" in row and "Engineers" in row

        page.click("nav[aria-label=Editor] >> text=Posts")
        page.click("a.button:has-text('Inbox (1 new)')")
        page.wait_for_selector("h1:has-text('Inbox')")
        item = page.locator("article.inbox-item")
        assert item.count() == 1 and TITLE in item.inner_text()
        assert "Lab notes" in item.inner_text() and "2026-12-04" in item.inner_text()
        summary = page.locator("textarea[name=summary]")
        assert summary.input_value() == "Benchmarks on real text."
        assert page.title() != "owned"
        summary.fill("Measured on real text, and it holds up.")
        page.click("button:has-text('Accept as a draft')")
        page.wait_for_url(re.compile(r".*/editor/posts/\d+$"))
        assert page.input_value("#title") == TITLE
        assert page.input_value("#link_url") == "https://lab.example.org/fast?utm_source=rss"
        assert f"[Lab notes]({feed.url}/feed.xml)" in page.input_value("#body_md")
        page.click("button:has-text('Save and publish')")
        page.wait_for_selector(".flash-success")

        page.click("nav[aria-label=Editor] >> text=Issues")
        page.click("button:has-text('New issue')")
        page.wait_for_url(re.compile(r".*/editor/issues/\d+$"))
        assert TITLE in page.inner_text("#posts")
        page.click("a:has-text('Preview')")
        page.wait_for_selector("h1:has-text('Preview')")
        mail = preview_mail_text(page)
        assert TITLE in mail and "Measured on real text, and it holds up." in mail
        links = page.frame_locator("iframe.mail-html").locator("a[href^='https://lab.example.org/fast']")
        assert links.count() >= 1
        assert not problems, problems


def test_sources_inbox_and_bookmarklet_pages_at_two_widths_light_and_dark(
        feed_app: Flask, db: Session) -> None:
    """The Sources page (one healthy, one failing source), the Inbox and the Save-a-link page
    with its bookmarklet fit a phone without sideways scrolling, in light and dark."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    db.rollback()
    with serving(_site) as feed, \
            live_server(feed_app) as base, chromium() as context:
        page = context.new_page()  # type: ignore[attr-defined]
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        for path in ("/ok", "/broken"):
            page.goto(base + "/editor/sources")
            page.fill("#url", feed.url + path)
            page.click("button:has-text('Add source')")
            page.wait_for_selector(".flash-success")
        intake(feed_app)
        page.goto(base + "/editor/inbox/save")
        bookmarklet = page.get_attribute("#bookmarklet", "href") or ""
        assert bookmarklet.startswith("javascript:") and "/editor/inbox/save" in bookmarklet
        for width in (1280, 390):
            for scheme in ("light", "dark"):
                page.set_viewport_size({"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)
                for name in ("sources", "inbox", "inbox/save"):
                    page.goto(f"{base}/editor/{name}")
                    assert page.evaluate("document.documentElement.scrollWidth") <= width, name
                    _shot(page, f"{name.replace('/', '-')}-{width}-{scheme}")
        page.goto(base + "/editor/sources")
        assert "The server answered 500." in page.inner_text("table.list")

        # The bookmarklet, run on a page elsewhere, opens the form filled from its metadata.
        page.goto(feed.url + "/article")
        # It points at DIGEST_BASE_URL; here the workspace is served on the live server's port.
        assert f'"{BASE_URL}/editor/inbox/save"' in bookmarklet
        page.evaluate(bookmarklet.removeprefix("javascript:").replace(BASE_URL, base))
        page.wait_for_selector("h1:has-text('Save a link')")
        assert page.input_value("#url") == feed.url + "/article"
        assert page.input_value("#title") == "The open graph title"
        assert page.input_value("#description") == "What the page is about."
        page.click("button:has-text('Save to the inbox')")
        page.wait_for_selector(".flash-success")
        assert "The open graph title" in page.inner_text("main")
