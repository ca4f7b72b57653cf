"""Inbound reports: DSN bounces, ARF complaints and mailto unsubscribes mapped to deliveries."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest import links
from digest.bounces import SOFT_BOUNCE_LIMIT, bounce_kind, ingest, read_report
from digest.db import utcnow
from digest.mail.identity import verp_address
from digest.models import (
    BounceKind,
    Delivery,
    Issue,
    Subscriber,
    Subscription,
    SuppressionReason,
)
from tests.support.issues import demo_issue


@dataclass
class RecordedActions:
    """Stands in for digest.subscribers' suppress/unsubscribe, which arrive with the reader's journey."""

    suppressed: list[tuple[str, SuppressionReason, str]] = field(default_factory=list)
    unsubscribed: list[tuple[str, str]] = field(default_factory=list)

    def suppress(
        self, session: Session, subscriber: Subscriber, reason: SuppressionReason, detail: str
    ) -> None:
        self.suppressed.append((subscriber.email, reason, detail))

    def unsubscribe(self, session: Session, subscription: Subscription, channel: str) -> None:
        self.unsubscribed.append((subscription.subscriber.email, channel))


def _deliveries(db: Session) -> dict[str, Delivery]:
    """Deliveries of the demo issue to every demo reader, sent."""
    issue = demo_issue(db)
    rows = {}
    for subscriber in db.scalars(select(Subscriber)):
        rows[subscriber.email] = Delivery(
            issue_id=issue.id, subscriber_id=subscriber.id, sent_at=utcnow()
        )
    db.add_all(rows.values())
    db.commit()
    return rows


def _dsn(
    to: str, status: str, diagnostic: str, action: str = "failed", original: str = ""
) -> bytes:
    returned = f"--B\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n" if original else ""
    return (
        "From: Mail Delivery System <MAILER-DAEMON@mx.example.com>\r\n"
        f"To: {to}\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nI'm sorry to have to inform you...\r\n"
        "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
        "Reporting-MTA: dns; mx.example.com\r\nArrival-Date: Mon, 30 Nov 2026 08:00:01 +0100\r\n\r\n"
        "Final-Recipient: rfc822; reader@example.com\r\n"
        f"Action: {action}\r\nStatus: {status}\r\n"
        f"Diagnostic-Code: smtp; {diagnostic}\r\n\r\n"
        f"{returned}--B--\r\n"
    ).encode()


def _arf(
    to: str, feedback_type: str = "abuse", original_mail_from: str = "", original: str = ""
) -> bytes:
    mail_from = f"Original-Mail-From: <{original_mail_from}>\r\n" if original_mail_from else ""
    return (
        "From: feedback@arf.mail.yahoo.com\r\n"
        f"To: {to}\r\n"
        "Subject: FW: The Weekly Model\r\n"
        "MIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=feedback-report; boundary="F"\r\n\r\n'
        "--F\r\nContent-Type: text/plain\r\n\r\nThis is an email abuse report.\r\n"
        "--F\r\nContent-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\nUser-Agent: Yahoo!-Mail-Feedback/2.0\r\nVersion: 1\r\n"
        f"{mail_from}Arrival-Date: Mon, 30 Nov 2026 08:00:03 +0100\r\n\r\n"
        f"--F\r\nContent-Type: text/rfc822-headers\r\n\r\n{original}\r\n--F--\r\n"
    ).encode()


def _verp(app, delivery: Delivery) -> str:  # type: ignore[no-untyped-def]
    return verp_address(app.config, f"d{delivery.id}")


@pytest.mark.parametrize(
    ("status", "diagnostic"),
    [
        ("5.1.1", "550 5.1.1 <reader@example.com>: Recipient address rejected: User unknown"),
        (
            "5.1.10",
            "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup",
        ),
        ("5.2.1", "550 5.2.1 The email account that you tried to reach is inactive."),
    ],
)
def test_hard_bounce_suppresses_and_marks_the_delivery(
    app, db, status: str, diagnostic: str
) -> None:  # type: ignore[no-untyped-def]
    """A permanent address failure reported to the VERP address suppresses that exact reader."""
    rows = _deliveries(db)
    ada = rows["ada@example.com"]
    actions = RecordedActions()
    outcome = ingest(db, app.config, _dsn(_verp(app, ada), status, diagnostic), actions)
    db.commit()
    assert outcome.action == "hard_bounce" and outcome.delivery_id == ada.id
    for email, row in rows.items():
        db.refresh(row)
        assert row.bounce is (BounceKind.HARD if email == "ada@example.com" else None)
    assert status in (ada.bounce_detail or "") and ada.bounced_at is not None
    assert actions.suppressed == [
        ("ada@example.com", SuppressionReason.HARD_BOUNCE, ada.bounce_detail)
    ]


def test_soft_bounces_suppress_after_the_threshold(app, db) -> None:  # type: ignore[no-untyped-def]
    """A full mailbox is recorded; only SOFT_BOUNCE_LIMIT soft bounces in a row suppress."""
    rows = _deliveries(db)
    grace = rows["grace@example.com"]
    issue = db.get(Issue, grace.issue_id)
    later = []
    for week in range(1, SOFT_BOUNCE_LIMIT):
        other = Issue(
            newsletter_id=issue.newsletter_id, slug=f"week-{week}", subject=f"Week {week}"
        )
        db.add(other)
        db.flush()
        later.append(
            Delivery(issue_id=other.id, subscriber_id=grace.subscriber_id, sent_at=utcnow())
        )
    db.add_all(later)
    db.commit()
    actions = RecordedActions()
    full = "452 4.2.2 The email account that you tried to reach is over quota."
    for n, delivery in enumerate([grace, *later], 1):
        outcome = ingest(db, app.config, _dsn(_verp(app, delivery), "4.2.2", full), actions)
        db.commit()
        assert outcome.action == "soft_bounce"
        if n < SOFT_BOUNCE_LIMIT:
            assert actions.suppressed == [] and "suppressed after" in outcome.message
    assert actions.suppressed == [
        ("grace@example.com", SuppressionReason.SOFT_BOUNCE, "4.2.2 smtp; " + full)
    ]


def test_sender_side_failures_blame_no_reader(app, db) -> None:  # type: ignore[no-untyped-def]
    """A policy or size refusal is recorded on the delivery and suppresses nobody."""
    rows = _deliveries(db)
    actions = RecordedActions()
    for delivery, status, diagnostic in [
        (
            rows["ada@example.com"],
            "5.7.26",
            "550 5.7.26 Unauthenticated email from news.example.org is not accepted due to DMARC policy",
        ),
        (rows["alan@example.com"], "5.3.4", "552 5.3.4 Message size exceeds fixed limit"),
    ]:
        outcome = ingest(db, app.config, _dsn(_verp(app, delivery), status, diagnostic), actions)
        assert outcome.action == "sender_problem" and "no reader was suppressed" in outcome.message
        assert delivery.bounce is BounceKind.SENDER
    assert actions.suppressed == []


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param("delayed", id="delayed"),
        pytest.param("forged", id="forged-mac"),
        pytest.param("autoreply", id="out-of-office"),
        pytest.param("delivered", id="delivered"),
    ],
)
def test_reports_that_change_nothing(app, db, raw: str) -> None:  # type: ignore[no-untyped-def]
    """Delay notices, forged bounces, auto-replies and success notices change nothing."""
    rows = _deliveries(db)
    ada = rows["ada@example.com"]
    verp = _verp(app, ada)
    messages = {
        "delayed": _dsn(verp, "4.4.7", "421 4.4.7 Try again later", action="delayed"),
        "forged": _dsn(
            verp.replace(verp.split("-")[-1].split("@")[0], "0" * 16), "5.1.1", "550 5.1.1 unknown"
        ),
        "autoreply": (
            f"From: ada@example.com\r\nTo: {verp}\r\nSubject: Out of office\r\n"
            "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
        ).encode(),
        "delivered": _dsn(verp, "2.0.0", "250 2.0.0 OK", action="delivered"),
    }
    actions = RecordedActions()
    outcome = ingest(db, app.config, messages[raw], actions)
    db.commit()
    assert outcome.action == "ignored"
    db.refresh(ada)
    assert ada.bounce is None and actions.suppressed == [] and actions.unsubscribed == []


def test_complaint_suppresses_at_once(app, db) -> None:  # type: ignore[no-untyped-def]
    """An ARF abuse report naming our VERP address as Original-Mail-From suppresses the reader."""
    rows = _deliveries(db)
    katherine = rows["katherine@example.com"]
    actions = RecordedActions()
    report = _arf(
        "fbl@news.example.org", original_mail_from=_verp(app, katherine), original="Subject: x"
    )
    outcome = ingest(db, app.config, report, actions)
    assert outcome.action == "complaint" and outcome.suppressed is SuppressionReason.COMPLAINT
    assert katherine.bounce is BounceKind.COMPLAINT
    assert actions.suppressed[0][:2] == ("katherine@example.com", SuppressionReason.COMPLAINT)
    assert "Yahoo!-Mail-Feedback" in actions.suppressed[0][2]


def test_complaint_found_by_the_signed_token_in_the_returned_headers(app, db) -> None:  # type: ignore[no-untyped-def]
    """Without Original-Mail-From, the returned List-Unsubscribe token names the reader;
    a Message-ID pointing at someone else's delivery is not believed."""
    rows = _deliveries(db)
    alan, ada = rows["alan@example.com"], rows["ada@example.com"]
    subscription = db.scalars(
        select(Subscription).where(Subscription.subscriber_id == alan.subscriber_id)
    ).one()
    original = (
        "From: The Weekly Model <news@news.example.org>\r\nTo: [redacted]\r\n"
        f"Message-ID: <digest.{ada.issue_id}.d{ada.id}@news.example.org>\r\n"
        f"List-Unsubscribe: <{links.unsubscribe_url(app.config, subscription.uid)}>,\r\n"
        f" <{links.unsubscribe_mailto(app.config, subscription.uid)}>"
    )
    actions = RecordedActions()
    outcome = ingest(db, app.config, _arf("fbl@news.example.org", original=original), actions)
    assert outcome.delivery_id == alan.id
    assert actions.suppressed[0][0] == "alan@example.com"
    forged = original.replace(subscription.uid, "x" * len(subscription.uid))
    assert (
        ingest(
            db, app.config, _arf("fbl@news.example.org", original=forged), RecordedActions()
        ).action
        == "ignored"
    )


def test_not_spam_report_is_ignored(app, db) -> None:  # type: ignore[no-untyped-def]
    """A not-spam feedback report suppresses nobody."""
    rows = _deliveries(db)
    actions = RecordedActions()
    report = _arf(
        "fbl@news.example.org", "not-spam", original_mail_from=_verp(app, rows["ada@example.com"])
    )
    assert ingest(db, app.config, report, actions).action == "ignored" and actions.suppressed == []


def test_mailto_unsubscribe_request(app, db) -> None:  # type: ignore[no-untyped-def]
    """A message to the List-Unsubscribe mailto address unsubscribes that subscription."""
    _deliveries(db)
    ada = db.scalars(select(Subscriber).where(Subscriber.email == "ada@example.com")).one()
    mailto = links.unsubscribe_mailto(app.config, ada.subscriptions[0].uid)
    address = mailto.removeprefix("mailto:").split("?")[0]
    raw = f"From: ada@example.com\r\nTo: {address}\r\nSubject: unsubscribe\r\n\r\n".encode()
    actions = RecordedActions()
    outcome = ingest(db, app.config, raw, actions)
    assert outcome.action == "unsubscribed"
    assert actions.unsubscribed == [("ada@example.com", "mailto")]
    tampered = raw.replace(b"unsubscribe+", b"unsubscribe+x")
    assert ingest(db, app.config, tampered, RecordedActions()).action == "ignored"


def test_envelope_recipient_and_returned_return_path(app) -> None:  # type: ignore[no-untyped-def]
    """The VERP reference is found from the MTA's envelope recipient or the returned original."""
    verp = verp_address(app.config, "d42")
    bare = _dsn("postmaster@news.example.org", "5.1.1", "550 5.1.1 unknown")
    assert read_report(app.config, bare).ref is None
    assert read_report(app.config, bare, envelope_to=verp).ref == "d42"
    returned = _dsn(
        "postmaster@news.example.org",
        "5.1.1",
        "550 5.1.1 unknown",
        original=f"Return-Path: <{verp}>\r\nSubject: x",
    )
    assert read_report(app.config, returned).ref == "d42"
    full_original = returned.replace(b"text/rfc822-headers", b"message/rfc822").replace(
        b"Subject: x\r\n", b"Subject: x\r\n\r\nThe whole message came back.\r\n"
    )
    assert b"message/rfc822" in full_original
    assert read_report(app.config, full_original).ref == "d42"


def test_bounce_kind_follows_the_send_time_rules() -> None:
    """Status codes classify as at send time: 5.1.x hard, 4.x soft, 5.7.x ours."""
    assert bounce_kind("5.1.1", "") is BounceKind.HARD
    assert bounce_kind("5.2.2", "552 5.2.2 mailbox full") is BounceKind.SOFT
    assert bounce_kind("4.4.7", "") is BounceKind.SOFT
    assert bounce_kind("5.7.1", "550 5.7.1 blocked") is BounceKind.SENDER
    assert bounce_kind("", "550 5.1.1 user unknown") is BounceKind.HARD
    assert bounce_kind("", "") is BounceKind.SOFT
    assert bounce_kind("5.0.0", "550 No such user here") is BounceKind.SOFT  # vague: counts as soft
