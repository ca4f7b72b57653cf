"""`digest webhooks …`: outgoing webhook endpoints, their attempts, resends and tests."""

from __future__ import annotations

import click
from flask.cli import AppGroup, with_appcontext

from digest.core.models import WebhookEndpoint

group = AppGroup("webhooks", help="Outgoing webhooks: endpoints that receive events.")


def _endpoint(endpoint_id: int) -> WebhookEndpoint:
    from digest.core.extensions import db_session
    from digest.domain.webhooks import get_endpoint

    endpoint = get_endpoint(db_session(), endpoint_id)
    if endpoint is None:
        raise click.ClickException(f"No webhook endpoint {endpoint_id} (see `digest webhooks list`).")
    return endpoint


@group.command("add")
@click.argument("url")
@click.option("--events", required=True,
              help="Comma-separated event types, e.g. subscriber.created,issue.sent.")
@click.option("--description", default="", help="What the endpoint is for.")
@with_appcontext
def webhooks_add(url: str, events: str, description: str) -> None:
    """Register an endpoint and print its signing secret (shown this once)."""
    from digest.core.extensions import db_session
    from digest.core.validation import Invalid
    from digest.domain.webhooks import create_endpoint

    session = db_session()
    try:
        endpoint = create_endpoint(session, url, events.split(","), description)
    except Invalid as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(f"Added webhook endpoint {endpoint.id}: {endpoint.url} ({', '.join(endpoint.events)})")
    click.echo(f"Signing secret (shown once; keep it with the receiver): {endpoint.secret}")


@group.command("list")
@with_appcontext
def webhooks_list() -> None:
    """List endpoints: id, state, URL, events, description."""
    from digest.core.extensions import db_session
    from digest.domain.webhooks import list_endpoints

    for endpoint in list_endpoints(db_session()):
        state = "enabled" if endpoint.enabled else f"disabled: {endpoint.disabled_reason}"
        click.echo(f"{endpoint.id}\t{state}\t{endpoint.url}\t{','.join(endpoint.events)}\t"
                   f"{endpoint.description}")


@group.command("remove")
@click.argument("endpoint_id", type=int)
@with_appcontext
def webhooks_remove(endpoint_id: int) -> None:
    """Delete an endpoint with its deliveries and attempts."""
    from digest.core.extensions import db_session
    from digest.domain.webhooks import remove_endpoint

    endpoint = _endpoint(endpoint_id)
    remove_endpoint(db_session(), endpoint)
    db_session().commit()
    click.echo(f"Removed webhook endpoint {endpoint_id}.")


@group.command("rotate")
@click.argument("endpoint_id", type=int)
@with_appcontext
def webhooks_rotate(endpoint_id: int) -> None:
    """Give an endpoint a new secret and print it; the old one also signs for 24 hours."""
    from digest.core.extensions import db_session
    from digest.domain.webhooks import rotate_secret

    secret = rotate_secret(db_session(), _endpoint(endpoint_id))
    db_session().commit()
    click.echo(f"New signing secret (shown once): {secret}")
    click.echo("Messages carry signatures with both the old and the new secret for 24 hours.")


@group.command("enable")
@click.argument("endpoint_id", type=int)
@with_appcontext
def webhooks_enable(endpoint_id: int) -> None:
    """Enable a disabled endpoint again; its waiting deliveries go out."""
    from digest.core.extensions import db_session
    from digest.domain.webhooks import update_endpoint

    update_endpoint(db_session(), _endpoint(endpoint_id), enabled=True)
    db_session().commit()
    click.echo(f"Enabled webhook endpoint {endpoint_id}.")


@group.command("test")
@click.argument("endpoint_id", type=int)
@with_appcontext
def webhooks_test(endpoint_id: int) -> None:
    """Queue a test event for one endpoint."""
    from digest.core.extensions import db_session
    from digest.domain.webhooks import send_test

    delivery = send_test(db_session(), _endpoint(endpoint_id))
    db_session().commit()
    click.echo(f"Queued test delivery {delivery.id}; see `digest webhooks attempts {endpoint_id}`.")


@group.command("attempts")
@click.argument("endpoint_id", type=int)
@click.option("--limit", default=50, show_default=True)
@with_appcontext
def webhooks_attempts(endpoint_id: int, limit: int) -> None:
    """List an endpoint's latest attempts: delivery, event, time, status, ms, reply excerpt."""
    from digest.core.extensions import db_session
    from digest.domain.webhooks import attempts_of

    for attempt, delivery in attempts_of(db_session(), _endpoint(endpoint_id), limit):
        status = attempt.status if attempt.status is not None else "-"
        said = attempt.error or " ".join(attempt.excerpt.split())[:80]
        click.echo(f"{delivery.id}\t{delivery.event.type}\t{delivery.event.uid}\t"
                   f"{attempt.at:%Y-%m-%d %H:%M:%S}\t{status}\t{attempt.elapsed_ms} ms\t{said}")


@group.command("resend")
@click.argument("endpoint_id", type=int)
@click.argument("delivery_id", type=int)
@with_appcontext
def webhooks_resend(endpoint_id: int, delivery_id: int) -> None:
    """Send a delivery again (same webhook-id), with a fresh day of retries."""
    from digest.core.extensions import db_session
    from digest.domain.webhooks import get_delivery, resend

    delivery = get_delivery(db_session(), _endpoint(endpoint_id), delivery_id)
    if delivery is None:
        raise click.ClickException(f"Endpoint {endpoint_id} has no delivery {delivery_id}.")
    if not resend(db_session(), delivery):
        raise click.ClickException(f"Delivery {delivery_id} is being sent right now.")
    db_session().commit()
    click.echo(f"Delivery {delivery_id} queued again.")


COMMANDS = (group,)
