"""Watching a send in Debian's headless Chromium: the bar moves on its own, the record appears."""

from __future__ import annotations

import time

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from digest import issues
from digest.scheduler import Clock
from digest.sender import SenderPool
from tests.support.browser import chromium, live_server, screenshot_path
from tests.support.delivery import make_newsletter, per_recipient
from tests.support.editor import PASSWORD, make_editor
from tests.support.smtp import SMTPServer

pytestmark = pytest.mark.browser
READERS = 200
BAR = "document.getElementById('sending-bar').value"


def test_the_bar_follows_a_live_send_to_the_record(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """An editor opens the page of an issue about to start; while 200 messages go out at 40 a
    second the bar advances without a reload, and the page ends at "sent" with the record."""
    setup = make_newsletter(db, readers=READERS)
    make_editor(db, "admin@example.com")
    issues.send_now(db, setup.issue_id)
    db.commit()
    smtp_app.config.update(SEND_RATE=40, BATCH_SIZE=10)
    with live_server(smtp_app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))
        page.goto(base + "/editor/login")
        page.fill("#email", "admin@example.com")
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_selector("h1:has-text('Dashboard')")
        page.goto(f"{base}/editor/issues/{setup.issue_id}/sending")
        assert page.inner_text("#sending-status-text").startswith("Starting")
        loads: list[str] = []
        page.on("load", lambda: loads.append(page.url))

        pool = SenderPool(smtp_app, 2, mail_jobs=(), idle_seconds=0.2).start()
        clock = Clock(smtp_app, dispatcher=pool, interval=1).start()
        try:
            seen: list[int] = []
            deadline = time.monotonic() + 60
            while "Sent:" not in page.inner_text("#sending-status-text"):
                assert time.monotonic() < deadline, f"not sent after 60 s; bar values {seen}"
                value = page.evaluate(BAR)
                if 0 < value < READERS and value not in seen:
                    seen.append(value)
                    if len(seen) == 2:
                        assert page.get_attribute("#sending-badge", "class") == "badge badge-sending"
                        assert page.is_visible("form[data-action=pause]") and page.is_hidden("form[data-action=resume]")
                        assert "messages a second" in page.inner_text("[data-field=rate_text]")
                        page.screenshot(path=str(screenshot_path("editor-sending-mid")), full_page=True)
                time.sleep(0.2)
        finally:
            clock.shutdown()
            pool.stop()
        assert len(seen) >= 2 and seen == sorted(seen), seen  # the bar moved forward, more than once
        assert page.evaluate(BAR) == READERS
        assert page.inner_text("#sending-status-text") == f"Sent: {READERS} of {READERS} readers got it."
        page.wait_for_selector("#issue-record")
        assert "200\ndelivered" in page.inner_text("#issue-record .stats")
        assert page.inner_text("#sending-announce") == f"Sent: {READERS} of {READERS} readers got it."
        assert page.is_hidden("form[data-action=pause]") and page.is_hidden("details[data-action=cancel]")
        assert loads == []  # all of it without reloading the page
        page.screenshot(path=str(screenshot_path("editor-sending-done")), full_page=True)
        assert problems == []
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
