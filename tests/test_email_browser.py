"""Every email's HTML in Debian's headless Chromium: light and dark, desktop and phone."""

from __future__ import annotations

import pytest

from digest.domain.issue_mail import prepare_issue
from digest.mail.render import Reader
from tests.support.browser import chromium, screenshot_path
from tests.support.issues import demo_issue
from tests.support.readers import (
    confirm_by_email,
    deliver,
    html_part,
    load_newsletter,
)

pytestmark = pytest.mark.browser

VIEWPORTS = {"desktop": {"width": 1024, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.mark.one_backend
def test_digest_in_light_and_dark_on_desktop_and_phone(app, db) -> None:  # type: ignore[no-untyped-def]
    """The digest renders in both colour schemes at both widths; dark mode visibly changes it."""
    prepared = prepare_issue(db, demo_issue(db).id, app.config)
    html, _ = prepared.parts_for(Reader(1, "uidAdaAdaAdaAdaAdaAdaA", "ada@example.com", "Ada"))
    seen: dict[tuple[str, str], dict[str, object]] = {}
    for scheme in ("light", "dark"):
        for device, viewport in VIEWPORTS.items():
            with chromium(color_scheme=scheme, viewport=viewport) as context:
                page = context.new_page()  # type: ignore[attr-defined]
                page.route("**/*", lambda route: route.abort())  # like a client blocking images
                page.set_content(html)
                seen[(scheme, device)] = page.evaluate(
                    """() => {
                        const style = (selector) => getComputedStyle(document.querySelector(selector));
                        const subject = document.querySelector('h1.subject').getBoundingClientRect();
                        return {
                            body: style('body').backgroundColor,
                            card: style('.card').backgroundColor,
                            text: style('.content').color,
                            scrollWidth: document.documentElement.scrollWidth,
                            cardWidth: document.querySelector('.card').getBoundingClientRect().width,
                            subjectVisible: subject.width > 0 && subject.height > 0,
                            firstText: document.body.innerText.replace(/[\\u034f\\u200c]/g, '').trim().split(/[\\n\\t]/)[0],
                        };
                    }"""
                )
                page.screenshot(
                    path=str(screenshot_path(f"digest-{scheme}-{device}")), full_page=True
                )
    for (scheme, device), facts in seen.items():
        assert facts["subjectVisible"], (scheme, device)
        assert facts["firstText"] == prepared.preheader  # the preview line is visible text
        width = VIEWPORTS[device]["width"]
        assert facts["scrollWidth"] <= width, (scheme, device)  # nothing overflows a phone
        assert facts["cardWidth"] == (600 if device == "desktop" else width)  # type: ignore[operator]
    for device in VIEWPORTS:
        light, dark = seen[("light", device)], seen[("dark", device)]
        assert light["card"] == "rgb(255, 255, 255)" and dark["card"] != light["card"]
        assert dark["body"] != light["body"] and dark["text"] != light["text"]


@pytest.mark.one_backend
def test_confirmation_and_welcome_in_light_and_dark(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The confirmation and welcome emails look like the digest in both colour schemes, with a readable button."""
    load_newsletter(smtp_app)
    confirmation = confirm_by_email(smtp_app, smtp_server, "nina@example.org", name="Nina")
    deliver(smtp_app)
    emails = {"confirm": html_part(confirmation), "welcome": html_part(smtp_server.received[-1])}
    seen: dict[tuple[str, str, str], dict[str, object]] = {}
    for name, html in emails.items():
        for scheme in ("light", "dark"):
            for device, viewport in VIEWPORTS.items():
                with chromium(color_scheme=scheme, viewport=viewport) as context:
                    page = context.new_page()  # type: ignore[attr-defined]
                    page.route("**/*", lambda route: route.abort())
                    page.set_content(html)
                    seen[(name, scheme, device)] = page.evaluate(
                        """() => {
                            const style = (selector) => getComputedStyle(document.querySelector(selector));
                            const button = document.querySelector('a.button-link');
                            const box = button.getBoundingClientRect();
                            return {
                                card: style('.card').backgroundColor,
                                text: style('.content').color,
                                buttonText: style('a.button-link').color,
                                buttonBackground: style('a.button-link').backgroundColor,
                                buttonVisible: box.width > 100 && box.height > 30,
                                brand: document.querySelector('.brand').innerText,
                                postal: document.querySelector('.postal').innerText,
                                scrollWidth: document.documentElement.scrollWidth,
                                cardWidth: document.querySelector('.card').getBoundingClientRect().width,
                            };
                        }"""
                    )
                    page.screenshot(
                        path=str(screenshot_path(f"{name}-{scheme}-{device}")), full_page=True
                    )
    for (name, scheme, device), facts in seen.items():
        assert facts["buttonVisible"], (name, scheme, device)
        assert facts["buttonText"] != facts["buttonBackground"], (name, scheme, device)
        assert facts["brand"] == "THE WEEKLY MODEL"  # the masthead, upper-cased by the layout
        assert "12 Example Street" in str(facts["postal"])
        width = VIEWPORTS[device]["width"]
        assert facts["scrollWidth"] <= width, (name, scheme, device)
        assert facts["cardWidth"] == (600 if device == "desktop" else width)  # type: ignore[operator]
    for name in emails:
        for device in VIEWPORTS:
            light, dark = seen[(name, "light", device)], seen[(name, "dark", device)]
            assert light["card"] == "rgb(255, 255, 255)" and dark["card"] != light["card"]
            assert dark["text"] != light["text"]
            assert dark["buttonBackground"] != light["buttonBackground"]
