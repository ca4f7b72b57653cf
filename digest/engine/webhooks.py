"""Webhook delivery: send what the outbox holds, through the SSRF-guarded client.

Contract: `deliver_due` disables endpoints that failed for DIGEST_WEBHOOK_DISABLE_AFTER_HOURS
and leases due deliveries in one short transaction, then posts each one outside any
transaction (a slow receiver never holds a database lock) and records the attempt in
another. A process killed between the two leaves a lease that expires, after which the
delivery is sent again with the same webhook-id (at least once). `WebhookDeliverer` is
the thread `digest run` and `digest worker` start; with a broker, the clock enqueues the
`digest.deliver_webhooks` task instead (digest/engine/tasks.py).
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable
from email.utils import parseaddr

from flask import Flask

from digest.core.db import Database, utcnow
from digest.core.outbound import OutboundClient, OutboundError, client_from_config
from digest.core.resources import resource_dir
from digest.domain import webhooks
from digest.domain.editors import list_editors
from digest.engine.sender import new_owner
from digest.mail.mailer import mailer_for
from digest.mail.message import Mail, ascii_address
from digest.mail.stencil import email_templates, render_subject
from digest.mail.transport import SendError

log = logging.getLogger(__name__)

# What a receiver may take per request; Standard Webhooks advises a short timeout.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 15.0
TOTAL_TIMEOUT = 30.0
REPLY_BYTES = 64_000



def tell_admins(app: Flask, endpoints: list[tuple[str, str]]) -> int:
    """Email every active admin that these endpoints (URL, reason) were disabled; return
    how many were told. A mail failure is logged: the workspace banner still shows it."""
    env = email_templates(resource_dir("templates"))
    context = {
        "endpoints": [{"url": url, "reason": reason} for url, reason in endpoints],
        "hours": f"{app.config['WEBHOOK_DISABLE_AFTER_HOURS']:g}",
        "workspace_url": f"{app.config['BASE_URL']}/editor/webhooks",
    }
    subject = render_subject(env, "webhook_disabled", context)
    text = env.get_template("emails/webhook_disabled.txt").render(context)
    database: Database = app.extensions["digest.db"]
    with database.session() as session:
        admins = [e.email for e in list_editors(session) if e.is_admin and e.active]
    sender = parseaddr(app.config["MAIL_FROM"])[1]
    told = 0
    try:
        with mailer_for(app.config) as mailer:
            for address in admins:
                message = Mail(from_=app.config["MAIL_FROM"], to=ascii_address(address),
                               subject=subject, text=text,
                               headers=[("Auto-Submitted", "auto-generated")])
                mailer.send(sender, ascii_address(address), message.as_bytes())
                told += 1
    except SendError:
        log.exception("telling the admins about disabled webhook endpoints failed")
    return told


def webhook_client(app: Flask) -> OutboundClient:
    """Return the outbound client webhooks use: no redirects, short timeouts, small replies."""
    return client_from_config(app.config, connect_timeout=CONNECT_TIMEOUT,
                              read_timeout=READ_TIMEOUT, total_timeout=TOTAL_TIMEOUT,
                              max_bytes=REPLY_BYTES, user_agent="digest-webhooks")


def attempt(client: OutboundClient, request: webhooks.Request) -> webhooks.Outcome:
    """POST one signed message and return what came of it."""
    try:
        fetched = client.request("POST", request.url, headers=request.headers,
                                 content=request.body)
    except OutboundError as exc:
        return webhooks.Outcome(status=None, elapsed=0.0, error=str(exc))
    return webhooks.Outcome(status=fetched.status, elapsed=fetched.elapsed,
                            excerpt=fetched.text(webhooks.EXCERPT_CHARS))


def deliver_due(app: Flask, client: OutboundClient, owner: str,
                now: Callable[[], dt.datetime] = utcnow, limit: int = 20) -> int:
    """Send up to limit due deliveries; return how many were attempted."""
    database: Database = app.extensions["digest.db"]
    disable_after = dt.timedelta(hours=app.config["WEBHOOK_DISABLE_AFTER_HOURS"])
    with database.session() as session:
        disabled = webhooks.disable_failing(session, disable_after, now())
        told = [(e.url, e.disabled_reason or "") for e in disabled]
        claimed = webhooks.claim_due(session, owner, now(), limit)
        requests = [webhooks.request_for(session, delivery_id, now()) for delivery_id in claimed]
    if told:
        log.warning("webhook endpoints disabled: %s", "; ".join(f"{u} ({r})" for u, r in told))
        tell_admins(app, told)
    for request in requests:
        outcome = attempt(client, request)
        with database.session() as session:
            state = webhooks.record_attempt(session, request.delivery_id, owner, outcome,
                                            app.config["WEBHOOK_RETRY_SECONDS"], now())
        log.info("webhook %s to %s: %s -> %s", request.delivery_id, request.url,
                 outcome.status or outcome.error, state)
    return len(requests)


class WebhookDeliverer:
    """A thread delivering webhooks every idle_seconds (at once after a busy round)."""

    def __init__(self, app: Flask, idle_seconds: float = 1.0) -> None:
        self.app = app
        self.idle_seconds = idle_seconds
        self.owner = new_owner("webhooks")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WebhookDeliverer:
        """Start the thread; return self."""
        self._thread = threading.Thread(target=self._run, name="digest-webhooks", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with webhook_client(self.app) as client:
            while not self._stop.is_set():
                try:
                    busy = deliver_due(self.app, client, self.owner) > 0
                except Exception:  # noqa: BLE001  (a database outage: try again next round)
                    log.exception("webhook delivery round failed")
                    busy = False
                if not busy:
                    self._stop.wait(self.idle_seconds)

    def stop(self) -> None:
        """Stop after the request in flight, if any."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(TOTAL_TIMEOUT + 5)
