"""What editors, and returned mail, do to readers: add, suppress, unsubscribe.

Contract:
- Editors add readers with double opt-in too (`add_by_editor`): a confirmation email,
  unless an admin records how consent was obtained elsewhere (a required note, kept in
  the consent record), which confirms at once. Unlike the public signup, the editor is
  told what happened, a suppressed address included. `add_reader` (the API's) follows the
  public signup's rules exactly.
- `suppress_by_editor` puts an address on the list (reason manual) and unsubscribes its
  reader everywhere.
- `ReaderActions` is what a bounce, complaint or mailto request does to a reader
  (digest.domain.bounces), by the same rules.
- Functions take a Session and flush; the view, command or job commits.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest.core.db import utcnow
from digest.core.models import (
    ConsentSource,
    Newsletter,
    Section,
    Subscriber,
    Subscription,
    Suppression,
    SuppressionReason,
    TransactionalKind,
)
from digest.core.validation import Invalid, control_character
from digest.domain.subscribers.signup import (
    ACTIVE,
    Signup,
    SignupOutcome,
    WithdrawalChannel,
    activate,
    check_signup,
    new_consent,
    normalize_email,
    reader_for,
    subscribe,
    subscription_for,
    unsubscribe,
)
from digest.domain.suppression import REASON_TEXT, blocks_signup, suppress, suppression_for
from digest.domain.transactional import asked_recently, request_mail

NOTE_MAX = 2000


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
    """Return a required editor's note trimmed, or raise Invalid naming what it is for."""
    problem = control_character(note or "", "The note", multiline=True)
    if problem:
        raise Invalid({"note": problem})
    note = (note or "").strip()
    if not note:
        raise Invalid({"note": f"Please write {what}."})
    if len(note) > NOTE_MAX:
        raise Invalid({"note": f"Please keep the note under {NOTE_MAX} characters."})
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
    email, name, note = "", "", addition.note.strip()
    sections: list[Section] = []
    try:
        email, name, sections = check_signup(
            config,
            newsletter,
            Signup(addition.email, addition.name, addition.sections, consent=True),
        )
    except Invalid as exc:
        errors.update(exc.errors)
    if addition.consent_elsewhere or note:
        try:
            note = clean_note(addition.note, "how and when this reader agreed")
        except Invalid as exc:
            errors.update(exc.errors)
    if errors:
        raise Invalid(errors)
    now = now or utcnow()
    entry = suppression_for(session, config, email)
    if entry is not None and (blocks_signup(entry) or addition.consent_elsewhere):
        message = _suppressed(entry)
        if not blocks_signup(entry):
            message += " Only the reader can undo that: send them a confirmation email instead."
        raise Invalid({"email": message})
    subscriber, _new = reader_for(session, email, name, now)
    subscription, _created = subscription_for(session, subscriber, newsletter, now)
    if subscription.status in ACTIVE:
        return EditorAdd.ALREADY_SUBSCRIBED, subscription
    if name and not any(s.status in ACTIVE for s in subscriber.subscriptions):
        subscriber.name = name
    subscription.sections = sections
    consent = new_consent(config, newsletter, ConsentSource.EDITOR, None, None, now)
    consent.recorded_by = addition.recorded_by or None
    consent.note = note
    subscription.consents.append(consent)
    if addition.consent_elsewhere:
        activate(session, config, subscription, [consent], None, None, now)
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
    except Invalid as exc:
        errors.update(exc.errors)
    try:
        note = clean_note(note, "why this address must never be mailed")
    except Invalid as exc:
        errors.update(exc.errors)
    if errors:
        raise Invalid(errors)
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email == email))
    if subscriber is None:
        return suppress(session, config, email, SuppressionReason.MANUAL, note, recorded_by)
    return suppress_reader(session, config, subscriber, note, WithdrawalChannel.EDITOR, recorded_by)


@dataclass(frozen=True)
class ReaderActions:
    """What a bounce, complaint or mailto request does to a reader (bounces' SubscriberActions)."""

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
) -> tuple[SignupOutcome, Subscriber]:
    """Sign a reader up for an editor, by the public rules (double opt-in); return the reader.

    Unlike the public answer, an editor learns what happened: a suppressed address raises
    Invalid naming the reason.
    """
    outcome = subscribe(session, config, newsletter, signup, now)
    email = normalize_email(signup.email)
    entry = suppression_for(session, config, email) if outcome is SignupOutcome.SUPPRESSED else None
    if entry is not None:
        raise Invalid({"email": _suppressed(entry)})
    return outcome, session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def subscription_of(
    session: Session, subscriber_id: int, newsletter: Newsletter
) -> Subscription | None:
    """Return a reader's subscription to newsletter, locked for a change, or None."""
    return session.scalar(
        select(Subscription)
        .where(
            Subscription.subscriber_id == subscriber_id,
            Subscription.newsletter_id == newsletter.id,
        )
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
    problem = control_character(detail, "The note", multiline=True)
    if problem:
        raise Invalid({"detail": problem})
    entry = suppress(
        session, config, subscriber.email, SuppressionReason.MANUAL, detail, recorded_by
    )
    for subscription in subscriber.subscriptions:
        unsubscribe(session, subscription, channel)
    return entry
