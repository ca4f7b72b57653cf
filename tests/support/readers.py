"""Helpers for reader-side tests: sign up through the form, send due mail, follow links.

Reads go through short sessions of their own: on SQLite every transaction takes the
write lock, so a test must never keep one open while the app handles a request.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import joinedload, selectinload
from werkzeug.test import TestResponse

from digest.core.models import Newsletter, Subscriber, Subscription, TransactionalMail
from digest.domain.demo import load_demo
from digest.engine.signups import take_signups
from digest.engine.transactional import deliver_transactional
from digest.mail.mailer import mailer_for
from tests.support.apps import get_db_of
from tests.support.forms import csrf_token, submit
from tests.support.smtp import Received, SMTPServer

NEWSLETTER = "weekly-model"
_ips = itertools.count(1)


def load_newsletter(app: Flask) -> Newsletter:
    """Load the demo newsletter (four confirmed readers) and return it."""
    with get_db_of(app).session() as session:
        newsletter = load_demo(session)
        assert newsletter is not None
        return newsletter


def fresh_ip() -> str:
    """Return a client address no other request in this run used (own rate-limit budget)."""
    number = next(_ips)
    return f"10.{number // 65536 % 256}.{number // 256 % 256}.{number % 256}"


def signup(
    client: FlaskClient,
    email: str,
    *,
    name: str = "",
    sections: list[str] | None = None,
    consent: bool = True,
    website: str = "",
    ip: str | None = None,
    engine: bool = True,
    **extra: str,
) -> TestResponse:
    """Fill in and send the front page's signup form the way a browser does; then let the
    engine act on it."""
    html = client.get("/").get_data(as_text=True)
    version = re.search(r'name="consent_version" value="([^"]*)"', html)
    data: dict[str, Any] = {
        "csrf_token": csrf_token(html),
        "newsletter": NEWSLETTER,
        "consent_version": version.group(1) if version else "",
        "email": email,
        "name": name,
        "website": website,
        "sections": sections
        if sections is not None
        else re.findall(r'name="sections" value="([^"]+)"', html),
    }
    if consent:
        data["consent"] = "yes"
    data.update(extra)
    response = client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": ip or fresh_ip()})
    if engine:
        # What `digest run`'s mail thread does at once after the answer.
        take_signups_now(client.application)
    return response


def deliver(app: Flask, **options: Any) -> int:
    """Act on waiting signups, then send the due transactional mail with the app's settings,
    as the engine does; return how many went out."""
    with mailer_for(app.config) as mailer:
        return deliver_transactional(get_db_of(app), mailer, app.config, **options)


def take_signups_now(app: Flask) -> int:
    """Act on the signups the web recorded, as the engine does; return how many."""
    return take_signups(get_db_of(app), app.config)


def confirm_by_email(
    app: Flask, smtp_server: SMTPServer, email: str, **signup_options: Any
) -> Received:
    """Sign email up, send its confirmation and follow the link in it; return the confirmation.

    The welcome email is left due (send it with deliver).
    """
    client = app.test_client()
    assert signup(client, email, **signup_options).status_code == 200
    assert deliver(app) == 1
    confirmation = smtp_server.to(email)[-1]
    path = link(confirmation, "confirm", app.config["BASE_URL"])
    assert submit(client, path).status_code == 200
    return confirmation


def subscription(app: Flask, email: str) -> Subscription | None:
    """Return the subscription of an address (consents, sections, reader loaded), or None."""
    with get_db_of(app).session() as session:
        return session.scalar(
            select(Subscription)
            .join(Subscriber)
            .where(Subscriber.email == email)
            .options(
                joinedload(Subscription.subscriber),
                selectinload(Subscription.consents),
                selectinload(Subscription.sections),
            )
        )


def mails(app: Flask) -> list[TransactionalMail]:
    """Return every transactional mail request, oldest first."""
    with get_db_of(app).session() as session:
        return list(session.scalars(select(TransactionalMail).order_by(TransactionalMail.id)))


def text_part(received: Received) -> str:
    """Return the decoded text/plain part of a received message."""
    part = received.message.get_body(preferencelist=("plain",))
    assert part is not None
    content: str = part.get_content()
    return content


def html_part(received: Received) -> str:
    """Return the decoded text/html part of a received message."""
    part = received.message.get_body(preferencelist=("html",))
    assert part is not None
    content: str = part.get_content()
    return content


def link(received: Received, kind: str, base_url: str) -> str:
    """Return the path of the first /<kind>/ link in a message's text part."""
    match = re.search(rf"{re.escape(base_url)}(/{kind}/[A-Za-z0-9._-]+)", text_part(received))
    assert match, f"no /{kind}/ link in the message"
    return match.group(1)


def tamper(token: str) -> str:
    """Return token with the first character of its signature changed (a forged link).

    Not the last one: base64 leaves a few unused bits there, so some edits decode alike.
    """
    head, _, signature = token.rpartition(".")
    first = "B" if signature[0] != "B" else "C"
    return f"{head}.{first}{signature[1:]}"


def signed_path(app: Flask, email: str, url: Callable[[Mapping[str, Any], str], str]) -> str:
    """Return the path of a reader's signed link, url being links.confirm_url, unsubscribe_url…"""
    found = subscription(app, email)
    assert found is not None, f"{email} has no subscription"
    return url(app.config, found.uid).removeprefix(app.config["BASE_URL"])
