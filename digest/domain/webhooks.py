"""Outgoing webhooks: endpoints, the event outbox and the delivery ledger.

Contract: `emit` writes an event and one delivery row per enabled endpoint that asked for
its type, in the caller's transaction, so an event exists exactly when its change was
committed (outbox). Messages follow Standard Webhooks: the event's `uid` is the
`webhook-id` on every attempt (receivers deduplicate on it), the signature is
HMAC-SHA256 over "id.timestamp.body" with the endpoint's secret, and during the overlap
after a rotation the old secret signs too. A delivery is claimed by one guarded UPDATE
(pending and due, or a lease that expired) and only when no earlier delivery of the same
subject to the same endpoint is still pending or in flight: events of one reader, issue
or post arrive in order. A failed attempt is retried with exponential backoff and
jitter until `retry_until` (a day); an endpoint whose attempts all failed for
`disable_after` is disabled, for the engine to tell the admins.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import random
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, exists, or_, select, update
from sqlalchemy.orm import Session, aliased, joinedload

from digest.core.db import utcnow
from digest.core.models import (
    Issue,
    Post,
    Subscription,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookState,
)
from digest.core.validation import Invalid, optional_http_url, text
from digest.domain.links import post_url

EVENTS = (
    "subscriber.created",
    "subscriber.confirmed",
    "subscriber.unsubscribed",
    "subscriber.suppressed",
    "subscriber.erased",
    "issue.scheduled",
    "issue.sent",
    "post.published",
)
TEST_EVENT = "webhook.test"
RETRY_WINDOW = dt.timedelta(days=1)
ROTATION_OVERLAP = dt.timedelta(hours=24)
LEASE = dt.timedelta(seconds=60)
MAX_RETRY_DELAY = 3600.0
EXCERPT_CHARS = 500


def new_secret() -> str:
    """Return a fresh signing secret in the Standard Webhooks form (whsec_ + base64 of 32 bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_events(events: Iterable[str], errors: dict[str, str]) -> list[str]:
    """Return the chosen event types without repeats; record an error for unknown or none."""
    chosen = list(dict.fromkeys(e.strip() for e in events if e.strip()))
    unknown = [e for e in chosen if e not in EVENTS]
    if unknown:
        errors["events"] = (f"Unknown event {', '.join(unknown)}; choose from "
                            f"{', '.join(EVENTS)}.")
    elif not chosen:
        errors["events"] = "Choose at least one event."
    return chosen


def _checked(url: str | None, events: Iterable[str] | None, description: str | None
             ) -> tuple[str | None, list[str] | None, str | None]:
    errors: dict[str, str] = {}
    checked_url = None
    if url is not None:
        checked_url = optional_http_url(url, "url", errors)
        if checked_url is None and "url" not in errors:
            errors["url"] = "The URL is required."
    checked_events = check_events(events, errors) if events is not None else None
    checked_description = (text(description, "description", errors, max_length=200)
                           if description is not None else None)
    if errors:
        raise Invalid(errors)
    return checked_url, checked_events, checked_description


def create_endpoint(session: Session, url: str, events: Iterable[str], description: str = "",
                    now: dt.datetime | None = None) -> WebhookEndpoint:
    """Register an endpoint with a new secret; raise Invalid naming each bad field."""
    checked_url, checked_events, checked_description = _checked(url, events, description)
    endpoint = WebhookEndpoint(url=checked_url, events=checked_events,
                               description=checked_description or "", secret=new_secret(),
                               enabled=True, created_at=now or utcnow())
    session.add(endpoint)
    session.flush()
    _forget_listeners(session)
    return endpoint


def update_endpoint(session: Session, endpoint: WebhookEndpoint, *, url: str | None = None,
                    events: Iterable[str] | None = None, description: str | None = None,
                    enabled: bool | None = None) -> WebhookEndpoint:
    """Change what is given; enabling a disabled endpoint clears its failure record."""
    checked_url, checked_events, checked_description = _checked(url, events, description)
    if checked_url is not None:
        endpoint.url = checked_url
    if checked_events is not None:
        endpoint.events = checked_events
    if checked_description is not None:
        endpoint.description = checked_description
    if enabled is not None and enabled != endpoint.enabled:
        endpoint.enabled = enabled
        endpoint.failing_since = None
        endpoint.disabled_at = None if enabled else utcnow()
        endpoint.disabled_reason = None if enabled else "disabled by an admin"
    session.flush()
    _forget_listeners(session)
    return endpoint


def list_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Return every endpoint, oldest first."""
    return list(session.scalars(select(WebhookEndpoint).order_by(WebhookEndpoint.id)))


def get_endpoint(session: Session, endpoint_id: int) -> WebhookEndpoint | None:
    """Return the endpoint with this id, or None."""
    return session.get(WebhookEndpoint, endpoint_id)


def remove_endpoint(session: Session, endpoint: WebhookEndpoint) -> None:
    """Delete an endpoint with its deliveries and attempts."""
    session.delete(endpoint)
    session.flush()
    _forget_listeners(session)


def rotate_secret(session: Session, endpoint: WebhookEndpoint,
                  now: dt.datetime | None = None) -> str:
    """Give the endpoint a new secret and return it; the old one also signs for a day."""
    now = now or utcnow()
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_until = now + ROTATION_OVERLAP
    endpoint.secret = new_secret()
    session.flush()
    return endpoint.secret


def failed_endpoints(session: Session) -> list[WebhookEndpoint]:
    """Return the endpoints the engine disabled for failing (not those an admin switched
    off), for the workspace banner."""
    return list(session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(False),
                                      WebhookEndpoint.failing_since.is_not(None))
        .order_by(WebhookEndpoint.id)
    ))


def _new_event(session: Session, type_: str, subject: str, data: Mapping[str, Any],
               now: dt.datetime) -> WebhookEvent:
    event = WebhookEvent(
        uid="msg_" + secrets.token_urlsafe(18), type=type_, subject=subject[:64],
        payload={"type": type_, "timestamp": now.isoformat().replace("+00:00", "Z"),
                 "data": dict(data)},
        created_at=now,
    )
    session.add(event)
    session.flush()
    return event


def _new_delivery(session: Session, endpoint_id: int, event: WebhookEvent,
                  now: dt.datetime) -> WebhookDelivery:
    delivery = WebhookDelivery(endpoint_id=endpoint_id, event_id=event.id,
                               subject=event.subject, state=WebhookState.PENDING, attempts=0,
                               next_attempt_at=now, retry_until=now + RETRY_WINDOW)
    session.add(delivery)
    return delivery


_LISTENERS = "digest.webhook_listeners"


def _listeners(session: Session, type_: str) -> list[int]:
    # Read once per transaction: an import emits an event per row.
    listening: dict[str, list[int]] | None = session.info.get(_LISTENERS)
    if listening is None:
        listening = {}
        for endpoint in session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True))
        ):
            for name in endpoint.events:
                listening.setdefault(name, []).append(endpoint.id)
        session.info[_LISTENERS] = listening
    return listening.get(type_, [])


def wanted(session: Session, type_: str) -> bool:
    """Return whether any enabled endpoint asked for this event type."""
    return bool(_listeners(session, type_))


def _forget_listeners(session: Session) -> None:
    session.info.pop(_LISTENERS, None)


def emit(session: Session, type_: str, subject: str, data: Mapping[str, Any],
         now: dt.datetime | None = None) -> WebhookEvent | None:
    """Record an event for every enabled endpoint that asked for its type (none: nothing)."""
    endpoint_ids = _listeners(session, type_)
    if not endpoint_ids:
        return None
    now = now or utcnow()
    event = _new_event(session, type_, subject, data, now)
    for endpoint_id in endpoint_ids:
        _new_delivery(session, endpoint_id, event, now)
    session.flush()
    return event


def subscriber_event(session: Session, type_: str, subscription: Subscription,
                     now: dt.datetime | None = None) -> None:
    """Emit a subscriber.* event about one subscription (its reader and newsletter)."""
    if not wanted(session, type_):
        return
    session.flush()  # a reader created in this transaction needs its id
    subscriber = subscription.subscriber
    emit(session, type_, f"subscriber:{subscriber.id}", {
        "subscriber_id": subscriber.id, "email": subscriber.email, "name": subscriber.name,
        "newsletter": subscription.newsletter.slug, "status": str(subscription.status),
    }, now)


def issue_event(session: Session, type_: str, issue: Issue, now: dt.datetime | None = None) -> None:
    """Emit an issue.* event."""
    when = issue.scheduled_at if type_ == "issue.scheduled" else issue.sent_at
    emit(session, type_, f"issue:{issue.id}", {
        "issue_id": issue.id, "newsletter": issue.newsletter.slug, "subject": issue.subject,
        "at": when.isoformat().replace("+00:00", "Z") if when else None,
    }, now)


def post_event(session: Session, config: Mapping[str, Any], post: Post,
               now: dt.datetime | None = None) -> None:
    """Emit post.published with the post's public address."""
    emit(session, "post.published", f"post:{post.id}", {
        "post_id": post.id, "newsletter": post.newsletter.slug, "title": post.title,
        "url": post_url(config, post.newsletter.slug, post.slug), "link_url": post.link_url,
    }, now)


def forget_subscriber(session: Session, subscriber_id: int) -> None:
    """Strip the address and name from every recorded event about a reader being erased
    (deliveries not yet made send what is left)."""
    for event in session.scalars(
        select(WebhookEvent).where(WebhookEvent.subject == f"subscriber:{subscriber_id}")
    ):
        data = {k: v for k, v in dict(event.payload["data"]).items()  # type: ignore[call-overload]
                if k not in {"email", "name"}}
        event.payload = {**event.payload, "data": data}


def send_test(session: Session, endpoint: WebhookEndpoint,
              now: dt.datetime | None = None) -> WebhookDelivery:
    """Queue a test event for this endpoint alone."""
    now = now or utcnow()
    event = _new_event(session, TEST_EVENT, f"test:{endpoint.id}",
                       {"endpoint_id": endpoint.id, "message": "A test event from digest."}, now)
    delivery = _new_delivery(session, endpoint.id, event, now)
    session.flush()
    return delivery


def body_of(event: WebhookEvent) -> bytes:
    """Return the exact bytes sent (and signed) for an event."""
    return json.dumps(event.payload, separators=(",", ":"), sort_keys=True).encode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Return the Standard Webhooks signature "v1,<base64>" of one message with one secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def headers_for(endpoint: WebhookEndpoint, event: WebhookEvent, body: bytes,
                now: dt.datetime) -> dict[str, str]:
    """Return the Standard Webhooks headers, signed with every secret valid at now."""
    timestamp = int(now.timestamp())
    secrets_now = [endpoint.secret]
    if endpoint.previous_secret and endpoint.previous_secret_until and \
            endpoint.previous_secret_until > now:
        secrets_now.append(endpoint.previous_secret)
    return {
        "Content-Type": "application/json",
        "webhook-id": event.uid,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(s, event.uid, timestamp, body) for s in secrets_now),
    }


def _claimable(now: dt.datetime) -> Any:
    return or_(
        and_(WebhookDelivery.state == WebhookState.PENDING, WebhookDelivery.next_attempt_at <= now),
        and_(WebhookDelivery.state == WebhookState.SENDING, WebhookDelivery.lease_until < now),
    )


def claim_due(session: Session, owner: str, now: dt.datetime | None = None,
              limit: int = 20) -> list[int]:
    """Lease up to limit due deliveries, each the oldest open one of its subject; return ids."""
    now = now or utcnow()
    earlier = aliased(WebhookDelivery)
    blocked = exists().where(
        earlier.endpoint_id == WebhookDelivery.endpoint_id,
        earlier.subject == WebhookDelivery.subject,
        earlier.id < WebhookDelivery.id,
        earlier.state.in_([WebhookState.PENDING, WebhookState.SENDING]),
    )
    candidates = session.scalars(
        select(WebhookDelivery.id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookEndpoint.enabled.is_(True), _claimable(now), ~blocked)
        .order_by(WebhookDelivery.id).limit(limit)
    ).all()
    claimed = []
    for delivery_id in candidates:
        result = session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, _claimable(now))
            .values(state=WebhookState.SENDING, lease_owner=owner, lease_until=now + LEASE,
                    attempts=WebhookDelivery.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            claimed.append(delivery_id)
    return claimed


@dataclass(frozen=True)
class Request:
    """What the engine sends for one claimed delivery."""

    delivery_id: int
    endpoint_id: int
    url: str
    headers: dict[str, str]
    body: bytes


def request_for(session: Session, delivery_id: int, now: dt.datetime | None = None) -> Request:
    """Return the signed request of a claimed delivery."""
    delivery = session.get_one(WebhookDelivery, delivery_id)
    body = body_of(delivery.event)
    return Request(delivery_id, delivery.endpoint_id, delivery.endpoint.url,
                   headers_for(delivery.endpoint, delivery.event, body, now or utcnow()), body)


@dataclass(frozen=True)
class Outcome:
    """What one attempt got: an HTTP status and body, or an error with no answer."""

    status: int | None
    elapsed: float
    excerpt: str = ""
    error: str | None = None

    @property
    def ok(self) -> bool:
        """Return whether the receiver took the message (any 2xx)."""
        return self.status is not None and 200 <= self.status < 300


def retry_delay(attempts: int, base: float) -> float:
    """Return the wait after attempt number attempts: doubling from base, capped, with jitter."""
    return min(MAX_RETRY_DELAY, base * 2.0 ** max(attempts - 1, 0)) * random.uniform(0.5, 1.5)


def record_attempt(session: Session, delivery_id: int, owner: str, outcome: Outcome,
                   retry_base: float, now: dt.datetime | None = None) -> WebhookState | None:
    """Log the attempt and move the delivery on; None when the lease was lost meanwhile."""
    now = now or utcnow()
    delivery = session.get_one(WebhookDelivery, delivery_id)
    if outcome.ok:
        values: dict[str, Any] = {"state": WebhookState.DELIVERED, "delivered_at": now}
    elif now >= delivery.retry_until:
        values = {"state": WebhookState.FAILED}
    else:
        due = now + dt.timedelta(seconds=retry_delay(delivery.attempts, retry_base))
        values = {"state": WebhookState.PENDING, "next_attempt_at": min(due, delivery.retry_until)}
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery_id, WebhookDelivery.state == WebhookState.SENDING,
               WebhookDelivery.lease_owner == owner)
        .values(lease_owner=None, lease_until=None, **values)
        .execution_options(synchronize_session=False)
    )
    session.add(WebhookAttempt(delivery_id=delivery_id, at=now, status=outcome.status,
                               elapsed_ms=round(outcome.elapsed * 1000),
                               excerpt=outcome.excerpt[:EXCERPT_CHARS],
                               error=outcome.error[:300] if outcome.error else None))
    endpoint = delivery.endpoint
    if outcome.ok:
        endpoint.failing_since = None
    elif endpoint.failing_since is None:
        endpoint.failing_since = now
    session.flush()
    session.expire(delivery)
    return values["state"] if getattr(result, "rowcount", 0) == 1 else None


def disable_failing(session: Session, disable_after: dt.timedelta,
                    now: dt.datetime | None = None) -> list[WebhookEndpoint]:
    """Disable each endpoint whose attempts have all failed for disable_after; return them."""
    now = now or utcnow()
    failing = list(session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.enabled.is_(True),
                                      WebhookEndpoint.failing_since <= now - disable_after)
    ))
    disabled = []
    for endpoint in failing:
        assert endpoint.failing_since is not None
        result = session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint.id, WebhookEndpoint.enabled.is_(True))
            .values(enabled=False, disabled_at=now,
                    disabled_reason=f"every attempt failed since "
                                    f"{endpoint.failing_since:%Y-%m-%d %H:%M} UTC")
            .execution_options(synchronize_session=False)
        )
        if getattr(result, "rowcount", 0) == 1:
            session.refresh(endpoint)
            disabled.append(endpoint)
    return disabled


def deliveries_of(session: Session, endpoint: WebhookEndpoint, limit: int = 50
                  ) -> list[tuple[WebhookDelivery, list[WebhookAttempt]]]:
    """Return the endpoint's latest deliveries with their attempts, both newest first."""
    found = session.scalars(
        select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
        .options(joinedload(WebhookDelivery.event))
        .order_by(WebhookDelivery.id.desc()).limit(limit)
    ).all()
    attempts: dict[int, list[WebhookAttempt]] = {d.id: [] for d in found}
    for attempt in session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(list(attempts)))
        .order_by(WebhookAttempt.id.desc())
    ):
        attempts[attempt.delivery_id].append(attempt)
    return [(delivery, attempts[delivery.id]) for delivery in found]


def attempts_of(session: Session, endpoint: WebhookEndpoint,
                limit: int = 100) -> list[tuple[WebhookAttempt, WebhookDelivery]]:
    """Return the endpoint's latest attempts with their deliveries, newest first."""
    rows = session.execute(
        select(WebhookAttempt, WebhookDelivery)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookAttempt.delivery_id)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookAttempt.id.desc()).limit(limit)
    ).all()
    return [(attempt, delivery) for attempt, delivery in rows]


def get_delivery(session: Session, endpoint: WebhookEndpoint,
                 delivery_id: int) -> WebhookDelivery | None:
    """Return the endpoint's delivery with this id, or None."""
    delivery = session.get(WebhookDelivery, delivery_id)
    return delivery if delivery is not None and delivery.endpoint_id == endpoint.id else None


def resend(session: Session, delivery: WebhookDelivery, now: dt.datetime | None = None) -> bool:
    """Queue a delivery again at once, with the same message id and a fresh day of retries;
    False while it is in flight."""
    now = now or utcnow()
    result = session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id == delivery.id, WebhookDelivery.state != WebhookState.SENDING)
        .values(state=WebhookState.PENDING, next_attempt_at=now, retry_until=now + RETRY_WINDOW,
                delivered_at=None)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    session.expire(delivery)
    return getattr(result, "rowcount", 0) == 1
