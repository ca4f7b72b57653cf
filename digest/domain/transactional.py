"""Transactional mail (confirmation, welcome, "already subscribed"): recorded, rendered.

Contract:
- A request never sends mail. It records a TransactionalMail row (`request_mail`) in
  the caller's transaction, so the answer takes the same time whatever the address's
  state, and a confirmation survives an SMTP outage or a crash. The runner in
  digest.engine.transactional sends what is due.
- `render` builds one email from templates/emails/<kind>.{subject.txt,txt,html} on the
  shared email layout, in the newsletter's language (what readers share is rendered and
  CSS-inlined once per process and language, see digest.mail.stencil; each reader's name
  and links are filled in); `skip_reason`
  says why a recorded email must no longer go out.
- The envelope sender is the VERP address with reference "t<ref>" (the row's random
  reference, never reused) signed for the recipient's address; a
  bounce or complaint that comes back to it (digest.domain.bounces) marks the email failed
  (`mark_returned`).
- Every function works in the caller's Session; none commits.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    Issue,
    IssueStatus,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalKind,
    TransactionalMail,
    TransactionalState,
)
from digest.core.resources import template_folders, translation_folders
from digest.core.tokens import CONFIRM_MAX_AGE
from digest.domain import identity, links
from digest.domain.look import look_of
from digest.mail.look import DEFAULT_LOOK, Look
from digest.mail.message import Mail, ascii_address, format_mailbox, make_message_id
from digest.mail.render import first_name
from digest.mail.stencil import Slots, Stencil, email_templates, render_subject

log = logging.getLogger(__name__)

# At most one confirmation (or "already subscribed") email per address in this window.
CONFIRMATION_WINDOW = dt.timedelta(hours=24)
_TO_ASK = (TransactionalKind.CONFIRM, TransactionalKind.ALREADY)


def request_mail(
    session: Session,
    subscription: Subscription,
    kind: TransactionalKind,
    now: dt.datetime | None = None,
) -> TransactionalMail:
    """Record that an email of kind is due for subscription (written by the session's next
    flush, with the rest of the change that asks for it); the sender picks it up."""
    now = now or utcnow()
    mail = TransactionalMail(subscription=subscription, kind=kind, created_at=now, due_at=now)
    session.add(mail)
    return mail


def asked_recently(session: Session, subscriber_id: int, now: dt.datetime | None = None) -> bool:
    """Return whether this address was sent (or queued) a confirmation in the last 24 hours."""
    since = (now or utcnow()) - CONFIRMATION_WINDOW
    found = session.scalar(
        select(TransactionalMail.id)
        .join(Subscription, TransactionalMail.subscription_id == Subscription.id)
        .where(
            Subscription.subscriber_id == subscriber_id,
            TransactionalMail.kind.in_(_TO_ASK),
            TransactionalMail.created_at >= since,
        )
        .limit(1)
    )
    return found is not None


def cancel_pending(session: Session, subscription: Subscription, reason: str) -> None:
    """Mark every unsent email of a subscription as skipped (after an unsubscribe, say)."""
    session.execute(
        update(TransactionalMail)
        .where(
            TransactionalMail.subscription_id == subscription.id,
            TransactionalMail.state == TransactionalState.PENDING,
        )
        .values(state=TransactionalState.SKIPPED, last_error=reason, lease_until=None)
        .execution_options(synchronize_session=False)
    )


@dataclass(frozen=True)
class Schedule:
    """When a newsletter goes out, as the welcome email says it (emails/_macros.txt)."""

    weekday: int  # 1 (Monday) to 7
    time: str  # "08:00"
    zone: str  # "Europe/Berlin"


def schedule_of(subscription: Subscription) -> Schedule | None:
    """Return when the subscription's newsletter goes out (None: it has no weekly send)."""
    newsletter = subscription.newsletter
    if newsletter.send_weekday is None or not newsletter.send_time:
        return None
    return Schedule((newsletter.send_weekday - 1) % 7 + 1, newsletter.send_time, newsletter.time_zone)


def _latest_issue(session: Session, subscription: Subscription) -> Issue | None:
    return session.scalars(
        select(Issue)
        .where(Issue.newsletter_id == subscription.newsletter_id, Issue.status == IssueStatus.SENT)
        .order_by(Issue.sent_at.desc(), Issue.id.desc())
        .limit(1)
    ).first()


# Each reader's values in these emails; everything else is shared and rendered once.
_SLOTS = Slots(
    {
        "name": "name",
        "first_name": "first_name",
        "email": "email",
        "confirm_url": "confirm_url",
        "preferences_url": "preferences_url",
        "unsubscribe_url": "unsubscribe_url",
    }
)
_TEMPLATES = {
    TransactionalKind.CONFIRM: "confirm",
    TransactionalKind.WELCOME: "welcome",
    TransactionalKind.ALREADY: "confirm_already",
}


@dataclass(frozen=True)
class _NewsletterFields:
    name: str
    postal_address: str


@dataclass(frozen=True)
class _Shared:
    """What an email shows every reader alike: the key under which it is rendered once."""

    kind: TransactionalKind
    newsletter: _NewsletterFields
    site_url: str
    folders: tuple[Path, ...]  # digest.core.resources.template_folders
    catalogues: tuple[Path, ...]  # digest.core.resources.translation_folders
    language: str  # the newsletter's
    look: Look = DEFAULT_LOOK
    named: bool = False
    sections: tuple[str, ...] = ()
    all_sections: tuple[str, ...] = ()
    schedule: Schedule | None = None
    status: str = ""
    latest_issue_subject: str = ""
    latest_issue_url: str = ""


def _context(shared: _Shared) -> dict[str, Any]:
    context: dict[str, Any] = {
        "newsletter": shared.newsletter, "site_url": shared.site_url, "look": shared.look
    }
    if shared.kind is TransactionalKind.CONFIRM:
        # Nothing the signup form supplied goes into this email (subscription bombing).
        context["expires_days"] = CONFIRM_MAX_AGE // 86400
        return context
    context.update(
        sections=shared.sections,
        all_sections=shared.all_sections,
        schedule=shared.schedule,
        status=shared.status,
        latest_issue_subject=shared.latest_issue_subject,
        latest_issue_url=shared.latest_issue_url,
    )
    return context


@functools.lru_cache(maxsize=64)
def _stencil(shared: _Shared) -> tuple[str, Stencil]:
    """Return (subject, stencil) of an email, rendered and CSS-inlined once per process
    (and language)."""
    env = email_templates(*shared.folders, language=shared.language, catalogues=shared.catalogues)
    name = _TEMPLATES[shared.kind]
    context = _context(shared)
    subject = render_subject(env, name, context)  # no reader's value may reach a subject
    if shared.kind is TransactionalKind.CONFIRM:
        context["confirm_url"] = _SLOTS["confirm_url"]
    else:
        context.update(
            name=_SLOTS["name"] if shared.named else "",
            first_name=_SLOTS["first_name"] if shared.named else "",
            email=_SLOTS["email"],
            preferences_url=_SLOTS["preferences_url"],
            unsubscribe_url=_SLOTS["unsubscribe_url"],
        )
    return subject, _SLOTS.stencil(env, name, context)


def _shared_and_values(
    session: Session, config: Mapping[str, Any], mail: TransactionalMail
) -> tuple[_Shared, dict[str, str]]:
    subscription = mail.subscription
    newsletter = subscription.newsletter
    fields = _NewsletterFields(newsletter.name, newsletter.postal_address.strip())
    folders, look = template_folders(config), look_of(newsletter)
    catalogues = translation_folders(config)
    if mail.kind is TransactionalKind.CONFIRM:
        shared = _Shared(mail.kind, fields, config["BASE_URL"], folders, catalogues,
                         newsletter.language, look)
        # The link names the latest signup this email answers: its changes, no later ones.
        asked = [
            c for c in subscription.consents
            if c.confirmed_at is None and c.withdrawn_at is None and c.created_at <= mail.created_at
        ]
        consent_id = asked[-1].id if asked else None
        return shared, {"confirm_url": links.confirm_url(config, subscription.uid, consent_id)}
    name = " ".join(subscription.subscriber.name.split())
    latest = _latest_issue(session, subscription)
    shared = _Shared(
        mail.kind,
        fields,
        config["BASE_URL"],
        folders,
        catalogues,
        newsletter.language,
        look,
        named=bool(name),
        sections=tuple(section.name for section in subscription.sections),
        all_sections=tuple(section.name for section in newsletter.sections),
        schedule=schedule_of(subscription),
        status=subscription.status.value,
        latest_issue_subject=latest.subject if latest else "",
        latest_issue_url=links.issue_url(config, newsletter.slug, latest.slug) if latest else "",
    )
    values = {
        "name": name,
        "first_name": first_name(name),
        "email": subscription.subscriber.email,
        "preferences_url": links.preferences_url(config, subscription.uid),
        "unsubscribe_url": links.unsubscribe_url(config, subscription.uid),
    }
    return shared, values


def _filled(shared: _Shared, values: Mapping[str, str]) -> tuple[str, str, str]:
    """Return (subject, HTML, text) from the operator's override when it renders and keeps
    the email's link in both parts, else from the packaged template, logging why: a reader
    is never left without their confirmation email for a broken override."""
    key = "confirm_url" if shared.kind is TransactionalKind.CONFIRM else "preferences_url"
    packaged = replace(shared, folders=shared.folders[-1:])
    if shared.folders != packaged.folders:
        try:
            subject, stencil = _stencil(shared)
            html, text = stencil.filled(values)
        except Exception as exc:  # whatever an operator's template does wrong, the mail goes
            log.warning("The %s email's template override fails to render (%s: %s); the "
                        "built-in template is used instead.", _TEMPLATES[shared.kind],
                        type(exc).__name__, exc)
        else:
            if values[key] in html and values[key] in text:
                return subject, html, text
            log.warning("The %s email's template override drops the %s from its %s part; the "
                        "built-in template is used instead.", _TEMPLATES[shared.kind],
                        "confirmation link" if key == "confirm_url" else "preferences link",
                        "HTML" if values[key] not in html else "text")
    subject, stencil = _stencil(packaged)
    html, text = stencil.filled(values)
    return subject, html, text


@dataclass(frozen=True)
class Rendered:
    """One transactional email, ready for the wire."""

    envelope_from: str
    recipient: str
    data: bytes


def render(session: Session, config: Mapping[str, Any], mail: TransactionalMail) -> Rendered:
    """Render a transactional email on the shared layout, with headers and envelope."""
    shared, values = _shared_and_values(session, config, mail)
    subject, html, text = _filled(shared, values)
    subscription = mail.subscription
    newsletter = subscription.newsletter
    address = subscription.subscriber.email
    headers: list[tuple[str, str]] = []
    if mail.kind is TransactionalKind.CONFIRM:
        to = ascii_address(address)
        headers.append(("Auto-Submitted", "auto-generated"))
    else:
        to = format_mailbox(values["name"], address)
        headers.extend(identity.list_headers(config, newsletter, subscription.uid))
    headers.append(
        ("Feedback-ID", identity.feedback_id(config, mail.kind.value, newsletter, "reader"))
    )
    message = Mail(
        from_=identity.from_header(config, newsletter),
        to=to,
        subject=subject,
        text=text,
        html=html,
        headers=headers,
        message_id=make_message_id(links.mail_domain(config)),
        reply_to=newsletter.reply_to,
    )
    return Rendered(
        identity.verp_address(config, f"t{mail.ref}", address),
        ascii_address(address),
        message.as_bytes(),
    )


def skip_reason(mail: TransactionalMail, listed: SuppressionReason | None) -> str | None:
    """Return why this email must not go out (any more), or None if it still should; listed
    is why its address is on the suppression list, if it is."""
    subscription = mail.subscription
    if mail.kind is TransactionalKind.CONFIRM:
        if listed is not None and listed is not SuppressionReason.ERASURE:
            return "the address is on the suppression list"
        if subscription.status in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.PAUSED):
            return "already confirmed"
        if not any(
            c.confirmed_at is None and c.withdrawn_at is None for c in subscription.consents
        ):
            return "no signup is waiting for confirmation"
        return None
    if listed is not None:
        return "the address is on the suppression list"
    if subscription.status not in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.PAUSED):
        return f"the subscription is {subscription.status.value}"
    return None


def mark_returned(session: Session, mail: TransactionalMail, detail: str) -> None:
    """Record that a sent email came back (a bounce report or a complaint): it failed."""
    mail.state = TransactionalState.FAILED
    mail.last_error = f"returned: {detail}"[:2000]
    mail.lease_until = None
    session.flush()
