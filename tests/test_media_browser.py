"""Images in Debian's headless Chromium: upload in the post editor (a refused file first),
alt text required to publish, the lead image and logo chosen, the email previewed at desktop
and phone widths, light and dark."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import Post
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.delivery import make_newsletter
from tests.support.editor import PASSWORD, make_editor
from tests.support.images import SCRIPTED_SVG, photo, png

pytestmark = pytest.mark.browser


def test_upload_describe_place_and_preview(app: Flask, db: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An editor's SVG is refused with the reason; a photo uploads from the button into the
    text; publishing waits for its alt text; the photo becomes a post's lead image; the
    logo is set; the preview shows both, at 1280 and 390 px, light and dark."""
    setup = make_newsletter(db, readers=1)
    make_editor(db, "admin@example.com")
    first_id = db.scalar(select(Post.id).where(Post.slug == "first"))
    db.rollback()  # the live server writes; SQLite must not see this session's lock
    (tmp_path / "logo.svg").write_bytes(SCRIPTED_SVG)
    (tmp_path / "sun.jpg").write_bytes(photo(1600, 1000))
    (tmp_path / "logo.png").write_bytes(png(480, 96, (30, 60, 160, 255)))
    with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        app.config["BASE_URL"] = base  # images in the preview load from this server
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        log_in_editor(page, base, "admin@example.com", PASSWORD)

        page.goto(f"{base}/editor/posts/new")
        page.fill("#title", "Sunrise")
        page.set_input_files("#image-file", str(tmp_path / "logo.svg"))
        page.wait_for_selector("#image-status:has-text('Not added')")
        assert "SVG images are refused" in page.locator("#image-status").inner_text()
        page.set_input_files("#image-file", str(tmp_path / "sun.jpg"))
        page.wait_for_selector("#image-status:has-text('Added sun.jpg')")
        body = page.input_value("#body_md")
        assert body.startswith("![](") and "/media/" in body
        page.wait_for_selector("#preview img")
        page.screenshot(path=str(screenshot_path("media-post-editor")), full_page=True)
        page.click("button:has-text('Save and publish')")
        page.wait_for_selector(".flash-error")
        assert "Describe every image before publishing" in page.locator(".flash-error").inner_text()
        page.fill("#body_md", page.input_value("#body_md").replace("![](", "![A yellow sun over a blue sea]("))
        page.click("button:has-text('Save and publish')")
        page.wait_for_selector(".flash-success:has-text('published')")

        page.goto(f"{base}/editor/posts/{first_id}")
        page.select_option("#lead_image_id", label="sun.jpg (1600 × 1000)")
        page.fill("#lead_image_alt", "A yellow sun over a blue sea")
        page.click("button:has-text('Save')")
        page.wait_for_selector(".flash-success")

        page.goto(f"{base}/editor/media")
        page.set_input_files("#file", str(tmp_path / "logo.png"))
        page.fill("#alt", "The Test Weekly")
        page.click("button:has-text('Upload')")
        page.wait_for_selector(".flash-success:has-text('logo.png')")
        page.screenshot(path=str(screenshot_path("media-library")), full_page=True)
        page.goto(f"{base}/editor/settings/media")
        page.check("input[name=image_display][value=lead]")
        page.select_option("#logo_light_id", label="The Test Weekly (480 × 96)")
        page.click("button:has-text('Save')")
        page.wait_for_selector(".flash-success")

        for width in (1280, 390):
            page.set_viewport_size({"width": width, "height": 900})
            view = "" if width == 1280 else "?view=phone"
            page.goto(f"{base}/editor/issues/{setup.issue_id}/preview{view}")
            frame = page.frame_locator("iframe.mail-html")
            lead = frame.locator("img[alt='A yellow sun over a blue sea']")
            logo = frame.locator("img[alt='The Test Weekly']").first
            lead.wait_for()
            assert lead.get_attribute("width") == "518"
            assert logo.evaluate("image => image.naturalWidth") > 0
            assert lead.evaluate("image => image.complete && image.naturalWidth") > 0
            for scheme in ("light", "dark"):
                page.emulate_media(color_scheme=scheme)
                page.locator("iframe.mail-html").scroll_into_view_if_needed()
                page.screenshot(path=str(screenshot_path(f"media-preview-{width}-{scheme}")), full_page=True)
                page.locator("iframe.mail-html").screenshot(
                    path=str(screenshot_path(f"media-email-{width}-{scheme}")))
            page.emulate_media(color_scheme="light")
        assert page.locator("text=Its images weigh").count() == 1
        assert not problems, problems


def test_delete_asks_first_and_refuses_an_image_in_use(app: Flask, db: Session, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Delete asks for confirmation (dismissed: nothing happens); an image the logo shows is
    refused with the reason next to it; an unused one disappears, files and all."""
    make_newsletter(db, readers=0)
    make_editor(db, "admin@example.com")
    db.rollback()
    (tmp_path / "logo.png").write_bytes(png(480, 96, (30, 60, 160, 255)))
    (tmp_path / "spare.png").write_bytes(png(300, 200))
    with live_server(app) as base, chromium(viewport={"width": 1280, "height": 900}) as context:
        app.config["BASE_URL"] = base
        page = context.new_page()  # type: ignore[attr-defined]
        problems: list[str] = []
        page.on("pageerror", lambda e: problems.append(str(e)))
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        for name in ("logo.png", "spare.png"):
            page.goto(f"{base}/editor/media")
            page.set_input_files("#file", str(tmp_path / name))
            page.fill("#alt", name)
            page.click("button:has-text('Upload')")
            page.wait_for_selector(f".flash-success:has-text('{name}')")
        page.goto(f"{base}/editor/settings/media")
        page.select_option("#logo_light_id", label="logo.png (480 × 96)")
        page.click("button:has-text('Save')")
        page.wait_for_selector(".flash-success")

        page.goto(f"{base}/editor/media")
        spare = page.locator("li.media-item", has_text="spare.png")
        page.once("dialog", lambda dialog: dialog.dismiss())
        spare.locator("button:has-text('Delete')").click()
        assert page.locator("li.media-item").count() == 2
        logo = page.locator("li.media-item", has_text="logo.png")
        page.once("dialog", lambda dialog: dialog.accept())
        logo.locator("button:has-text('Delete')").click()
        notice = page.locator("li.media-item", has_text="logo.png").locator(".notice")
        notice.wait_for()
        assert "in use as the logo of The Test Weekly" in notice.inner_text()
        page.screenshot(path=str(screenshot_path("media-delete-refused")), full_page=True)
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("li.media-item", has_text="spare.png").locator("button:has-text('Delete')").click()
        page.wait_for_selector(".flash-success:has-text('“spare.png” is deleted.')")
        assert page.locator("li.media-item").count() == 1
        stored = sorted(p.name for p in (tmp_path / "instance" / "media").rglob("*.png"))
        assert stored == ["email.png", "email2x.png", "small.png", "web.png"]
        assert not problems, problems
