"""An issue's whole journey in Debian's headless Chromium: from a published post to the archive."""

from __future__ import annotations

import datetime as dt
import re
import time
from zoneinfo import ZoneInfo

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Issue, IssueStatus
from digest.engine.scheduler import Clock
from digest.engine.sender import SenderPool
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.editor import PASSWORD, make_editor
from tests.support.smtp import SMTPServer
from tests.support.workspace import demo_newsletter

pytestmark = pytest.mark.browser
TITLE = "A browser-built issue carries this post"
SUBJECT = "Fresh from the browser: one post, scheduled in New York"
ZONE = "America/New_York"


def _issue(app: Flask, issue_id: int) -> Issue:
    with get_db_of(app).session() as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None
        session.expunge(issue)
        return issue


def test_build_preview_schedule_send_and_archive(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """An editor publishes a post, builds an issue that already carries it, renames it,
    previews it at two widths, schedules it in New York time, sends it now, watches it go
    out to Sent, and finds it in the public archive."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    db.rollback()  # the live server writes; SQLite must not see this session's lock
    with live_server(smtp_app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.on("dialog", lambda d: d.accept())  # "Send now" asks first

        log_in_editor(page, base, "admin@example.com", PASSWORD)
        nav = page.locator("nav[aria-label=Editor]").bounding_box()
        link = page.locator("nav[aria-label=Editor] a:has-text('Issues')").bounding_box()
        assert nav and link and link["height"] < 40 and nav["height"] < 40  # one line at 1280 px

        page.goto(base + "/editor/posts/new")
        page.fill("#title", TITLE)
        page.select_option("#section_id", label="News")
        page.fill("#summary", "Written, published and sent from a real browser.")
        page.fill("#body_md", "Some **text**.")
        page.click("button:has-text('Save and publish')")
        page.wait_for_selector(".flash-success")

        page.click("nav >> text=Issues")
        page.wait_for_selector("h1:has-text('Issues')")
        assert "Weekly schedule" in page.inner_text("#weekly")
        assert "Every Monday at 08:00 (Europe/Berlin)" in page.inner_text("#weekly")
        page.screenshot(path=str(screenshot_path("editor-issues")), full_page=True)

        page.click("button:has-text('New issue')")
        page.wait_for_url(re.compile(r".*/editor/issues/\d+$"))
        issue_id = int(page.url.rsplit("/", 1)[1])
        assert page.input_value("#subject") == TITLE  # suggested from the week's first post
        assert page.locator("#posts ol.issue-posts > li").count() == 1
        assert TITLE in page.inner_text("#posts")
        page.fill("#subject", SUBJECT)
        page.fill("#intro_md", "Hello from **the browser**.")
        page.wait_for_selector("#preview strong")  # the intro's live preview
        page.screenshot(path=str(screenshot_path("editor-issue-edit")), full_page=True)
        page.click("#issue-form button:has-text('Save')")
        page.wait_for_selector(".flash-success")
        assert page.inner_text("h1") == SUBJECT
        page.set_viewport_size({"width": 375, "height": 800})  # the same page on a phone
        assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.screenshot(path=str(screenshot_path("editor-issue-edit-phone")), full_page=True)
        page.set_viewport_size({"width": 1280, "height": 900})

        page.click("a:has-text('Preview')")
        page.wait_for_selector("h1:has-text('Preview')")
        frame = page.frame_locator("iframe.mail-html")
        assert TITLE in frame.locator("body").inner_text()
        assert "the browser" in frame.locator("body").inner_text()
        assert SUBJECT in page.inner_text("main")
        desktop = page.locator("iframe.mail-html").bounding_box()
        assert desktop and 690 <= desktop["width"] <= 710
        page.locator("iframe.mail-html").scroll_into_view_if_needed()  # Chromium paints a frame once seen
        page.screenshot(path=str(screenshot_path("editor-issue-preview-desktop")), full_page=True)
        page.click("a:has-text('Phone')")
        page.wait_for_url(re.compile(r".*view=phone.*"))
        phone = page.locator("iframe.mail-html").bounding_box()
        assert phone and 365 <= phone["width"] <= 385
        assert TITLE in page.frame_locator("iframe.mail-html").locator("body").inner_text()
        page.locator("iframe.mail-html").scroll_into_view_if_needed()
        page.screenshot(path=str(screenshot_path("editor-issue-preview-phone")), full_page=True)

        page.goto(f"{base}/editor/issues/{issue_id}")
        local = dt.datetime.now(ZoneInfo(ZONE)) + dt.timedelta(minutes=2)
        page.fill("#at", f"{local:%Y-%m-%dT%H:%M}")
        page.fill("#tz", ZONE)
        page.click("#schedule button:has-text('Schedule')")
        page.wait_for_selector(".flash-success")
        shown = page.inner_text("#schedule")
        assert f"Goes out at {local:%Y-%m-%d %H:%M} " in shown and f"({ZONE})" in shown
        scheduled = _issue(smtp_app, issue_id)
        assert scheduled.status is IssueStatus.SCHEDULED and scheduled.schedule_tz == ZONE
        assert scheduled.scheduled_at == local.replace(second=0, microsecond=0).astimezone(dt.UTC)
        page.screenshot(path=str(screenshot_path("editor-issue-scheduled")), full_page=True)

        page.click("button:has-text('Send now')")
        page.wait_for_url(re.compile(rf".*/editor/issues/{issue_id}/sending$"))  # straight to its progress
        assert "goes out now" in page.inner_text(".flash-success")
        assert _issue(smtp_app, issue_id).status is IssueStatus.SCHEDULED  # due now, for the clock

        pool = SenderPool(smtp_app, 2, mail_jobs=(), idle_seconds=0.2).start()
        clock = Clock(smtp_app, dispatcher=pool, interval=1).start()
        try:
            page.wait_for_selector("#sending-status-text:has-text('Sent:')", timeout=60_000)
        finally:
            clock.shutdown()
            pool.stop()
        page.screenshot(path=str(screenshot_path("editor-issue-sent-progress")), full_page=True)
        sent = _issue(smtp_app, issue_id)
        assert sent.status is IssueStatus.SENT
        subjects = {r.message["Subject"] for r in smtp_server.received}
        assert subjects == {SUBJECT}
        assert len(smtp_server.received) >= 3  # the demo readers whose sections carry News

        page.goto(f"{base}/editor/issues/{issue_id}")
        assert page.inner_text(".badge") == "sent"
        assert page.locator("#issue-form").count() == 0  # read-only now
        page.screenshot(path=str(screenshot_path("editor-issue-sent")), full_page=True)
        page.click("a:has-text('Public page')")
        page.wait_for_selector(f"h1:has-text('{SUBJECT}')")
        assert TITLE in page.inner_text("main")
        page.screenshot(path=str(screenshot_path("public-archive-browser-issue")), full_page=True)
        page.goto(base + "/archive/weekly-model/")
        assert SUBJECT in page.inner_text("main")
        assert problems == []


def test_preview_shows_each_section_combination_at_two_widths_light_and_dark(app: Flask, db: Session) -> None:
    """The preview opens on the combination most readers chose; one click shows another, whose
    email and preheader carry only its pieces; the issue's schedule warns that the subject
    names a post some readers miss; both pages fit a phone, light and dark."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    draft = db.scalars(select(Issue).where(Issue.status == IssueStatus.DRAFT)).first()
    assert draft is not None
    issue_id = draft.id
    named = draft.issue_posts[0].post.title  # a News post: readers of Engineers and Tools miss it
    draft.subject = named
    db.commit()
    with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.goto(f"{base}/editor/issues/{issue_id}/preview")
        rows = page.locator("#combinations tbody tr")
        assert rows.count() >= 2
        assert "shown" in rows.nth(0).inner_text()
        everyone = page.frame_locator("iframe.mail-html").locator("body").inner_text()
        other = rows.nth(1)
        name = other.locator("a").inner_text()
        other.locator("a").click()
        page.wait_for_selector("#combinations tbody tr:nth-child(2) a[aria-current]")
        assert f"who chose {name}" in page.inner_text(".lead")
        frame = page.frame_locator("iframe.mail-html").locator("body").inner_text()
        assert frame != everyone
        preheader = page.inner_text("#message-facts dd:nth-of-type(4)")
        assert preheader.split(" this week")[0] in frame.split("\n")[0]
        for width in (1280, 375):
            for scheme in ("light", "dark"):
                page.set_viewport_size({"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)
                page.locator("iframe.mail-html").scroll_into_view_if_needed()
                page.screenshot(path=str(screenshot_path(f"editor-preview-combinations-{width}-{scheme}")), full_page=True)
                page.locator("#combinations").screenshot(path=str(screenshot_path(f"editor-preview-combinations-card-{width}-{scheme}")))
                if width == 375:
                    assert page.evaluate("document.documentElement.scrollWidth") <= 375
        page.goto(f"{base}/editor/issues/{issue_id}")
        warnings = page.locator("#schedule #reach-warnings")
        assert f"The subject names “{named}”" in warnings.inner_text()
        assert "{count}" in page.inner_text("#preheader-help")
        for width in (1280, 375):
            for scheme in ("light", "dark"):
                page.set_viewport_size({"width": width, "height": 900})
                page.emulate_media(color_scheme=scheme)
                page.screenshot(path=str(screenshot_path(f"editor-issue-warnings-{width}-{scheme}")), full_page=True)
                page.locator("#schedule").screenshot(path=str(screenshot_path(f"editor-issue-warnings-card-{width}-{scheme}")))
                page.locator("#issue-form").screenshot(path=str(screenshot_path(f"editor-issue-preheader-{width}-{scheme}")))
                if width == 375:
                    assert page.evaluate("document.documentElement.scrollWidth") <= 375
        assert problems == []


def test_send_now_starts_sending_at_once_with_pause_and_cancel(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """With the clock ticking every 30 s, "Send now" wakes it: within seconds (2 on an idle
    machine; the bound leaves room for a loaded one, far below the tick) the sending page
    shows the send under way and offers Pause and Cancel."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    draft = db.scalars(select(Issue).where(Issue.status == IssueStatus.DRAFT)).first()
    assert draft is not None
    issue_id = draft.id
    db.rollback()
    smtp_app.config["SEND_RATE"] = 1.0  # slow enough that the send is still live when seen
    pool = SenderPool(smtp_app, 1, mail_jobs=(), idle_seconds=30).start()
    clock = Clock(smtp_app, dispatcher=pool, interval=30).start()
    try:
        with live_server(smtp_app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
            page = context.new_page()  # type: ignore[attr-defined]
            page.on("dialog", lambda d: d.accept())
            log_in_editor(page, base, "admin@example.com", PASSWORD)
            page.goto(f"{base}/editor/issues/{issue_id}")
            time.sleep(1)  # the clock's first tick (at start) is over: the next is 30 s away
            started = time.monotonic()
            page.click("button:has-text('Send now')")
            page.wait_for_selector("form[data-action=pause]:not([hidden]) button", timeout=10_000)
            page.wait_for_selector("details[data-action=cancel]:not([hidden])", timeout=100)
            assert time.monotonic() - started < 10
            for width in (1280, 375):
                for scheme in ("light", "dark"):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.emulate_media(color_scheme=scheme)
                    page.screenshot(path=str(screenshot_path(f"editor-send-now-{width}-{scheme}")), full_page=True)
    finally:
        clock.shutdown()
        pool.stop()
