"""The front page in a real browser, on a phone-sized screen."""

from __future__ import annotations

import pytest

from digest.domain.demo import load_demo
from tests.support.browser import chromium, live_server, screenshot_path

pytestmark = pytest.mark.browser


def test_front_page_in_chromium(app, db) -> None:  # type: ignore[no-untyped-def]
    """The front page renders with its stylesheet (CSP allows it) at phone width."""
    load_demo(db)
    db.commit()
    with live_server(app) as base, chromium(viewport={"width": 390, "height": 844}) as context:
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.goto(base + "/")
        assert page.locator("h1").inner_text() == "The Weekly Model"
        background = page.evaluate("getComputedStyle(document.documentElement).backgroundColor")
        assert background != "rgba(0, 0, 0, 0)"  # site.css loaded
        page.screenshot(path=str(screenshot_path("front-page-phone")), full_page=True)
        assert errors == []
