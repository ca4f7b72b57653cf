"""Confirming a signup: GET shows a button, POST confirms, links are signed, expire and renew."""

from __future__ import annotations

import datetime as dt
import time

import pytest
from sqlalchemy import update

from digest.core.db import utcnow
from digest.core.models import SubscriptionStatus, TransactionalKind, TransactionalMail
from digest.core.tokens import Purpose, make_token
from digest.domain.links import confirm_url, unsubscribe_url
from tests.support.apps import BASE_URL, get_db_of
from tests.support.forms import csrf_token, submit
from tests.support.readers import (
    deliver,
    html_part,
    link,
    load_newsletter,
    mails,
    signed_path,
    signup,
    subscription,
    tamper,
    text_part,
)

WEEK_AND_A_DAY = 8 * 24 * 3600


def _pending(app, email: str = "nina@example.org") -> str:  # type: ignore[no-untyped-def]
    """Sign email up and return the path of its confirmation link."""
    load_newsletter(app)
    signup(app.test_client(), email, ip="203.0.113.9")
    return signed_path(app, email, confirm_url)


def _replay(client, path: str):  # type: ignore[no-untyped-def]
    """POST to path with a valid CSRF token taken from the front page (the page has no form now)."""
    return client.post(path, data={"csrf_token": csrf_token(client.get("/").get_data(as_text=True))})


def test_get_shows_a_button_and_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """Opening the link (as a mail scanner would) shows a Confirm button and confirms nothing."""
    path = _pending(app)
    for _ in range(3):
        response = client.get(path)
        assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert f'<form method="post" action="{path}">' in html
    assert "Confirm subscription</button>" in html
    found = subscription(app, "nina@example.org")
    assert found.status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
    assert found.consents[0].confirmed_at is None  # type: ignore[union-attr]


def test_post_confirms_and_records_who_confirmed(app, client) -> None:  # type: ignore[no-untyped-def]
    """Pressing Confirm subscribes the reader, completes the consent record and queues the welcome."""
    path = _pending(app)
    html = client.get(path).get_data(as_text=True)
    response = client.post(
        path,
        data={"csrf_token": csrf_token(html)},
        environ_base={"REMOTE_ADDR": "198.51.100.23"},
        headers={"User-Agent": "ReaderBrowser/1.0"},
    )
    assert response.status_code == 200
    assert "You are subscribed" in response.get_data(as_text=True)
    found = subscription(app, "nina@example.org")
    assert found.status is SubscriptionStatus.CONFIRMED and found.confirmed_at  # type: ignore[union-attr]
    [consent] = found.consents  # type: ignore[union-attr]
    assert consent.ip == "203.0.113.9"
    assert consent.confirmed_at == found.confirmed_at  # type: ignore[union-attr]
    assert consent.confirmed_ip == "198.51.100.23"
    assert consent.confirmed_user_agent == "ReaderBrowser/1.0"
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM, TransactionalKind.WELCOME]


def test_replayed_confirmation_is_harmless(app, client) -> None:  # type: ignore[no-untyped-def]
    """Confirming twice changes nothing the second time; after an unsubscribe the old link cannot resubscribe."""
    path = _pending(app)
    assert submit(client, path).status_code == 200
    first = subscription(app, "nina@example.org")
    response = _replay(client, path)
    assert response.status_code == 200
    assert "already subscribed" in response.get_data(as_text=True)
    again = subscription(app, "nina@example.org")
    assert again.confirmed_at == first.confirmed_at  # type: ignore[union-attr]
    assert [m.kind for m in mails(app)].count(TransactionalKind.WELCOME) == 1
    unsubscribe = unsubscribe_url(app.config, first.uid).removeprefix(BASE_URL)  # type: ignore[union-attr]
    client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    used = "This link was used before you unsubscribed, so it cannot subscribe you again."
    page = client.get(path).get_data(as_text=True)
    assert "Nothing to confirm" in page and used in page
    response = _replay(client, path)
    assert "Nothing to confirm" in response.get_data(as_text=True)
    assert used in response.get_data(as_text=True)  # the page and the button's answer agree
    assert subscription(app, "nina@example.org").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]


def test_expired_link_offers_a_new_one(smtp_app, smtp_server, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """After a week the link confirms nothing but offers "send me a new link", whose email works."""
    path = _pending(smtp_app)
    client = smtp_app.test_client()
    later = time.time() + WEEK_AND_A_DAY
    monkeypatch.setattr(time, "time", lambda: later)
    response = client.get(path)
    assert response.status_code == 410
    html = response.get_data(as_text=True)
    assert "has expired" in html and "Send me a new link" in html
    assert "Confirmation links work for 7 days" in html  # as the email says
    refused = client.post(path, data={"csrf_token": csrf_token(html)})
    assert refused.status_code == 410
    assert subscription(smtp_app, "nina@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
    with get_db_of(smtp_app).session() as session:  # the first email was asked for a week ago
        session.execute(
            update(TransactionalMail).values(created_at=utcnow() - dt.timedelta(days=8))
        )
    renewed = submit(client, path, path + "/renew")
    assert renewed.status_code == 200 and "Check your inbox" in renewed.get_data(as_text=True)
    assert submit(client, path, path + "/renew").status_code == 200
    assert [m.kind for m in mails(smtp_app)] == [TransactionalKind.CONFIRM] * 2  # one a day
    assert deliver(smtp_app) == 1
    assert "The link works for 7 days." in smtp_server.received[-1].message.get_body(("plain",)).get_content()
    new_path = link(smtp_server.received[-1], "confirm", BASE_URL)
    assert new_path != path
    assert submit(client, new_path).status_code == 200
    assert subscription(smtp_app, "nina@example.org").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["tampered", "cross-purpose", "truncated", "garbage"])
def test_bad_links_change_nothing(app, client, kind: str) -> None:  # type: ignore[no-untyped-def]
    """A tampered, truncated or other-purpose token gets a clear 400 page, on GET and POST alike."""
    path = _pending(app)
    found = subscription(app, "nina@example.org")
    token = path.rsplit("/", 1)[1]
    bad = {
        "tampered": tamper(token),
        "cross-purpose": make_token(app.config["SECRET_KEY"], Purpose.UNSUBSCRIBE, found.uid),  # type: ignore[union-attr]
        "truncated": token[: len(token) // 2],
        "garbage": "not-a-token",
    }[kind]
    response = client.get(f"/confirm/{bad}")
    assert response.status_code == 400
    assert "This link is not valid" in response.get_data(as_text=True)
    html = client.get("/").get_data(as_text=True)
    assert client.post(f"/confirm/{bad}", data={"csrf_token": csrf_token(html)}).status_code == 400
    assert subscription(app, "nina@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]


def test_a_genuine_link_to_nothing_is_a_404(app, client) -> None:  # type: ignore[no-untyped-def]
    """A correctly signed token whose subscription does not exist says so with a 404."""
    load_newsletter(app)
    response = client.get(confirm_url(app.config, "no-such-uid").removeprefix(BASE_URL))
    assert response.status_code == 404
    assert "no longer leads anywhere" in response.get_data(as_text=True)


def test_confirm_needs_the_csrf_token(app, client) -> None:  # type: ignore[no-untyped-def]
    """A forged cross-site POST cannot confirm someone."""
    path = _pending(app)
    assert client.post(path).status_code == 400
    assert subscription(app, "nina@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]


def test_the_emailed_link_is_the_confirm_page(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The link in the received confirmation email opens this subscription's Confirm page."""
    path = _pending(smtp_app)
    deliver(smtp_app)
    assert link(smtp_server.received[0], "confirm", BASE_URL).split(".")[0] == path.split(".")[0]


def test_the_preview_line_names_the_button_the_page_shows(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The confirmation's preview line (its first line, which inboxes show) says to press the button the page really shows."""
    _pending(smtp_app)
    deliver(smtp_app)
    received = smtp_server.received[0]
    first_line = text_part(received).strip().splitlines()[0]
    assert first_line == "Open the link and press Confirm: nothing arrives until you do."
    assert "One click" not in html_part(received)
    page = smtp_app.test_client().get(link(received, "confirm", BASE_URL)).get_data(as_text=True)
    assert '<button type="submit">Confirm subscription</button>' in page
