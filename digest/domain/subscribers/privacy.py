"""A reader's personal data: export it, erase it, and delete signups nobody confirmed.

Contract:
- `personal_data` returns everything stored about one reader and nobody else.
- Erasure deletes the reader and every personal row; only a keyed hash stays in the
  suppression list (digest.domain.suppression), and the address is scrubbed from what
  quotes it (a bounce's detail, a delivery's SMTP reply, an import's problems).
  Deliveries keep their figures without the reader.
- Functions take a Session and flush; the view, command or job commits.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, undefer

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    ImportJob,
    Issue,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalMail,
)
from digest.domain import engagement, webhooks
from digest.domain.suppression import suppress, suppression_for
from digest.mail.message import ascii_address


def _iso(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def personal_data(
    session: Session,
    config: Mapping[str, Any],
    subscriber: Subscriber,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Return everything stored about a reader (and nobody else), for "download my data"."""
    subscriptions = []
    for subscription in subscriber.subscriptions:
        mails = session.scalars(
            select(TransactionalMail)
            .where(TransactionalMail.subscription_id == subscription.id)
            .order_by(TransactionalMail.id)
        )
        subscriptions.append(
            {
                "newsletter": {
                    "slug": subscription.newsletter.slug,
                    "name": subscription.newsletter.name,
                },
                "status": subscription.status.value,
                "sections": [s.name for s in subscription.sections] or "all",
                "created_at": _iso(subscription.created_at),
                "confirmation_sent_at": _iso(subscription.confirmation_sent_at),
                "confirmed_at": _iso(subscription.confirmed_at),
                "paused_at": _iso(subscription.paused_at),
                "unsubscribed_at": _iso(subscription.unsubscribed_at),
                "consents": [
                    {
                        "source": c.source.value,
                        "given_at": _iso(c.created_at),
                        "ip": c.ip,
                        "user_agent": c.user_agent,
                        "consent_text": c.consent_text,
                        "consent_version": c.consent_version,
                        "confirmed_at": _iso(c.confirmed_at),
                        "confirmed_ip": c.confirmed_ip,
                        "confirmed_user_agent": c.confirmed_user_agent,
                        "withdrawn_at": _iso(c.withdrawn_at),
                        "withdrawal_channel": c.withdrawal_channel,
                    }
                    for c in subscription.consents
                ],
                "emails": [
                    {
                        "kind": m.kind.value,
                        "state": m.state.value,
                        "requested_at": _iso(m.created_at),
                        "sent_at": _iso(m.sent_at),
                    }
                    for m in mails
                ],
            }
        )
    deliveries = session.execute(
        select(Delivery, Issue)
        .join(Issue, Delivery.issue_id == Issue.id)
        .where(Delivery.subscriber_id == subscriber.id)
        .order_by(Delivery.id)
    )
    entry = suppression_for(session, config, subscriber.email)
    return {
        "exported_at": _iso(now or utcnow()),
        "subscriber": {
            "email": subscriber.email,
            "name": subscriber.name,
            "created_at": _iso(subscriber.created_at),
        },
        "subscriptions": subscriptions,
        "deliveries": [
            {
                "issue": issue.subject,
                "issue_slug": issue.slug,
                "state": delivery.state.value,
                "attempts": delivery.attempts,
                "sent_at": _iso(delivery.sent_at),
                "smtp_code": delivery.smtp_code,
                "smtp_response": delivery.smtp_response,
            }
            for delivery, issue in deliveries
        ],
        "suppression": (
            {"reason": entry.reason.value, "since": _iso(entry.created_at)} if entry else None
        ),
    }


def erase(session: Session, config: Mapping[str, Any], subscriber: Subscriber) -> None:
    """Delete a reader and their personal data; keep a suppression hash and delivery figures."""
    email = subscriber.email
    entry = suppress(session, config, email, SuppressionReason.ERASURE)
    forms = {email, ascii_address(email)} if email.rpartition("@")[0].isascii() else {email}
    pattern = re.compile("|".join(re.escape(f) for f in forms), re.IGNORECASE)
    # A bounce or complaint entry stays (it still protects the address) but its detail may
    # quote the mail server's reply, which names the address.
    entry.detail = pattern.sub("[erased]", entry.detail)
    for delivery in session.scalars(
        select(Delivery).where(
            Delivery.subscriber_id == subscriber.id, Delivery.smtp_response.is_not(None)
        )
    ):
        delivery.smtp_response = pattern.sub("[erased]", delivery.smtp_response or "")
    # An import's list of broken rows may quote the address (a duplicate, say).
    for job in session.scalars(
        select(ImportJob).where(ImportJob.problems != "").options(undefer(ImportJob.problems))
    ):
        if pattern.search(job.problems):
            job.problems = pattern.sub("[erased]", job.problems)
    engagement.erase_reader(session, config, subscriber.id)
    # Delivery rows keep their figures: the foreign key sets subscriber_id to NULL.
    webhooks.forget_subscriber(session, subscriber.id)
    webhooks.emit(session, "subscriber.erased", f"subscriber:{subscriber.id}",
                  {"subscriber_id": subscriber.id})
    session.delete(subscriber)
    session.flush()


def purge_unconfirmed(
    session: Session,
    older_than: dt.timedelta = dt.timedelta(days=30),
    now: dt.datetime | None = None,
) -> int:
    """Delete signups unconfirmed for older_than (and readers left with none); return the count."""
    cutoff = (now or utcnow()) - older_than
    stale = [
        subscription
        for subscription in session.scalars(
            select(Subscription)
            .where(
                Subscription.status == SubscriptionStatus.PENDING,
                Subscription.created_at < cutoff,
            )
            .options(selectinload(Subscription.consents), selectinload(Subscription.subscriber))
        )
        if all(consent.created_at < cutoff for consent in subscription.consents)
    ]
    for subscription in stale:
        subscriber = subscription.subscriber
        session.delete(subscription)
        session.flush()
        session.refresh(subscriber, ["subscriptions"])
        if not subscriber.subscriptions:
            session.delete(subscriber)
    session.flush()
    return len(stale)
