"""axe-core in Debian's Chromium: no serious or critical violation on reader or editor pages."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from digest.core.models import Subscriber
from digest.domain import inbox, sources
from digest.domain.demo import load_demo_history
from digest.domain.links import confirm_url, preferences_url, unsubscribe_url
from tests.support.browser import chromium, live_server, screenshot_path
from tests.support.editor import PASSWORD, make_editor
from tests.support.readers import (
    signed_path,
    signup,
)
from tests.support.workspace import demo_newsletter, outbox_message

pytestmark = pytest.mark.browser
SEVERE = {"serious", "critical"}


def _severe(page: Any, name: str) -> list[str]:
    """Run axe on the page; return one line per serious or critical violation (and node)."""
    from axe_playwright_python.sync_playwright import Axe

    width = page.viewport_size["width"]
    page.screenshot(path=str(screenshot_path(f"a11y-{name}-{width}")), full_page=True)
    results = Axe().run(page)
    return [
        f"{name}: {violation['id']} ({violation['impact']}) {node['target']}: "
        f"{node.get('failureSummary', '').splitlines()[-1:]}"
        for violation in results.response["violations"]
        if violation["impact"] in SEVERE
        for node in violation["nodes"]
    ]


def _prepare(app, db) -> dict[str, str]:  # type: ignore[no-untyped-def]
    newsletter = demo_newsletter(db)
    issue = load_demo_history(db, app.config, newsletter)
    db.commit()
    assert issue is not None
    make_editor(db, "admin@example.com")
    inbox.save_link(db, newsletter, "https://example.org/a", "A saved page", "What it says.")
    sources.add_source(db, newsletter, "https://example.org/feed.xml", "news")
    db.commit()
    reader = db.scalars(select(Subscriber.id).where(Subscriber.email == "grace@example.com")).one()
    paths = {"archive-issue": f"/archive/{newsletter.slug}/{issue.slug}",
             "archive-index": f"/archive/{newsletter.slug}/",
             "subscriber": f"/editor/subscribers/{reader}",
             "sending": f"/editor/issues/{issue.id}/sending"}
    db.rollback()  # the live server writes; SQLite must not see this session's lock
    assert signup(app.test_client(), "pending@example.org").status_code == 200
    paths.update({
        "confirm": signed_path(app, "pending@example.org", confirm_url),
        "preferences": signed_path(app, "grace@example.com", preferences_url),
        "unsubscribe": signed_path(app, "ada@example.com", unsubscribe_url),
    })
    outbox_message(app)
    return paths


@pytest.mark.parametrize("screen", [
    {"viewport": {"width": 1280, "height": 900}, "color_scheme": "light"},
    {"viewport": {"width": 390, "height": 844}, "color_scheme": "dark", "is_mobile": True},
], ids=["desktop-light", "phone-dark"])
def test_reader_and_editor_pages_have_no_serious_violations(app, db, screen) -> None:  # type: ignore[no-untyped-def]
    """Every public page and every workspace page passes axe-core without serious or critical issues."""
    paths = _prepare(app, db)
    problems: list[str] = []
    # bypass_csp: axe is injected as a script; the pages' own CSP is tested elsewhere.
    with live_server(app) as base, chromium(bypass_csp=True, **screen) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        page.goto(base + "/")
        problems += _severe(page, "front")
        page.fill("#email", "new-reader@example.org")
        page.check("#consent")
        page.click("button[type=submit]")
        page.wait_for_selector("h1")
        assert "inbox" in page.inner_text("h1").lower()
        problems += _severe(page, "check-inbox")
        for name in ("confirm", "preferences", "unsubscribe", "archive-index", "archive-issue"):
            page.goto(base + paths[name])
            problems += _severe(page, name)

        page.goto(base + "/editor/login")
        problems += _severe(page, "login")
        page.fill("#email", "admin@example.com")
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(base + "/editor/")
        for name, path in (("dashboard", "/editor/"), ("posts", "/editor/posts"),
                           ("post-form", "/editor/posts/new"), ("subscribers", "/editor/subscribers"),
                           ("subscriber", paths["subscriber"]), ("settings", "/editor/settings"),
                           ("outbox", "/editor/outbox"), ("sending", paths["sending"]),
                           ("inbox", "/editor/inbox"), ("sources", "/editor/sources"),
                           ("save-link", "/editor/inbox/save")):
            page.goto(base + path)
            assert page.url.startswith(base + path), page.url
            problems += _severe(page, name)
    assert not problems, "\n".join(problems)
