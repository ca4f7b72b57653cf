"""Headless Chromium (Debian's) driven by Playwright, and the app served on 127.0.0.1.

Screenshots go to test-artifacts/ at the top of the checkout, which CI keeps.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from playwright.sync_api import expect
from werkzeug.serving import make_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"


@contextmanager
def live_server(app: Flask) -> Iterator[str]:
    """Serve app on a free 127.0.0.1 port in a thread; yield its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@contextmanager
def chromium(**context_options: Any) -> Iterator[object]:
    """Yield a Playwright BrowserContext of Debian's headless Chromium."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(**context_options)
            yield context
            context.close()
        finally:
            browser.close()


def screenshot_path(name: str) -> Path:
    """Return test-artifacts/NAME.png, creating the folder."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS / f"{name}.png"


def log_in_editor(page: object, base: str, email: str, password: str) -> None:
    """Log in through the editor's login form and wait until the workspace opens."""
    page.goto(base + "/editor/login")  # type: ignore[attr-defined]
    page.fill("#email", email)  # type: ignore[attr-defined]
    page.fill("#password", password)  # type: ignore[attr-defined]
    page.click("button:has-text('Log in')")  # type: ignore[attr-defined]
    page.wait_for_selector("h1:has-text('Dashboard')")  # type: ignore[attr-defined]


def preview_mail_text(page: Any) -> str:
    """Return the text of the email an editor's preview frame shows, once it has loaded."""
    body = page.frame_locator("iframe.mail-html").locator("body")
    expect(body).to_have_text(re.compile(r"\S"), timeout=30_000)
    text: str = body.inner_text()
    return text


def drag_above(page: Any, moved: Any, target: Any) -> None:
    """Drag the item `moved` (a locator) by its grip above `target` with a real mouse, and
    wait until the page says it saved the new order."""
    target.evaluate("li => li.scrollIntoView({block: 'center'})")
    grip = moved.locator(".issue-post .muted").first.bounding_box()
    box = target.bounding_box()
    assert grip and box
    page.mouse.move(grip["x"] + 5, grip["y"] + grip["height"] / 2)
    page.mouse.down()
    page.mouse.move(box["x"] + 40, box["y"] + box["height"] / 2, steps=8)
    page.mouse.move(box["x"] + 40, box["y"] + 4, steps=4)
    page.mouse.up()
    page.wait_for_selector("#order-status:has-text('Reordered.')", timeout=15_000)
