"""Outgoing webhooks (admins only): endpoints, their secrets, deliveries, resends, tests."""

from __future__ import annotations

from flask import Response, abort, jsonify, url_for

from digest.core.extensions import db_session
from digest.core.models import WebhookEndpoint
from digest.core.validation import URL_MAX, Invalid
from digest.domain import webhooks
from digest.web.api import ID, editor_bp, shapes
from digest.web.api.inputs import Body, Field, json_body
from digest.web.api.spec import operation

_EVENTS = ", ".join(f"`{name}`" for name in webhooks.EVENTS)
_FIELDS = {
    "url": Field("string", "Where events are POSTed (http or https). It may not be on a "
                           "private, loopback or link-local network unless the server allows it.",
                 required=True, max_length=URL_MAX, fmt="http-url", blank=False,
                 example="https://crm.example.com/hooks/digest"),
    "events": Field("strings", f"The event types to send: {_EVENTS} (409 naming an unknown "
                               "one).", required=True, min_items=1,
                    max_items=len(webhooks.EVENTS), max_length=40,
                    example=["subscriber.created", "issue.sent"]),
    "description": Field("string", "What the endpoint is for.", max_length=200),
}
NEW = Body("NewWebhook", "An endpoint to register; the answer carries its secret, once.", _FIELDS)
CHANGES = Body("WebhookChanges", "The fields to change; `enabled: true` switches a disabled "
                                 "endpoint back on.", {
    **_FIELDS,
    "enabled": Field("boolean", "Whether events are sent to it."),
}, partial=True)
DELIVERIES = "The latest 50 deliveries, newest first, each with its attempts."


def _endpoint(webhook_id: int) -> WebhookEndpoint:
    found = webhooks.get_endpoint(db_session(), webhook_id)
    if found is None:
        abort(404, f"There is no webhook {webhook_id}.")
    return found


def _answer(shape: dict[str, object], status: int = 200) -> Response:
    response = jsonify(shape)
    response.status_code = status
    return response


@editor_bp.get("/webhooks")
@operation("GET", "List webhooks", tag="webhooks", admin=True, responses={200: "WebhookList"})
def webhooks_list() -> Response:
    """Every endpoint, oldest first."""
    return jsonify({"webhooks": [shapes.webhook(e) for e in webhooks.list_endpoints(db_session())]})


@editor_bp.post("/webhooks")
@operation("POST", "Register a webhook", tag="webhooks", admin=True, body=NEW, errors=[409],
           responses={201: "NewWebhookSecret"},
           description="The answer holds the signing secret; it is never shown again (rotate "
                       "to get a new one). 409 for an unknown event type.")
def webhook_create() -> Response:
    """Register an endpoint."""
    values = json_body(NEW)
    dbs = db_session()
    endpoint = webhooks.create_endpoint(dbs, values["url"], values["events"],
                                        values.get("description") or "")
    dbs.commit()
    response = _answer(shapes.webhook(endpoint, secret=True), 201)
    response.headers["Location"] = url_for(".webhook_get", webhook_id=endpoint.id)
    return response


@editor_bp.get(f"/webhooks/<{ID}:webhook_id>")
@operation("GET", "Get a webhook", tag="webhooks", admin=True, responses={200: "Webhook"})
def webhook_get(webhook_id: int) -> Response:
    """One endpoint (without its secret)."""
    return jsonify(shapes.webhook(_endpoint(webhook_id)))


@editor_bp.patch(f"/webhooks/<{ID}:webhook_id>")
@operation("PATCH", "Change a webhook", tag="webhooks", admin=True, body=CHANGES, errors=[409],
           responses={200: "Webhook"}, description="409 for an unknown event type.")
def webhook_update(webhook_id: int) -> Response:
    """Change an endpoint's URL, events, description, or switch it on or off."""
    endpoint = _endpoint(webhook_id)
    values = json_body(CHANGES)
    dbs = db_session()
    webhooks.update_endpoint(dbs, endpoint, url=values.get("url"), events=values.get("events"),
                             description=values.get("description"), enabled=values.get("enabled"))
    dbs.commit()
    return jsonify(shapes.webhook(endpoint))


@editor_bp.delete(f"/webhooks/<{ID}:webhook_id>")
@operation("DELETE", "Remove a webhook", tag="webhooks", admin=True, responses={204: None},
           description="Its waiting deliveries and its attempt log go with it.")
def webhook_delete(webhook_id: int) -> Response:
    """Remove an endpoint."""
    dbs = db_session()
    webhooks.remove_endpoint(dbs, _endpoint(webhook_id))
    dbs.commit()
    return Response(status=204)


@editor_bp.post(f"/webhooks/<{ID}:webhook_id>/rotate")
@operation("POST", "Rotate a webhook's secret", tag="webhooks", admin=True,
           responses={200: "WebhookSecret"},
           description="Messages carry signatures with both secrets for 24 hours, so the "
                       "receiver can switch without losing any.")
def webhook_rotate(webhook_id: int) -> Response:
    """Give an endpoint a new signing secret."""
    endpoint = _endpoint(webhook_id)
    dbs = db_session()
    secret = webhooks.rotate_secret(dbs, endpoint)
    dbs.commit()
    return jsonify(shapes.webhook_secret(endpoint, secret))


@editor_bp.post(f"/webhooks/<{ID}:webhook_id>/test")
@operation("POST", "Send a test event", tag="webhooks", admin=True,
           responses={202: "WebhookDelivery"},
           description="Queues a `webhook.test` event for this endpoint alone.")
def webhook_test(webhook_id: int) -> Response:
    """Queue a test event."""
    dbs = db_session()
    delivery = webhooks.send_test(dbs, _endpoint(webhook_id))
    dbs.commit()
    return _answer(shapes.webhook_delivery(delivery, []), 202)


@editor_bp.get(f"/webhooks/<{ID}:webhook_id>/deliveries")
@operation("GET", "List a webhook's deliveries", tag="webhooks", admin=True,
           responses={200: "WebhookDeliveryList"}, description=DELIVERIES)
def webhook_deliveries(webhook_id: int) -> Response:
    """The endpoint's latest deliveries with every attempt: status, time, body excerpt."""
    found = webhooks.deliveries_of(db_session(), _endpoint(webhook_id))
    return jsonify({"deliveries": [shapes.webhook_delivery(d, a) for d, a in found]})


@editor_bp.post(f"/webhooks/<{ID}:webhook_id>/deliveries/<{ID}:delivery_id>/resend")
@operation("POST", "Resend a delivery", tag="webhooks", admin=True, errors=[409],
           responses={202: "WebhookDelivery"},
           description="Sends the event again with the same `webhook-id` and a fresh day of "
                       "retries. 409 while it is being sent.")
def webhook_resend(webhook_id: int, delivery_id: int) -> Response:
    """Queue a delivery again."""
    dbs = db_session()
    delivery = webhooks.get_delivery(dbs, _endpoint(webhook_id), delivery_id)
    if delivery is None:
        abort(404, f"Webhook {webhook_id} has no delivery {delivery_id}.")
    if not webhooks.resend(dbs, delivery):
        raise Invalid({"delivery": "It is being sent right now; try again in a minute."})
    dbs.commit()
    return _answer(shapes.webhook_delivery(delivery, []), 202)
