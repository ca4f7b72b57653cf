"""Per-IP rate limits on every page a reader's signed link opens, and on what it sends."""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from digest.core.models import SubscriptionStatus
from digest.domain.links import confirm_url, preferences_url, unsubscribe_url
from tests.support.forms import csrf_token
from tests.support.readers import (
    fresh_ip,
    load_newsletter,
    signed_path,
    signup,
    subscription,
)

LIMITED = "192.0.2.80"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    """Small budgets so a test can use them up."""
    return {**app_overrides, "LINK_RATE_LIMIT": "3 per minute", "ONE_CLICK_RATE_LIMIT": "3 per minute"}


def _use_up(client: FlaskClient, path: str) -> None:
    for _ in range(3):
        assert client.get(path, environ_base={"REMOTE_ADDR": LIMITED}).status_code == 200


def _post(client: FlaskClient, path: str, page: str, **data: object) -> TestResponse:
    """POST like the page's form (its CSRF token fetched from another address) from LIMITED."""
    token = csrf_token(client.get(page, environ_base={"REMOTE_ADDR": fresh_ip()}).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, **data}, environ_base={"REMOTE_ADDR": LIMITED})


def _refused(response: TestResponse) -> None:
    assert response.status_code == 429
    assert "Please wait a moment" in response.get_data(as_text=True)
    assert "Retry-After" in response.headers


def test_signed_pages_share_one_budget_per_address(app, client) -> None:  # type: ignore[no-untyped-def]
    """Past the budget every signed page answers 429 with a readable page; other addresses go on."""
    load_newsletter(app)
    preferences = signed_path(app, "grace@example.com", preferences_url)
    _use_up(client, preferences)
    for path in (preferences, f"{preferences}/data.json", f"{preferences}/delete",
                 signed_path(app, "ada@example.com", unsubscribe_url)):
        _refused(client.get(path, environ_base={"REMOTE_ADDR": LIMITED}))
    assert client.get(preferences, environ_base={"REMOTE_ADDR": fresh_ip()}).status_code == 200


def test_refused_changes_change_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """Saving, pausing, deleting, resubscribing and confirming past the budget leave the reader as they were."""
    load_newsletter(app)
    assert signup(client, "nina@example.org").status_code == 200
    preferences = signed_path(app, "grace@example.com", preferences_url)
    _use_up(client, preferences)
    _refused(_post(client, preferences, preferences, action="save", name="Changed", sections=["news"]))
    _refused(_post(client, preferences, preferences, action="pause"))
    _refused(_post(client, f"{preferences}/delete", f"{preferences}/delete"))
    grace = subscription(app, "grace@example.com")
    assert grace is not None and grace.subscriber.name == "Grace"
    assert grace.status is SubscriptionStatus.CONFIRMED
    confirm = signed_path(app, "nina@example.org", confirm_url)
    _refused(_post(client, confirm, confirm))
    _refused(_post(client, f"{confirm}/renew", confirm))
    assert subscription(app, "nina@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
    ada = signed_path(app, "ada@example.com", unsubscribe_url)
    _refused(_post(client, f"{ada}/resubscribe", preferences))


def test_one_click_unsubscribe_has_its_own_generous_budget(app, client) -> None:  # type: ignore[no-untyped-def]
    """Mail providers' one-click POSTs need no CSRF token and are limited apart, past the page budget."""
    load_newsletter(app)
    _use_up(client, signed_path(app, "grace@example.com", preferences_url))
    readers = ["ada@example.com", "grace@example.com", "alan@example.com", "katherine@example.com"]
    answers = [
        client.post(signed_path(app, email, unsubscribe_url), data="List-Unsubscribe=One-Click",
                    content_type="application/x-www-form-urlencoded",
                    environ_base={"REMOTE_ADDR": LIMITED})
        for email in readers
    ]
    assert [a.status_code for a in answers[:3]] == [200, 200, 200]
    _refused(answers[3])
    statuses = [subscription(app, email).status for email in readers]  # type: ignore[union-attr]
    assert statuses == [SubscriptionStatus.UNSUBSCRIBED] * 3 + [SubscriptionStatus.CONFIRMED]
