"""The ledger: idempotent fan-out, one-statement claims, fenced transitions, the reaper."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    Issue,
    IssueStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from digest.domain import deliveries, issues
from digest.domain.suppression import email_hash, suppress
from tests.support.delivery import CONFIG, add_readers, make_newsletter, reader_email, states


def _rows(db: Session, issue_id: int) -> list[tuple[int, int | None, str]]:
    db.expire_all()
    return [
        (r.id, r.subscriber_id, r.state.value)
        for r in db.scalars(select(Delivery).where(Delivery.issue_id == issue_id).order_by(Delivery.id))
    ]


def _sending(db: Session, issue_id: int) -> None:
    db.execute(update(Issue).where(Issue.id == issue_id).values(status=IssueStatus.SENDING))
    db.commit()


def _claimed(db: Session, readers: int, owner: str, lease: float, in_flight: int = 0) -> tuple[int, list[deliveries.Claimed]]:
    """Fan out an issue to `readers`, start it, claim everything for owner and mark the
    first `in_flight` rows sending; return the issue id and the claims."""
    setup = make_newsletter(db, readers=readers)
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    _sending(db, setup.issue_id)
    rows = deliveries.claim(db, setup.issue_id, owner, 10, lease)
    for n, row in enumerate(rows[:in_flight]):
        deliveries.mark_sending(db, row.id, owner, setup.newsletter_id, email_hash(CONFIG, reader_email(n)), lease)
    db.commit()
    return setup.issue_id, rows


def test_fan_out_twice_gives_the_same_rows(db: Session) -> None:
    """Running the fan-out again (a crash, a second scheduler) adds nothing and changes nothing."""
    setup = make_newsletter(db, readers=25)
    first = list(deliveries.fan_out_chunks(db, setup.issue_id, CONFIG, chunk=7))
    db.commit()
    before = _rows(db, setup.issue_id)
    again = deliveries.fan_out(db, setup.issue_id, CONFIG)
    db.commit()
    assert sum(s.inserted for s in first) == 25 and len(first) == 4
    assert again == 0
    assert _rows(db, setup.issue_id) == before
    assert {r[2] for r in before} == {"pending"}


def test_fan_out_takes_confirmed_readers_minus_suppressed(db: Session) -> None:
    """Pending, paused and unsubscribed readers and suppressed addresses get no row."""
    setup = make_newsletter(db, readers=4)
    add_readers(db, setup.newsletter_id, range(10, 12), SubscriptionStatus.PENDING)
    add_readers(db, setup.newsletter_id, range(20, 22), SubscriptionStatus.PAUSED)
    add_readers(db, setup.newsletter_id, range(30, 32), SubscriptionStatus.UNSUBSCRIBED)
    suppress(db, CONFIG, reader_email(1).upper(), SuppressionReason.MANUAL)
    db.commit()
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    db.commit()
    emails = set(
        db.scalars(
            select(Subscriber.email).join(Delivery, Delivery.subscriber_id == Subscriber.id)
            .where(Delivery.issue_id == setup.issue_id)
        )
    )
    assert emails == {reader_email(0), reader_email(2), reader_email(3)}


def test_claims_are_disjoint_and_ordered(db: Session) -> None:
    """Two senders claiming from one issue never get the same delivery."""
    setup = make_newsletter(db, readers=10)
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    _sending(db, setup.issue_id)
    a = deliveries.claim(db, setup.issue_id, "a", 4, 60)
    db.commit()
    b = deliveries.claim(db, setup.issue_id, "b", 4, 60)
    db.commit()
    c = deliveries.claim(db, setup.issue_id, "c", 4, 60)
    db.commit()
    ids = [x.id for x in a + b + c]
    assert len(ids) == len(set(ids)) == 10
    assert [x.id for x in a] == sorted(ids)[:4]
    assert states(db, setup.issue_id) == {"claimed": 10}


def test_claims_nothing_unless_the_issue_is_sending(db: Session) -> None:
    """A paused (or scheduled) issue hands no deliveries to senders."""
    setup = make_newsletter(db, readers=3)
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    db.commit()
    assert deliveries.claim(db, setup.issue_id, "a", 10, 60) == []


def test_transitions_are_fenced_on_owner_and_state(db: Session) -> None:
    """A sender whose lease was reaped cannot mark the row sent afterwards."""
    setup = make_newsletter(db, readers=1)
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    _sending(db, setup.issue_id)
    [row] = deliveries.claim(db, setup.issue_id, "old", 10, 60)
    hash_ = email_hash(CONFIG, reader_email(0))
    assert deliveries.mark_sending(db, row.id, "old", setup.newsletter_id, hash_, 60) == 1
    assert deliveries.mark_sending(db, row.id, "old", setup.newsletter_id, hash_, 60) is None
    db.commit()
    later = utcnow() + dt.timedelta(seconds=61)
    assert deliveries.reap_expired(db, "hold", later) == deliveries.Reaped(0, 1)
    assert not deliveries.mark_sent(db, row.id, "old", 250, "ok", "Q1")
    db.commit()
    assert states(db, setup.issue_id) == {"unknown": 1}


def test_reaper_returns_claims_and_marks_sends_unclear(db: Session) -> None:
    """Expired claims go back to pending; an expired send is unknown (or pending if resend)."""
    issue_id, _rows = _claimed(db, readers=3, owner="dead", lease=30, in_flight=1)
    assert deliveries.reap_expired(db, "hold") == deliveries.Reaped(0, 0)
    later = utcnow() + dt.timedelta(minutes=5)
    assert deliveries.reap_expired(db, "hold", later) == deliveries.Reaped(2, 1)
    db.commit()
    assert states(db, issue_id) == {"pending": 2, "unknown": 1}
    assert deliveries.unclear_deliveries(db, issue_id)[0].email == reader_email(0)


def test_the_living_owner_of_a_reaped_send_still_says_what_became_of_it(db: Session) -> None:
    """After a database outage the reaper made two sends unknown: their owner, alive, records
    the 250 it heard (sent) and the message it never ended (back to pending, attempt given
    back); another owner's word changes nothing."""
    issue_id, rows = _claimed(db, readers=3, owner="alive", lease=30, in_flight=2)
    later = utcnow() + dt.timedelta(minutes=5)
    assert deliveries.reap_expired(db, "hold", later) == deliveries.Reaped(1, 2)
    accepted = deliveries.Accepted(rows[0].id, 250, "250 ok: queued as Q9", "Q9", utcnow())
    assert not deliveries.recover_sent(db, "other", accepted)
    assert not deliveries.withdraw(db, rows[1].id, "other")
    assert deliveries.recover_sent(db, "alive", accepted)
    assert deliveries.withdraw(db, rows[1].id, "alive")
    assert not deliveries.withdraw(db, rows[1].id, "alive")  # done once
    db.commit()
    assert states(db, issue_id) == {"sent": 1, "pending": 2}
    db.expire_all()
    sent, back = (db.get(Delivery, r.id) for r in rows[:2])
    assert sent is not None and (sent.queue_id, sent.lease_owner) == ("Q9", None)
    assert back is not None and (back.attempts, back.smtp_response, back.lease_owner) == (0, None, None)


def test_a_reaped_send_of_an_issue_marked_sent_meanwhile_stays_unknown_with_a_note(db: Session) -> None:
    """Once the issue is marked sent, the owner's word that it never ended a message leaves
    the row unknown (nothing would send it) but says that resending it is safe."""
    issue_id, rows = _claimed(db, readers=1, owner="late", lease=30, in_flight=1)
    deliveries.reap_expired(db, "hold", utcnow() + dt.timedelta(minutes=5))
    assert issues.finish_issue(db, issue_id)
    assert not deliveries.withdraw(db, rows[0].id, "late")
    db.commit()
    assert states(db, issue_id) == {"unknown": 1}
    assert deliveries.unclear_deliveries(db, issue_id)[0].response == deliveries.WITHDRAWN_NOTE


def test_reaper_under_resend_policy_requeues_unclear(db: Session) -> None:
    """With DIGEST_AMBIGUOUS=resend an expired send goes back to pending."""
    issue_id, _rows = _claimed(db, readers=1, owner="dead", lease=30, in_flight=1)
    assert deliveries.reap_expired(db, "resend", utcnow() + dt.timedelta(minutes=5)).unclear == 1
    db.commit()
    assert states(db, issue_id) == {"pending": 1}


def test_heartbeat_keeps_the_lease(db: Session) -> None:
    """A sender that renews its lease keeps its rows through a reaper run."""
    _claimed(db, readers=2, owner="alive", lease=1)
    assert deliveries.renew_lease(db, "alive", 600) == 2
    db.commit()
    assert deliveries.reap_expired(db, "hold", utcnow() + dt.timedelta(seconds=30)) == deliveries.Reaped(0, 0)


def test_unsubscribed_or_suppressed_after_fan_out_cannot_be_sent(db: Session) -> None:
    """mark_sending refuses readers who left or were suppressed since the fan-out, and says why."""
    setup = make_newsletter(db, readers=3)
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    _sending(db, setup.issue_id)
    rows = deliveries.claim(db, setup.issue_id, "me", 10, 60)
    db.execute(
        update(Subscription)
        .where(Subscription.subscriber_id == rows[0].subscriber_id)
        .values(status=SubscriptionStatus.UNSUBSCRIBED)
    )
    suppress(db, CONFIG, reader_email(1), SuppressionReason.COMPLAINT)
    hashes = [email_hash(CONFIG, reader_email(n)) for n in range(3)]
    results = [deliveries.mark_sending(db, r.id, "me", setup.newsletter_id, h, 60) for r, h in zip(rows, hashes)]
    assert results == [None, None, 1]
    reasons = [deliveries.blocked_reason(db, r.id, "me", setup.newsletter_id, h) for r, h in zip(rows[:2], hashes)]
    assert reasons == [deliveries.Blocked.UNSUBSCRIBED, deliveries.Blocked.SUPPRESSED]


def test_sent_rides_with_the_next_sending(db: Session) -> None:
    """mark_sending with the previous message's 250 records both in one transaction: the
    previous one sent with its reply, the next one sending; refused or not, the 250 is kept,
    and a row whose lease was reaped meanwhile is left alone."""
    setup = make_newsletter(db, readers=4)
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    _sending(db, setup.issue_id)
    rows = deliveries.claim(db, setup.issue_id, "me", 10, 60)
    hashes = [email_hash(CONFIG, reader_email(n)) for n in range(4)]
    assert deliveries.mark_sending(db, rows[0].id, "me", setup.newsletter_id, hashes[0], 60) == 1
    db.commit()
    first = deliveries.Accepted(rows[0].id, 250, "2.0.0 Ok: queued as AAA", "AAA", utcnow())
    assert deliveries.mark_sending(db, rows[1].id, "me", setup.newsletter_id, hashes[1], 60, accepted=first) == 1
    db.commit()
    assert states(db, setup.issue_id) == {"sent": 1, "sending": 1, "claimed": 2}
    row = db.get(Delivery, rows[0].id)
    assert (row.state, row.queue_id, row.smtp_code, row.lease_owner) == ("sent", "AAA", 250, None)
    db.execute(update(Subscription).where(Subscription.subscriber_id == rows[2].subscriber_id).values(status=SubscriptionStatus.UNSUBSCRIBED))
    second = deliveries.Accepted(rows[1].id, 250, "2.0.0 Ok: queued as BBB", "BBB", utcnow())
    assert deliveries.mark_sending(db, rows[2].id, "me", setup.newsletter_id, hashes[2], 60, accepted=second) is None
    db.commit()
    assert states(db, setup.issue_id) == {"sent": 2, "claimed": 2}
    reaped = deliveries.Accepted(rows[2].id, 250, "2.0.0 Ok", None, utcnow())  # never sending
    assert deliveries.mark_sending(db, rows[3].id, "me", setup.newsletter_id, hashes[3], 60, accepted=reaped) == 1
    db.commit()
    assert states(db, setup.issue_id) == {"sent": 2, "claimed": 1, "sending": 1}


def test_counts_and_open_work(db: Session) -> None:
    """Counts per state come from one query; a due retry keeps the issue open, an exhausted one not."""
    setup = make_newsletter(db, readers=3)
    deliveries.fan_out(db, setup.issue_id, CONFIG)
    _sending(db, setup.issue_id)
    rows = deliveries.claim(db, setup.issue_id, "me", 10, 60)
    for row, n in zip(rows, range(3)):
        deliveries.mark_sending(db, row.id, "me", setup.newsletter_id, email_hash(CONFIG, reader_email(n)), 60)
    deliveries.mark_sent(db, rows[0].id, "me", 250, "2.0.0 Ok: queued as ABC", "ABC")
    deliveries.mark_failed_temp(db, rows[1].id, "me", 451, "try later", utcnow() + dt.timedelta(minutes=1))
    deliveries.mark_failed_temp(db, rows[2].id, "me", 451, "try later", None)
    db.commit()
    counts = deliveries.counts(db, setup.issue_id)
    assert counts[DeliveryState.SENT] == 1 and counts[DeliveryState.FAILED_TEMP] == 2
    assert counts.retrying == 1 and counts.open == 1 and counts.done == 2
    assert deliveries.has_open_work(db, setup.issue_id)
    assert not issues.finish_issue(db, setup.issue_id)
    assert deliveries.requeue_due_retries(db, utcnow() + dt.timedelta(minutes=2)) == 1
    assert states(db, setup.issue_id) == {"sent": 1, "pending": 1, "failed_temp": 1}


def test_bulk_hasher_matches_the_suppression_list() -> None:
    """The fan-out's hasher gives exactly the hash the suppression list stores."""
    from digest.core.tokens import keyed_hasher
    from digest.domain.suppression import HASH_PURPOSE

    hash_of = keyed_hasher(CONFIG["SECRET_KEY"], HASH_PURPOSE)
    for address in ("reader00001@example.org", "jürgen@bücher.example"):
        assert hash_of(address) == email_hash(CONFIG, address, canonical=True)
