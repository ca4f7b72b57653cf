"""Watching a send in Debian's headless Chromium: the bar moves on its own, the record appears."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import EVENT_JOB_EXECUTED, JobExecutionEvent
from flask import Flask
from sqlalchemy.orm import Session

from digest import create_app
from digest.core.models import Newsletter
from digest.domain import issues
from digest.engine.scheduler import Clock
from digest.engine.sender import SenderPool, new_owner, send_batch
from digest.mail.mailer import mailer_for
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.delivery import CONFIG, make_newsletter, per_recipient, reader_email
from tests.support.editor import PASSWORD, make_editor
from tests.support.rawsmtp import RawSMTPServer
from tests.support.smtp import SMTPServer, refuse_once
from tests.support.waiting import wait_until

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
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.goto(f"{base}/editor/issues/{setup.issue_id}/sending")
        assert page.inner_text("#sending-status-text").startswith("Starting")
        loads: list[str] = []
        page.on("load", lambda: loads.append(page.url))

        pool = SenderPool(smtp_app, 2, mail_jobs=(), idle_seconds=0.2).start()
        clock = Clock(smtp_app, dispatcher=pool, interval=1).start()
        try:
            seen: list[int] = []
            announced = ""

            def sent() -> bool:
                """Note each new bar value, checking the page mid-send; return whether it says Sent."""
                nonlocal announced
                if "Sent:" in page.inner_text("#sending-status-text"):
                    return True
                value = page.evaluate(BAR)
                if 0 < value < READERS and value not in seen:
                    seen.append(value)
                    if len(seen) == 1:
                        announced = page.inner_text("#sending-announce")
                        assert announced.startswith("Sending:")
                    if len(seen) == 2:
                        # Status changes are announced, counts are not: still the first sentence.
                        assert page.inner_text("#sending-announce") == announced
                        assert page.inner_text("#sending-status-text") != announced
                        assert page.get_attribute("#sending-badge", "class") == "badge badge-sending"
                        assert page.is_visible("form[data-action=pause]") and page.is_hidden("form[data-action=resume]")
                        assert "messages a second" in page.inner_text("[data-field=rate_text]")
                        assert page.is_visible("#sending-live-note")
                        page.screenshot(path=str(screenshot_path("editor-sending-mid")), full_page=True)
                return False

            wait_until(sent, timeout=60, what=lambda: f"the page to say Sent; bar values {seen}", every=0.2)
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


def test_a_paused_send_on_a_phone_without_javascript(app_overrides: dict[str, Any], db: Session) -> None:
    """With JavaScript off, on a phone: the page explains the SMTP login failure, shows the numbers
    and a refresh link, and the issue can be cancelled through its confirmation."""
    server = SMTPServer(auth=("digest", "right")).start()
    app = create_app({**app_overrides, "SMTP_URL": f"smtp://digest:wrong@127.0.0.1:{server.port}"})
    try:
        setup = make_newsletter(db, readers=5)
        make_editor(db, "admin@example.com")
        issues.send_now(db, setup.issue_id)
        issues.start_issue(db, setup.issue_id, CONFIG)
        db.commit()
        with mailer_for(app.config) as mailer:
            assert send_batch(app, mailer, setup.issue_id, owner=new_owner("test")).paused
        with live_server(app) as base, chromium(viewport={"width": 390, "height": 844}, is_mobile=True,
                                                java_script_enabled=False) as context:
            page = context.new_page()  # type: ignore[attr-defined]
            log_in_editor(page, base, "admin@example.com", PASSWORD)
            page.goto(f"{base}/editor/issues/{setup.issue_id}/sending")
            assert "The mail server refused our login" in page.inner_text("#sending-paused")
            assert "535" in page.inner_text("#sending-paused q")
            assert page.inner_text("#sending-status-text").startswith("Paused: 0 of 5 deliveries done")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390
            assert page.is_visible("text=Refresh the figures") and page.is_visible("text=Resume sending")
            assert page.is_hidden("#sending-live-note")  # no JavaScript: the page does not update itself
            assert page.is_hidden("text=Pause sending")
            page.screenshot(path=str(screenshot_path("editor-sending-paused-phone")), full_page=True)
            page.click("summary:has-text('Cancel this issue')")
            page.click("button:has-text('Yes, cancel the issue')")
            page.wait_for_selector(".flash-success")
            assert "Cancelled" in page.inner_text(".flash-success")
            assert page.inner_text("#sending-badge") == "cancelled"
            assert "<strong>5</strong>" in page.inner_html("#issue-record")  # not sent (cancelled)
            page.screenshot(path=str(screenshot_path("editor-sending-cancelled-phone")), full_page=True)
        assert server.received == []
    finally:
        get_db_of(app).dispose()
        server.stop()


def test_the_page_notices_when_the_sender_pauses_and_resumes_on_request(smtp_app: Flask, smtp_server: SMTPServer,
                                                                         db: Session) -> None:
    """A policy refusal mid-send pauses the issue: without a reload the page says why and offers
    Resume instead of Pause; resumed from the page, the issue goes out to everyone once."""
    setup = make_newsletter(db, readers=60)
    make_editor(db, "admin@example.com")
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    smtp_server.script = refuse_once("data", reader_email(30), "554 5.7.1 message refused by policy")
    smtp_app.config.update(SEND_RATE=20, BATCH_SIZE=10)
    with live_server(smtp_app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.goto(f"{base}/editor/issues/{setup.issue_id}/sending")
        loads: list[str] = []
        page.on("load", lambda: loads.append(page.url))
        pool = SenderPool(smtp_app, 1, mail_jobs=(), idle_seconds=0.2).start()
        clock = Clock(smtp_app, dispatcher=pool, interval=1)
        ticks: list[JobExecutionEvent] = []
        clock.scheduler.add_listener(ticks.append, EVENT_JOB_EXECUTED)
        clock.start()
        try:
            page.wait_for_selector("#sending-paused:not([hidden])", timeout=30_000)
            assert "refused the issue for policy reasons" in page.inner_text("#sending-paused")
            assert "5.7.1" in page.inner_text("#sending-paused q")
            assert page.is_visible("form[data-action=resume]") and page.is_hidden("form[data-action=pause]")
            assert page.inner_text("#sending-announce").startswith("Paused:")
            assert page.inner_text("#record-heading") == "So far"  # fetched when the status changed
            assert loads == []
            paused_at = page.evaluate(BAR)
            assert 0 < paused_at < 60
            page.screenshot(path=str(screenshot_path("editor-sending-paused-policy")), full_page=True)
            # Nothing more goes out in the next two ticks (meanwhile the page polls every second).
            later = len(ticks) + 2
            wait_until(lambda: len(ticks) >= later, timeout=30, what="two clock ticks while paused")
            assert page.evaluate(BAR) == paused_at and len(smtp_server.received) == paused_at

            page.click("button:has-text('Resume sending')")
            page.wait_for_selector(".flash-success")
            page.wait_for_selector("#sending-status-text:has-text('Sent: 60 of 60 readers got it.')", timeout=30_000)
        finally:
            clock.shutdown()
            pool.stop()
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}


def test_an_obstacle_shows_live_then_the_page_ends_at_sent_with_n_unclear(
    app_overrides: dict[str, Any], db: Session
) -> None:
    """An SMTP server that hangs at MAIL: the open sending page shows what holds the send
    up without a reload, and hides it once the server answers; the server then hangs up
    after each message's end, so the page ends at "sent — 3 unclear" with the resend
    action. Screenshots at desktop and phone widths, light and dark."""
    server = RawSMTPServer(hang_at=b"MAIL")
    app = create_app({**app_overrides, "SMTP_URL": server.url, "SMTP_ENVELOPE_TIMEOUT": 1,
                      "HEARTBEAT_SECONDS": 1})
    setup = make_newsletter(db, readers=3)
    zone = ZoneInfo(db.get_one(Newsletter, setup.newsletter_id).time_zone)
    make_editor(db, "admin@example.com")
    issues.send_now(db, setup.issue_id)
    db.commit()  # on SQLite the test's open transaction would hold the write lock
    url = ""
    try:
        with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
            page = context.new_page()  # type: ignore[attr-defined]
            log_in_editor(page, base, "admin@example.com", PASSWORD)
            url = f"{base}/editor/issues/{setup.issue_id}/sending"
            page.goto(url)
            pool = SenderPool(app, 1, mail_jobs=(), idle_seconds=0.2).start()
            clock = Clock(app, dispatcher=pool, interval=1).start()
            try:
                page.wait_for_selector("#sending-obstacle:visible", timeout=30_000)
                text = page.inner_text("#sending-obstacle")
                assert f"SMTP server 127.0.0.1:{server.port} not answering: no reply at MAIL/RCPT within 1 s — since" in text
                since = f"{dt.datetime.now(zone):%Z}, retrying"  # in the newsletter's time zone
                assert since in text and "Nothing is lost" in text, (since, text)
                page.screenshot(path=str(screenshot_path("editor-sending-obstacle")), full_page=True)
                server.hang_up_after_data, server.hang_at = True, None
                page.wait_for_selector("#sending-badge:has-text('sent — 3 unclear')", timeout=60_000)
                assert page.is_hidden("#sending-obstacle")
                assert page.inner_text("#sending-status-text").startswith("Sent — 3 unclear")
                assert page.is_visible("form[data-action=resend_unknown]")
            finally:
                clock.shutdown()
                pool.stop()
            shots = [("desktop", 1280, "light"), ("phone", 375, "light"), ("desktop", 1280, "dark"),
                     ("phone", 375, "dark")]
            for name, width, scheme in shots:
                view = context.browser.new_context(  # type: ignore[attr-defined]
                    viewport={"width": width, "height": 900}, color_scheme=scheme)
                other = view.new_page()
                log_in_editor(other, base, "admin@example.com", PASSWORD)
                other.goto(url)
                other.screenshot(path=str(screenshot_path(f"editor-sending-unclear-{name}-{scheme}")), full_page=True)
                view.close()
    finally:
        server.close()
        get_db_of(app).dispose()
