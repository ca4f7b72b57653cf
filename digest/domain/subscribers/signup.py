"""Signup and the reader's own choices: subscribe, confirm, unsubscribe, resubscribe, preferences.

Contract:
- Addresses are normalized once, here, with email-validator (`normalize_email`): the
  domain in Unicode (sent as IDNA 2008 ASCII), the whole address lower-cased; non-ASCII
  local parts are refused. Deliverability (DNS) is checked only when
  DIGEST_CHECK_DELIVERABILITY is on.
- A public signup takes one path whatever the address's state, by construction:
  `signup_request` validates everything (`Invalid` lists every problem by field) and
  returns the SignupRequest row `record_signups` writes, reading nothing about the
  address; the engine then calls `take_new_readers` and `take_request`, which look the
  address up and act for new, pending, confirmed, unsubscribed and suppressed alike. `subscribe` does both at once (editors, the CLI);
  what either did is a SignupOutcome for logs and tests, never for pages.
- Double opt-in: a subscription becomes confirmed only through `confirm` (the
  confirmation link) or `resubscribe` (the never-expiring unsubscribe link, which itself
  proves the mailbox). Each signup is a Consent row; confirming completes the open ones;
  unsubscribing withdraws them with a channel.
- Anyone can type an address, so a signup never edits an existing reader: a new name or
  sections for a pending or unsubscribed subscription are kept on its Consent and take
  effect only through the confirmation link that names that signup (`consent_named`),
  which only the mailbox's owner receives; a subscribed reader is never changed.
- Email is never sent here: requests are recorded through digest.domain.transactional, at
  most one confirmation per address per 24 hours.
- A deliberate new signup of an erased address works (double opt-in again); bounce,
  complaint and manual suppressions keep blocking (digest.domain.suppression).
- Functions take a Session and flush; the view, command or job commits.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from email_validator import EmailNotValidError, EmailUndeliverableError, validate_email
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, selectinload

from digest.core.db import utcnow
from digest.core.models import (
    Consent,
    ConsentSource,
    Newsletter,
    Section,
    SignupRequest,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SubscriptionStatus,
    TransactionalKind,
    TransactionalMail,
)
from digest.core.resources import translation_folders
from digest.core.tokens import ExpiredToken, Purpose, read_token
from digest.core.translatable import N_
from digest.core.validation import Invalid, find_control_character
from digest.domain import webhooks
from digest.domain.links import CONSENT_MARK
from digest.domain.suppression import (
    blocks_signup,
    email_hash,
    lift_erasure,
    suppressed_hashes,
    suppression_for,
)
from digest.domain.transactional import asked_recently, cancel_pending, request_mail
from digest.mail.language import translations

NAME_MAX = 100
LOCAL_PART_MAX = 64  # RFC 5321: servers refuse more before the @
USER_AGENT_MAX = 512
# Translators: legal wording, to be reviewed: the consent a reader gives by ticking the box
# when the editor wrote none; it is stored, as shown, with every signup.
DEFAULT_CONSENT = N_("Yes, send me %(name)s by email. I can unsubscribe at any time with one click.")
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


class SignupOutcome(enum.StrEnum):
    """What a signup did; never shown to the person signing up."""

    CREATED = "created"
    STILL_PENDING = "still-pending"
    ALREADY_SUBSCRIBED = "already-subscribed"
    REJOINING = "rejoining"
    SUPPRESSED = "suppressed"
    HONEYPOT = "honeypot"
    NEWSLETTER_GONE = "newsletter-gone"


class ConfirmResult(enum.StrEnum):
    """What confirming (or resubscribing) did."""

    CONFIRMED = "confirmed"
    ALREADY_CONFIRMED = "already-confirmed"
    NOTHING_TO_CONFIRM = "nothing-to-confirm"
    SUPPRESSED = "suppressed"


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
    """Return the canonical form of an address typed by a person, or raise Invalid (email)."""
    address = (address or "").strip()
    if not address:
        raise Invalid({"email": N_("Please enter your email address.")})
    local, at, domain = address.rpartition("@")
    if not (at and local and domain):
        raise Invalid({"email": N_(
            "An email address has a name, an @ and a domain, such as name@example.com."
        )})
    if not local.isascii():
        raise Invalid({"email": N_(
            "We can only deliver to addresses whose part before the @ uses plain letters "
            "(a-z), digits and punctuation. Please use another address."
        )})
    if len(local) > LOCAL_PART_MAX:
        raise Invalid({"email": N_(
            "This address is too long before the @-sign: mail servers accept at most "
            "%(max)s characters there.", max=LOCAL_PART_MAX
        )})
    try:
        normalized = (
            validate_email(address, check_deliverability=True, allow_smtputf8=False, strict=True).normalized
            if check_deliverability else _validated(address)
        )
    except EmailUndeliverableError:
        raise Invalid({"email": N_(
            "The domain %(domain)s does not receive email. Please check the address for typos.",
            domain=domain,
        )}) from None
    except EmailNotValidError:
        # The library's own English would reach readers untranslated: say in our words
        # which part is wrong, trying each with a part known to be good.
        raise Invalid({"email": _syntax_problem(local, domain)}) from None
    return normalized.lower()


@lru_cache(maxsize=1024)
def _validated(address: str) -> str:
    # Remembered (the syntax only; a DNS answer may change): a signup checks its address
    # at the door and again when recorded, at a tenth of a millisecond each. Refusals
    # (raised) are not kept.
    return validate_email(address, check_deliverability=False, allow_smtputf8=False, strict=True).normalized


def _valid(address: str) -> bool:
    try:
        validate_email(address, check_deliverability=False, allow_smtputf8=False, strict=True)
    except EmailNotValidError:
        return False
    return True


def _syntax_problem(local: str, domain: str) -> str:
    if not _valid(f"name@{domain}"):
        return N_("The part after the @ is not a valid domain name (such as example.com). "
                  "Please check it for typos.")
    if not _valid(f"{local}@example.com"):
        return N_("The part before the @ has a character an email address cannot have "
                  "(such as a space or a second @). Please check it for typos.")
    return N_("This is not a valid email address. Please check it for typos.")


def clean_name(name: str) -> str:
    """Return a display name on one line, or raise Invalid (name): too long, control characters."""
    found = find_control_character(name or "")
    if found is not None:
        code = f"U+{ord(found.group()):04X}"
        raise Invalid({"name": N_(
            "The name must not contain control characters; it has %(code)s at position "
            "%(position)s, an invisible character: remove it and try again.",
            code=code, position=found.start() + 1,
        )})
    cleaned = "".join(ch for ch in (name or "") if unicodedata.category(ch)[0] != "C")
    cleaned = re.sub(r"\s+", " ", cleaned).strip()
    if len(cleaned) > NAME_MAX:
        raise Invalid({"name": N_("Please keep your name under %(max)s characters.", max=NAME_MAX)})
    return cleaned


def choose_sections(newsletter: Newsletter, slugs: Sequence[str] | None) -> list[Section]:
    """Return the sections chosen by slug ([] = every section), or raise Invalid (sections)."""
    if slugs is None or not newsletter.sections:
        return []
    by_slug = {section.slug: section for section in newsletter.sections}
    unknown = [slug for slug in slugs if slug not in by_slug]
    if unknown:
        raise Invalid({"sections": N_("There is no section called “%(name)s”.", name=unknown[0])})
    chosen = [section for section in newsletter.sections if section.slug in set(slugs)]
    if not chosen:
        raise Invalid({"sections": N_("Please choose at least one section.")})
    return [] if len(chosen) == len(newsletter.sections) else chosen


def consent_text(config: Mapping[str, Any], newsletter: Newsletter) -> str:
    """Return the consent statement the signup form shows next to its checkbox, the default
    one in the newsletter's language when the editor wrote none (as stored with a signup)."""
    if newsletter.consent_text:
        return newsletter.consent_text
    catalogue = translations(newsletter.language, "messages", *translation_folders(config))
    return catalogue.gettext(DEFAULT_CONSENT.msgid) % {"name": newsletter.name}


def check_signup(
    config: Mapping[str, Any], newsletter: Newsletter, signup: Signup
) -> tuple[str, str, list[Section]]:
    """Return a signup's address, name and sections, or raise Invalid listing every problem."""
    errors: dict[str, str] = {}
    email = name = ""
    sections: list[Section] = []
    try:
        email = normalize_email(
            signup.email, check_deliverability=bool(config.get("CHECK_DELIVERABILITY"))
        )
    except Invalid as exc:
        errors.update(exc.errors)
    try:
        name = clean_name(signup.name)
    except Invalid as exc:
        errors.update(exc.errors)
    try:
        sections = choose_sections(newsletter, signup.sections)
    except Invalid as exc:
        errors.update(exc.errors)
    if not signup.consent:
        errors["consent"] = N_("Please tick the box to say you want to receive the newsletter.")
    elif (
        signup.consent_version is not None and signup.consent_version != newsletter.consent_version
    ):
        errors["consent"] = N_(
            "The wording of this consent changed since the page was loaded. "
            "Please read it again and tick the box."
        )
    if errors:
        raise Invalid(errors)
    return email, name, sections


def _agent(user_agent: str | None) -> str | None:
    return (user_agent or "")[:USER_AGENT_MAX] or None


def new_consent(
    config: Mapping[str, Any],
    newsletter: Newsletter,
    source: ConsentSource,
    ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
) -> Consent:
    """Return a consent given now to the newsletter's current wording (not added yet)."""
    return Consent(
        source=source,
        ip=ip,
        user_agent=_agent(user_agent),
        consent_text=consent_text(config, newsletter),
        consent_version=newsletter.consent_version,
        created_at=now,
    )


def reader_for(
    session: Session, email: str, name: str, now: dt.datetime
) -> tuple[Subscriber, bool]:
    """Return the reader with this address, locked, creating them if there is none, and if new."""
    found = session.scalar(select(Subscriber).where(Subscriber.email == email).with_for_update())
    if found is not None:
        return found, False
    try:
        with session.begin_nested():
            subscriber = Subscriber(email=email, name=name, created_at=now)
            session.add(subscriber)
    except IntegrityError:
        # Another request created the same reader a moment ago.
        return session.scalars(select(Subscriber).where(Subscriber.email == email)).one(), False
    return subscriber, True


def subscription_for(
    session: Session, subscriber: Subscriber, newsletter: Newsletter, now: dt.datetime
) -> tuple[Subscription, bool]:
    """Return the reader's subscription to newsletter, locked (a new one pending), and if new."""
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
    webhooks.subscriber_event(session, "subscriber.created", subscription, now)
    return subscription, True


def signup_request(
    config: Mapping[str, Any],
    newsletter: Newsletter,
    signup: Signup,
    now: dt.datetime | None = None,
) -> dict[str, Any] | None:
    """Check a signup and return the signup_request row that records it for the engine,
    whatever the address's state (None for a filled-in honeypot: answered alike, recorded
    nowhere); raise Invalid listing every problem. `record_signups` writes it."""
    if signup.honeypot.strip():
        return None
    email, name, sections = check_signup(config, newsletter, signup)
    return {
        "newsletter_id": newsletter.id,
        "email": email,
        "name": name,
        "section_ids": [section.id for section in sections],
        "source": signup.source,
        "ip": signup.ip,
        "user_agent": _agent(signup.user_agent),
        "consent_text": consent_text(config, newsletter),
        "consent_version": newsletter.consent_version,
        "created_at": now or utcnow(),
    }


_RECORD = insert(SignupRequest)  # built once: every request of a burst runs it


def record_signups(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Record checked signups (`signup_request`) for the engine: one statement for them all."""
    session.connection().execute(_RECORD, list(rows))


def take_request(
    session: Session,
    config: Mapping[str, Any],
    request: SignupRequest,
    now: dt.datetime | None = None,
) -> SignupOutcome:
    """Act on a recorded signup request as `subscribe` would, then delete the request."""
    newsletter = session.get(Newsletter, request.newsletter_id)
    if newsletter is None:  # deleted since
        session.delete(request)
        session.flush()
        return SignupOutcome.NEWSLETTER_GONE
    chosen = set(request.section_ids)
    # A section deleted since drops out; none left means every section.
    sections = [section for section in newsletter.sections if section.id in chosen]
    consent = Consent(
        source=request.source,
        ip=request.ip,
        user_agent=request.user_agent,
        consent_text=request.consent_text,
        consent_version=request.consent_version,
        created_at=request.created_at,
    )
    outcome = _apply(session, config, newsletter, request.email, request.name, sections, consent,
                     now or utcnow())
    # Deleted last, so it is written with the signup's own rows (one flush less a signup).
    session.delete(request)
    return outcome


def take_new_readers(
    session: Session,
    config: Mapping[str, Any],
    requests: Sequence[SignupRequest],
    now: dt.datetime | None = None,
) -> list[SignupRequest]:
    """Act at once on the requests whose address is new (most of a burst) as take_request
    would, a few statements for them all, and delete them; return the others, in order,
    for take_request one by one (known or suppressed-looking addresses, a second request
    for one address, a deleted newsletter)."""
    now = now or utcnow()
    newsletters = {n.id: n for n in session.scalars(
        select(Newsletter).where(Newsletter.id.in_({r.newsletter_id for r in requests}))
        .options(selectinload(Newsletter.sections))
    )}
    hashes = {r.email: email_hash(config, r.email, canonical=True) for r in requests}
    # Any entry, even an erasure's, sends the address the one-by-one way.
    listed = suppressed_hashes(session, hashes.values())
    known = set(session.scalars(select(Subscriber.email).where(Subscriber.email.in_(hashes))))
    fresh: dict[str, SignupRequest] = {}
    others: list[SignupRequest] = []
    for request in requests:
        if (request.email in fresh or request.email in known or hashes[request.email] in listed
                or request.newsletter_id not in newsletters):
            others.append(request)
        else:
            fresh[request.email] = request
    if not fresh:
        return others
    try:
        with session.begin_nested():
            _insert_new_readers(session, list(fresh.values()), newsletters, now)
    except IntegrityError:
        # Another process created one of these readers a moment ago.
        return list(requests)
    for request in fresh.values():
        session.expunge(request)
    return others


def _insert_new_readers(
    session: Session,
    requests: list[SignupRequest],
    newsletters: Mapping[int, Newsletter],
    now: dt.datetime,
) -> None:
    connection = session.connection()
    # Matched by unique columns, not by position: batches keep no order on every backend.
    reader_of = dict(connection.execute(
        insert(Subscriber).returning(Subscriber.email, Subscriber.id),
        [{"email": r.email, "name": r.name, "created_at": now} for r in requests],
    ).all())
    subscriber_ids = [reader_of[r.email] for r in requests]
    subscription_of = dict(connection.execute(
        insert(Subscription).returning(Subscription.subscriber_id, Subscription.id),
        [{"subscriber_id": subscriber_id, "newsletter_id": r.newsletter_id,
          "status": SubscriptionStatus.PENDING, "created_at": now}
         for r, subscriber_id in zip(requests, subscriber_ids, strict=True)],
    ).all())
    subscription_ids = [subscription_of[subscriber_id] for subscriber_id in subscriber_ids]
    chosen = [
        {"subscription_id": subscription_id, "section_id": section.id}
        for r, subscription_id in zip(requests, subscription_ids, strict=True)
        # A section deleted since drops out; none left means every section.
        for section in newsletters[r.newsletter_id].sections if section.id in r.section_ids
    ]
    if chosen:
        connection.execute(insert(SubscriptionSection), chosen)
    connection.execute(insert(Consent), [
        {"subscription_id": subscription_id, "source": r.source, "ip": r.ip,
         "user_agent": r.user_agent, "consent_text": r.consent_text,
         "consent_version": r.consent_version, "created_at": r.created_at}
        for r, subscription_id in zip(requests, subscription_ids, strict=True)
    ])
    connection.execute(insert(TransactionalMail), [
        {"subscription_id": subscription_id, "kind": TransactionalKind.CONFIRM,
         "created_at": now, "due_at": now}
        for subscription_id in subscription_ids
    ])
    connection.execute(delete(SignupRequest).where(SignupRequest.id.in_([r.id for r in requests])))
    if webhooks.wanted(session, "subscriber.created"):
        for r, subscriber_id in zip(requests, subscriber_ids, strict=True):
            webhooks.emit(session, "subscriber.created", f"subscriber:{subscriber_id}", {
                "subscriber_id": subscriber_id, "email": r.email, "name": r.name,
                "newsletter": newsletters[r.newsletter_id].slug,
                "status": str(SubscriptionStatus.PENDING),
            }, now)


def subscribe(
    session: Session,
    config: Mapping[str, Any],
    newsletter: Newsletter,
    signup: Signup,
    now: dt.datetime | None = None,
) -> SignupOutcome:
    """Record a signup (validated first) and the email it calls for, at once (editors, CLI)."""
    if signup.honeypot.strip():
        return SignupOutcome.HONEYPOT
    email, name, sections = check_signup(config, newsletter, signup)
    now = now or utcnow()
    consent = new_consent(config, newsletter, signup.source, signup.ip, signup.user_agent, now)
    return _apply(session, config, newsletter, email, name, sections, consent, now)


def _apply(
    session: Session,
    config: Mapping[str, Any],
    newsletter: Newsletter,
    email: str,
    name: str,
    sections: list[Section],
    consent: Consent,
    now: dt.datetime,
) -> SignupOutcome:
    if blocks_signup(suppression_for(session, config, email, canonical=True)):
        return SignupOutcome.SUPPRESSED
    subscriber, new_reader = reader_for(session, email, name, now)
    if new_reader:
        # Most of a burst: nothing to look up, the reader exists only in this transaction.
        subscription = Subscription(
            subscriber=subscriber, newsletter=newsletter, status=SubscriptionStatus.PENDING,
            created_at=now, sections=sections, consents=[consent],
        )
        session.add(subscription)
        request_mail(session, subscription, TransactionalKind.CONFIRM, now)
        webhooks.subscriber_event(session, "subscriber.created", subscription, now)
        return SignupOutcome.CREATED
    subscription, created = subscription_for(session, subscriber, newsletter, now)
    if subscription.status in ACTIVE:
        # Nothing changes for a subscribed reader: not even a stranger may edit them.
        if not asked_recently(session, subscriber.id, now):
            request_mail(session, subscription, TransactionalKind.ALREADY, now)
        return SignupOutcome.ALREADY_SUBSCRIBED
    # Anyone can type an address: what this signup asks to change waits for the
    # confirmation link that names it, which only the mailbox's owner receives.
    if name and name != subscriber.name:
        consent.asked_name = name
    if created:
        subscription.sections = sections
    else:
        consent.asked_section_ids = [section.id for section in sections]
    subscription.consents.append(consent)
    if not asked_recently(session, subscriber.id, now):
        request_mail(session, subscription, TransactionalKind.CONFIRM, now)
    session.flush()
    if created:
        return SignupOutcome.CREATED
    if subscription.status is SubscriptionStatus.PENDING:
        return SignupOutcome.STILL_PENDING
    return SignupOutcome.REJOINING


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
    uid = uid.partition(CONSENT_MARK)[0]
    query = (
        select(Subscription)
        .where(Subscription.uid == uid)
        .options(selectinload(Subscription.consents), selectinload(Subscription.sections))
    )
    subscription = session.scalar(query.with_for_update() if for_update else query)
    if subscription is None:
        raise LinkGone(uid)
    return subscription


def consent_named(config: Mapping[str, Any], token: str) -> int | None:
    """Return the id of the signup (consent) a confirmation link names, if it names one."""
    try:
        payload = read_token(config["SECRET_KEY"], Purpose.CONFIRM, token)
    except ExpiredToken as exc:
        payload = exc.uid
    _uid, mark, consent_id = payload.partition(CONSENT_MARK)
    return int(consent_id) if mark and consent_id.isdigit() else None


def open_consents(subscription: Subscription) -> list[Consent]:
    """Return the consents given but neither confirmed nor withdrawn yet."""
    return [c for c in subscription.consents if c.confirmed_at is None and c.withdrawn_at is None]


def awaiting_confirmation(subscription: Subscription) -> bool:
    """Return whether a confirmation link for this subscription would change anything."""
    return subscription.status not in ACTIVE and bool(open_consents(subscription))


def activate(
    session: Session,
    config: Mapping[str, Any],
    subscription: Subscription,
    consents: Sequence[Consent],
    ip: str | None,
    user_agent: str | None,
    now: dt.datetime,
) -> ConfirmResult:
    """Confirm a subscription and complete consents, unless its address is suppressed."""
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
    webhooks.subscriber_event(session, "subscriber.confirmed", subscription, now)
    return ConfirmResult.CONFIRMED


def confirm(
    session: Session,
    config: Mapping[str, Any],
    subscription: Subscription,
    ip: str | None = None,
    user_agent: str | None = None,
    now: dt.datetime | None = None,
    consent_id: int | None = None,
) -> ConfirmResult:
    """Confirm a signup (idempotent): subscription confirmed, consents completed, welcome due;
    the changes asked for by the signup the link names (consent_id) take effect."""
    if subscription.status in ACTIVE:
        return ConfirmResult.ALREADY_CONFIRMED
    waiting = open_consents(subscription)
    if not waiting:
        return ConfirmResult.NOTHING_TO_CONFIRM
    now = now or utcnow()
    result = activate(session, config, subscription, waiting, ip, user_agent, now)
    if result is ConfirmResult.CONFIRMED:
        named = next((c for c in waiting if c.id == consent_id), None)
        if named is not None:
            _take_asked_changes(subscription, named)
        request_mail(session, subscription, TransactionalKind.WELCOME, now)
    session.flush()
    return result


@dataclass(frozen=True)
class AskedChanges:
    """What a waiting signup asks to change, shown before it is confirmed."""

    name: str | None
    sections: list[Section] | None  # [] = every section; None = no change


def asked_changes(subscription: Subscription, consent_id: int | None) -> AskedChanges | None:
    """Return the changes the waiting signup consent_id asks for, if it is one of this subscription's."""
    consent = next((c for c in open_consents(subscription) if c.id == consent_id), None)
    if consent is None:
        return None
    sections = None
    if consent.asked_section_ids is not None:
        chosen = set(consent.asked_section_ids)
        sections = [s for s in subscription.newsletter.sections if s.id in chosen]
    return AskedChanges(consent.asked_name, sections)


def _take_asked_changes(subscription: Subscription, consent: Consent) -> None:
    if consent.asked_name:
        subscription.subscriber.name = consent.asked_name
    if consent.asked_section_ids is not None:
        chosen = set(consent.asked_section_ids)
        subscription.sections = [s for s in subscription.newsletter.sections if s.id in chosen]


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
    if changed:
        webhooks.subscriber_event(session, "subscriber.unsubscribed", subscription, now)
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
    consent = new_consent(config, subscription.newsletter, ConsentSource.FORM, ip, user_agent, now)
    result = activate(session, config, subscription, [consent], ip, user_agent, now)
    if result is ConfirmResult.CONFIRMED:
        subscription.consents.append(consent)
    session.flush()
    return result


def update_preferences(
    session: Session, subscription: Subscription, name: str, sections: Sequence[str]
) -> None:
    """Change the reader's name and chosen sections, or raise Invalid."""
    errors: dict[str, str] = {}
    cleaned = chosen = None
    try:
        cleaned = clean_name(name)
    except Invalid as exc:
        errors.update(exc.errors)
    try:
        chosen = choose_sections(subscription.newsletter, sections)
    except Invalid as exc:
        errors.update(exc.errors)
    if errors or cleaned is None or chosen is None:
        raise Invalid(errors)
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
