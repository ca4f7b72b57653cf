"""One-click unsubscribe (RFC 8058), the unsubscribe page, and resubscribing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select, update

from digest.core.models import (
    ConsentSource,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from digest.domain.links import confirm_url, preferences_url, unsubscribe_url
from digest.domain.subscribers.actions import ReaderActions
from digest.domain.subscribers.signup import WithdrawalChannel, unsubscribe
from digest.domain.suppression import is_suppressed, suppress
from tests.support.apps import get_db_of
from tests.support.forms import csrf_token
from tests.support.readers import (
    load_newsletter,
    signed_path,
    subscription,
    tamper,
)

ONE_CLICK = "List-Unsubscribe=One-Click"


def _path(app, email: str = "ada@example.com") -> str:  # type: ignore[no-untyped-def]
    return signed_path(app, email, unsubscribe_url)


def _one_click(client, path: str):  # type: ignore[no-untyped-def]
    """POST exactly what Gmail sends: a 26-byte urlencoded body, no cookie, no token."""
    return client.post(path, data=ONE_CLICK, content_type="application/x-www-form-urlencoded")


def _confirmed_readers(app) -> list[str]:  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        return sorted(
            s.subscriber.email
            for s in session.scalars(
                select(Subscription).where(Subscription.status == SubscriptionStatus.CONFIRMED)
            )
        )


def test_get_shows_a_button_and_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """Opening the link (or a scanner fetching it) shows an Unsubscribe button and unsubscribes nobody."""
    load_newsletter(app)
    path = _path(app)
    response = client.get(path)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Unsubscribe from The Weekly Model?" in html
    assert f'<form method="post" action="{path}">' in html
    assert 'name="List-Unsubscribe" value="One-Click"' in html
    assert "Set-Cookie" not in response.headers
    assert subscription(app, "ada@example.com").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]


def test_one_click_post_unsubscribes_at_once(app) -> None:  # type: ignore[no-untyped-def]
    """The RFC 8058 POST works without cookie or CSRF token, answers 200 without redirect or cookie, and takes effect immediately."""
    load_newsletter(app)
    client = app.test_client(use_cookies=False)
    response = _one_click(client, _path(app))
    assert response.status_code == 200
    assert "Location" not in response.headers and "Set-Cookie" not in response.headers
    assert "You are unsubscribed" in response.get_data(as_text=True)
    found = subscription(app, "ada@example.com")
    assert found.status is SubscriptionStatus.UNSUBSCRIBED and found.unsubscribed_at  # type: ignore[union-attr]
    [consent] = found.consents  # type: ignore[union-attr]
    assert consent.withdrawn_at == found.unsubscribed_at  # type: ignore[union-attr]
    assert consent.withdrawal_channel == "one-click"
    assert "ada@example.com" not in _confirmed_readers(app)  # the next send excludes her


def test_one_click_accepts_multipart_and_is_idempotent(app) -> None:  # type: ignore[no-untyped-def]
    """A multipart/form-data POST works too, and repeating it changes nothing more."""
    load_newsletter(app)
    client = app.test_client(use_cookies=False)
    path = _path(app, "grace@example.com")
    first = client.post(path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data")
    assert first.status_code == 200
    before = subscription(app, "grace@example.com")
    for _ in range(2):
        again = client.post(path, data={"List-Unsubscribe": "One-Click"}, content_type="multipart/form-data")
        assert again.status_code == 200 and "Location" not in again.headers
    after = subscription(app, "grace@example.com")
    assert after.unsubscribed_at == before.unsubscribed_at  # type: ignore[union-attr]
    assert after.consents[0].withdrawn_at == before.consents[0].withdrawn_at  # type: ignore[union-attr]
    assert len(after.consents) == 1  # type: ignore[union-attr]


def test_a_post_without_the_one_click_body_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """A POST that does not say List-Unsubscribe=One-Click is refused with 400 and unsubscribes nobody."""
    load_newsletter(app)
    response = client.post(_path(app), data="something=else", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert subscription(app, "ada@example.com").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]


@pytest.mark.parametrize("kind", ["tampered", "confirm-token", "preferences-token", "garbage"])
def test_forged_or_cross_purpose_tokens_change_nothing(app, kind: str) -> None:  # type: ignore[no-untyped-def]
    """Only an unsubscribe token unsubscribes: others get 400 on GET and POST, and nobody is touched."""
    load_newsletter(app)
    client = app.test_client(use_cookies=False)
    found = subscription(app, "ada@example.com")
    path = _path(app)
    token = path.rsplit("/", 1)[1]
    bad = {
        "tampered": tamper(token),
        "confirm-token": confirm_url(app.config, found.uid).rsplit("/", 1)[1],  # type: ignore[union-attr]
        "preferences-token": preferences_url(app.config, found.uid).rsplit("/", 1)[1],  # type: ignore[union-attr]
        "garbage": "x" * 40,
    }[kind]
    assert client.get(f"/unsubscribe/{bad}").status_code == 400
    response = client.post(f"/unsubscribe/{bad}", data=ONE_CLICK, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400
    assert "This link is not valid" in response.get_data(as_text=True)
    assert _confirmed_readers(app) == [
        "ada@example.com", "alan@example.com", "grace@example.com", "katherine@example.com",
    ]


def test_unsubscribe_links_never_expire(app, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """A link from an email ten years old still unsubscribes."""
    load_newsletter(app)
    path = _path(app)
    later = time.time() + 10 * 365 * 24 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    assert _one_click(app.test_client(), path).status_code == 200
    assert subscription(app, "ada@example.com").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]


def test_page_button_then_resubscribe(app, client) -> None:  # type: ignore[no-untyped-def]
    """The page's button unsubscribes (channel "page"); the Resubscribe button then makes a new, confirmed consent."""
    load_newsletter(app)
    path = _path(app)
    page = client.get(path).get_data(as_text=True)
    assert 'name="via" value="page"' in page
    response = client.post(path, data={"List-Unsubscribe": "One-Click", "via": "page"})
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "Resubscribe</button>" in html
    assert subscription(app, "ada@example.com").consents[0].withdrawal_channel == "page"  # type: ignore[union-attr]
    assert client.post(path + "/resubscribe").status_code == 400  # CSRF needed
    resubscribed = client.post(
        path + "/resubscribe",
        data={"csrf_token": csrf_token(html)},
        environ_base={"REMOTE_ADDR": "198.51.100.77"},
    )
    assert resubscribed.status_code == 200
    assert "Welcome back" in resubscribed.get_data(as_text=True)
    found = subscription(app, "ada@example.com")
    assert found.status is SubscriptionStatus.CONFIRMED and found.unsubscribed_at is None  # type: ignore[union-attr]
    old, new = found.consents  # type: ignore[union-attr]
    assert old.withdrawn_at is not None
    assert new.source is ConsentSource.FORM and new.ip == "198.51.100.77"
    assert new.confirmed_at == new.created_at and new.withdrawn_at is None
    assert new.consent_version == "2026-11" and new.consent_text.startswith("Yes, send me")


def test_the_one_click_answer_links_to_resubscribing(app) -> None:  # type: ignore[no-untyped-def]
    """The mail provider's POST gets a short page whose resubscribe link leads to the button."""
    load_newsletter(app)
    path = _path(app)
    html = _one_click(app.test_client(use_cookies=False), path).get_data(as_text=True)
    assert f'<a href="{path}">Changed your mind? Resubscribe</a>' in html
    assert "Resubscribe</button>" in app.test_client().get(path).get_data(as_text=True)


def test_no_resubscribing_a_complained_address(app, client) -> None:  # type: ignore[no-untyped-def]
    """An address that complained (or hard-bounced) cannot be resubscribed from an old link."""
    load_newsletter(app)
    path = _path(app)
    _one_click(client, path)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "ada@example.com", SuppressionReason.COMPLAINT)
        session.execute(update(Newsletter).values(reply_to=None))
    html = client.get(path).get_data(as_text=True)
    response = client.post(path + "/resubscribe", data={"csrf_token": csrf_token(html)})
    answer = response.get_data(as_text=True)
    assert "We cannot send to this address" in answer
    # Without a reply-to address the page still says how to reach the editors.
    assert "If you think this is a mistake, reply to any email you received from us." in answer
    assert subscription(app, "ada@example.com").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]


def test_unsubscribe_service_for_the_mailto_handler(app) -> None:  # type: ignore[no-untyped-def]
    """unsubscribe(session, subscription, "mailto") is what the inbound-mail handler calls; it records that channel."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        found = session.scalars(select(Subscription)).first()
        assert unsubscribe(session, found, WithdrawalChannel.MAILTO)
        assert not unsubscribe(session, found, WithdrawalChannel.MAILTO)
        assert found.consents[0].withdrawal_channel == "mailto"


def test_reader_actions_for_bounces_and_complaints(app) -> None:  # type: ignore[no-untyped-def]
    """ReaderActions (what the bounce handler calls): a hard bounce suppresses; a complaint also unsubscribes."""
    load_newsletter(app)
    actions = ReaderActions(app.config)
    with get_db_of(app).session() as session:
        ada, grace = (
            session.scalars(select(Subscription).join(Subscriber).where(Subscriber.email == e)).one()
            for e in ("ada@example.com", "grace@example.com")
        )
        actions.suppress(session, ada.subscriber, SuppressionReason.HARD_BOUNCE, "550 5.1.1")
        actions.suppress(session, grace.subscriber, SuppressionReason.COMPLAINT, "ARF abuse")
        actions.unsubscribe(session, ada, "mailto")
    for email, channel in (("ada@example.com", "mailto"), ("grace@example.com", "complaint")):
        found = subscription(app, email)
        assert found.status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
        assert found.consents[0].withdrawal_channel == channel  # type: ignore[union-attr]
    with get_db_of(app).session() as session:
        assert is_suppressed(session, app.config, "ada@example.com")
        assert is_suppressed(session, app.config, "grace@example.com")
