"""The editor's week in Debian's headless Chromium, at desktop and phone widths, light and
dark: the phone menu, the post picker, a wrong time zone answered next to its field,
keyboard reordering without a reload, the preview, deleting a draft.
Screenshots go to test-artifacts/week/."""

from __future__ import annotations

import datetime as dt

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import Post
from digest.domain import issues
from tests.support.browser import ARTIFACTS, chromium, drag_above, live_server, log_in_editor
from tests.support.editor import PASSWORD, make_editor
from tests.support.workspace import demo_newsletter, sent_issue

pytestmark = pytest.mark.browser
SHOTS = ARTIFACTS / "week"


def _in_view(page: object, selector: str) -> bool:
    """Return whether the element is visible inside the viewport (no scrolling needed)."""
    box = page.locator(selector).bounding_box()  # type: ignore[attr-defined]
    height = page.viewport_size["height"]  # type: ignore[attr-defined]
    return box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height


@pytest.mark.parametrize("width", [1280, 390])
def test_the_issue_page_answers_where_the_editor_looks(app: Flask, db: Session, width: int) -> None:
    """Build a new issue, find a post in the picker, type "Berlin" as the time zone: the
    message stands next to the field, in view; delete the draft after confirming."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    db.rollback()  # the live server writes; SQLite must not see this session's lock
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(app) as base, chromium(viewport={"width": width, "height": 800}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        dialogs: list[str] = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.accept()))
        log_in_editor(page, base, "admin@example.com", PASSWORD)

        issues_link = page.locator("nav[aria-label=Editor] a:has-text('Issues')")
        if width < 720:  # the navigation folds into a menu, the page does not overflow
            assert page.is_visible(".menu-toggle") and not issues_link.is_visible()
            page.click(".menu-toggle")
            assert issues_link.is_visible() and page.get_attribute(".menu-toggle", "aria-expanded") == "true"
            page.screenshot(path=str(SHOTS / f"menu-open-{width}.png"))
            issues_link.click()
        else:
            assert not page.is_visible(".menu-toggle")
            issues_link.click()
        page.wait_for_selector("h1:has-text('Issues')")
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        page.click("button:has-text('New issue')")
        page.wait_for_selector("#posts")
        issue_url = page.url
        assert page.evaluate("document.documentElement.scrollWidth") <= width
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=str(SHOTS / f"issue-edit-{width}-{scheme}.png"), full_page=True)
        page.emulate_media(color_scheme="light")

        rows = page.locator("#picker-list li")
        total = rows.count()
        if total:
            first_title = page.locator("#picker-list li").first.inner_text().split("·")[1].strip()
            page.fill("#find", first_title[:8])
            shown = page.locator("#picker-list li:visible").count()
            assert 1 <= shown <= total
            page.fill("#find", "zzzz no such post")
            assert page.locator("#picker-list li:visible").count() == 0
            assert page.is_visible("#picker-none")
            page.locator("#add").screenshot(path=str(SHOTS / f"picker-{width}.png"))

        page.fill("#tz", "Berlin")
        page.click("#schedule-form button[type=submit]")
        page.wait_for_selector("#tz-error:not([hidden])")
        assert "did you mean Europe/Berlin?" in page.inner_text("#tz-error")
        assert _in_view(page, "#tz-error") and _in_view(page, "#tz")
        assert page.url == issue_url  # nothing was sent, nothing jumped
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            page.screenshot(path=str(SHOTS / f"tz-error-{width}-{scheme}.png"))
        page.emulate_media(color_scheme="light")

        page.fill("#tz", "Europe/Berlin")
        page.fill("#at", "2031-03-30 02:30")  # the night the clocks skip that hour
        page.click("#schedule-form button[type=submit]")
        page.wait_for_selector("#at-error")
        assert "does not exist in Europe/Berlin" in page.inner_text("#at-error")
        assert _in_view(page, "#at-error")
        page.screenshot(path=str(SHOTS / f"at-error-{width}.png"))

        page.goto(base + "/editor/issues/1")  # the demo's own issue, with its posts
        posts = page.locator("#posts ol.issue-posts > li")
        titles = lambda: [t.split("·")[1].split("\n")[0].strip() for t in posts.all_inner_texts()]  # noqa: E731
        before = titles()
        page.evaluate("window.marker = 1")  # gone if the page reloads
        dragged = before
        page.locator(f"button[aria-label='Move down: {dragged[0]}']").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("#order-status:has-text('Moved.')")
        assert titles() != dragged
        assert page.evaluate("window.marker") == 1  # no reload
        page.screenshot(path=str(SHOTS / f"reordered-{width}.png"), full_page=True)
        kept = titles()
        page.reload()
        assert titles() == kept  # the server stored it

        page.goto(base + "/editor/issues/1/preview")
        page.wait_for_selector("iframe.mail-html")
        # The frame grows to the email's height: no scrollbar inside it, the page scrolls.
        page.wait_for_function(
            "() => { const f = document.querySelector('iframe.mail-html'); const d = f.contentDocument;"
            " return d && d.readyState === 'complete' && d.URL !== 'about:blank'"
            " && f.clientHeight >= d.documentElement.scrollHeight; }", timeout=15000)
        grown = page.locator("iframe.mail-html").bounding_box()
        assert grown and grown["height"] > 800, grown  # longer than the window, shown whole
        assert not page.is_visible("#text-part pre")  # the text version starts folded
        page.click("#text-part summary")
        assert page.is_visible("#text-part pre")
        backgrounds = []
        for scheme in ("light", "dark"):
            if scheme == "dark":
                page.click("nav.tabs a:has-text('Dark')")
                page.wait_for_selector("iframe.scheme-dark")
            frame = page.frame_locator("iframe.mail-html")
            frame.locator("body").wait_for()
            backgrounds.append(frame.locator("body").evaluate("b => getComputedStyle(b).backgroundColor"))
            page.locator("iframe.mail-html").screenshot(path=str(SHOTS / f"preview-{scheme}-{width}.png"))
        assert backgrounds[0] != backgrounds[1], backgrounds  # the email's own dark styles apply
        # An editor whose system is dark still sees the light email under "Light".
        page.emulate_media(color_scheme="dark")
        page.click("nav.tabs a:has-text('Light')")
        page.wait_for_selector("iframe.scheme-light")
        expect(page.frame_locator("iframe.mail-html").locator("body")).to_have_css("background-color", backgrounds[0])
        page.emulate_media(color_scheme="light")

        page.goto(issue_url)
        page.click("button:has-text('Delete draft')")
        page.wait_for_selector("h1:has-text('Issues')")
        assert dialogs[-1].startswith("Delete this draft for good?")
        assert "is deleted; its posts are free for another issue." in page.inner_text("main")
        page.screenshot(path=str(SHOTS / f"deleted-{width}.png"), full_page=True)
        assert not problems, problems


@pytest.mark.parametrize("width", [1280, 390])
def test_posts_reorder_by_a_real_mouse_drag(app: Flask, db: Session, width: int) -> None:
    """Drag a post by mouse above the one before it: the list changes without a reload, the
    server stores the order (it survives a reload), and ↑ with the keyboard moves it back."""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    db.rollback()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(app) as base, chromium(viewport={"width": width, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.goto(base + "/editor/issues/1")
        items = page.locator("#posts ol.issue-posts > li")
        ids = lambda: items.evaluate_all("els => els.map(e => e.dataset.postId)")  # noqa: E731
        sections = items.evaluate_all("els => els.map(e => e.querySelector('.muted').textContent)")
        before = ids()
        # Two neighbours of one section: the server keeps sections together, so this move stands.
        at = next(i for i in range(1, len(sections)) if sections[i] == sections[i - 1])
        moved, over = before[at], before[at - 1]
        page.evaluate("window.marker = 1")  # gone if the page reloads

        drag_above(page, page.locator(f"#post-{moved}"), page.locator(f"#post-{over}"))
        expected = before[:at - 1] + [moved, over] + before[at + 1:]
        assert ids() == expected
        assert page.evaluate("window.marker") == 1  # no reload
        page.screenshot(path=str(SHOTS / f"dragged-{width}.png"), full_page=True)
        page.reload()
        assert ids() == expected  # stored

        title = page.locator(f"#post-{moved} .issue-post a").first.inner_text()
        page.locator(f"button[aria-label='Move down: {title}']").focus()
        page.keyboard.press("Enter")
        page.wait_for_function(f"() => document.querySelector('#posts ol.issue-posts > li:nth-child({at + 1})')"
                               f".dataset.postId === '{moved}'")
        assert ids() == before
        page.reload()
        assert ids() == before
        assert not problems, problems


PHONE_PAGES = {
    "dashboard": "/editor/", "posts": "/editor/posts", "post": "/editor/posts/1",
    "issues": "/editor/issues", "issue": "/editor/issues/1", "preview": "/editor/issues/1/preview",
    "sending": "/editor/issues/{sent}/sending", "subscribers": "/editor/subscribers",
    "subscriber": "/editor/subscribers/1", "import": "/editor/subscribers/import",
    "suppressions": "/editor/suppressions", "inbox": "/editor/inbox", "sources": "/editor/sources",
    "media": "/editor/media", "outbox": "/editor/outbox", "settings": "/editor/settings",
    "editors": "/editor/editors", "webhooks": "/editor/webhooks", "account": "/editor/account",
    "tokens": "/editor/account/tokens",
}


def test_every_main_page_fits_a_phone_light_and_dark(app: Flask, db: Session) -> None:
    """At 390 px each main workspace page fits the width: a table wider than the screen
    scrolls inside its box and shows that it does (a shade at the hidden edge), buttons
    share one size, no chart label runs off its chart; a scheduled issue's Reschedule is as wide as Send now and the others;
    the preview's width and colour tabs stay on one line; each page is photographed light
    and dark."""
    newsletter = demo_newsletter(db)
    sent = sent_issue(db, newsletter, "a-sent-week", list(db.scalars(select(Post).limit(3))),
                      subject="A week already sent").id
    issues.schedule_issue(db, 1, utcnow().replace(tzinfo=None) + dt.timedelta(days=3))
    db.commit()
    make_editor(db, "admin@example.com")
    db.rollback()
    SHOTS.mkdir(parents=True, exist_ok=True)
    with live_server(app) as base, chromium(viewport={"width": 390, "height": 844}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        unfit: dict[str, object] = {}
        for name, path in PHONE_PAGES.items():
            response = page.goto(base + path.format(sent=sent))
            assert response and response.status == 200, (name, response and response.status)
            if page.evaluate("document.documentElement.scrollWidth") > 390:
                unfit[name] = "page wider than the phone"
            hidden_scroll = page.evaluate("""() => Array.from(document.querySelectorAll('main table'))
                .filter(t => t.getBoundingClientRect().width > 0 && t.scrollWidth > t.clientWidth + 1)
                .filter(t => !['auto', 'scroll'].includes(getComputedStyle(t).overflowX)
                             || !getComputedStyle(t).backgroundImage.includes('gradient'))
                .map(t => t.className || t.querySelector('caption')?.textContent || 'table')""")
            if hidden_scroll:
                unfit[name] = hidden_scroll
            sizes = page.evaluate("""() => [...new Set(Array.from(document.querySelectorAll(
                'main button:not(.link):not(.small), main a.button:not(.small)'))
                .filter(b => b.offsetParent !== null)
                .map(b => { const c = getComputedStyle(b); return c.fontSize + ' ' + c.paddingTop; }))]""")
            if len(sizes) > 1:  # a long label may wrap; size and padding stay one
                unfit.setdefault(name, f"button sizes {sizes}")
            clipped = page.evaluate("""() => Array.from(document.querySelectorAll('.chart .labels text'))
                .filter(t => getComputedStyle(t).display !== 'none')
                .filter(t => { const r = t.getBoundingClientRect(), box = t.ownerSVGElement.getBoundingClientRect();
                               return r.left < box.left - 0.5 || r.right > box.right + 0.5; })
                .map(t => t.textContent)""")
            if clipped:  # an axis label running off its chart
                unfit[name] = f"chart labels cut off: {clipped}"
            if name == "issue":
                widths = page.evaluate("""() => Array.from(document.querySelectorAll('#schedule button'))
                    .filter(b => b.offsetParent !== null)
                    .map(b => [b.textContent.trim(), Math.round(b.getBoundingClientRect().width)])""")
                assert "Reschedule" in dict(widths) and "Send now" in dict(widths), widths
                if len({w for _, w in widths}) > 1:
                    unfit[name] = f"schedule buttons of different widths {widths}"
            if name == "preview":
                tops = page.locator("nav.tabs a").evaluate_all(
                    "links => links.map(a => Math.round(a.getBoundingClientRect().top))")
                # A tab's label on one line is less than two font sizes high; the row fits.
                lines = page.locator("nav.tabs a").evaluate_all(
                    "links => links.map(a => a.getBoundingClientRect().height"
                    " / parseFloat(getComputedStyle(a).fontSize))")
                overflow = page.locator("nav.tabs").evaluate("n => n.scrollWidth - n.clientWidth")
                if len(tops) != 4 or len(set(tops)) > 1 or max(lines) >= 2 or overflow > 0:
                    unfit[name] = f"preview tabs on several lines: tops {tops}, heights {lines}, overflow {overflow}"
                page.locator("nav.tabs").screenshot(path=str(SHOTS / "phone-preview-tabs.png"))
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.screenshot(path=str(SHOTS / f"phone-{name}-{scheme}.png"), full_page=True)
            page.emulate_media(color_scheme="light")
        assert not unfit, unfit
        assert not problems, problems
