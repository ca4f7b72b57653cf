"""Mail that comes back: bounces (RFC 3464 DSNs), complaints (RFC 5965 ARF), mailto unsubscribes.

`ingest(session, config, raw, actions)` reads one inbound message and acts on it:

- a DSN saying a delivery failed for good (5.1.x, 5.2.1) marks the delivery as a hard
  bounce and suppresses the reader; a soft failure (mailbox full, gave up after retries)
  marks it soft, and suppresses the reader once their last SOFT_BOUNCE_LIMIT deliveries
  all bounced soft; a refusal that is our fault (policy 5.7.x, size, content) is
  recorded and blames no reader; "delayed" and "delivered" notices change nothing;
- an ARF complaint (abuse, fraud, virus, other) marks the delivery and suppresses the
  reader at once;
- a message to unsubscribe+TOKEN@ (the mailto in List-Unsubscribe) unsubscribes;
- a failure or complaint about a confirmation, welcome or "already subscribed" email
  (VERP reference t<random ref>, digest.domain.transactional) marks that email failed; a hard bounce
  or a complaint also suppresses the address, a soft or sender-side failure does not.

Only signed references are trusted, so a forged report changes nothing: the VERP
envelope address a report was sent to (bounces+REF-MAC@…, also found as an ARF's
Original-Mail-From or the returned original's Return-Path), whose MAC must match the
reference and the address that message went to, or the signed token in the returned
original's List-Unsubscribe header. The returned original's Message-ID only
picks the delivery when a token proved whose it is.

Mail from anyone reaches this code, so the work is capped before the email package
sees it: at most MAX_MESSAGE_BYTES, MAX_CONTAINERS multipart or message/* parts (the
parser recurses into each), header fields of at most MAX_FIELD_CHARS with comments
nested at most MAX_COMMENT_DEPTH deep. A message past a cap is answered "Ignored: …".

What happens to the reader (suppression, unsubscription) is delegated to `actions`,
digest.domain.subscribers.actions.ReaderActions, so the rules for those live in one place.
"""

from __future__ import annotations

import email
import email.policy
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import HeaderParser
from email.utils import getaddresses
from typing import Any, Protocol
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    BounceKind,
    Delivery,
    Subscriber,
    Subscription,
    SuppressionReason,
    TransactionalKind,
    TransactionalMail,
)
from digest.core.tokens import BadToken, Purpose, read_token
from digest.domain import links
from digest.domain.identity import split_verp, verp_signed
from digest.domain.transactional import mark_returned
from digest.mail.transport import RecipientRejected, SenderProblem, classify

SOFT_BOUNCE_LIMIT = 3
MAX_MESSAGE_BYTES = 2 * 1024 * 1024  # a bounce returning a whole digest is ~200 KB
MAX_CONTAINERS = 32  # a DSN or ARF report has 3 to 5
MAX_HEADER_FIELDS = 500
MAX_FIELD_CHARS = 16 * 1024
MAX_COMMENT_DEPTH = 16
_CONTAINER = re.compile(rb"^content-type:\s*(?:multipart|message)/", re.IGNORECASE | re.MULTILINE)
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})
# Headers an MTA uses to say which address it delivered an inbound message to.
RECIPIENT_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To", "Cc")
_MESSAGE_ID = re.compile(r"<digest\.\d+\.d(\d+)@", re.IGNORECASE)
_CODE = re.compile(r"\b([245]\d\d)\b")
_STATUS = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")


class Unreadable(Exception):
    """An inbound message past one of the caps: the text says which, for "Ignored: …"."""


class SubscriberActions(Protocol):
    """What a report may do to a reader (digest.domain.subscribers.actions.ReaderActions)."""

    def suppress(
        self, session: Session, subscriber: Subscriber, reason: SuppressionReason, detail: str
    ) -> None:
        """Never mail this reader's address again (idempotent)."""
        ...

    def unsubscribe(self, session: Session, subscription: Subscription, channel: str) -> None:
        """End one subscription, recording the channel (idempotent)."""
        ...


@dataclass(frozen=True)
class Report:
    """What one inbound message says, and the signed references it carries."""

    kind: str  # failed | delayed | complaint | not_spam | unsubscribe | other
    bounce: BounceKind | None = None
    detail: str = ""
    verps: tuple[tuple[str, str], ...] = ()  # (reference, MAC) pairs, verified by ingest
    subscription_uid: str | None = None  # from a verified unsubscribe token
    claimed_delivery_id: int | None = None  # from the returned original; needs the token

    @property
    def ref(self) -> str | None:
        """Return the first VERP reference the report names (not yet verified)."""
        return self.verps[0][0] if self.verps else None


@dataclass(frozen=True)
class IngestOutcome:
    """What ingesting one message did, in a line for the operator."""

    action: str  # hard_bounce | soft_bounce | complaint | sender_problem | unsubscribed | ignored
    message: str
    delivery_id: int | None = None
    suppressed: SuppressionReason | None = None
    transactional_id: int | None = None


def _fields(text: str) -> list[tuple[str, str]]:
    """Parse "Name: value" lines (with folded continuations) of a report block by hand."""
    fields: list[tuple[str, str]] = []
    for line in text.replace("\r\n", "\n").split("\n"):
        if line[:1] in (" ", "\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, f"{value} {line.strip()}")
        elif ":" in line:
            name, _, value = line.partition(":")
            fields.append((name.strip().lower(), value.strip()))
    return fields


def _blocks(part: Message) -> list[list[tuple[str, str]]]:
    """Return the field blocks of a message/delivery-status or feedback-report part."""
    payload = part.get_payload()
    if isinstance(payload, list):
        # The email package reads message/* bodies as messages; take their text back.
        text = "\n\n".join(
            block.as_string() if isinstance(block, Message) else block for block in payload
        )
    else:
        text = _text(part)
    return [_fields(block) for block in re.split(r"\r?\n\s*\r?\n", text) if block.strip()]


def _comment_depth(value: str) -> int:
    depth = deepest = 0
    for char in value:
        if char == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif char == ")" and depth:
            depth -= 1
    return deepest


def _check_headers(message: Message) -> None:
    """Raise Unreadable if a part has too many, too long or too deeply nested header fields."""
    for part in message.walk():
        items = list(part.raw_items())
        if len(items) > MAX_HEADER_FIELDS:
            raise Unreadable(f"a part has more than {MAX_HEADER_FIELDS} header fields")
        for name, value in items:
            text = str(value)
            if len(text) > MAX_FIELD_CHARS:
                raise Unreadable(f"its {name} header is longer than {MAX_FIELD_CHARS // 1024} KB")
            if text.count("(") > MAX_COMMENT_DEPTH and _comment_depth(text) > MAX_COMMENT_DEPTH:
                raise Unreadable(
                    f"its {name} header nests comments deeper than {MAX_COMMENT_DEPTH} levels"
                )


def _returned_headers(message: Message) -> Message | None:
    for part in message.walk():
        kind = part.get_content_type()
        if kind in ("message/rfc822", "message/global"):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        if kind in ("text/rfc822-headers", "text/global-headers"):
            headers = HeaderParser(policy=email.policy.default).parsestr(_text(part))
            _check_headers(headers)
            return headers
    return None


def _text(part: Message) -> str:
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data.decode("utf-8", "replace")
    payload = part.get_payload()
    return payload if isinstance(payload, str) else ""


def _addresses(values: Iterable[str]) -> list[str]:
    texts = [str(v) for v in values]
    if any(len(t) > MAX_FIELD_CHARS or _comment_depth(t) > MAX_COMMENT_DEPTH for t in texts):
        raise Unreadable("an address in it is too long or nests comments too deeply")
    return [address for _, address in getaddresses(texts) if address]


def _verps(candidates: Iterable[str]) -> list[tuple[str, str]]:
    return [parts for address in candidates if (parts := split_verp(address))]


def _unsubscribe_token(config: Mapping[str, Any], candidates: Iterable[str]) -> str | None:
    """Return the subscription uid of the first mailto unsubscribe address among candidates."""
    domain = links.mail_domain(config).lower()
    for address in candidates:
        local, _, at = address.rpartition("@")
        if at.lower() == domain and local.lower().startswith("unsubscribe+"):
            try:
                token = local[len("unsubscribe+") :]
                return read_token(config["SECRET_KEY"], Purpose.UNSUBSCRIBE, token)
            except BadToken:
                continue
    return None


def _from_original(
    config: Mapping[str, Any], original: Message | None
) -> tuple[list[tuple[str, str]], str | None, int | None]:
    """Return (VERP candidates, subscription uid, claimed delivery id) from a returned original."""
    if original is None:
        return [], None, None
    ref = _verps(_addresses(original.get_all("Return-Path") or []))
    uid = None
    for value in original.get_all("List-Unsubscribe") or []:
        for url in re.findall(r"<(https?://[^>]+)>", str(value)):
            token = urlsplit(url).path.rstrip("/").rpartition("/")[2]
            try:
                uid = read_token(config["SECRET_KEY"], Purpose.UNSUBSCRIBE, token)
            except BadToken:
                continue
    claimed = None
    if match := _MESSAGE_ID.search(str(original.get("Message-ID", ""))):
        claimed = int(match.group(1))
    return ref, uid, claimed


def bounce_kind(status: str, diagnostic: str) -> BounceKind:
    """Classify a DSN recipient's Status and Diagnostic-Code as the sender would an SMTP reply."""
    enhanced = _STATUS.search(status) or _STATUS.search(diagnostic)
    code_match = _CODE.search(diagnostic)
    if code_match:
        code = int(code_match.group(1))
    else:
        code = 550 if enhanced and enhanced.group(1).startswith("5") else 450
    error = classify(code, f"{enhanced.group(1) if enhanced else ''} {diagnostic}".strip(), "rcpt")
    if isinstance(error, SenderProblem):
        return BounceKind.SENDER
    if isinstance(error, RecipientRejected) and error.suppress:
        return BounceKind.HARD
    return BounceKind.SOFT


def read_report(config: Mapping[str, Any], raw: bytes, envelope_to: str | None = None) -> Report:
    """Return what an inbound message says; envelope_to is the address the MTA delivered it to.

    Raises Unreadable for a message past one of the caps.
    """
    if len(raw) > MAX_MESSAGE_BYTES:
        raise Unreadable(f"the message is larger than {MAX_MESSAGE_BYTES // 1024 // 1024} MB")
    if len(_CONTAINER.findall(raw)) > MAX_CONTAINERS:
        raise Unreadable(f"the message has more than {MAX_CONTAINERS} nested parts")
    message: EmailMessage = email.message_from_bytes(raw, policy=email.policy.default)
    _check_headers(message)
    recipients = ([envelope_to] if envelope_to else []) + _addresses(
        value for name in RECIPIENT_HEADERS for value in (message.get_all(name) or [])
    )
    original_refs, uid, claimed = _from_original(config, _returned_headers(message))
    ref = tuple(dict.fromkeys(_verps(recipients) + original_refs))
    parts = {part.get_content_type(): part for part in message.walk()}
    feedback = parts.get("message/feedback-report")
    if feedback is not None:
        fields = dict(field for block in _blocks(feedback) for field in block)
        feedback_type = fields.get("feedback-type", "").lower()
        mail_from = _verps(_addresses([fields.get("original-mail-from", "")]))
        ref = tuple(dict.fromkeys([*mail_from, *ref]))
        kind = "complaint" if feedback_type in COMPLAINT_TYPES else "not_spam"
        agent = fields.get("user-agent", "an unknown reporter")
        detail = f"complaint ({feedback_type or 'no type'}) from {agent}"
        bounce = BounceKind.COMPLAINT if kind == "complaint" else None
        return Report(kind, bounce, detail, ref, uid, claimed)
    status_part = parts.get("message/delivery-status") or parts.get(
        "message/global-delivery-status"
    )
    if status_part is not None:
        for block in _blocks(status_part)[1:] or _blocks(status_part):
            fields = dict(block)
            action = fields.get("action", "").lower()
            if action not in ("failed", "delayed"):
                continue
            status, diagnostic = fields.get("status", ""), fields.get("diagnostic-code", "")
            detail = " ".join(f"{status} {diagnostic}".split())
            if action == "delayed":
                return Report("delayed", None, detail, ref, uid, claimed)
            return Report("failed", bounce_kind(status, diagnostic), detail, ref, uid, claimed)
        return Report("other", None, "a delivery report that reports no failure", ref, uid, claimed)
    if unsubscribe_uid := _unsubscribe_token(config, recipients):
        return Report("unsubscribe", None, "mailto unsubscribe request", (), unsubscribe_uid)
    return Report(
        "other", None, "not a bounce, complaint or unsubscribe request", ref, uid, claimed
    )


def _signed_message(
    session: Session, config: Mapping[str, Any], report: Report
) -> Delivery | TransactionalMail | None:
    """Return the message a VERP reference names, if its MAC matches that message's recipient."""
    for ref, mac in report.verps:
        recipient: str | None = None
        found: Delivery | TransactionalMail | None = None
        if ref.startswith("d") and ref[1:].isdigit():
            found = session.get(Delivery, int(ref[1:]))
            subscriber_id = found.subscriber_id if found is not None else None
            subscriber = session.get(Subscriber, subscriber_id) if subscriber_id else None
            recipient = subscriber.email if subscriber is not None else None
        elif ref.startswith("t"):
            found = session.scalars(
                select(TransactionalMail).where(TransactionalMail.ref == ref[1:])
            ).first()
            recipient = found.subscription.subscriber.email if found is not None else None
        if found is not None and recipient and verp_signed(config, ref, mac, recipient):
            return found
    return None


def _delivery(session: Session, report: Report) -> Delivery | None:
    """Return the delivery a verified unsubscribe token in the returned original names."""
    if report.subscription_uid is None:
        return None
    subscriber_id = session.scalar(
        select(Subscription.subscriber_id).where(Subscription.uid == report.subscription_uid)
    )
    if subscriber_id is None:
        return None
    if report.claimed_delivery_id is not None:
        claimed = session.get(Delivery, report.claimed_delivery_id)
        if claimed is not None and claimed.subscriber_id == subscriber_id:
            return claimed
    return session.scalars(
        select(Delivery)
        .where(Delivery.subscriber_id == subscriber_id, Delivery.sent_at.is_not(None))
        .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
        .limit(1)
    ).first()


def _soft_limit_reached(session: Session, subscriber_id: int) -> bool:
    recent = list(
        session.scalars(
            select(Delivery.bounce)
            .where(Delivery.subscriber_id == subscriber_id, Delivery.sent_at.is_not(None))
            .order_by(Delivery.sent_at.desc(), Delivery.id.desc())
            .limit(SOFT_BOUNCE_LIMIT)
        )
    )
    return len(recent) == SOFT_BOUNCE_LIMIT and all(b is BounceKind.SOFT for b in recent)


_CONSEQUENCES = {
    BounceKind.HARD: ("hard_bounce", SuppressionReason.HARD_BOUNCE),
    BounceKind.SOFT: ("soft_bounce", SuppressionReason.SOFT_BOUNCE),
    BounceKind.COMPLAINT: ("complaint", SuppressionReason.COMPLAINT),
}


_KIND_NAMES = {
    TransactionalKind.CONFIRM: "confirmation email",
    TransactionalKind.WELCOME: "welcome email",
    TransactionalKind.ALREADY: '"already subscribed" note',
}


def _returned_transactional(
    session: Session, report: Report, mail: TransactionalMail, actions: SubscriberActions
) -> IngestOutcome:
    """Apply a failure or complaint about a confirmation, welcome or note (reference t<ref>)."""
    assert report.bounce is not None
    mark_returned(session, mail, report.detail)
    subscriber = mail.subscription.subscriber
    what = f"{_KIND_NAMES[mail.kind]} {mail.id} to {subscriber.email}"
    if report.bounce is BounceKind.SENDER:
        return IngestOutcome(
            "sender_problem",
            f"The {what} was refused for a reason on our side ({report.detail}); "
            "no reader was suppressed. Check the sender's DNS and reputation.",
            transactional_id=mail.id,
        )
    if report.bounce is BounceKind.SOFT:
        return IngestOutcome(
            "soft_bounce",
            f"Recorded that the {what} bounced softly ({report.detail}); the address is not "
            "suppressed, a new signup may try again.",
            transactional_id=mail.id,
        )
    action, reason = _CONSEQUENCES[report.bounce]
    actions.suppress(session, subscriber, reason, report.detail)
    return IngestOutcome(
        action,
        f"Suppressed {subscriber.email}: {action.replace('_', ' ')} on the {what} "
        f"({report.detail}).",
        suppressed=reason,
        transactional_id=mail.id,
    )


def ingest(
    session: Session,
    config: Mapping[str, Any],
    raw: bytes,
    actions: SubscriberActions,
    envelope_to: str | None = None,
) -> IngestOutcome:
    """Read one inbound message and record and apply what it says; the caller commits."""
    try:
        report = read_report(config, raw, envelope_to)
    except Unreadable as exc:
        return IngestOutcome("ignored", f"Ignored: {exc}, so it is no report of ours.")
    except RecursionError:  # the caps above should make this unreachable; never a traceback
        return IngestOutcome("ignored", "Ignored: the message is nested too deeply to read.")
    if report.kind == "unsubscribe":
        subscription = session.scalars(
            select(Subscription).where(Subscription.uid == report.subscription_uid)
        ).first()
        if subscription is None:
            return IngestOutcome("ignored", "Ignored: an unsubscribe request for a deleted subscription.")
        actions.unsubscribe(session, subscription, "mailto")
        return IngestOutcome(
            "unsubscribed", f"Unsubscribed {subscription.subscriber.email} (mailto request)."
        )
    if report.kind not in ("failed", "complaint"):
        reasons = {
            "delayed": "a delay notice; the receiving server is still trying",
            "not_spam": "a not-spam report",
            "other": report.detail,
        }
        return IngestOutcome("ignored", f"Ignored: {reasons[report.kind]}.")
    signed = _signed_message(session, config, report)
    if isinstance(signed, TransactionalMail):
        return _returned_transactional(session, report, signed, actions)
    delivery = signed if signed is not None else _delivery(session, report)
    if delivery is None:
        return IngestOutcome(
            "ignored",
            f"Ignored: {report.detail or 'a report'} names no message of ours to a current "
            "reader (no valid VERP address or unsubscribe token), so it changes nothing.",
        )
    assert report.bounce is not None
    if delivery.bounce is not report.bounce:  # the same report twice keeps its first time
        delivery.bounced_at = utcnow()
    delivery.bounce = report.bounce
    delivery.bounce_detail = report.detail[:2000]
    session.flush()
    # Both ways of naming a delivery (a signed VERP address, a token) need a current reader.
    subscriber = session.get(Subscriber, delivery.subscriber_id or 0)
    assert subscriber is not None
    who = subscriber.email
    if report.bounce is BounceKind.SENDER:
        return IngestOutcome(
            "sender_problem",
            f"Delivery {delivery.id} to {who} was refused for a reason on our side "
            f"({report.detail}); no reader was suppressed. Check the sender's DNS, "
            "reputation and message size.",
            delivery.id,
        )
    action, reason = _CONSEQUENCES[report.bounce]
    if report.bounce is BounceKind.SOFT and not _soft_limit_reached(session, subscriber.id):
        return IngestOutcome(
            action,
            f"Recorded a soft bounce on delivery {delivery.id} to {who} ({report.detail}); "
            f"the reader is suppressed after {SOFT_BOUNCE_LIMIT} in a row.",
            delivery.id,
        )
    actions.suppress(session, subscriber, reason, report.detail)
    return IngestOutcome(
        action,
        f"Suppressed {who}: {action.replace('_', ' ')} on delivery {delivery.id} ({report.detail}).",
        delivery.id,
        reason,
    )
