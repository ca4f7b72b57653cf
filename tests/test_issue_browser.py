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
from tests.support.browser import (
    chromium,
    drag_above,
    live_server,
    log_in_editor,
    preview_mail_text,
    screenshot_path,
)
from tests.support.editor import PASSWORD, make_editor
from tests.support.smtp import SMTPServer
from tests.support.workspace import demo_newsletter

pytestmark = pytest.mark.browser
TITLE = "A browser-built issue carries this post"
SECOND = "And a second post, dragged to the top"
SUBJECT = "Fresh from the browser: one post, scheduled in New York"
ZONE = "America/New_York"


def _issue(app: Flask, issue_id: int) -> Issue:
    with get_db_of(app).session() as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None
        session.expunge(issue)
        return issue


def _go(page: object, label: str) -> None:
    """Follow a link of the editor's navigation, through the menu on a phone (720 px or less:
    decided by the width, since the button shows unstyled until the stylesheet arrives)."""
    if page.viewport_size["width"] <= 720:  # type: ignore[attr-defined]
        toggle = page.locator(".menu-toggle")  # type: ignore[attr-defined]
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
    page.click(f"nav[aria-label=Editor] a:has-text('{label}')")  # type: ignore[attr-defined]


def _fits(page: object, width: int) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth") <= width)  # type: ignore[attr-defined]


@pytest.mark.parametrize("width", [1280, 390])
def test_build_preview_schedule_send_and_archive(smtp_app: Flask, smtp_server: SMTPServer, db: Session,
                                                 width: int) -> None:
    """The editor's week at desktop and phone widths: publish two posts, build an issue that
    carries them, rename it, drag the second above the first, preview it as one section
    combination and another (each preheader counts that combination's pieces), schedule it
    in New York time, send it now with the clock 30 s away (sending shows within seconds),
    watch it go out to Sent, look back at its record and find it in the public archive."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    db.rollback()  # the live server writes; SQLite must not see this session's lock
    tag = f"editor-week-{width}"
    pool = SenderPool(smtp_app, 2, mail_jobs=(), idle_seconds=30).start()
    clock = Clock(smtp_app, dispatcher=pool, interval=30).start()  # only a wake sends soon
    try:
        with live_server(smtp_app) as base, chromium(viewport={"width": width, "height": 900}) as context:
            page = context.new_page()  # type: ignore[attr-defined]
            problems: list[str] = []
            page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(str(e)))
            page.on("dialog", lambda d: d.accept())  # "Send now" asks first

            log_in_editor(page, base, "admin@example.com", PASSWORD)
            if width > 720:
                nav = page.locator("nav[aria-label=Editor]").bounding_box()
                link = page.locator("nav[aria-label=Editor] a:has-text('Issues')").bounding_box()
                assert nav and link and link["height"] < 40 and nav["height"] < 40  # one line at 1280 px

            for title in (TITLE, SECOND):
                page.goto(base + "/editor/posts/new")
                page.fill("#title", title)
                page.select_option("#section_id", label="News")
                page.fill("#summary", "Written, published and sent from a real browser.")
                page.fill("#body_md", "Some **text**.")
                page.click("button:has-text('Save and publish')")
                page.wait_for_selector(".flash-success")
                assert _fits(page, width)

            _go(page, "Issues")
            page.wait_for_selector("h1:has-text('Issues')")
            assert "Weekly schedule" in page.inner_text("#weekly")
            assert "Every Monday at 08:00 (Europe/Berlin)" in page.inner_text("#weekly")
            assert _fits(page, width)
            page.screenshot(path=str(screenshot_path(f"{tag}-issues")), full_page=True)

            page.click("button:has-text('New issue')")
            page.wait_for_url(re.compile(r".*/editor/issues/\d+$"))
            issue_id = int(page.url.rsplit("/", 1)[1])
            assert page.input_value("#subject") == TITLE  # suggested from the week's first post
            items = page.locator("#posts ol.issue-posts > li")
            assert items.count() == 2
            page.fill("#subject", SUBJECT)
            page.fill("#intro_md", "Hello from **the browser**.")
            page.wait_for_selector("#preview strong")  # the intro's live preview
            page.click("#issue-form button:has-text('Save')")
            page.wait_for_selector(".flash-success")
            assert page.inner_text("h1") == SUBJECT
            assert _fits(page, width)
            page.screenshot(path=str(screenshot_path(f"{tag}-issue-edit")), full_page=True)

            titles = lambda: [t.split("·")[1].split("\n")[0].strip() for t in items.all_inner_texts()]  # noqa: E731
            assert titles() == [TITLE, SECOND]
            page.evaluate("window.marker = 1")  # gone if the page reloads
            drag_above(page, items.nth(1), items.nth(0))
            assert titles() == [SECOND, TITLE] and page.evaluate("window.marker") == 1
            page.reload()
            assert titles() == [SECOND, TITLE]

            page.click("a:has-text('Preview')")
            page.wait_for_selector("h1:has-text('Preview')")
            mail = preview_mail_text(page)
            assert TITLE in mail and "the browser" in mail
            assert SUBJECT in page.inner_text("main")
            rows = page.locator("#combinations tbody tr")
            assert rows.count() >= 2
            for n in range(2):  # the combination most readers chose, then another, in one click
                if n:
                    rows.nth(n).locator("a").click()
                    page.wait_for_selector(f"#combinations tbody tr:nth-child({n + 1}) a[aria-current]")
                pieces = rows.nth(n).locator("td").nth(2).inner_text().split()[0]
                preheader = page.inner_text("#message-facts dd:nth-of-type(4)")
                if pieces == "none":
                    assert preheader == "Nothing new in your sections this week."
                else:
                    assert preheader.startswith(f"{pieces} piece"), (pieces, preheader)
            assert _fits(page, width)
            page.screenshot(path=str(screenshot_path(f"{tag}-preview")), full_page=True)

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
            page.screenshot(path=str(screenshot_path(f"{tag}-issue-scheduled")), full_page=True)

            started = time.monotonic()
            page.click("button:has-text('Send now')")
            page.wait_for_url(re.compile(rf".*/editor/issues/{issue_id}/sending$"))  # straight to its progress
            assert "goes out now" in page.inner_text(".flash-success")
            # 2 s on an idle machine; the bound leaves a loaded one room, far below the 30 s tick.
            page.wait_for_selector("#sending-badge:not(:has-text('scheduled'))", timeout=15_000)
            assert time.monotonic() - started < 15
            page.wait_for_selector("#sending-status-text:has-text('Sent:')", timeout=60_000)
            # Marked sent once the senders run dry, not at the clock's next tick 30 s on.
            assert time.monotonic() - started < 20, time.monotonic() - started
            assert _fits(page, width)
            page.screenshot(path=str(screenshot_path(f"{tag}-sent-progress")), full_page=True)
    finally:
        clock.shutdown()
        pool.stop()
    sent = _issue(smtp_app, issue_id)
    assert sent.status is IssueStatus.SENT
    subjects = {r.message["Subject"] for r in smtp_server.received}
    assert subjects == {SUBJECT}
    assert len(smtp_server.received) >= 3  # the demo readers whose sections carry News

    with live_server(smtp_app) as base, chromium(viewport={"width": width, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.goto(f"{base}/editor/issues/{issue_id}/sending")  # looking back: the issue's record
        record = page.inner_text("#issue-record")
        assert f"{len(smtp_server.received)}\ndelivered" in record, record
        assert _fits(page, width)
        page.screenshot(path=str(screenshot_path(f"{tag}-record")), full_page=True)
        page.goto(f"{base}/editor/issues/{issue_id}")
        assert page.inner_text(".badge") == "sent"
        assert page.locator("#issue-form").count() == 0  # read-only now
        page.click("a:has-text('Public page')")
        page.wait_for_selector(f"h1:has-text('{SUBJECT}')")
        assert TITLE in page.inner_text("main")
        page.screenshot(path=str(screenshot_path(f"{tag}-public-issue")), full_page=True)
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
        everyone = preview_mail_text(page)
        other = rows.nth(1)
        name = other.locator("a").inner_text()
        other.locator("a").click()
        page.wait_for_selector("#combinations tbody tr:nth-child(2) a[aria-current]")
        assert f"who chose {name}" in page.inner_text(".lead")
        frame = preview_mail_text(page)
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
            page.wait_for_selector("details[data-action=cancel]:not([hidden])", timeout=2_000)  # shown with Pause, in the same update
            assert time.monotonic() - started < 10
            for width in (1280, 375):
                for scheme in ("light", "dark"):
                    page.set_viewport_size({"width": width, "height": 900})
                    page.emulate_media(color_scheme=scheme)
                    page.screenshot(path=str(screenshot_path(f"editor-send-now-{width}-{scheme}")), full_page=True)
    finally:
        clock.shutdown()
        pool.stop()
