"""The reader's whole journey in Debian's headless Chromium, on a phone-sized screen."""

from __future__ import annotations

from typing import Any

import pytest

from digest import create_app
from digest.core.models import SubscriptionStatus
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, screenshot_path
from tests.support.readers import deliver, link, load_newsletter, subscription

pytestmark = pytest.mark.browser


def test_signup_confirm_preferences_unsubscribe(app_overrides: dict[str, Any], smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A reader signs up, confirms from the received email, edits preferences and unsubscribes, all in a real browser."""
    app = create_app(
        {**app_overrides, "BASE_URL": "http://127.0.0.1", "SMTP_URL": smtp_server.url}
    )
    load_newsletter(app)
    with live_server(app) as base, chromium(viewport={"width": 390, "height": 844}) as context:
        app.config["BASE_URL"] = base
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)

        page.goto(base + "/")
        page.get_by_label("Email address").fill("nina@example.org")
        page.get_by_label("Your name").fill("Nina")
        page.get_by_label("Careers").uncheck()
        consent = page.get_by_label("Yes, send me The Weekly Model")
        assert not consent.is_checked()
        consent.check()
        page.screenshot(path=str(screenshot_path("reader-1-signup")), full_page=True)
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        page.screenshot(path=str(screenshot_path("reader-2-check-inbox")), full_page=True)

        assert deliver(app) == 1
        confirmation = smtp_server.to("nina@example.org")[-1]
        page.goto(base + link(confirmation, "confirm", base))
        assert subscription(app, "nina@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
        page.screenshot(path=str(screenshot_path("reader-3-confirm")), full_page=True)
        page.get_by_role("button", name="Confirm subscription").click()
        page.get_by_role("heading", name="You are subscribed").wait_for()
        assert subscription(app, "nina@example.org").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]
        page.screenshot(path=str(screenshot_path("reader-4-confirmed")), full_page=True)

        assert deliver(app) == 1
        welcome = smtp_server.to("nina@example.org")[-1]
        page.goto(base + link(welcome, "preferences", base))
        assert page.get_by_label("Your name").input_value() == "Nina"
        assert not page.get_by_label("Careers").is_checked()
        page.get_by_label("Startups").uncheck()
        page.get_by_role("button", name="Save preferences").click()
        page.get_by_text("Your preferences are saved.").wait_for()
        page.get_by_role("button", name="Pause delivery").click()
        page.get_by_text("Paused: no issues until you resume.").wait_for()
        page.screenshot(path=str(screenshot_path("reader-5-preferences")), full_page=True)
        found = subscription(app, "nina@example.org")
        assert found.status is SubscriptionStatus.PAUSED  # type: ignore[union-attr]
        assert [s.slug for s in found.sections] == ["news", "engineers", "tools"]  # type: ignore[union-attr]

        page.goto(base + link(welcome, "unsubscribe", base))
        page.get_by_role("button", name="Unsubscribe").click()
        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        assert page.get_by_role("button", name="Resubscribe").is_visible()
        page.screenshot(path=str(screenshot_path("reader-6-unsubscribed")), full_page=True)
        found = subscription(app, "nina@example.org")
        assert found.status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
        assert found.consents[-1].withdrawal_channel == "page"  # type: ignore[union-attr]
        assert errors == []
    get_db_of(app).dispose()
