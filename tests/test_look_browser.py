"""The look in Debian's headless Chromium: an admin changes the accent with the previews
following, then the reader page and the email received over SMTP show it, light and dark."""

from __future__ import annotations

from typing import Any

import pytest

from digest import create_app
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.delivery import make_newsletter
from tests.support.editor import PASSWORD, log_in, make_editor
from tests.support.forms import submit

pytestmark = pytest.mark.browser

ACCENT, ACCENT_DARK = "#b3261e", "#ff9e8a"
RGB = {ACCENT: "rgb(179, 38, 30)", ACCENT_DARK: "rgb(255, 158, 138)"}
SIZES = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


def _shot(page: Any, name: str) -> None:
    path = screenshot_path(f"look/{name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)


def _content(page: Any, frame: str) -> str:
    from playwright.sync_api import Error

    found = page.frame(name=frame)
    try:
        return str(found.content()) if found is not None else ""
    except Error:  # reloading: the next poll sees it
        return ""


def test_the_accent_follows_the_form_then_shows_on_pages_and_in_the_email(app_overrides: dict[str, Any], smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The previews show a new accent before saving; once saved, the archive page and the received
    email use it in light mode and its dark twin in dark mode, at desktop and phone widths."""
    app = create_app({**app_overrides, "SMTP_URL": smtp_server.url})
    with get_db_of(app).session() as session:
        setup = make_newsletter(session, readers=1)
        make_editor(session, "admin@example.com")
    with live_server(app) as base:
        with chromium(viewport=SIZES["desktop"]) as context:
            page = context.new_page()
            log_in_editor(page, base, "admin@example.com", PASSWORD)
            page.goto(base + "/editor/settings#look")
            page.fill("#accent", ACCENT)
            page.fill("#accent_dark", ACCENT_DARK)
            page.select_option("#heading_font", "palatino")
            page.fill("#footer_text", "Written in Berlin by two people and a cat.")
            for _ in range(50):  # the previews reload about 300 ms after the last change
                shown = [_content(page, name) for name in ("look-email", "look-page")]
                if all(ACCENT in html and "Written in Berlin" in html for html in shown):
                    break
                page.wait_for_timeout(200)
            else:
                pytest.fail("the previews never showed the new accent")
            link = page.frame(name="look-page").locator("nav a").first  # type: ignore[union-attr]
            assert link.evaluate("a => getComputedStyle(a).color") == RGB[ACCENT]
            page.locator("#look").scroll_into_view_if_needed()
            _shot(page, "settings-previews-desktop-light")
            page.get_by_role("button", name="Save look").click()
            page.wait_for_selector("text=The look is saved")

        client = app.test_client()
        assert log_in(client, "admin@example.com").status_code == 302
        submit(client, f"/editor/issues/{setup.issue_id}/preview", f"/editor/issues/{setup.issue_id}/test")
        email_html = smtp_server.to("admin@example.com")[0].message.get_body(("html",)).get_content()

        for scheme, accent in (("light", ACCENT), ("dark", ACCENT_DARK)):
            for size, viewport in SIZES.items():
                with chromium(viewport=viewport, color_scheme=scheme) as context:
                    page = context.new_page()
                    page.goto(base + "/archive/weekly/")
                    nav = page.locator("nav a").first.evaluate("a => getComputedStyle(a).color")
                    assert nav == RGB[accent], (scheme, size, nav)
                    assert page.get_by_text("Written in Berlin").is_visible()
                    _shot(page, f"archive-{size}-{scheme}")

                    page = context.new_page()  # about:blank: not under the archive's CSP
                    page.set_content(email_html)
                    brand = page.locator(".brand").evaluate("p => getComputedStyle(p).color")
                    assert brand == RGB[accent], (scheme, size, brand)
                    _shot(page, f"email-{size}-{scheme}")
