"""Admin pages for outgoing webhooks: endpoints, their attempts, resend, test, rotate."""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.models import WebhookEndpoint
from digest.core.validation import Invalid
from digest.domain import webhooks
from digest.web.editor import admin

ID = "int(max=2147483647)"


def _endpoint(webhook_id: int) -> WebhookEndpoint:
    found = webhooks.get_endpoint(db_session(), webhook_id)
    if found is None:
        abort(404)
    return found


def _list_page(errors: dict[str, str] | None = None, status: int = 200) -> Response:
    form = request.form if errors else None
    return make_response(render_template(
        "editor/webhooks.html",
        endpoints=webhooks.list_endpoints(db_session()),
        events=webhooks.EVENTS,
        errors=errors or {},
        url=form.get("url", "") if form else "",
        description=form.get("description", "") if form else "",
        chosen=form.getlist("events") if form else [],
    ), status)


def _detail_page(endpoint: WebhookEndpoint, secret: str | None = None,
                 status: int = 200) -> Response:
    return make_response(render_template(
        "editor/webhook.html", endpoint=endpoint, secret=secret,
        deliveries=webhooks.deliveries_of(db_session(), endpoint),
    ), status)


@admin.get("/webhooks")
def webhooks_list() -> Response:
    """List the endpoints with the form to add one."""
    return _list_page()


@admin.post("/webhooks")
def webhook_create() -> Response:
    """Register an endpoint and show its secret once."""
    dbs = db_session()
    try:
        endpoint = webhooks.create_endpoint(dbs, request.form.get("url", ""),
                                            request.form.getlist("events"),
                                            request.form.get("description", ""))
    except Invalid as exc:
        dbs.rollback()
        return _list_page(exc.errors, 400)
    dbs.commit()
    return _detail_page(endpoint, secret=endpoint.secret, status=201)


@admin.get(f"/webhooks/<{ID}:webhook_id>")
def webhook_detail(webhook_id: int) -> Response:
    """Show an endpoint with its latest deliveries and every attempt."""
    return _detail_page(_endpoint(webhook_id))


@admin.post(f"/webhooks/<{ID}:webhook_id>/rotate")
def webhook_rotate(webhook_id: int) -> Response:
    """Give the endpoint a new secret and show it once."""
    endpoint = _endpoint(webhook_id)
    secret = webhooks.rotate_secret(db_session(), endpoint)
    db_session().commit()
    return _detail_page(endpoint, secret=secret)


@admin.post(f"/webhooks/<{ID}:webhook_id>/test")
def webhook_test(webhook_id: int) -> Response:
    """Queue a test event for the endpoint."""
    webhooks.send_test(db_session(), _endpoint(webhook_id))
    db_session().commit()
    flash("A test event is on its way; its attempt appears below within seconds.", "success")
    return redirect(url_for("editor.admin.webhook_detail", webhook_id=webhook_id))


@admin.post(f"/webhooks/<{ID}:webhook_id>/enabled")
def webhook_enable(webhook_id: int) -> Response:
    """Switch the endpoint on (form value 1) or off (0)."""
    on = request.form.get("enabled") == "1"
    webhooks.update_endpoint(db_session(), _endpoint(webhook_id), enabled=on)
    db_session().commit()
    flash("The endpoint is enabled: waiting events go out now." if on else
          "The endpoint is disabled: events wait until it is enabled again.", "success")
    return redirect(url_for("editor.admin.webhook_detail", webhook_id=webhook_id))


@admin.post(f"/webhooks/<{ID}:webhook_id>/remove")
def webhook_remove(webhook_id: int) -> Response:
    """Delete the endpoint with its deliveries."""
    endpoint = _endpoint(webhook_id)
    url = endpoint.url
    webhooks.remove_endpoint(db_session(), endpoint)
    db_session().commit()
    flash(f"The endpoint {url} is removed.", "success")
    return redirect(url_for("editor.admin.webhooks_list"))


@admin.post(f"/webhooks/<{ID}:webhook_id>/deliveries/<{ID}:delivery_id>/resend")
def webhook_resend(webhook_id: int, delivery_id: int) -> Response:
    """Send a delivery again with the same webhook-id."""
    delivery = webhooks.get_delivery(db_session(), _endpoint(webhook_id), delivery_id)
    if delivery is None:
        abort(404)
    if webhooks.resend(db_session(), delivery):
        db_session().commit()
        flash("The event is queued again (same webhook-id, so the receiver can tell).", "success")
    else:
        flash("It is being sent right now; try again in a minute.", "warning")
    return redirect(url_for("editor.admin.webhook_detail", webhook_id=webhook_id))
