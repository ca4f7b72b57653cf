"""send_batch against the real SMTP server: outcomes, retries, suppression, pauses, skips."""

from __future__ import annotations

import datetime as dt
import gc
import re
import shutil
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from digest.core.db import Database, utcnow
from digest.core.models import (
    Delivery,
    Issue,
    IssuePost,
    IssueStatus,
    Post,
    PostStatus,
    SendRate,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from digest.domain import deliveries, issues, posts
from digest.domain.suppression import email_hash, suppress
from digest.engine.scheduler import maintain
from digest.engine.sender import (
    MAX_RETRY_DELAY,
    SenderPool,
    new_owner,
    prepared_issues,
    retry_delay,
    run_mail_jobs,
    send_batch,
)
from digest.engine.sendrate import SendRateLimiter
from digest.mail import outbox
from digest.mail.mailer import Mailer, mailer_for
from digest.mail.render import PreparedIssue
from tests.support.apps import get_db_of
from tests.support.delivery import (
    CONFIG,
    Setup,
    add_readers,
    make_newsletter,
    per_recipient,
    reader_email,
    states,
)
from tests.support.rawsmtp import RawSMTPServer
from tests.support.smtp import SMTPServer, refuse_once
from tests.support.tcpcut import CuttableLink
from tests.support.waiting import wait_until


def _start(db: Session, issue_id: int) -> None:
    issues.send_now(db, issue_id)
    issues.start_issue(db, issue_id, CONFIG)
    db.commit()


def _drain(app: Flask, issue_id: int, db: Session, rounds: int = 50) -> None:
    """Send batches until nothing is left to claim (retries due are requeued between)."""
    db.commit()  # on SQLite the test session's open transaction would hold the write lock
    owner = new_owner("test")
    with mailer_for(app.config) as m:
        for _ in range(rounds):
            maintain(app)
            if not send_batch(app, m, issue_id, owner=owner).claimed:
                break
    maintain(app)


def test_every_reader_gets_their_own_message_once(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """Each confirmed reader gets one message, with their sections; the 250 reply and queue id are kept."""
    setup = make_newsletter(db, readers=7)
    tools_only = db.scalars(select(Subscription.id).order_by(Subscription.id)).first()
    db.add(SubscriptionSection(subscription_id=tools_only, section_id=setup.section_ids[1]))
    db.commit()
    smtp_app.config["BATCH_SIZE"] = 3
    _start(db, setup.issue_id)
    _drain(smtp_app, setup.issue_id, db)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
    assert states(db, setup.issue_id) == {"sent": 7}
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENT
    first = smtp_server.to(reader_email(0))[0]
    body = first.message.get_body(("plain",))
    assert body is not None
    text = body.get_content()
    assert "A tool" in text and "First news" not in text
    row = db.scalars(select(Delivery).where(Delivery.id == int(first.raw_header("X-Digest-Delivery")[0]))).one()
    assert row.smtp_code == 250 and row.queue_id and row.queue_id.startswith("Q")
    assert row.attempts == 1 and row.sent_at is not None and row.lease_owner is None


def _add_post(db: Session, setup: Setup, section_id: int, title: str) -> None:
    """Publish a post in section_id and put it last in the setup's issue."""
    post = Post(newsletter_id=setup.newsletter_id, section_id=section_id, slug=title.lower().replace(" ", "-"),
                title=title, summary="More.", status=PostStatus.PUBLISHED, published_at=utcnow())
    db.add(post)
    db.flush()
    db.add(IssuePost(issue_id=setup.issue_id, post_id=post.id, position=9))
    db.commit()


def _html_text(html: str) -> str:
    """Return the words a reader sees in an HTML part: the body, no styles, no filler characters."""
    html = re.sub(r"(?s)<head.*?</head>|<style.*?</style>|<!--.*?-->", " ", html)
    return " ".join(re.sub(r"<[^>]+>", " ", unescape(html).replace("\u034f", "").replace("\u200c", "")).split())


@pytest.mark.parametrize(
    ("preheader", "tools_reader", "every_reader"),
    [
        ("", "1 piece this week: A tool", "3 pieces this week: First news · Second news · A tool"),
        (
            "Just for you: {count} from {sections} ({headlines})",
            "Just for you: 1 piece from Tools (A tool)",
            "Just for you: 3 pieces from News, Tools (First news · Second news · A tool)",
        ),
    ],
    ids=["default", "placeholders"],
)
def test_preheader_and_contents_line_count_only_the_readers_own_pieces(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session, preheader: str, tools_reader: str, every_reader: str
) -> None:
    """A reader of one section is told of their one piece, in the inbox line and at the top."""
    setup = make_newsletter(db, readers=2)
    news, tools = setup.section_ids
    first_sub = db.scalars(select(Subscription.id).order_by(Subscription.id)).first()
    db.add(SubscriptionSection(subscription_id=first_sub, section_id=tools))
    issue = issues.get_issue(db, setup.issue_id)
    issue.preheader = preheader
    db.commit()
    _add_post(db, setup, news, "Second news")
    _start(db, setup.issue_id)
    _drain(smtp_app, setup.issue_id, db)
    for n, expected, contents in (
        (0, tools_reader, ["A tool"]),
        (1, every_reader, ["First news", "Second news", "A tool"]),
    ):
        message = smtp_server.to(reader_email(n))[0].message
        text_part, html_part = message.get_body(("plain",)), message.get_body(("html",))
        assert text_part is not None and html_part is not None
        text, html = text_part.get_content().replace("\r\n", "\n"), _html_text(html_part.get_content())
        assert " ".join(text.split("\n\n", 1)[0].split()) == expected  # the first paragraph, wrapped
        assert html.startswith(expected + " View in browser")
        count = "1 piece" if n == 0 else "3 pieces"
        assert f"In this issue, {count}: {' · '.join(contents)}" in html
        assert f"In this issue, {count}:\n" + "\n".join(f"* {t}" for t in contents) in text


def test_451_is_retried_later_and_delivered(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """A 451 makes the delivery failed_temp with a retry time; when due it goes out, once."""
    setup = make_newsletter(db, readers=3)
    smtp_server.script = refuse_once("rcpt", reader_email(1), "451 4.3.0 mailbox temporarily unavailable")
    smtp_app.config["RETRY_SECONDS"] = 1
    _start(db, setup.issue_id)
    owner = new_owner("test")
    with mailer_for(smtp_app.config) as mailer:
        send_batch(smtp_app, mailer, setup.issue_id, owner=owner)
    assert states(db, setup.issue_id) == {"sent": 2, "failed_temp": 1}
    row = db.scalars(select(Delivery).where(Delivery.state == "failed_temp")).one()
    assert row.smtp_code == 451 and row.next_attempt_at is not None
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENDING
    due = row.next_attempt_at
    assert due is not None
    wait_until(lambda: utcnow() >= due, timeout=5, what="the retry to fall due")
    _drain(smtp_app, setup.issue_id, db)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
    assert states(db, setup.issue_id) == {"sent": 3}


def test_421_slows_the_shared_rate_and_the_reader_gets_it_later(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """A server saying 421 (too many messages) halves the rate every sender shares; the refused
    reader is retried later and gets the issue once."""
    setup = make_newsletter(db, readers=4)
    smtp_server.script = refuse_once("rcpt", reader_email(1), "421 4.7.0 too many messages, slow down")
    smtp_app.config["RETRY_SECONDS"] = 0.2
    _start(db, setup.issue_id)
    rate = SendRateLimiter(get_db_of(smtp_app), 1000)
    with mailer_for(smtp_app.config) as mailer:
        outcome = send_batch(smtp_app, mailer, setup.issue_id, owner=new_owner("test"), rate=rate)
    assert outcome.throttled
    factor = db.scalar(select(SendRate.factor).where(SendRate.name == "smtp"))
    assert factor is not None and factor < 0.6  # halved, recovering
    db.rollback()
    assert states(db, setup.issue_id) == {"sent": 3, "failed_temp": 1}
    retry_at = db.scalar(select(Delivery.next_attempt_at).where(Delivery.state == "failed_temp"))
    assert retry_at is not None
    wait_until(lambda: utcnow() >= retry_at, timeout=5, what="the retry to fall due")
    _drain(smtp_app, setup.issue_id, db)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}


def test_retry_delays_grow_exponentially_with_jitter_and_a_cap() -> None:
    """Each retry waits about twice as long as the one before, never in lockstep, never for days."""
    first = [retry_delay(1, 60) for _ in range(200)]
    third = [retry_delay(3, 60) for _ in range(200)]
    assert 30 <= min(first) and max(first) <= 90 and len({round(d, 3) for d in first}) > 150
    assert 120 <= min(third) and max(third) <= 360
    assert max(retry_delay(40, 60) for _ in range(50)) <= MAX_RETRY_DELAY * 1.5


def test_attempts_run_out(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """A reader whose server keeps saying 4xx ends failed (no retry due) and the issue finishes."""
    setup = make_newsletter(db, readers=2)
    smtp_server.script = lambda stage, a: "452 4.2.2 over quota" if stage == "rcpt" and a == reader_email(0) else None
    smtp_app.config.update(RETRY_SECONDS=0, MAX_ATTEMPTS=3)
    _start(db, setup.issue_id)
    _drain(smtp_app, setup.issue_id, db)
    row = db.scalars(select(Delivery).where(Delivery.state == "failed_temp")).one()
    assert row.attempts == 3 and row.next_attempt_at is None
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENT


def test_550_511_fails_permanently_and_suppresses(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """User unknown: failed_perm, the address is suppressed, and the next issue leaves it out."""
    setup = make_newsletter(db, readers=3)
    smtp_server.script = lambda stage, a: "550 5.1.1 no such user" if stage == "rcpt" and a == reader_email(2) else None
    _start(db, setup.issue_id)
    _drain(smtp_app, setup.issue_id, db)
    assert states(db, setup.issue_id) == {"sent": 2, "failed_perm": 1}
    suppression = db.scalars(select(Suppression)).one()
    assert suppression.email_hash == email_hash(CONFIG, reader_email(2))
    assert suppression.reason.value == "hard_bounce" and "5.1.1" in suppression.detail
    next_issue = make_newsletter(db, readers=0, slug="other")
    assert deliveries.fan_out(db, setup.issue_id, CONFIG) == 0
    assert next_issue is not None


def test_auth_failure_pauses_and_marks_nobody_failed(app_overrides: dict[str, Any], db: Session) -> None:
    """A wrong SMTP password pauses the issue with the server's reason; fixed and resumed, all arrive."""
    from digest import create_app

    server = SMTPServer(auth=("digest", "right")).start()
    try:
        wrong = create_app({**app_overrides, "SMTP_URL": f"smtp://digest:wrong@127.0.0.1:{server.port}"})
        setup = make_newsletter(db, readers=4)
        _start(db, setup.issue_id)
        with mailer_for(wrong.config) as mailer:
            outcome = send_batch(wrong, mailer, setup.issue_id, owner="w")
        issue = issues.get_issue(db, setup.issue_id)
        assert issue.status == IssueStatus.PAUSED and outcome.paused
        assert "535" in (issue.pause_reason or "") and "login" in (issue.pause_reason or "")
        assert states(db, setup.issue_id) == {"pending": 4}
        assert server.received == []
        issues.resume_issue(db, setup.issue_id)
        db.commit()
        right = create_app({**app_overrides, "SMTP_URL": server.url})
        _drain(right, setup.issue_id, db)
        assert per_recipient(server) == {e: 1 for e in setup.emails}
        get_db_of(wrong).dispose()
        get_db_of(right).dispose()
    finally:
        server.stop()


def test_policy_refusal_pauses_without_blaming_the_reader(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """554 5.7.1 at the end of DATA pauses the issue; that delivery returns to pending, not failed."""
    setup = make_newsletter(db, readers=4)
    smtp_server.script = lambda stage, a: "554 5.7.1 message refused by policy" if stage == "data" and a == reader_email(2) else None
    smtp_app.config["BATCH_SIZE"] = 10
    _start(db, setup.issue_id)
    _drain(smtp_app, setup.issue_id, db)
    issue = issues.get_issue(db, setup.issue_id)
    assert issue.status == IssueStatus.PAUSED and "5.7.1" in (issue.pause_reason or "")
    assert states(db, setup.issue_id) == {"sent": 2, "pending": 2}
    row = db.scalars(select(Delivery).where(Delivery.subscriber_id == 3)).one()
    assert row.state.value == "pending" and row.attempts == 0
    assert db.scalars(select(Suppression)).all() == []


def test_reader_who_leaves_after_fan_out_is_skipped(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """Unsubscribed or suppressed after the fan-out but before their turn: skipped, not mailed."""
    setup = make_newsletter(db, readers=4)
    _start(db, setup.issue_id)
    db.execute(update(Subscription).where(Subscription.subscriber_id == 2).values(status=SubscriptionStatus.UNSUBSCRIBED))
    suppress(db, CONFIG, reader_email(3), SuppressionReason.COMPLAINT)
    db.commit()
    _drain(smtp_app, setup.issue_id, db)
    assert set(per_recipient(smtp_server)) == {reader_email(0), reader_email(2)}
    assert states(db, setup.issue_id) == {"sent": 2, "skipped": 2}
    reasons = set(db.scalars(select(Delivery.smtp_response).where(Delivery.state == "skipped")))
    assert reasons == {deliveries.Blocked.UNSUBSCRIBED, deliveries.Blocked.SUPPRESSED}


def test_pause_takes_effect_before_the_next_message(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """An editor pausing mid-batch stops the sender after the message in flight; resume sends the rest."""
    setup = make_newsletter(db, readers=6)
    smtp_app.config["BATCH_SIZE"] = 6
    database: Database = get_db_of(smtp_app)

    def script(stage: str, address: str) -> None:
        if stage == "data" and address == reader_email(2):
            with database.session() as session:
                issues.pause_issue(session, setup.issue_id, None)

    smtp_server.script = script
    _start(db, setup.issue_id)
    _drain(smtp_app, setup.issue_id, db)
    assert states(db, setup.issue_id) == {"sent": 3, "pending": 3}
    smtp_server.script = None
    issues.resume_issue(db, setup.issue_id)
    db.commit()
    _drain(smtp_app, setup.issue_id, db)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}


@pytest.fixture
def hang_up() -> Iterator[RawSMTPServer]:
    """A server that takes messages and vanishes before answering the final dot."""
    server = RawSMTPServer(hang_up_after_data=True)
    yield server
    server.close()


def test_lost_reply_after_the_message_is_unknown_and_held(app_overrides: dict[str, Any], db: Session, hang_up: RawSMTPServer) -> None:
    """The connection dies after the final dot: the delivery is unknown, listed, and never retried on its own."""
    from digest import create_app

    app = create_app({**app_overrides, "SMTP_URL": hang_up.url, "BATCH_SIZE": 1})
    setup = make_newsletter(db, readers=2)
    _start(db, setup.issue_id)
    _drain(app, setup.issue_id, db)
    assert states(db, setup.issue_id) == {"unknown": 2}
    assert hang_up.pipelined_envelopes == 2  # both messages went all the way out
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENT
    unclear = deliveries.unclear_deliveries(db, setup.issue_id)
    assert [u.email for u in unclear] == [reader_email(0), reader_email(1)]
    assert "after the message was handed over" in (unclear[0].response or "")
    get_db_of(app).dispose()


def test_a_message_cut_off_before_its_end_is_sent_again_not_unclear(
    app_overrides: dict[str, Any], db: Session
) -> None:
    """The server hangs up in the middle of DATA (the final dot never went out): that
    message cannot have been accepted, so it is retried by itself and arrives once; no
    delivery is unclear."""
    from digest import create_app

    server = RawSMTPServer(hang_up_in_data=frozenset({reader_email(1)}))
    app = create_app({**app_overrides, "SMTP_URL": server.url, "RETRY_SECONDS": 1})
    try:
        setup = make_newsletter(db, readers=3)
        _start(db, setup.issue_id)
        _drain(app, setup.issue_id, db)
        assert states(db, setup.issue_id) == {"sent": 2, "failed_temp": 1}
        time.sleep(1.6)  # the retry comes due (1 s, with jitter up to 1.5 s)
        _drain(app, setup.issue_id, db)
    finally:
        server.close()
        get_db_of(app).dispose()
    assert states(db, setup.issue_id) == {"sent": 3}
    recipients = [m.split(b"\r\nTo: ", 1)[1].split(b"\r\n", 1)[0] for m in server.messages]
    assert sorted(recipients).count(b"Reader 1 <" + reader_email(1).encode() + b">") == 1, recipients
    retried = db.scalars(
        select(Delivery).join(Subscriber).where(Subscriber.email == reader_email(1))
    ).one()
    assert retried.attempts == 2 and issues.get_issue(db, setup.issue_id).status == IssueStatus.SENT


def test_send_rate_is_one_bucket_for_all_senders(app: Flask) -> None:
    """Two handles on the shared bucket together get the configured rate; a 421 halves it."""
    database: Database = get_db_of(app)
    a, b = SendRateLimiter(database, 10), SendRateLimiter(database, 10)
    t0 = time.monotonic()

    def start(handle: SendRateLimiter) -> float:
        """Return when the reserved message may start, in seconds after t0 (load-proof)."""
        wait = handle.acquire()
        return time.monotonic() - t0 + wait

    starts = [start(a if n % 2 else b) for n in range(30)]
    assert starts[8] < 0.5  # the burst goes at once
    # Tokens are reserved: the 30th message may start about two seconds after the first.
    assert 1.7 < starts[-1] < max(2.5, time.monotonic() - t0 + 0.1)
    assert a.slow_down() and not b.slow_down()  # one slowdown per few seconds, shared
    slower = [start(a) for _ in range(5)]
    assert slower[-1] - starts[-1] > 2 * 0.1 * 4


def test_rate_limited_pool_sends_at_the_rate(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """With DIGEST_SEND_RATE=20, 30 messages through two sender threads take about a second or more."""
    setup = make_newsletter(db, readers=30)
    smtp_app.config.update(SEND_RATE=20, BATCH_SIZE=5)
    _start(db, setup.issue_id)
    started = time.monotonic()
    pool = SenderPool(smtp_app, 2, idle_seconds=0.2).start()
    try:
        wait_until(lambda: len(smtp_server.received) == 30, timeout=30)
    finally:
        pool.stop()
    assert time.monotonic() - started > 0.45  # 20 at once (burst), then 10 at 20/s
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}


def test_heartbeat_keeps_a_slow_batch_from_being_reaped(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """A batch that takes longer than the lease (rate-limited) renews it: the reaper running
    all along takes nothing back and nothing becomes unknown."""
    setup = make_newsletter(db, readers=12)
    # About 6 s for the batch, twice the lease; renewed each second, with 2 s to spare for a
    # loaded machine (a 1 s lease lapsed under CI load before the first renewal).
    smtp_app.config.update(LEASE_SECONDS=3, SEND_RATE=2, BATCH_SIZE=12)
    _start(db, setup.issue_id)
    reaped = []
    pool = SenderPool(smtp_app, 1, mail_jobs=()).start()
    try:
        def done() -> bool:
            reaped.append(maintain(smtp_app)[0])
            return len(smtp_server.received) == 12

        wait_until(done, timeout=30, every=0.2)
    finally:
        pool.stop()
    assert sum(r.returned + r.unclear for r in reaped) == 0
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}


def test_periodic_mail_jobs_run_and_a_broken_one_does_not_stop_them(smtp_app: Flask) -> None:
    """The sender side runs its mail jobs every few seconds; one raising does not stop the others."""
    calls: list[str] = []

    def confirmations(app: Flask, mailer: Mailer) -> int:
        calls.append("ok")
        return 2

    def broken(app: Flask, mailer: Mailer) -> int:
        calls.append("broken")
        raise RuntimeError("template missing")

    with mailer_for(smtp_app.config) as mailer:
        assert run_mail_jobs(smtp_app, mailer, [broken, confirmations]) == 2
    pool = SenderPool(smtp_app, 1, mail_jobs=[broken, confirmations]).start()
    try:
        wait_until(lambda: calls.count("ok") >= 2, timeout=15)
    finally:
        pool.stop()
    assert calls[:2] == ["broken", "ok"]


def test_sender_pool_sends_due_confirmations(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """A signup's confirmation email, recorded by the request, goes out from the sender threads."""
    from digest.core.models import Newsletter
    from digest.domain.subscribers.signup import Signup, subscribe

    setup = make_newsletter(db, readers=0)
    newsletter = db.get(Newsletter, setup.newsletter_id)
    subscribe(db, smtp_app.config, newsletter, Signup("new.reader@example.org", consent=True))  # type: ignore[arg-type]
    db.commit()
    pool = SenderPool(smtp_app, 1).start()
    try:
        wait_until(lambda: smtp_server.received, timeout=20, what="the confirmation email")
    finally:
        pool.stop()
    [message] = smtp_server.received
    assert message.rcpt_tos == ("new.reader@example.org",)
    body = message.message.get_body(("plain",))
    assert body is not None and "/confirm/" in body.get_content()


def test_outbox_mode_sends_without_smtp(app: Flask, db: Session) -> None:
    """With no SMTP configured every reader's message lands in the outbox folder."""
    from pathlib import Path

    setup = make_newsletter(db, readers=3)
    _start(db, setup.issue_id)
    _drain(app, setup.issue_id, db)
    assert len(list(Path(app.config["OUTBOX_PATH"]).glob("*.eml"))) == 3
    assert states(db, setup.issue_id) == {"sent": 3}


def test_stale_connection_is_replaced_before_sending(app_overrides: dict[str, Any], db: Session) -> None:
    """A server that dropped our reused connection between two messages costs nothing: the
    next message reconnects instead of failing."""
    from digest import create_app

    server = SMTPServer().start()
    app = create_app({**app_overrides, "SMTP_URL": server.url, "BATCH_SIZE": 1})
    setup = make_newsletter(db, readers=2)
    _start(db, setup.issue_id)
    owner = new_owner("test")
    try:
        with mailer_for(app.config) as mailer:
            send_batch(app, mailer, setup.issue_id, owner=owner)
            server.stop()
            server = SMTPServer(port=server.port).start()  # same address, old connection gone
            send_batch(app, mailer, setup.issue_id, owner=owner)
    finally:
        server.stop()
        get_db_of(app).dispose()
    assert states(db, setup.issue_id) == {"sent": 2}
    assert [m.rcpt_tos for m in server.received] == [(reader_email(1),)]


# --- how a batch ends early: each way leaves the ledger as the module docstring says ---


def test_a_stop_gives_the_rest_of_the_batch_back(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """A stop requested while a message is on the wire: that message is recorded sent, the
    rest of the batch goes back to pending at once."""
    setup = make_newsletter(db, readers=4)
    smtp_app.config["BATCH_SIZE"] = 4
    stop = threading.Event()
    smtp_server.script = lambda stage, a: stop.set() if stage == "data" and a == reader_email(1) else None
    _start(db, setup.issue_id)
    with mailer_for(smtp_app.config) as mailer:
        outcome = send_batch(smtp_app, mailer, setup.issue_id, owner=new_owner("test"), stop=stop)
    assert outcome.stopped and (outcome.sent, outcome.released) == (2, 2)
    assert states(db, setup.issue_id) == {"sent": 2, "pending": 2}
    assert set(per_recipient(smtp_server)) == {reader_email(0), reader_email(1)}


class _StopWhileWaiting:
    """A send rate that makes the second message wait a minute, and asks for a stop then."""

    def __init__(self, stop: threading.Event) -> None:
        self.stop = stop
        self.calls = 0

    def acquire(self) -> float:
        self.calls += 1
        if self.calls < 2:
            return 0.0
        self.stop.set()
        return 60.0

    def slow_down(self) -> bool:
        return False


def test_a_stop_while_waiting_for_the_send_rate_ends_the_batch(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """A sender waiting for its turn at the send rate stops at once when asked; the message
    before it is recorded sent, the rest go back to pending."""
    setup = make_newsletter(db, readers=3)
    _start(db, setup.issue_id)
    stop = threading.Event()
    started = time.monotonic()
    with mailer_for(smtp_app.config) as mailer:
        outcome = send_batch(
            smtp_app, mailer, setup.issue_id, owner=new_owner("test"), rate=_StopWhileWaiting(stop), stop=stop
        )
    assert time.monotonic() - started < 30
    assert outcome.stopped and (outcome.sent, outcome.released) == (1, 2)
    assert states(db, setup.issue_id) == {"sent": 1, "pending": 2}


def test_an_unreachable_server_marks_nobody(app_overrides: dict[str, Any], db: Session) -> None:
    """With the SMTP server out of reach the batch goes back to pending untouched (no attempt
    counted, the issue still sending) and the outcome says why, so the sender backs off."""
    from digest import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_app({**app_overrides, "SMTP_URL": f"smtp://127.0.0.1:{port}"})
    setup = make_newsletter(db, readers=2)
    _start(db, setup.issue_id)
    with mailer_for(app.config) as mailer:
        outcome = send_batch(app, mailer, setup.issue_id, owner=new_owner("test"))
    get_db_of(app).dispose()
    assert outcome.smtp_unavailable and "cannot reach" in outcome.smtp_unavailable
    assert outcome.released == 2 and not outcome.paused and not outcome.stopped
    assert states(db, setup.issue_id) == {"pending": 2}
    assert set(db.scalars(select(Delivery.attempts))) == {0}
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENDING


def test_a_message_that_cannot_be_built_pauses_the_issue(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """A template or signing fault pauses the issue with the reason for the editor; nobody is
    mailed and no reader is blamed."""
    setup = make_newsletter(db, readers=2)
    _start(db, setup.issue_id)

    def broken_signer(data: bytes) -> bytes:
        raise ValueError("the key is unreadable")

    with mailer_for(smtp_app.config) as working:
        mailer = Mailer(working.transport, broken_signer)
        outcome = send_batch(smtp_app, mailer, setup.issue_id, owner=new_owner("test"))
    assert outcome.paused and "could not be built: the key is unreadable" in outcome.paused
    db.expire_all()
    issue = issues.get_issue(db, setup.issue_id)
    assert issue.status == IssueStatus.PAUSED and issue.pause_reason == outcome.paused
    assert outcome.released == 2 and states(db, setup.issue_id) == {"pending": 2}
    assert smtp_server.received == []


def test_a_reader_erased_after_the_fan_out_is_skipped(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """A reader who erased themselves after the fan-out is skipped (the row stays, without them)."""
    setup = make_newsletter(db, readers=3)
    _start(db, setup.issue_id)
    db.execute(delete(Subscriber).where(Subscriber.email == reader_email(1)))
    db.commit()
    _drain(smtp_app, setup.issue_id, db)
    assert set(per_recipient(smtp_server)) == {reader_email(0), reader_email(2)}
    assert states(db, setup.issue_id) == {"sent": 2, "skipped": 1}
    assert db.scalars(select(Delivery.smtp_response).where(Delivery.state == "skipped")).all() == [
        deliveries.Blocked.ERASED
    ]


def test_a_row_another_sender_took_over_is_left_to_it(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """Should a claimed row pass to another sender meanwhile (its lease expired), this sender
    neither mails that reader nor touches the row, and goes on with the next."""
    setup = make_newsletter(db, readers=3)
    database: Database = get_db_of(smtp_app)

    def script(stage: str, address: str) -> None:
        if stage == "data" and address == reader_email(0):
            with database.session() as session:
                session.execute(update(Delivery).where(Delivery.subscriber_id == 2).values(lease_owner="other"))

    smtp_server.script = script
    _start(db, setup.issue_id)
    with mailer_for(smtp_app.config) as mailer:
        outcome = send_batch(smtp_app, mailer, setup.issue_id, owner=new_owner("test"))
    assert (outcome.sent, outcome.skipped, outcome.released) == (2, 0, 0)
    assert set(per_recipient(smtp_server)) == {reader_email(0), reader_email(2)}
    row = db.scalars(select(Delivery).where(Delivery.subscriber_id == 2)).one()
    assert (row.state.value, row.lease_owner, row.attempts) == ("claimed", "other", 0)


def test_lost_reply_is_retried_under_resend(app_overrides: dict[str, Any], db: Session, hang_up: RawSMTPServer) -> None:
    """With DIGEST_AMBIGUOUS=resend a message whose reply was lost is failed_temp with a retry
    due, not unknown."""
    from digest import create_app

    app = create_app({**app_overrides, "SMTP_URL": hang_up.url, "AMBIGUOUS": "resend"})
    setup = make_newsletter(db, readers=1)
    _start(db, setup.issue_id)
    with mailer_for(app.config) as mailer:
        outcome = send_batch(app, mailer, setup.issue_id, owner=new_owner("test"))
    get_db_of(app).dispose()
    assert (outcome.failed_temp, outcome.unknown) == (1, 0)
    row = db.scalars(select(Delivery)).one()
    assert row.state.value == "failed_temp" and row.next_attempt_at is not None and row.smtp_code is None


def test_421_without_a_send_rate_waits_a_moment(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no shared send rate to lower, a 421 makes the sender wait a moment before the next
    message; the refused reader is retried later."""
    from digest.engine import sender

    monkeypatch.setattr(sender, "THROTTLE_PAUSE_SECONDS", 0.3)
    setup = make_newsletter(db, readers=2)
    smtp_server.script = refuse_once("rcpt", reader_email(0), "421 4.7.0 too many messages, slow down")
    _start(db, setup.issue_id)
    started = time.monotonic()
    with mailer_for(smtp_app.config) as mailer:
        outcome = send_batch(smtp_app, mailer, setup.issue_id, owner=new_owner("test"))
    assert time.monotonic() - started >= 0.3
    assert outcome.throttled and (outcome.failed_temp, outcome.sent) == (1, 1)
    assert states(db, setup.issue_id) == {"sent": 1, "failed_temp": 1}


# --- the render cache: one per app, renders again when the issue changed, bounded ---


def _outbox(app: Flask) -> list[outbox.Message]:
    """Return the messages in app's outbox, oldest first."""
    folder = Path(app.config["OUTBOX_PATH"])
    found = [outbox.read_message(folder, name) for name in reversed(outbox.names(folder))]
    return [message for message in found if message is not None]


def test_two_apps_in_one_process_each_send_their_own_issue(
    app: Flask, db: Session, app_overrides: dict[str, Any], sqlite_template: Path, tmp_path: Path
) -> None:
    """Two apps in one process on two databases, each with an issue of the same id: the
    readers of each get their own database's issue, never a rendering of the other's."""
    from digest import create_app

    copy = tmp_path / "second.sqlite3"
    shutil.copy(sqlite_template, copy)
    second = create_app(
        {**app_overrides, "DATABASE_URL": f"sqlite:///{copy}", "INSTANCE_PATH": str(tmp_path / "2")}
    )

    def send(one: Flask, session: Session, subject: str) -> int:
        setup = make_newsletter(session, readers=2)
        session.execute(update(Issue).where(Issue.id == setup.issue_id).values(subject=subject))
        _start(session, setup.issue_id)
        _drain(one, setup.issue_id, session)
        return setup.issue_id

    try:
        with get_db_of(second).sessionmaker() as other:
            assert send(app, db, "From the first") == send(second, other, "From the second")
    finally:
        get_db_of(second).dispose()
    assert [dict(m.headers)["Subject"] for m in _outbox(app)] == ["From the first"] * 2
    assert [dict(m.headers)["Subject"] for m in _outbox(second)] == ["From the second"] * 2


def test_a_post_edited_while_paused_goes_out_as_edited(app: Flask, db: Session) -> None:
    """Readers sent after a pause get the issue as it reads when it resumes: a post's title
    corrected while it was paused reaches them, not the rendering made before."""
    setup = make_newsletter(db, readers=4)
    app.config["BATCH_SIZE"] = 2
    _start(db, setup.issue_id)
    with mailer_for(app.config) as mailer:
        send_batch(app, mailer, setup.issue_id, owner=new_owner("test"))
    issues.pause_issue(db, setup.issue_id)
    post = db.scalars(select(Post).where(Post.title == "First news")).one()
    posts.update_post(db, post, replace(posts.PostInput.of(post), title="Corrected news"))
    issues.resume_issue(db, setup.issue_id)
    db.commit()
    _drain(app, setup.issue_id, db)
    assert ["Corrected news" in (m.text or "") for m in _outbox(app)] == [False, False, True, True]
    assert states(db, setup.issue_id) == {"sent": 4}


def test_an_unchanged_issue_is_rendered_once_for_all_its_batches(app: Flask, db: Session) -> None:
    """Each batch reads the sending issue again but renders it only once: every message
    carries the MIME boundary that rendering drew."""
    setup = make_newsletter(db, readers=3)
    app.config["BATCH_SIZE"] = 1
    _start(db, setup.issue_id)
    _drain(app, setup.issue_id, db)
    boundaries = {dict(m.headers)["Content-Type"] for m in _outbox(app)}
    assert states(db, setup.issue_id) == {"sent": 3} and len(boundaries) == 1


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_sender_waiting_for_another_to_render_leaves_the_database_writable(
    app: Flask, db: Session, database_url: str
) -> None:
    """Two sender threads start one issue at once: while the first renders it (and stores
    its links) the second waits without holding SQLite's write lock. Holding it, the two
    waited on each other for the 30 s busy timeout, and every other writer with them."""
    setup = make_newsletter(db, readers=1)
    _start(db, setup.issue_id)
    prepared = prepared_issues(app)
    second = threading.Thread(target=prepared.get, args=(setup.issue_id,))
    blocked: list[str] = []
    with prepared._lock:  # the first sender is rendering
        second.start()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:
            other = sqlite3.connect(make_url(database_url).database or "", timeout=0.2)
            try:
                other.execute("BEGIN IMMEDIATE")
                other.rollback()
            except sqlite3.OperationalError as exc:
                blocked.append(str(exc))
            finally:
                other.close()
    second.join(10)
    assert not second.is_alive()
    assert blocked == []


def _renderings() -> int:
    """Return how many rendered issues this process holds."""
    gc.collect()
    return sum(isinstance(item, PreparedIssue) for item in gc.get_objects())


def test_a_worker_keeps_a_bounded_number_of_renderings(app: Flask, db: Session) -> None:
    """A process that only sends batches (a Celery worker: no sender pool tells it which
    issues ended) keeps a bounded number of rendered issues, however many it sends."""
    owner = new_owner("test")

    def send_issues(numbers: range) -> int:
        for n in numbers:
            setup = make_newsletter(db, readers=0, slug=f"weekly-{n}")
            add_readers(db, setup.newsletter_id, range(n, n + 1))
            _start(db, setup.issue_id)
            with mailer_for(app.config) as mailer:
                assert send_batch(app, mailer, setup.issue_id, owner=owner).claimed == 1
        return _renderings()

    before = _renderings()
    after_twelve = send_issues(range(12))
    assert after_twelve > before
    assert send_issues(range(12, 24)) <= after_twelve


@contextmanager
def _app_behind_a_link(app_overrides: dict[str, Any], smtp_server: SMTPServer, **settings: Any) -> Iterator[tuple[Flask, CuttableLink]]:
    """An app whose database (PostgreSQL) is reached through a link a test can cut."""
    from digest import create_app

    target = make_url(app_overrides["DATABASE_URL"])
    with CuttableLink(target.host or "127.0.0.1", target.port or 5432) as link:
        linked = target.set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)
        app = create_app({**app_overrides, "SMTP_URL": smtp_server.url, "DATABASE_URL": linked, **settings})
        try:
            yield app, link
        finally:
            get_db_of(app).dispose()


# The statement that commits a message's `sending` (claimed → sending, with no `sent` riding in it).
MARK_SENDING = b"RETURNING delivery.attempts\x00"


def _send_rest(app: Flask, mailer: Any, issue_id: int, owner: str, *, maintaining: bool = False) -> None:
    """Send the issue's remaining batches as owner once the database answers again (the
    sender's next claims, where it records what it knew), maintaining first if asked."""
    for _ in range(5):
        if maintaining:
            maintain(app)
        if not send_batch(app, mailer, issue_id, owner=owner).claimed:
            return


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
@pytest.mark.parametrize("reaper_first", [False, True], ids=["sender-settles", "reaper-first"])
def test_a_database_outage_that_hides_a_committed_sending_does_not_cost_the_reader(
    app_overrides: dict[str, Any], smtp_server: SMTPServer, db: Session, reaper_first: bool
) -> None:
    """The link to PostgreSQL dies after the database committed a message's `sending` but
    before the sender heard so: the sender never wrote the final dot, so once the database
    answers again the reader gets the message, once, and nobody is unclear, whether the
    sender settles first or the reaper finds the lease expired first."""
    setup = make_newsletter(db, readers=3)
    _start(db, setup.issue_id)
    with _app_behind_a_link(app_overrides, smtp_server, BATCH_SIZE=3) as (app, link):
        owner = new_owner("test")
        link.cut_when_answered(MARK_SENDING)
        with mailer_for(app.config) as mailer:
            with pytest.raises(DBAPIError):
                send_batch(app, mailer, setup.issue_id, owner=owner)
            assert link.cut_after_answer.is_set() and not smtp_server.received
            assert states(db, setup.issue_id) == {"sending": 1, "claimed": 2}  # the outage's window
            link.restore()
            if reaper_first:
                maintain(app, utcnow() + dt.timedelta(seconds=app.config["LEASE_SECONDS"] + 1))
            _send_rest(app, mailer, setup.issue_id, owner, maintaining=True)
        maintain(app)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
    assert states(db, setup.issue_id) == {"sent": 3}
    first = db.scalars(select(Delivery).join(Subscriber).where(Subscriber.email == setup.emails[0])).one()
    assert first.attempts == 1, "the withdrawn message used no attempt"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_250_the_database_outage_kept_from_the_ledger_is_recorded_sent(
    app_overrides: dict[str, Any], smtp_server: SMTPServer, db: Session
) -> None:
    """The link to PostgreSQL dies while the server accepts a message: the sender holds the
    250 until the database answers again and records the delivery sent, not unclear."""
    setup = make_newsletter(db, readers=2)
    _start(db, setup.issue_id)
    with _app_behind_a_link(app_overrides, smtp_server, BATCH_SIZE=2) as (app, link):
        owner = new_owner("test")

        def script(stage: str, address: str) -> None:
            if stage == "data" and address == setup.emails[0]:
                link.cut()

        smtp_server.script = script
        with mailer_for(app.config) as mailer:
            with pytest.raises(DBAPIError):
                send_batch(app, mailer, setup.issue_id, owner=owner)
            smtp_server.script = None
            link.restore()
            _send_rest(app, mailer, setup.issue_id, owner)
        maintain(app)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
    assert states(db, setup.issue_id) == {"sent": 2}
    first = db.scalars(select(Delivery).join(Subscriber).where(Subscriber.email == setup.emails[0])).one()
    assert first.queue_id == "Q000001"


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_refusal_the_database_outage_kept_from_the_ledger_is_tried_again(
    app_overrides: dict[str, Any], smtp_server: SMTPServer, db: Session
) -> None:
    """The link to PostgreSQL dies while the server refuses a message (451): the server took
    nothing, so once the database answers again the reader gets the message, not unclear."""
    setup = make_newsletter(db, readers=2)
    _start(db, setup.issue_id)
    with _app_behind_a_link(app_overrides, smtp_server, BATCH_SIZE=2) as (app, link):
        owner = new_owner("test")
        refuse = refuse_once("data", setup.emails[0], "451 4.3.0 try later")

        def script(stage: str, address: str) -> str | None:
            reply = refuse(stage, address)
            if reply:
                link.cut()
            return reply

        smtp_server.script = script
        with mailer_for(app.config) as mailer:
            with pytest.raises(DBAPIError):
                send_batch(app, mailer, setup.issue_id, owner=owner)
            link.restore()
            _send_rest(app, mailer, setup.issue_id, owner)
        maintain(app)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
    assert states(db, setup.issue_id) == {"sent": 2}
