"""The public pages grow the list: a reader finds the archive, and signs up from any page."""

from __future__ import annotations

from typing import Any

import pytest

from digest import create_app
from digest.core.models import SubscriptionStatus
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, screenshot_path
from tests.support.readers import deliver, link, load_newsletter, subscription

pytestmark = pytest.mark.browser

POST = "/posts/weekly-model/eu-ai-act-guidance"
WIDTHS = {"desktop": 1280, "phone": 375}


def _shoot(page: Any, name: str) -> None:
    # Every width in light and dark, so a reader's layout is looked at as readers see it.
    for label, width in WIDTHS.items():
        page.set_viewport_size({"width": width, "height": 900})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=str(screenshot_path(f"public-{name}-{label}-{scheme}")), full_page=True)
    page.set_viewport_size({"width": WIDTHS["desktop"], "height": 900})


def test_reader_finds_the_archive_and_signs_up_from_a_post(app_overrides: dict[str, Any], smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The header links the archive, archive and post pages carry the form, an error keeps every answer, and the confirmed page points to the archive."""
    app = create_app({**app_overrides, "BASE_URL": "http://127.0.0.1", "SMTP_URL": smtp_server.url})
    load_newsletter(app)
    with live_server(app) as base, chromium() as context:
        app.config["BASE_URL"] = base
        page = context.new_page()
        page.goto(base + "/")
        feed = page.locator('head link[rel="alternate"][type="application/atom+xml"]')
        assert feed.get_attribute("href") == "/archive/weekly-model/feed.xml"
        assert page.request.get(base + "/archive/weekly-model/feed.xml").ok
        _shoot(page, "1-front")

        page.get_by_role("navigation").get_by_role("link", name="Archive").click()
        page.get_by_role("heading", name="The Weekly Model: the archive").wait_for()
        assert page.get_by_role("button", name="Subscribe").is_visible()
        _shoot(page, "2-archive")

        page.goto(base + POST)
        page.get_by_label("Email address").fill("nina@localhost")
        page.get_by_label("Your name").fill("Nina")
        page.get_by_label("Careers").uncheck()
        page.get_by_label("Yes, send me The Weekly Model").check()
        _shoot(page, "3-post")
        page.get_by_role("button", name="Subscribe").click()
        page.locator("#email-error").wait_for()
        assert page.get_by_label("Email address").input_value() == "nina@localhost"
        assert page.get_by_label("Your name").input_value() == "Nina"
        assert not page.get_by_label("Careers").is_checked()
        assert page.get_by_label("Startups").is_checked()
        assert page.get_by_label("Yes, send me The Weekly Model").is_checked()
        _shoot(page, "4-error")

        page.get_by_label("Email address").fill("nina@example.org")
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
        assert deliver(app) == 1
        page.goto(base + link(smtp_server.to("nina@example.org")[-1], "confirm", base))
        page.get_by_role("button", name="Confirm subscription").click()
        page.get_by_role("heading", name="You are subscribed").wait_for()
        found = subscription(app, "nina@example.org")
        assert found.status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]
        assert "careers" not in [s.slug for s in found.sections]  # type: ignore[union-attr]
        _shoot(page, "5-confirmed")
        page.get_by_role("link", name="Read the past issues in the archive").click()
        page.get_by_role("heading", name="The Weekly Model: the archive").wait_for()
    get_db_of(app).dispose()
