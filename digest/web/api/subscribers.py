"""Readers: search and page through, see one's record, add, unsubscribe, suppress.

Adding follows the public signup's rules exactly (double opt-in, consent recorded with
source "api", at most one confirmation email a day); unlike the public answer, an editor
is told what happened. Unsubscribing and suppressing are for admins: an editor cannot
undo either (only the reader can subscribe again).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from flask import Response, abort, current_app, jsonify, request, url_for

from digest.core.extensions import db_session
from digest.core.models import ConsentSource, Subscriber, SubscriptionStatus
from digest.domain import reports
from digest.domain.subscribers import actions
from digest.domain.subscribers.signup import Signup, SignupOutcome, WithdrawalChannel, unsubscribe
from digest.web.api import ID, editor_bp, newsletter_or_404, page_link, shapes
from digest.web.api.inputs import (
    IP_MAX,
    TEXT_MAX,
    Body,
    Field,
    Param,
    json_body,
    query,
    reader_fields,
)
from digest.web.api.spec import operation
from digest.web.signup import client_ip

LIST = [
    Param("status", "string", "Only readers whose subscription has this status.",
          choices=[s.value for s in SubscriptionStatus]),
    Param("section_id", "integer",
          "Only readers who get this section (a reader who chose none gets every section)."),
    Param("search", "string", "Part of the address or of the name."),
    Param("before", "integer", "Cursor: readers older than this one (use `next`)."),
    Param("after", "integer", "Cursor: readers newer than this one (use `previous`)."),
    Param("limit", "integer", "Readers per page.", minimum=1, maximum=200, default=50),
]
NEW = Body("NewSubscriber", "A reader to sign up; they confirm by email (double opt-in).", {
    **reader_fields("The reader's"),
    "ip": Field("string", "Their IP address when they agreed (default: the caller's).",
                fmt="ip", max_length=IP_MAX),
    "user_agent": Field("string", "Their browser when they agreed (default: the caller's).",
                        max_length=TEXT_MAX),
})
SUPPRESS = Body("SuppressRequest", "Why the address must never be mailed again.", {
    "detail": Field("string", "A note kept with the entry.", max_length=1000, multiline=True),
}, optional=True)


def _record(subscriber_id: int, status: int = 200, outcome: SignupOutcome | None = None) -> Response:
    dbs = db_session()
    record = reports.subscriber_record(dbs, current_app.config, subscriber_id)
    if record is None:
        abort(404, f"There is no subscriber {subscriber_id}.")
    body = (shapes.subscriber(record, record.suppression) if outcome is None
            else shapes.added(outcome.value, record, record.suppression))
    response = jsonify(body)
    response.status_code = status
    return response


def _subscriber(subscriber_id: int) -> Subscriber:
    subscriber = db_session().get(Subscriber, subscriber_id)
    if subscriber is None:
        abort(404, f"There is no subscriber {subscriber_id}.")
    return subscriber


def _signup(values: dict[str, Any]) -> Signup:
    ip = values.get("ip")
    if ip is not None:
        ip = str(ipaddress.ip_address(ip))
    return Signup(
        email=str(values["email"]),
        name=str(values.get("name") or ""),
        sections=values.get("sections"),
        consent=bool(values["consent"]),
        consent_version=values.get("consent_version"),
        source=ConsentSource.API,
        ip=ip or client_ip(),
        user_agent=str(values.get("user_agent") or request.user_agent.string),
    )


@editor_bp.get("/newsletters/<newsletter>/subscribers")
@operation("GET", "List readers", tag="subscribers", params=LIST,
           responses={200: "SubscriberPage"},
           description="Newest first, by keyset: every page costs the same. Follow `next`.")
def subscribers_list(newsletter: str) -> Response:
    """A page of the newsletter's readers matching the filters."""
    item = newsletter_or_404(newsletter)
    args = query(LIST)
    page = reports.search_subscribers(
        db_session(), item, search=args["search"] or "", status=args["status"] or "",
        section_id=args["section_id"], before=args["before"], after=args["after"],
        limit=args["limit"],
    )
    return jsonify({
        "subscribers": [shapes.subscriber_row(row) for row in page.rows],
        "total": page.total,
        "next": page_link(args, before=page.older),
        "previous": page_link(args, after=page.newer),
    })


@editor_bp.post("/newsletters/<newsletter>/subscribers")
@operation("POST", "Add a reader", tag="subscribers", body=NEW, errors=[409],
           responses={201: "AddedSubscriber", 200: "AddedSubscriber"},
           description="The same double opt-in as the public signup: the reader gets a "
                       "confirmation email and counts as subscribed only once they confirm. "
                       "201 for a new subscription, 200 when the address was known. A "
                       "suppressed address is refused (409).")
def subscriber_add(newsletter: str) -> Response:
    """Sign a reader up, recording consent with source "api"."""
    item = newsletter_or_404(newsletter)
    signup = _signup(json_body(NEW))
    dbs = db_session()
    outcome, subscriber = actions.add_reader(dbs, current_app.config, item, signup)
    dbs.commit()
    created = outcome is SignupOutcome.CREATED
    response = _record(subscriber.id, 201 if created else 200, outcome)
    if created:
        response.headers["Location"] = url_for(".subscriber_get", subscriber_id=subscriber.id)
    return response


@editor_bp.get(f"/subscribers/<{ID}:subscriber_id>")
@operation("GET", "Get a reader", tag="subscribers", responses={200: "Subscriber"},
           description="Every subscription with its consent records, the latest deliveries "
                       "and any suppression entry.")
def subscriber_get(subscriber_id: int) -> Response:
    """One reader's whole record."""
    return _record(subscriber_id)


@editor_bp.post(f"/newsletters/<newsletter>/subscribers/<{ID}:subscriber_id>/unsubscribe")
@operation("POST", "Unsubscribe a reader", tag="subscribers", admin=True,
           responses={200: "Subscriber"},
           description="Ends the reader's subscription to this newsletter at once and withdraws "
                       "their consent (channel \"api\"). Idempotent.")
def subscriber_unsubscribe(newsletter: str, subscriber_id: int) -> Response:
    """End one subscription."""
    item = newsletter_or_404(newsletter)
    dbs = db_session()
    subscription = actions.subscription_of(dbs, subscriber_id, item)
    if subscription is None:
        abort(404, f"Subscriber {subscriber_id} has no subscription to {item.slug}.")
    unsubscribe(dbs, subscription, WithdrawalChannel.API)
    dbs.commit()
    return _record(subscriber_id)


@editor_bp.post(f"/subscribers/<{ID}:subscriber_id>/suppress")
@operation("POST", "Suppress a reader's address", tag="subscribers", admin=True, body=SUPPRESS,
           responses={200: "Subscriber"},
           description="The address is never mailed again by any newsletter here, and every "
                       "subscription ends (consent withdrawn, channel \"api\").")
def subscriber_suppress(subscriber_id: int) -> Response:
    """Put the reader's address on the suppression list."""
    subscriber = _subscriber(subscriber_id)
    detail = json_body(SUPPRESS).get("detail") or ""
    dbs = db_session()
    actions.suppress_reader(dbs, current_app.config, subscriber, detail, WithdrawalChannel.API)
    dbs.commit()
    return _record(subscriber_id)
