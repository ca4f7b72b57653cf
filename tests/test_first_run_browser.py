"""An install without the demo, as its first visitor and its first editor see it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from digest.core.models import Section
from digest.domain import newsletters
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.editor import PASSWORD, log_in, make_editor

pytestmark = pytest.mark.browser

SETTINGS = newsletters.SettingsInput(
    name="Field Notes", description="Notes from the field.", from_name="Field Notes",
    from_address="notes@example.org", postal_address="1 Example Street, Berlin", time_zone="Europe/Berlin",
    review_hours="24", consent_text="Yes, send me Field Notes.",
)


def _shoot(page: Any, name: str) -> None:
    for label, width in (("desktop", 1280), ("phone", 375)):
        page.set_viewport_size({"width": width, "height": 900})
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=str(screenshot_path(f"first-run-{name}-{label}-{scheme}")), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def test_new_post_without_a_newsletter_says_what_to_do(client, db) -> None:  # type: ignore[no-untyped-def]
    """Before any settings, the front page speaks to visitors and "New post" explains that the newsletter needs setting up, instead of a bare Conflict."""
    front = client.get("/").get_data(as_text=True)
    assert "Coming soon" in front and "digest demo" not in front
    make_editor(db, "admin@example.com")
    log_in(client, "admin@example.com", PASSWORD)
    response = client.get("/editor/posts/new")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "Conflict" not in html
    assert "First, set up the newsletter" in html
    assert 'href="/editor/settings"' in html


def test_visitor_and_first_editor_without_the_demo(app, db) -> None:  # type: ignore[no-untyped-def]
    """The empty front page speaks to visitors; "New post" with no section offers to add one and then opens the form."""
    make_editor(db, "admin@example.com")
    newsletters.update_settings(db, None, SETTINGS)
    db.commit()
    with live_server(app) as base, chromium() as context:
        page = context.new_page()
        page.goto(base + "/")
        assert "digest demo" not in page.content()
        _shoot(page, "1-front")

        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.goto(base + "/editor/posts/new")
        page.get_by_role("heading", name="First, add a section").wait_for()
        _shoot(page, "2-new-post")
        page.get_by_label("Name of the first section").fill("Dispatches")
        page.get_by_role("button", name="Add the section and write the post").click()
        page.get_by_text("The section Dispatches is added.").wait_for()
        assert page.url == base + "/editor/posts/new"
        assert page.get_by_label("Section").input_value() != ""
        assert page.locator("#section_id option:checked").inner_text() == "Dispatches"
        _shoot(page, "3-post-form")
    assert db.scalars(select(Section.name)).all() == ["Dispatches"]
    db.rollback()
