"""Readers and their subscriptions: signup, confirmation, unsubscribe, preferences, erasure.

Contract:
- Addresses are normalized once, here, with email-validator (`normalize_email`): the
  domain in Unicode (sent as IDNA 2008 ASCII), the whole address lower-cased; non-ASCII
  local parts are refused. Deliverability (DNS) is checked only when
  DIGEST_CHECK_DELIVERABILITY is on.
- `subscribe` validates everything before touching anything (InvalidSignup lists every
  problem by field) and then answers alike for new, pending, confirmed, unsubscribed and
  suppressed addresses; what it did is an Outcome for logs and tests, never for pages.
- Double opt-in: a subscription becomes confirmed only through `confirm` (the
  confirmation link) or `resubscribe` (the never-expiring unsubscribe link, which itself
  proves the mailbox). Each signup is a Consent row; confirming completes the open ones;
  unsubscribing withdraws them with a channel.
- Email is never sent here: requests are recorded through digest.domain.transactional, at most
  one confirmation per address per 24 hours.
- Erasure deletes the reader and every personal row; only a keyed hash stays in the
  suppression list (digest.domain.suppression). A deliberate new signup of an erased address
  works (double opt-in again); bounce, complaint and manual entries keep blocking.
- Editors add readers with double opt-in too (`add_by_editor`): a confirmation email,
  unless an admin records how consent was obtained elsewhere (a required note, kept in
  the consent record), which confirms at once. Unlike `subscribe`, the editor is told
  what happened. `suppress_by_editor` puts an address on the list (reason manual) and
  unsubscribes its reader everywhere.
- Functions take a Session and flush; the view, command or job commits.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload, undefer

from digest.core.db import utcnow
from digest.mail.message import ascii_address
from digest.core.models import (
    Consent,
    ConsentSource,
    Delivery,
    ImportJob,
    Issue,
    Newsletter,
    Section,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
    TransactionalKind,
    TransactionalMail,
)
from digest.domain.suppression import (
    REASON_TEXT,
    blocks_signup,
    lift_erasure,
    suppress,
    suppression_for,
)
from digest.core.tokens import ExpiredToken, Purpose, read_token
from digest.domain.transactional import asked_recently, cancel_pending, request_mail

NAME_MAX = 100
NOTE_MAX = 2000
USER_AGENT_MAX = 512
DEFAULT_CONSENT = "Yes, send me {name} by email. I can unsubscribe at any time with one click."
ACTIVE = (SubscriptionStatus.CONFIRMED, SubscriptionStatus.PAUSED)


class WithdrawalChannel(enum.StrEnum):
    """How a reader withdrew consent (Consent.withdrawal_channel)."""

    ONE_CLICK = "one-click"
    PAGE = "page"
    PREFERENCES = "preferences"
    MAILTO = "mailto"
    COMPLAINT = "complaint"
    EDITOR = "editor"
    API = "api"


class Outcome(enum.StrEnum):
    """What a signup did; never shown to the person signing up."""

    CREATED = "created"
    STILL_PENDING = "still-pending"
    ALREADY_SUBSCRIBED = "already-subscribed"
    REJOINING = "rejoining"
    SUPPRESSED = "suppressed"
    HONEYPOT = "honeypot"


class ConfirmResult(enum.StrEnum):
    """What confirming (or resubscribing) did."""

    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already-confirmed"
    NOTHING_TO_CONFIRM = "nothing-to-confirm"
    SUPPRESSED = "suppressed"


class InvalidEmail(ValueError):
    """An address that cannot be subscribed; the message says why, for the reader."""


class InvalidSignup(ValueError):
    """A signup or preferences form with problems, one message per field."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{k}: {v}" for k, v in errors.items()))
        self.errors = dict(errors)


class LinkGone(LookupError):
    """A genuine link whose subscription no longer exists (the reader erased themselves)."""


@dataclass(frozen=True)
class Signup:
    """What a signup form or API call asked for, and where it came from."""

    email: str
    name: str = ""
    sections: Sequence[str] | None = None  # slugs; None means every section
    consent: bool = False
    consent_version: str | None = None  # the version the form showed, when it says
    honeypot: str = ""
    source: ConsentSource = ConsentSource.FORM
    ip: str | None = None
    user_agent: str | None = None


def normalize_email(address: str, *, check_deliverability: bool = False) -> str:
    """Return the canonical form of an address typed by a person, or raise InvalidEmail."""
    address = (address or "").strip()
    if not address:
        raise InvalidEmail("Please enter your email address.")
    local, at, _domain = address.rpartition("@")
    if at and not local.isascii():
        raise InvalidEmail(
            "We can only deliver to addresses whose part before the @ uses plain letters "
            "(a-z), digits and punctuation. Please use another address."
        )
    try:
        info = validate_email(
            address, check_deliverability=check_deliverability, allow_smtputf8=False
        )
    except EmailNotValidError as exc:
        raise InvalidEmail(str(exc)) from None
    return info.normalized.lower()


def clean_name(name: str) -> str:
    """Return a display name without control characters, or raise InvalidSignup."""
    cleaned = "".join(ch for ch in (name or "") if unicodedata.category(ch)[0] != "C")
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    if len(cleaned) > NAME_MAX:
        raise InvalidSignup({"name": f"Please keep your name under {NAME_MAX} characters."})
    return cleaned


def choose_sections(newsletter: Newsletter, slugs: Sequence[str] | None) -> list[Section]:
    """Return the sections chosen by slug ([] = every section), or raise InvalidSignup."""
    if slugs is None or not newsletter.sections:
        return []
    by_slug = {section.slug: section for section in newsletter.sections}
    unknown = [slug for slug in slugs if slug not in by_slug]
    if unknown:
        raise InvalidSignup({"sections": f"There is no section called {unknown[0]!r}."})
    chosen = [section for section in newsletter.sections if section.slug in set(slugs)]
    if not chosen:
        raise InvalidSignup({"sections": "Please choose at least one section."})
    return [] if len(chosen) == len(newsletter.sections) else chosen


def consent_text(newsletter: Newsletter) -> str:
    """Return the consent statement the signup form shows next to its checkbox."""
    return newsletter.consent_text or DEFAULT_CONSENT.format(name=newsletter.name)


def default_newsletter(session: Session) -> Newsletter | None:
    """Return the newsletter the front page presents (the first one)."""
    return session.scalars(select(Newsletter).order_by(Newsletter.id).limit(1)).first()


def newsletter_by_slug(session: Session, slug: str | None) -> Newsletter | None:
    """Return the newsletter with slug, or the default one when slug is empty."""
    if not slug:
        return default_newsletter(session)
    return session.scalar(select(Newsletter).where(Newsletter.slug == slug))


def _validate(
    config: Mapping[str, Any], newsletter: Newsletter, signup: Signup
) -> tuple[str, str, list[Section]]:
    errors: dict[str, str] = {}
    email = name = ""
    sections: list[Section] = []
    try:
        email = normalize_email(
            signup.email, check_deliverability=bool(config.get("CHECK_DELIVERABILITY"))
        )
    except InvalidEmail as exc:
        errors["email"] = str(exc)
    try:
        name = clean_name(signup.name)
    except InvalidSignup as exc:
        errors.update(exc.errors)
    try:
        sections = choose_sections(newsletter, signup.sections)
    except InvalidSignup as exc:
        errors.update(exc.errors)
    if not signup.consent:
        errors["consent"] = "Please tick the box to say you want to receive the newsletter."
    elif (
        signup.consent_version is not None and signup.consent_version != newsletter.consent_version
    ):
        errors["consent"] = (
            "The wording of this consent changed since the page was loaded. "
            "Please read it again and tick the box."
        )
    if errors:
        raise InvalidSignup(errors)
    return email, name, sections


def _agent(user_agent: str | None) -> str | None:
    return (user_agent or "")[:USER_AGENT_MAX] or None


def _new_consent(
    newsletter: Newsletter,
    source: ConsentSource,
    ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
) -> Consent:
    return Consent(
        source=source,
        ip=ip,
        user_agent=_agent(user_agent),
        consent_text=consent_text(newsletter),
        consent_version=newsletter.consent_version,
        created_at=now,
    )


def _subscriber(session: Session, email: str, name: str, now: dt.datetime) -> Subscriber:
    found = session.scalar(select(Subscriber).where(Subscriber.email == email).with_for_update())
    if found is not None:
        return found
    try:
        with session.begin_nested():
            subscriber = Subscriber(email=email, name=name, created_at=now)
            session.add(subscriber)
    except IntegrityError:
        # Another request created the same reader a moment ago.
        return session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
    return subscriber


def _subscription(
    session: Session, subscriber: Subscriber, newsletter: Newsletter, now: dt.datetime
) -> tuple[Subscription, bool]:
    query = select(Subscription).where(
        Subscription.subscriber_id == subscriber.id, Subscription.newsletter_id == newsletter.id
    )
    found = session.scalar(query.with_for_update())
    if found is not None:
        return found, False
    try:
        with session.begin_nested():
            subscription = Subscription(
                subscriber=subscriber,
                newsletter=newsletter,
                status=SubscriptionStatus.PENDING,
                created_at=now,
            )
            session.add(subscription)
    except IntegrityError:
        return session.scalars(query).one(), False
    return subscription, True


def subscribe(
    session: Session,
    config: Mapping[str, Any],
    newsletter: Newsletter,
    signup: Signup,
    now: dt.datetime | None = None,
) -> Outcome:
    """Record a signup (validated first) and the email it calls for; the answer never differs."""
    if signup.honeypot.strip():
        return Outcome.HONEYPOT
    email, name, sections = _validate(config, newsletter, signup)
    now = now or utcnow()
    if blocks_signup(suppression_for(session, config, email)):
        return Outcome.SUPPRESSED
    subscriber = _subscriber(session, email, name, now)
    subscription, created = _subscription(session, subscriber, newsletter, now)
    if subscription.status in ACTIVE:
        # Nothing changes for a subscribed reader: not even a stranger may edit them.
        if not asked_recently(session, subscriber.id, now):
            request_mail(session, subscription, TransactionalKind.ALREADY, now)
        return Outcome.ALREADY_SUBSCRIBED
    if name and not any(s.status in ACTIVE for s in subscriber.subscriptions):
        subscriber.name = name
    subscription.sections = sections
    subscription.consents.append(
        _new_consent(newsletter, signup.source, signup.ip, signup.user_agent, now)
    )
    if not asked_recently(session, subscriber.id, now):
        request_mail(session, subscription, TransactionalKind.CONFIRM, now)
    session.flush()
    if created:
        return Outcome.CREATED
    if subscription.status is SubscriptionStatus.PENDING:
        return Outcome.STILL_PENDING
    return Outcome.REJOINING


class EditorAdd(enum.StrEnum):
    """What an editor's "add a reader" did; the editor is told."""

    INVITED = "invited"  # pending, a confirmation email is queued
    ALREADY_INVITED = "already-invited"  # pending; a confirmation went out in the last 24 hours
    CONFIRMED = "confirmed"  # consent obtained elsewhere: subscribed now, welcome queued
    ALREADY_SUBSCRIBED = "already-subscribed"  # nothing changed


@dataclass(frozen=True)
class EditorAddition:
    """A reader an editor adds by hand, and how their consent is (to be) obtained."""

    email: str
    name: str = ""
    sections: Sequence[str] | None = None  # slugs; None means every section
    consent_elsewhere: bool = False  # confirmed at once on the note's evidence (admins only)
    note: str = ""
    recorded_by: str = ""  # the editor's address


def clean_note(note: str, what: str) -> str:
    """Return a required editor's note trimmed, or raise InvalidSignup naming what it is for."""
    note = (note or "").strip()
    if not note:
        raise InvalidSignup({"note": f"Please write {what}."})
    if len(note) > NOTE_MAX:
        raise InvalidSignup({"note": f"Please keep the note under {NOTE_MAX} characters."})
    return note


def _suppressed(entry: Suppression) -> str:
    return (
        f"This address is on the suppression list since {entry.created_at:%Y-%m-%d} "
        f"({REASON_TEXT[entry.reason]}), so it is never mailed."
    )


def add_by_editor(
    session: Session,
    config: Mapping[str, Any],
    newsletter: Newsletter,
    addition: EditorAddition,
    now: dt.datetime | None = None,
) -> tuple[EditorAdd, Subscription]:
    """Add a reader by hand: a confirmation email, or confirmed now on recorded evidence."""
    errors: dict[str, str] = {}
    email, name, sections, note = "", "", [], addition.note.strip()
    try:
        email, name, sections = _validate(
            config,
            newsletter,
            Signup(addition.email, addition.name, addition.sections, consent=True),
        )
    except InvalidSignup as exc:
        errors.update(exc.errors)
    if addition.consent_elsewhere or note:
        try:
            note = clean_note(addition.note, "how and when this reader agreed")
        except InvalidSignup as exc:
            errors.update(exc.errors)
    if errors:
        raise InvalidSignup(errors)
    now = now or utcnow()
    entry = suppression_for(session, config, email)
    if entry is not None and (blocks_signup(entry) or addition.consent_elsewhere):
        message = _suppressed(entry)
        if not blocks_signup(entry):
            message += " Only the reader can undo that: send them a confirmation email instead."
        raise InvalidSignup({"email": message})
    subscriber = _subscriber(session, email, name, now)
    subscription, _created = _subscription(session, subscriber, newsletter, now)
    if subscription.status in ACTIVE:
        return EditorAdd.ALREADY_SUBSCRIBED, subscription
    if name and not any(s.status in ACTIVE for s in subscriber.subscriptions):
        subscriber.name = name
    subscription.sections = sections
    consent = _new_consent(newsletter, ConsentSource.EDITOR, None, None, now)
    consent.recorded_by = addition.recorded_by or None
    consent.note = note
    subscription.consents.append(consent)
    if addition.consent_elsewhere:
        _activate(session, config, subscription, [consent], None, None, now)
        request_mail(session, subscription, TransactionalKind.WELCOME, now)
        session.flush()
        return EditorAdd.CONFIRMED, subscription
    if asked_recently(session, subscriber.id, now):
        session.flush()
        return EditorAdd.ALREADY_INVITED, subscription
    request_mail(session, subscription, TransactionalKind.CONFIRM, now)
    session.flush()
    return EditorAdd.INVITED, subscription


def suppress_by_editor(
    session: Session,
    config: Mapping[str, Any],
    address: str,
    note: str,
    recorded_by: str,
    now: dt.datetime | None = None,
) -> Suppression:
    """Never mail an address again (reason manual, with a note); unsubscribe its reader."""
    errors: dict[str, str] = {}
    try:
        email = normalize_email(address)
    except InvalidEmail as exc:
        errors["email"] = str(exc)
    try:
        note = clean_note(note, "why this address must never be mailed")
    except InvalidSignup as exc:
        errors.update(exc.errors)
    if errors:
        raise InvalidSignup(errors)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        return suppress(session, config, email, SuppressionReason.MANUAL, note, recorded_by)
    return suppress_reader(session, config, subscriber, note, WithdrawalChannel.EDITOR, recorded_by)


def from_token(
    session: Session,
    config: Mapping[str, Any],
    purpose: Purpose,
    token: str,
    *,
    for_update: bool = False,
    allow_expired: bool = False,
) -> Subscription:
    """Return the subscription a signed link names; raise BadToken, ExpiredToken or LinkGone."""
    try:
        uid = read_token(config["SECRET_KEY"], purpose, token)
    except ExpiredToken as exc:
        if not allow_expired:
            raise
        uid = exc.uid
    query = (
        select(Subscription)
        .where(Subscription.uid == uid)
        .options(selectinload(Subscription.consents), selectinload(Subscription.sections))
    )
    subscription = session.scalar(query.with_for_update() if for_update else query)
    if subscription is None:
        raise LinkGone(uid)
    return subscription


def open_consents(subscription: Subscription) -> list[Consent]:
    """Return the consents given but neither confirmed nor withdrawn yet."""
    return [c for c in subscription.consents if c.confirmed_at is None and c.withdrawn_at is None]


def awaiting_confirmation(subscription: Subscription) -> bool:
    """Return whether a confirmation link for this subscription would change anything."""
    return subscription.status not in ACTIVE and bool(open_consents(subscription))


def _activate(
    session: Session,
    config: Mapping[str, Any],
    subscription: Subscription,
    consents: Sequence[Consent],
    ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
) -> ConfirmResult:
    email = subscription.subscriber.email
    if blocks_signup(suppression_for(session, config, email)):
        return ConfirmResult.SUPPRESSED
    lift_erasure(session, config, email)
    for consent in consents:
        consent.confirmed_at = now
        consent.confirmed_ip = ip
        consent.confirmed_user_agent = _agent(user_agent)
    subscription.status = SubscriptionStatus.CONFIRMED
    subscription.confirmed_at = now
    subscription.paused_at = None
    subscription.unsubscribed_at = None
    return ConfirmResult.CONFIRMED


def confirm(
    session: Session,
    config: Mapping[str, Any],
    subscription: Subscription,
    ip: str | None = None,
    user_agent: str | None = None,
    now: dt.datetime | None = None,
) -> ConfirmResult:
    """Confirm a signup (idempotent): subscription confirmed, consents completed, welcome due."""
    if subscription.status in ACTIVE:
        return ConfirmResult.ALREADY_CONFIRMED
    waiting = open_consents(subscription)
    if not waiting:
        return ConfirmResult.NOTHING_TO_CONFIRM
    now = now or utcnow()
    result = _activate(session, config, subscription, waiting, ip, user_agent, now)
    if result is ConfirmResult.CONFIRMED:
        request_mail(session, subscription, TransactionalKind.WELCOME, now)
    session.flush()
    return result


def renew_confirmation(
    session: Session, subscription: Subscription, now: dt.datetime | None = None
) -> bool:
    """Queue a fresh confirmation link after an expired one (within the 24-hour budget)."""
    now = now or utcnow()
    if not awaiting_confirmation(subscription):
        return False
    if asked_recently(session, subscription.subscriber_id, now):
        return False
    request_mail(session, subscription, TransactionalKind.CONFIRM, now)
    return True


def unsubscribe(
    session: Session,
    subscription: Subscription,
    channel: WithdrawalChannel | str,
    now: dt.datetime | None = None,
) -> bool:
    """Unsubscribe at once and withdraw every consent (idempotent); return whether it changed."""
    now = now or utcnow()
    changed = subscription.status is not SubscriptionStatus.UNSUBSCRIBED
    if changed:
        subscription.status = SubscriptionStatus.UNSUBSCRIBED
        subscription.unsubscribed_at = now
        subscription.paused_at = None
    for consent in subscription.consents:
        if consent.withdrawn_at is None:
            consent.withdrawn_at = now
            consent.withdrawal_channel = str(channel)
    cancel_pending(session, subscription, f"unsubscribed ({channel})")
    session.flush()
    return changed


def resubscribe(
    session: Session,
    config: Mapping[str, Any],
    subscription: Subscription,
    ip: str | None = None,
    user_agent: str | None = None,
    now: dt.datetime | None = None,
) -> ConfirmResult:
    """Subscribe again from a signed link: a new consent, confirmed at once by the link itself."""
    if subscription.status is not SubscriptionStatus.UNSUBSCRIBED:
        return ConfirmResult.ALREADY_CONFIRMED
    now = now or utcnow()
    consent = _new_consent(subscription.newsletter, ConsentSource.FORM, ip, user_agent, now)
    result = _activate(session, config, subscription, [consent], ip, user_agent, now)
    if result is ConfirmResult.CONFIRMED:
        subscription.consents.append(consent)
    session.flush()
    return result


def update_preferences(
    session: Session, subscription: Subscription, name: str, sections: Sequence[str]
) -> None:
    """Change the reader's name and chosen sections, or raise InvalidSignup."""
    errors: dict[str, str] = {}
    cleaned = chosen = None
    try:
        cleaned = clean_name(name)
    except InvalidSignup as exc:
        errors.update(exc.errors)
    try:
        chosen = choose_sections(subscription.newsletter, sections)
    except InvalidSignup as exc:
        errors.update(exc.errors)
    if errors or cleaned is None or chosen is None:
        raise InvalidSignup(errors)
    subscription.subscriber.name = cleaned
    subscription.sections = chosen
    session.flush()


def pause(session: Session, subscription: Subscription, now: dt.datetime | None = None) -> bool:
    """Stop sending to a confirmed reader until they resume; return whether it changed."""
    if subscription.status is not SubscriptionStatus.CONFIRMED:
        return False
    subscription.status = SubscriptionStatus.PAUSED
    subscription.paused_at = now or utcnow()
    session.flush()
    return True


def resume(session: Session, subscription: Subscription) -> bool:
    """Send again to a paused reader; return whether it changed."""
    if subscription.status is not SubscriptionStatus.PAUSED:
        return False
    subscription.status = SubscriptionStatus.CONFIRMED
    subscription.paused_at = None
    session.flush()
    return True


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
    # Delivery rows keep their figures: the foreign key sets subscriber_id to NULL.
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


@dataclass(frozen=True)
class ReaderActions:
    """What a bounce, complaint or mailto request does to a reader (digest.domain.bounces' actions)."""

    config: Mapping[str, Any]

    def suppress(
        self, session: Session, subscriber: Subscriber, reason: SuppressionReason, detail: str
    ) -> None:
        """Never mail the reader's address again; a complaint also withdraws every consent."""
        suppress(session, self.config, subscriber.email, reason, detail)
        if reason is SuppressionReason.COMPLAINT:
            for subscription in subscriber.subscriptions:
                unsubscribe(session, subscription, WithdrawalChannel.COMPLAINT)

    def unsubscribe(self, session: Session, subscription: Subscription, channel: str) -> None:
        """End one subscription at once, recording the channel (idempotent)."""
        unsubscribe(session, subscription, channel)


def add_reader(
    session: Session,
    config: Mapping[str, Any],
    newsletter: Newsletter,
    signup: Signup,
    now: dt.datetime | None = None,
) -> tuple[Outcome, Subscriber]:
    """Sign a reader up for an editor, by the public rules (double opt-in); return the reader.

    Unlike the public answer, an editor learns what happened: a suppressed address raises
    InvalidSignup naming the reason.
    """
    outcome = subscribe(session, config, newsletter, signup, now)
    email = normalize_email(signup.email)
    entry = suppression_for(session, config, email) if outcome is Outcome.SUPPRESSED else None
    if entry is not None:
        raise InvalidSignup({"email": _suppressed(entry)})
    return outcome, session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def subscription_of(
    session: Session, subscriber_id: int, newsletter: Newsletter
) -> Subscription | None:
    """Return a reader's subscription to newsletter, locked for a change, or None."""
    return session.scalar(
        select(Subscription)
        .where(Subscription.subscriber_id == subscriber_id, Subscription.newsletter_id == newsletter.id)
        .options(selectinload(Subscription.consents))
        .with_for_update()
    )


def suppress_reader(
    session: Session,
    config: Mapping[str, Any],
    subscriber: Subscriber,
    detail: str,
    channel: WithdrawalChannel,
    recorded_by: str | None = None,
) -> Suppression:
    """Never mail a reader again (a manual entry) and end each subscription, withdrawing consent."""
    entry = suppress(session, config, subscriber.email, SuppressionReason.MANUAL, detail, recorded_by)
    for subscription in subscriber.subscriptions:
        unsubscribe(session, subscription, channel)
    return entry
