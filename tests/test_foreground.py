"""Web answers first: a send steps aside while this process answers requests
(digest.core.foreground), and never stops for a request that does not end."""

from __future__ import annotations

import threading
import time

from flask import Flask
from sqlalchemy.orm import Session

from digest.core import foreground
from digest.domain import issues
from digest.engine.sender import STEP_ASIDE_SECONDS, SenderPool
from tests.support.delivery import CONFIG, make_newsletter, per_recipient
from tests.support.smtp import SMTPServer
from tests.support.waiting import wait_until


def _answer_until(release: threading.Event) -> threading.Thread:
    """Start a thread that is answering a request until release is set."""
    entered = threading.Event()

    def answer() -> None:
        with foreground.answering():
            entered.set()
            release.wait(30)

    thread = threading.Thread(target=answer)
    thread.start()
    assert entered.wait(5)
    return thread


def test_stepping_aside_waits_for_the_answer_or_the_limit() -> None:
    """With nothing being answered it returns at once; else when the answer is done, or at the limit."""
    idle = threading.Thread(target=foreground.step_aside, args=(60,))
    idle.start()
    idle.join(5)
    assert not idle.is_alive(), "stepped aside with no request being answered"

    release = threading.Event()
    answering = _answer_until(release)
    returned = threading.Event()
    waiter = threading.Thread(target=lambda: (foreground.step_aside(60), returned.set()))
    waiter.start()
    assert not returned.wait(0.3), "stepped back in while a request was being answered"
    release.set()
    assert returned.wait(5), "still aside after the answer"
    waiter.join()
    answering.join()

    never = threading.Event()
    answering = _answer_until(never)
    try:
        limited = threading.Thread(target=foreground.step_aside, args=(0.1,))
        limited.start()
        limited.join(5)
        assert not limited.is_alive(), "a request that does not end held the waiter past its limit"
    finally:
        never.set()
        answering.join()


def test_a_send_slows_while_a_request_is_answered_and_never_stops(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """While the app answers a request that takes a second, two senders send at most one
    message each per STEP_ASIDE_SECONDS; then the rest goes, every reader exactly once."""
    held, release = threading.Event(), threading.Event()

    def slow_page() -> str:
        held.set()
        release.wait(30)
        return "done"

    smtp_app.add_url_rule("/slow-page", view_func=slow_page)
    setup = make_newsletter(db, readers=120)
    smtp_app.config.update(BATCH_SIZE=20)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    # Through the app itself: create_app counts each request it answers.
    page = threading.Thread(target=lambda: smtp_app.test_client().get("/slow-page"))
    page.start()
    assert held.wait(10)
    pool = SenderPool(smtp_app, 2, idle_seconds=0.2, mail_jobs=()).start()
    try:
        time.sleep(1.0)
        during = len(smtp_server.received)
        release.set()
        page.join(10)
        wait_until(lambda: len(smtp_server.received) == 120, timeout=60, what="the rest of the send")
    finally:
        release.set()
        pool.stop()
    # Two threads, one message each per step aside, a second: about 40 (a few more at the edges).
    assert 0 < during <= 2 / STEP_ASIDE_SECONDS + 6, f"{during} messages went while a request was answered"
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
