"""Inbound reports: DSN bounces, ARF complaints and mailto unsubscribes mapped to what we sent."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, object_session

from digest.core.db import utcnow
from digest.core.models import (
    BounceKind,
    Delivery,
    Issue,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalKind,
    TransactionalMail,
    TransactionalState,
)
from digest.domain import links
from digest.domain.bounces import SOFT_BOUNCE_LIMIT, bounce_kind, ingest, read_report
from digest.domain.identity import verp_address
from digest.domain.subscribers.actions import ReaderActions
from digest.domain.subscribers.privacy import erase
from digest.domain.suppression import suppression_for
from digest.domain.transactional import render
from tests.support.inbound import arf, dsn, mailto_request
from tests.support.issues import demo_issue

FBL = "fbl@news.example.org"


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


def _sent_mail(db: Session, email: str, kind: TransactionalKind) -> TransactionalMail:
    """A confirmation (or welcome, or note) already sent to a demo reader."""
    demo_issue(db)
    subscription = db.scalars(
        select(Subscription).join(Subscriber).where(Subscriber.email == email)
    ).one()
    mail = TransactionalMail(
        subscription=subscription, kind=kind, state=TransactionalState.SENT, sent_at=utcnow()
    )
    db.add(mail)
    db.commit()
    return mail


def _suppressed(app, db: Session, email: str) -> SuppressionReason | None:  # type: ignore[no-untyped-def]
    entry = suppression_for(db, app.config, email)
    return entry.reason if entry else None


def _statuses(db: Session) -> dict[str, SubscriptionStatus]:
    return {s.subscriber.email: s.status for s in db.scalars(select(Subscription)).all()}


def _verp(app, delivery: Delivery) -> str:  # type: ignore[no-untyped-def]
    subscriber = object_session(delivery).get(Subscriber, delivery.subscriber_id)  # type: ignore[union-attr]
    return verp_address(app.config, f"d{delivery.id}", subscriber.email)


def _mail_verp(app, mail: TransactionalMail, config=None) -> str:  # type: ignore[no-untyped-def]
    return verp_address(config or app.config, f"t{mail.ref}", mail.subscription.subscriber.email)


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
    outcome = ingest(
        db, app.config, dsn(_verp(app, ada), status, diagnostic), ReaderActions(app.config)
    )
    db.commit()
    assert outcome.action == "hard_bounce" and outcome.delivery_id == ada.id
    for email, row in rows.items():
        db.refresh(row)
        assert row.bounce is (BounceKind.HARD if email == "ada@example.com" else None)
        expected = SuppressionReason.HARD_BOUNCE if email == "ada@example.com" else None
        assert _suppressed(app, db, email) is expected
    assert status in (ada.bounce_detail or "") and ada.bounced_at is not None
    assert suppression_for(db, app.config, "ada@example.com").detail == ada.bounce_detail  # type: ignore[union-attr]


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
    full = "452 4.2.2 The email account that you tried to reach is over quota."
    for n, delivery in enumerate([grace, *later], 1):
        report = dsn(_verp(app, delivery), "4.2.2", full)
        outcome = ingest(db, app.config, report, ReaderActions(app.config))
        db.commit()
        assert outcome.action == "soft_bounce"
        if n < SOFT_BOUNCE_LIMIT:
            assert "suppressed after" in outcome.message
            assert _suppressed(app, db, "grace@example.com") is None
    assert _suppressed(app, db, "grace@example.com") is SuppressionReason.SOFT_BOUNCE
    entry = suppression_for(db, app.config, "grace@example.com")
    assert entry is not None and entry.detail == "4.2.2 smtp; " + full


def test_sender_side_failures_blame_no_reader(app, db) -> None:  # type: ignore[no-untyped-def]
    """A policy or size refusal is recorded on the delivery and suppresses nobody."""
    rows = _deliveries(db)
    for delivery, status, diagnostic in [
        (
            rows["ada@example.com"],
            "5.7.26",
            "550 5.7.26 Unauthenticated email from news.example.org is not accepted due to DMARC policy",
        ),
        (rows["alan@example.com"], "5.3.4", "552 5.3.4 Message size exceeds fixed limit"),
    ]:
        report = dsn(_verp(app, delivery), status, diagnostic)
        outcome = ingest(db, app.config, report, ReaderActions(app.config))
        assert outcome.action == "sender_problem" and "no reader was suppressed" in outcome.message
        assert delivery.bounce is BounceKind.SENDER
    db.commit()
    assert all(_suppressed(app, db, email) is None for email in rows)


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
        "delayed": dsn(verp, "4.4.7", "421 4.4.7 Try again later", action="delayed"),
        "forged": dsn(
            verp.replace(verp.split("-")[-1].split("@")[0], "0" * 16), "5.1.1", "550 5.1.1 unknown"
        ),
        "autoreply": (
            f"From: ada@example.com\r\nTo: {verp}\r\nSubject: Out of office\r\n"
            "Auto-Submitted: auto-replied\r\n\r\nI am away until Monday.\r\n"
        ).encode(),
        "delivered": dsn(verp, "2.0.0", "250 2.0.0 OK", action="delivered"),
    }
    before = _statuses(db)
    outcome = ingest(db, app.config, messages[raw], ReaderActions(app.config))
    db.commit()
    assert outcome.action == "ignored"
    db.refresh(ada)
    assert ada.bounce is None and _suppressed(app, db, "ada@example.com") is None
    assert _statuses(db) == before


def test_complaint_suppresses_and_unsubscribes_at_once(app, db) -> None:  # type: ignore[no-untyped-def]
    """An ARF abuse report naming our VERP address as Original-Mail-From suppresses the reader and withdraws their consent."""
    rows = _deliveries(db)
    katherine = rows["katherine@example.com"]
    report = arf(FBL, original_mail_from=_verp(app, katherine), original="Subject: x")
    outcome = ingest(db, app.config, report, ReaderActions(app.config))
    db.commit()
    assert outcome.action == "complaint" and outcome.suppressed is SuppressionReason.COMPLAINT
    assert katherine.bounce is BounceKind.COMPLAINT
    assert _suppressed(app, db, "katherine@example.com") is SuppressionReason.COMPLAINT
    entry = suppression_for(db, app.config, "katherine@example.com")
    assert entry is not None and "Yahoo!-Mail-Feedback" in entry.detail
    subscription = db.scalars(
        select(Subscription).where(Subscription.subscriber_id == katherine.subscriber_id)
    ).one()
    assert subscription.status is SubscriptionStatus.UNSUBSCRIBED
    assert {c.withdrawal_channel for c in subscription.consents} == {"complaint"}


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
    forged = original.replace(subscription.uid, "x" * len(subscription.uid))
    outcome = ingest(db, app.config, arf(FBL, original=forged), ReaderActions(app.config))
    assert outcome.action == "ignored"
    outcome = ingest(db, app.config, arf(FBL, original=original), ReaderActions(app.config))
    db.commit()
    assert outcome.delivery_id == alan.id
    assert _suppressed(app, db, "alan@example.com") is SuppressionReason.COMPLAINT
    assert _suppressed(app, db, "ada@example.com") is None


def test_not_spam_report_is_ignored(app, db) -> None:  # type: ignore[no-untyped-def]
    """A not-spam feedback report suppresses nobody."""
    rows = _deliveries(db)
    report = arf(FBL, "not-spam", original_mail_from=_verp(app, rows["ada@example.com"]))
    assert ingest(db, app.config, report, ReaderActions(app.config)).action == "ignored"
    assert _suppressed(app, db, "ada@example.com") is None


def test_mailto_unsubscribe_request(app, db) -> None:  # type: ignore[no-untyped-def]
    """A message to the List-Unsubscribe mailto address unsubscribes that subscription, channel mailto."""
    _deliveries(db)
    ada = db.scalars(select(Subscriber).where(Subscriber.email == "ada@example.com")).one()
    raw = mailto_request(links.unsubscribe_mailto(app.config, ada.subscriptions[0].uid), ada.email)
    tampered = raw.replace(b"unsubscribe+", b"unsubscribe+x")
    assert ingest(db, app.config, tampered, ReaderActions(app.config)).action == "ignored"
    assert ada.subscriptions[0].status is SubscriptionStatus.CONFIRMED
    outcome = ingest(db, app.config, raw, ReaderActions(app.config))
    db.commit()
    assert outcome.action == "unsubscribed"
    subscription = ada.subscriptions[0]
    assert subscription.status is SubscriptionStatus.UNSUBSCRIBED
    assert {c.withdrawal_channel for c in subscription.consents} == {"mailto"}
    assert _suppressed(app, db, "ada@example.com") is None  # leaving is not a complaint


@pytest.mark.parametrize(
    ("kind", "status", "diagnostic", "action", "suppressed"),
    [
        (
            TransactionalKind.CONFIRM,
            "5.1.1",
            "550 5.1.1 <ada@example.com>: Recipient address rejected: User unknown",
            "hard_bounce",
            SuppressionReason.HARD_BOUNCE,
        ),
        (
            TransactionalKind.WELCOME,
            "4.2.2",
            "452 4.2.2 The email account that you tried to reach is over quota.",
            "soft_bounce",
            None,
        ),
        (
            TransactionalKind.CONFIRM,
            "5.7.26",
            "550 5.7.26 Unauthenticated email is not accepted due to DMARC policy",
            "sender_problem",
            None,
        ),
    ],
)
def test_bounce_of_a_transactional_email(
    app, db, kind, status: str, diagnostic: str, action: str, suppressed
) -> None:  # type: ignore[no-untyped-def]
    """A bounce of a confirmation or welcome (VERP t<id>) marks that email failed; only a hard one suppresses."""
    mail = _sent_mail(db, "ada@example.com", kind)
    report = dsn(_mail_verp(app, mail), status, diagnostic)
    outcome = ingest(db, app.config, report, ReaderActions(app.config))
    db.commit()
    assert outcome.action == action and outcome.transactional_id == mail.id
    assert outcome.suppressed is suppressed
    db.refresh(mail)
    assert mail.state is TransactionalState.FAILED and status in (mail.last_error or "")
    assert _suppressed(app, db, "ada@example.com") is suppressed


def test_complaint_about_a_confirmation(app, db) -> None:  # type: ignore[no-untyped-def]
    """A complaint about a confirmation email suppresses the address and marks the email failed."""
    mail = _sent_mail(db, "grace@example.com", TransactionalKind.CONFIRM)
    report = arf(FBL, original_mail_from=_mail_verp(app, mail))
    outcome = ingest(db, app.config, report, ReaderActions(app.config))
    db.commit()
    assert outcome.action == "complaint" and "confirmation email" in outcome.message
    db.refresh(mail)
    assert mail.state is TransactionalState.FAILED
    assert _suppressed(app, db, "grace@example.com") is SuppressionReason.COMPLAINT


def test_a_forged_transactional_reference_changes_nothing(app, db) -> None:  # type: ignore[no-untyped-def]
    """A bounce to bounces+t<id>-MAC@ with a MAC of another key, or for an id we never sent, changes nothing."""
    mail = _sent_mail(db, "ada@example.com", TransactionalKind.CONFIRM)
    foreign = _mail_verp(app, mail, {**app.config, "SECRET_KEY": "another-installation"})
    unknown = verp_address(app.config, "t999999", "ada@example.com")
    for to in (foreign, unknown):
        outcome = ingest(
            db, app.config, dsn(to, "5.1.1", "550 5.1.1 unknown"), ReaderActions(app.config)
        )
        assert outcome.action == "ignored", to
    db.commit()
    db.refresh(mail)
    assert mail.state is TransactionalState.SENT
    assert _suppressed(app, db, "ada@example.com") is None


@pytest.mark.one_backend
def test_envelope_recipient_and_returned_return_path(app) -> None:  # type: ignore[no-untyped-def]
    """The VERP reference is found from the MTA's envelope recipient or the returned original."""
    verp = verp_address(app.config, "d42", "ada@example.com")
    bare = dsn("postmaster@news.example.org", "5.1.1", "550 5.1.1 unknown")
    assert read_report(app.config, bare).ref is None
    assert read_report(app.config, bare, envelope_to=verp).ref == "d42"
    delivered = dsn("postmaster@news.example.org", "5.1.1", "550 5.1.1 unknown", delivered_to=verp)
    assert read_report(app.config, delivered).ref == "d42"
    # Postfix's local(8) hands a command the message after an mbox "From " line.
    piped = b"From MAILER-DAEMON  Mon Nov 30 08:00:06 2026\r\n" + delivered
    assert read_report(app.config, piped).ref == "d42"
    assert read_report(app.config, piped).kind == "failed"
    original = f"Return-Path: <{verp}>\r\nSubject: x"
    returned = dsn("postmaster@news.example.org", "5.1.1", "550 5.1.1 unknown", original=original)
    assert read_report(app.config, returned).ref == "d42"
    whole = dsn(
        "postmaster@news.example.org",
        "5.1.1",
        "550 5.1.1 unknown",
        original=original,
        whole_original=True,
    )
    assert b"message/rfc822" in whole
    assert read_report(app.config, whole).ref == "d42"


def test_bounce_kind_follows_the_send_time_rules() -> None:
    """Status codes classify as at send time: 5.1.x hard, 4.x soft, 5.7.x ours."""
    assert bounce_kind("5.1.1", "") is BounceKind.HARD
    assert bounce_kind("5.2.2", "552 5.2.2 mailbox full") is BounceKind.SOFT
    assert bounce_kind("4.4.7", "") is BounceKind.SOFT
    assert bounce_kind("5.7.1", "550 5.7.1 blocked") is BounceKind.SENDER
    assert bounce_kind("", "550 5.1.1 user unknown") is BounceKind.HARD
    assert bounce_kind("", "") is BounceKind.SOFT
    assert bounce_kind("5.0.0", "550 No such user here") is BounceKind.SOFT  # vague: counts as soft


def test_an_old_bounce_address_never_names_a_later_reader(app, db) -> None:  # type: ignore[no-untyped-def]
    """Someone who kept the bounce address of their own confirmation, erased themselves and
    got a note sent to a victim cannot suppress the victim with a forged DSN to that address."""
    own = _sent_mail(db, "ada@example.com", TransactionalKind.CONFIRM)
    kept = render(db, app.config, own).envelope_from
    ada = db.scalars(select(Subscriber).where(Subscriber.email == "ada@example.com")).one()
    erase(db, app.config, ada)
    db.commit()
    db.expunge_all()  # the database, not the ORM, deleted the old email with the reader
    note = _sent_mail(db, "grace@example.com", TransactionalKind.ALREADY)
    for forged in (dsn(kept, "5.1.1", "550 5.1.1 unknown"), arf(FBL, original_mail_from=kept)):
        outcome = ingest(db, app.config, forged, ReaderActions(app.config))
        assert outcome.action == "ignored", outcome.message
    db.commit()
    db.refresh(note)
    assert note.state is TransactionalState.SENT
    assert _suppressed(app, db, "grace@example.com") is None
    assert _statuses(db)["grace@example.com"] is SubscriptionStatus.CONFIRMED
