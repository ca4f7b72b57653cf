"""Subscriber actions, CSV import/export and the outbox in Debian's headless Chromium."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask

from digest.core.models import EditorRole, SubscriptionStatus, SuppressionReason
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, screenshot_path
from tests.support.editor import PASSWORD, make_editor
from tests.support.readers import (
    deliver,
    load_newsletter,
    subscription,
)
from tests.support.waiting import wait_until
from tests.support.workspace import HOSTILE_HTML, outbox_message, suppression_entry

pytestmark = pytest.mark.browser

ADMIN = "admin@example.com"


def _setup(app: Flask) -> None:
    load_newsletter(app)
    with get_db_of(app).session() as session:
        make_editor(session, ADMIN, EditorRole.ADMIN)


def _log_in(page, base: str) -> list[str]:  # type: ignore[no-untyped-def]
    """Log the admin in; return the list the page's console errors collect into."""
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(base + "/editor/login")
    page.fill("#email", ADMIN)
    page.fill("#password", PASSWORD)
    page.click("button:has-text('Log in')")
    page.wait_for_selector("h1:has-text('Dashboard')")
    return problems


def _accept_confirmations(page) -> None:  # type: ignore[no-untyped-def]
    page.on("dialog", lambda dialog: dialog.accept())


def test_add_suppress_lift_and_erase_a_reader(app) -> None:  # type: ignore[no-untyped-def]
    """An admin adds a reader, suppresses them with a note, lifts it, and erases them after typing the address."""
    _setup(app)
    with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()
        problems = _log_in(page, base)
        _accept_confirmations(page)
        page.click("nav >> text=Subscribers")
        page.click("text=Add a reader")
        page.fill("#email", "nia@example.org")
        page.fill("#name", "Nia")
        page.get_by_label("Careers").uncheck()
        assert page.get_by_label("Send them a confirmation email").is_checked()
        page.screenshot(path=str(screenshot_path("editor-subscriber-add")), full_page=True)
        page.click("button:has-text('Add reader')")
        page.wait_for_selector(".flash-success")
        assert "a confirmation email is on its way" in page.inner_text(".flash-success")
        page.screenshot(path=str(screenshot_path("editor-subscriber-added")), full_page=True)
        assert subscription(app, "nia@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]

        page.fill("#note", "Asked at the front desk never to be emailed")
        page.click("button:has-text('Suppress: never mail again')")
        page.wait_for_selector("#suppression-entry")
        assert "an editor suppressed it" in page.inner_text("#suppression")
        page.screenshot(path=str(screenshot_path("editor-subscriber-suppressed")), full_page=True)
        assert suppression_entry(app, "nia@example.org").reason is SuppressionReason.MANUAL

        page.click("button:has-text('Lift the suppression')")
        page.wait_for_selector("text=is off the suppression list")
        assert suppression_entry(app, "nia@example.org") is None

        page.click("text=Erase this reader…")
        page.screenshot(path=str(screenshot_path("editor-subscriber-erase")), full_page=True)
        page.fill("#confirm_email", "nia@example.org")
        page.click("button:has-text('Erase for good')")
        page.wait_for_selector("text=nia@example.org is erased")
        assert subscription(app, "nia@example.org") is None

        page.goto(base + "/editor/suppressions")
        page.fill("#lookup", "nia@example.org")
        page.click("button:has-text('Look up')")
        page.wait_for_selector("#lookup-result")
        assert "the reader asked to be erased" in page.inner_text("main")
        page.screenshot(path=str(screenshot_path("editor-suppressions")), full_page=True)
        assert problems == []


def test_import_with_problems_then_export(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An upload shows live progress, lists its broken rows, imports the valid ones on request; export downloads."""
    _setup(app)
    rows = 4000
    broken = tmp_path / "readers.csv"
    broken.write_text("email,name\n" + "".join(f"csv{n:05d}@example.org,Reader {n}\n" for n in range(rows))
                      + "not-an-address,Broken\ncsv00001@example.org,Again\n")
    with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}, accept_downloads=True) as context:
        page = context.new_page()
        problems = _log_in(page, base)
        page.goto(base + "/editor/subscribers")
        page.click("text=Import CSV")
        page.set_input_files("#file", str(broken))
        page.screenshot(path=str(screenshot_path("editor-import-form")), full_page=True)
        page.click("button:has-text('Upload and check')")
        # The page reloads itself (editor.js) once the check needs a decision.
        page.wait_for_selector("#import-problems", timeout=120_000)
        text = page.inner_text("#import-problems")
        assert "2 rows have problems, so nothing was imported" in text
        assert f"line {rows + 2}: 'not-an-address'" in text
        assert f"line {rows + 3}: csv00001@example.org appears already on line 3" in text
        page.screenshot(path=str(screenshot_path("editor-import-problems")), full_page=True)
        page.click(f"button:has-text('Import the {rows:,} valid rows')")

        def moved_or_over() -> bool:
            """Catch the bar moving (editor.js) for a screenshot, unless the import is already over."""
            bar = page.locator("#import-bar")
            if not bar.count():
                return True
            if float(bar.get_attribute("value") or 0) > 0:
                page.screenshot(path=str(screenshot_path("editor-import-progress")), full_page=True)
                return True
            return False

        wait_until(moved_or_over, 120, what="the import bar to move", every=0.025)
        page.wait_for_selector("#import-result", timeout=120_000)
        assert f"{rows:,}" in page.inner_text("#import-result")
        page.screenshot(path=str(screenshot_path("editor-import-done")), full_page=True)

        page.goto(base + "/editor/subscribers")
        with page.expect_download() as download:
            page.click("text=Export CSV")
        exported = Path(download.value.path()).read_text()
        assert exported.startswith("email,name,newsletter,status")
        assert len(exported.splitlines()) == 1 + 4 + rows
        assert problems == []


def test_outbox_shows_messages_and_runs_no_script(app) -> None:  # type: ignore[no-untyped-def]
    """The outbox lists a real confirmation; a hostile message's HTML keeps its styles but runs no script."""
    _setup(app)
    with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()
        problems = _log_in(page, base)
        page.goto(base + "/editor/subscribers/new")
        page.fill("#email", "otto@example.org")
        page.click("button:has-text('Add reader')")
        page.wait_for_selector(".flash-success")
        assert deliver(app) == 1
        hostile = outbox_message(app, html=HOSTILE_HTML)
        page.click("nav >> text=Outbox")
        assert page.locator("table.list tbody tr").count() == 2
        page.screenshot(path=str(screenshot_path("editor-outbox")), full_page=True)

        page.click("text=Please confirm your subscription")
        frame = page.frame_locator("iframe.mail-html")
        frame.locator("text=Confirm").first.wait_for()
        page.screenshot(path=str(screenshot_path("editor-outbox-message")), full_page=True)

        page.goto(f"{base}/editor/outbox/{hostile}")
        body = page.frame_locator("iframe.mail-html").locator("body")
        body.locator("text=Hello").wait_for()
        assert body.get_attribute("data-owned") is None  # neither the script nor onerror ran
        colour = body.locator("p").first.evaluate("p => getComputedStyle(p).color")
        weight = body.locator("p").first.evaluate("p => getComputedStyle(p).fontWeight")
        assert colour == "rgb(204, 0, 0)" and weight == "700"  # its <style> and style="" apply
        page.screenshot(path=str(screenshot_path("editor-outbox-hostile")), full_page=True)
    # Only the blocked script and the unreachable image host may complain.
    unexpected = [p for p in problems
                  if "sandbox" not in p and "Content Security Policy" not in p and "Failed to load" not in p]
    assert unexpected == []
