"""The suppression list: addresses never to be mailed, kept only as keyed hashes.

Contract:
- An entry is an HMAC of the canonical address (see `canonical_email`), so the list
  holds no readable address and survives the erasure of everything else.
- `is_suppressed` is what every sender asks before mailing anyone.
- Reasons rank: a bounce, complaint or manual entry always wins over an erasure entry.
  An erasure entry blocks digests and imports but not a deliberate new signup: the
  confirmation email may go out, and confirming lifts the entry (`lift_erasure`).
- Only a manual entry can be lifted by a person (`lift_manual`, admins); bounces and
  complaints stay, because the mailbox itself said no.
- Functions take a Session and flush; the caller commits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Subscriber, Suppression, SuppressionReason
from digest.core.tokens import keyed_hash
from digest.domain import webhooks

HASH_PURPOSE = "suppression"
# Why an address is on the list, in words for the editor.
REASON_TEXT = {
    SuppressionReason.ERASURE: "the reader asked to be erased",
    SuppressionReason.HARD_BOUNCE: "the address does not exist (hard bounce)",
    SuppressionReason.SOFT_BOUNCE: "mail to it kept failing (soft bounces)",
    SuppressionReason.COMPLAINT: "the reader marked an email as spam",
    SuppressionReason.MANUAL: "an editor suppressed it",
}


def canonical_email(address: str) -> str:
    """Return the form an address is stored and hashed in: normalized, lower-cased, Unicode domain.

    Addresses that email-validator refuses (as a bounce report may carry) are only
    trimmed and lower-cased, so they still hash the same way every time.
    """
    address = address.strip().strip("<>").strip()
    try:
        normalized = validate_email(
            address, check_deliverability=False, allow_smtputf8=True, test_environment=True
        ).normalized
    except EmailNotValidError:
        normalized = address
    return normalized.lower()


def email_hash(config: Mapping[str, Any], address: str, *, canonical: bool = False) -> str:
    """Return the suppression-list hash of an address (canonical=True: already normalized)."""
    value = address if canonical else canonical_email(address)
    return keyed_hash(config["SECRET_KEY"], HASH_PURPOSE, value)


def suppression_for(
    session: Session, config: Mapping[str, Any], address: str, *, canonical: bool = False
) -> Suppression | None:
    """Return the suppression entry of an address, if it has one (canonical=True: a stored
    or already normalized address, which spares validating it again)."""
    hashed = email_hash(config, address, canonical=canonical)
    return session.scalar(select(Suppression).where(Suppression.email_hash == hashed))


def is_suppressed(session: Session, config: Mapping[str, Any], address: str) -> bool:
    """Return whether an address must not be mailed (any reason, erasure included)."""
    return suppression_for(session, config, address) is not None


def blocks_signup(entry: Suppression | None) -> bool:
    """Return whether an entry refuses even a deliberate new signup (everything but erasure)."""
    return entry is not None and entry.reason is not SuppressionReason.ERASURE


def suppressed_hashes(session: Session, hashes: Iterable[str]) -> dict[str, SuppressionReason]:
    """Return {hash: reason} for the given hashes that are on the list (one query)."""
    wanted = list(set(hashes))
    if not wanted:
        return {}
    rows = session.execute(
        select(Suppression.email_hash, Suppression.reason).where(Suppression.email_hash.in_(wanted))
    )
    return {email_hash_: reason for email_hash_, reason in rows}


def suppress(
    session: Session,
    config: Mapping[str, Any],
    address: str,
    reason: SuppressionReason,
    detail: str = "",
    recorded_by: str | None = None,
) -> Suppression:
    """Put an address on the list (idempotent); a stronger reason replaces an erasure entry."""
    entry = suppression_for(session, config, address)
    if entry is None:
        entry = Suppression(
            email_hash=email_hash(config, address),
            reason=reason,
            detail=detail,
            recorded_by=recorded_by,
        )
        session.add(entry)
    elif entry.reason is SuppressionReason.ERASURE and reason is not SuppressionReason.ERASURE:
        entry.reason = reason
        entry.detail = detail
        entry.recorded_by = recorded_by
    else:
        reason = SuppressionReason.ERASURE  # nothing changed: no event
    session.flush()
    if reason is not SuppressionReason.ERASURE and webhooks.wanted(session, "subscriber.suppressed"):
        reader = session.scalar(select(Subscriber).where(Subscriber.email == address))
        subject = f"subscriber:{reader.id}" if reader else f"suppression:{entry.id}"
        webhooks.emit(session, "subscriber.suppressed", subject, {
            "subscriber_id": reader.id if reader else None, "email": address,
            "reason": str(reason),
        })
    return entry


def _lift(
    session: Session, config: Mapping[str, Any], address: str, reason: SuppressionReason
) -> bool:
    entry = suppression_for(session, config, address)
    if entry is None or entry.reason is not reason:
        return False
    session.delete(entry)
    session.flush()
    return True


def lift_erasure(session: Session, config: Mapping[str, Any], address: str) -> bool:
    """Remove an erasure entry after the owner confirmed a new signup; other reasons stay."""
    return _lift(session, config, address, SuppressionReason.ERASURE)


def lift_manual(session: Session, config: Mapping[str, Any], address: str) -> bool:
    """Remove an entry an editor made by hand (an admin's decision); other reasons stay."""
    return _lift(session, config, address, SuppressionReason.MANUAL)
