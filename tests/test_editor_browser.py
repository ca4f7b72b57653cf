"""The editor workspace in Debian's headless Chromium: log in, write, preview, publish, charts."""

from __future__ import annotations

import pytest

from digest.core.storage import media_storage
from digest.domain.demo import load_demo_history, load_demo_images
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.editor import PASSWORD, make_editor
from tests.support.waiting import wait_until
from tests.support.workspace import demo_newsletter

pytestmark = pytest.mark.browser

HOSTILE_MD = """Testing **bold** and a [link](https://example.org).

<script>window.owned = "script"</script>

<img src="x" onerror="window.owned = 'img'">

[click me](javascript:window.owned='link')
"""


def _watch(page) -> list[str]:  # type: ignore[no-untyped-def]
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.on("dialog", lambda d: (problems.append("dialog: " + d.message), d.dismiss()))
    return problems


def _living_demo(app, db, base: str) -> None:  # type: ignore[no-untyped-def]
    app.config["BASE_URL"] = base  # the demo's pictures are linked, and served, here
    newsletter = demo_newsletter(db)
    load_demo_history(db, app.config, newsletter)
    load_demo_images(db, app.config, media_storage(app.config), newsletter)
    db.commit()
    make_editor(db, "admin@example.com")
    db.rollback()  # the live server writes; SQLite must not see this session's lock


def test_log_in_write_preview_publish_and_see_charts(app, db) -> None:  # type: ignore[no-untyped-def]
    """An editor logs in, writes a post with a live preview, publishes it and sees the charts."""
    with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        _living_demo(app, db, base)
        page = context.new_page()
        problems = _watch(page)

        page.goto(base + "/editor/posts")
        assert "/editor/login" in page.url
        page.screenshot(path=str(screenshot_path("editor-login")), full_page=True)
        page.fill("#email", "admin@example.com")
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_url(base + "/editor/posts")

        page.goto(base + "/editor/")
        assert page.locator("h1").inner_text() == "Dashboard"
        assert page.locator("svg[role=img]").count() == 4  # readers, sends, issues, clicks
        assert page.locator("#issues-chart-title").count() == 1
        assert page.locator("svg rect.series-delivered").count() >= 1
        box = page.locator("svg[role=img]").first.bounding_box()
        assert box is not None and box["width"] > 600 and box["height"] > 150  # drawn, styled
        fill = page.eval_on_selector("svg rect.series-delivered", "e => getComputedStyle(e).fill")
        assert fill not in ("", "none", "rgb(0, 0, 0)")  # editor.css coloured it
        page.screenshot(path=str(screenshot_path("editor-dashboard")), full_page=True)

        page.click("nav >> text=Posts")
        page.screenshot(path=str(screenshot_path("editor-posts")), full_page=True)
        page.click("text=Write a post")
        page.fill("#title", "A hostile post, safely shown")
        page.select_option("#section_id", label="Tools")
        page.fill("#summary", "Script in Markdown must never run.")
        page.locator("#body_md").press_sequentially(HOSTILE_MD, delay=2)
        # (wait_for_function would need eval, which the CSP rightly forbids)
        page.wait_for_selector("#preview strong")
        page.wait_for_selector("#preview :text('click me')")
        preview = page.inner_html("#preview")
        assert "<strong>bold</strong>" in preview
        assert page.locator("#preview script").count() == 0
        assert page.locator("#preview img[onerror]").count() == 0
        assert page.evaluate("window.owned") is None
        page.screenshot(path=str(screenshot_path("editor-post-preview")), full_page=True)

        page.click("button:has-text('Save and publish')")
        page.wait_for_selector(".flash-success")
        assert "is published" in page.inner_text(".flash-success")
        assert page.inner_text(".badge") == "published"
        page.screenshot(path=str(screenshot_path("editor-post-published")), full_page=True)

        page.click("text=View the public page")
        page.wait_for_selector("article.post h1")
        assert page.inner_text("article.post h1") == "A hostile post, safely shown"
        page.click("text=click me")  # its javascript: href was removed by the sanitizer
        assert page.evaluate("window.owned") is None
        page.screenshot(path=str(screenshot_path("public-post")), full_page=True)

        for path, name in (("/editor/subscribers", "editor-subscribers"), ("/editor/settings", "editor-settings"),
                           ("/editor/editors", "editor-editors"), ("/editor/subscribers/1", "editor-subscriber"),
                           ("/editor/media", "editor-media"), ("/archive/weekly-model/", "public-archive"),
                           ("/archive/weekly-model/benchmarks-saturate", "public-archive-issue")):
            response = page.goto(base + path)
            assert response is not None and response.status == 200, path
            page.screenshot(path=str(screenshot_path(name)), full_page=True)
        # The demo's pictures and logo: drawn at load time and served by this instance.
        page.goto(base + "/editor/media")
        pictures = page.locator(f"img[src^='{base}/media/']")
        assert pictures.count() >= 11  # the library's, and the logo in the header
        for picture in pictures.all():  # lazily loaded: each is shown, then must have decoded
            picture.scroll_into_view_if_needed()
            wait_until(lambda p=picture: p.evaluate("i => i.complete && i.naturalWidth > 0"),  # type: ignore[misc]
                       timeout=15)
        assert problems == []


def test_workspace_on_a_phone(app, db) -> None:  # type: ignore[no-untyped-def]
    """On a phone the navigation folds into a menu, the compose view stacks, and charts fit the screen."""
    with live_server(app) as base, chromium(viewport={"width": 390, "height": 844}, is_mobile=True) as context:
        _living_demo(app, db, base)
        page = context.new_page()
        problems = _watch(page)
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # nothing forces sideways scrolling
        chart = page.locator("svg[role=img]").first.bounding_box()
        assert chart is not None and chart["width"] <= 390
        page.screenshot(path=str(screenshot_path("editor-dashboard-phone")), full_page=True)
        page.goto(base + "/editor/posts/new")
        form, preview = page.locator("#post-form").bounding_box(), page.locator(".preview").bounding_box()
        assert form and preview and preview["y"] > form["y"] + form["height"] - 1  # stacked
        page.screenshot(path=str(screenshot_path("editor-post-phone")), full_page=True)
        assert problems == []
