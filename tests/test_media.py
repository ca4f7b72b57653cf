"""Uploaded images: refusals that leave nothing behind, metadata stripped, sizes, serving,
the editor's library and upload, the API, and alt text before publishing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest.core.models import EditorRole, Media, Newsletter, Post, PostStatus
from digest.core.storage import LocalStorage
from digest.core.validation import Invalid
from digest.domain import media, posts
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token
from tests.support.images import CAMERA, SCRIPTED_SVG, animation, bomb, photo, png
from tests.support.workspace import demo_newsletter

LIMITS = media.Limits(max_bytes=5 * 2**20, max_pixels=40_000_000, max_frames=20)


def _stored(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []


def _count(db: Session) -> int:
    count = db.scalar(select(func.count()).select_from(Media)) or 0
    db.rollback()  # end the read: the app's next request writes
    return count


@pytest.mark.one_backend
@pytest.mark.parametrize(("data", "name", "reason"), [
    (bomb(), "bomb.png", "too many pixels"),
    (photo(), "holiday.png", "named .png but holds a JPEG"),
    (b"MZ\x90\x00 not a picture at all", "invoice.jpg", "not an image"),
    (b"<html><body>hi</body></html>", "page.gif", "not an image"),
    (SCRIPTED_SVG, "logo.svg", "SVG images are refused"),
    (SCRIPTED_SVG, "logo.png", "SVG images are refused"),
    (animation(25), "dance.gif", "25 frames; at most 20"),
    (png(10, 10) + b"\x00" * (5 * 2**20), "big.png", "at most 5.0 MB"),
    (b"", "empty.png", "empty"),
], ids=["bomb", "fake-extension", "binary", "html", "scripted-svg", "svg-as-png", "animation",
        "too-many-bytes", "empty"])
def test_a_refused_file_says_why_and_leaves_nothing(db: Session, tmp_path: Path, data: bytes,
                                                     name: str, reason: str) -> None:
    """Each refusal names its reason; no row and no file remain."""
    storage = LocalStorage(tmp_path / "media")
    with pytest.raises(media.Refused, match=reason):
        media.upload(db, storage, data, name, LIMITS)
    db.rollback()
    assert _count(db) == 0
    assert _stored(tmp_path / "media") == []


@pytest.mark.one_backend
def test_exif_and_gps_are_kept_nowhere(db: Session, tmp_path: Path) -> None:
    """A photo's camera make and GPS position are in no stored size; sizes fit the email."""
    original = photo(1600, 1000)
    assert CAMERA.encode() in original
    storage = LocalStorage(tmp_path / "media")
    item = media.upload(db, storage, original, "photo.jpg", LIMITS, alt="A yellow sun")
    db.commit()
    files = _stored(tmp_path / "media")
    assert len(files) == 4
    for path in files:
        data = path.read_bytes()
        assert CAMERA.encode() not in data and b"Exif" not in data
        with Image.open(io.BytesIO(data)) as image:
            assert not image.getexif() and not image.getexif().get_ifd(0x8825)
    assert (item.width, item.height) == (1600, 1000)
    sizes = {name: (v["width"], v["height"]) for name, v in item.variants.items()}
    assert sizes == {"email": (518, 324), "email2x": (1036, 648), "small": (240, 150), "web": (1600, 1000)}


@pytest.mark.one_backend
def test_small_images_are_never_enlarged_and_webp_becomes_png(db: Session, tmp_path: Path) -> None:
    """A 300 px WebP is stored at 300 px in every size but the small one (twice the
    thumbnail's 120 px), as PNG (Outlook shows no WebP)."""
    out = io.BytesIO()
    Image.new("RGBA", (300, 120), (0, 0, 0, 0)).save(out, "WEBP")
    item = media.upload(db, LocalStorage(tmp_path / "media"), out.getvalue(), "mark.webp", LIMITS)
    assert item.content_type == "image/png"
    assert {name: v["width"] for name, v in item.variants.items()} == {
        "email": 300, "email2x": 300, "small": 240, "web": 300}


@pytest.mark.one_backend
def test_an_animation_within_the_limit_keeps_its_frames(db: Session, tmp_path: Path) -> None:
    """A 6-frame GIF is stored animated, frames counted."""
    item = media.upload(db, LocalStorage(tmp_path / "media"), animation(6), "spin.gif", LIMITS)
    assert item.frames == 6
    with Image.open(tmp_path / "media" / item.variants["email"]["key"]) as image:
        assert image.n_frames == 6


def _upload_page(client, app: Flask):  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        demo_newsletter(session)
        make_editor(session, "pen@example.com", EditorRole.EDITOR)
    log_in(client, "pen@example.com")
    return csrf_token(client.get("/editor/media").get_data(as_text=True))


def test_editor_uploads_serves_and_describes(app: Flask, client, db: Session) -> None:  # type: ignore[no-untyped-def]
    """The library's form stores an image; its sizes are served with long caching and no
    sniffing; a refused file is explained and stores nothing."""
    token = _upload_page(client, app)
    answer = client.post("/editor/media", data={"csrf_token": token, "alt": "",
                                                "file": (io.BytesIO(photo()), "sun.jpg")},
                         headers={"Accept": "application/json"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    body = answer.get_json()
    assert body["markdown"] == f"![]({body['url']})" and body["width"] == 1600
    served = client.get(body["url"].removeprefix("https://news.example.org"))
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert CAMERA.encode() not in served.data
    refused = client.post("/editor/media", data={"csrf_token": token,
                                                 "file": (io.BytesIO(SCRIPTED_SVG), "x.svg")},
                          headers={"Accept": "application/json"})
    assert refused.status_code == 422 and "SVG" in refused.get_json()["error"]
    assert _count(db) == 1
    page = client.get("/editor/media").get_data(as_text=True)
    assert "sun.jpg" in page and "Needed before publishing" in page
    item_id = db.scalar(select(Media.id))
    db.rollback()  # end the read: SQLite's writer waits for no reader
    client.post(f"/editor/media/{item_id}/alt", data={"csrf_token": token, "alt": "The sun"})
    db.expire_all()
    assert db.scalar(select(Media.alt)) == "The sun"
    db.rollback()
    assert client.get("/media/AAAAAAAAAAAAAAAAAAAAAA/web.jpg").status_code == 404
    assert client.get("/media/../../secret_key").status_code == 404


def test_publishing_needs_every_image_described(app: Flask, db: Session, tmp_path: Path) -> None:
    """A post whose body image or lead image has no alt text is refused publishing, saying so."""
    newsletter = demo_newsletter(db)
    item = media.upload(db, LocalStorage(tmp_path / "m"), png(), "chart.png", LIMITS)
    url = f"https://news.example.org{media.path(item)}"
    post = posts.create_post(db, newsletter, posts.PostInput(
        title="Charts", section_id=newsletter.sections[0].id, body_md=f"Look:\n\n![]({url})",
        lead_image_id=item.id))
    with pytest.raises(Invalid) as refused:
        posts.publish_post(db, app.config, post)
    assert "1 image has no alt text" in refused.value.errors["body_md"]
    assert "lead image" in refused.value.errors["lead_image_alt"]
    posts.update_post(db, post, posts.PostInput(
        title="Charts", section_id=newsletter.sections[0].id,
        body_md=f"Look:\n\n![Accuracy rose to 91%]({url})", lead_image_id=item.id))
    media.set_alt(db, item, "A bar chart")
    posts.publish_post(db, app.config, post)
    assert post.status is PostStatus.PUBLISHED and post.lead_image is item


def test_api_upload_answers_as_documented(app: Flask, db: Session) -> None:
    """POST /api/v1/media stores an image (201 with its sizes), refuses content with 409
    and a reason, a missing file with 422; a post takes the image as its lead."""
    with get_db_of(app).session() as session:
        demo_newsletter(session)
    api = ApiClient(app.test_client(), make_token(app, "pen@example.com", EditorRole.EDITOR))
    stored = api.post("/api/v1/media", data={"file": (io.BytesIO(photo(800, 600)), "p.jpg"),
                                             "alt": "A sunny sky"})
    assert stored.status_code == 201
    body = stored.get_json()
    assert body["sizes"]["email"]["width"] == 518 and body["alt"] == "A sunny sky"
    bomb_answer = api.post("/api/v1/media", data={"file": (io.BytesIO(bomb()), "b.png")})
    assert bomb_answer.status_code == 409 and "pixels" in bomb_answer.get_json()["fields"]["file"]
    missing = api.post("/api/v1/media", data={"alt": "nothing"})
    assert missing.status_code == 422 and "file" in missing.get_json()["fields"]
    assert _count(db) == 1
    section_id = db.scalar(select(Post.section_id))
    db.rollback()
    created = api.post("/api/v1/newsletters/weekly-model/posts", json={
        "title": "With a picture", "section_id": section_id, "lead_image_id": body["id"],
        "publish": True})
    assert created.status_code == 201 and created.get_json()["lead_image_id"] == body["id"]


def _stored_files(app: Flask) -> list[Path]:
    return _stored(Path(app.config["INSTANCE_PATH"]) / "media")


def test_api_lists_images_and_deletes_only_unused_ones(app: Flask, db: Session) -> None:
    """GET /api/v1/media pages through the library, newest first; DELETE refuses with 409,
    naming the user, an image a post or the logo shows, and removes an unused one with
    every stored size."""
    with get_db_of(app).session() as session:
        demo_newsletter(session)
    api = ApiClient(app.test_client(), make_token(app, "pen@example.com", EditorRole.EDITOR))
    ids = [api.post("/api/v1/media", data={"file": (io.BytesIO(png(200 + n, 100)), f"{n}.png"),
                                           "alt": f"Picture {n}"}).get_json()["id"] for n in range(3)]
    extra = api.post("/api/v1/media", data={"file": (io.BytesIO(png()), "x.png"), "caption": "no"})
    assert extra.status_code == 422 and "caption" in extra.get_json()["fields"]  # only documented fields
    listing = api.get("/api/v1/media").get_json()
    assert [item["id"] for item in listing["media"]] == ids[::-1]
    assert listing["media"][0]["sizes"]["small"]["width"] == 202  # twice a thumbnail, never enlarged
    assert (listing["page"], listing["pages"], listing["total"]) == (1, 1, 3)
    assert api.get("/api/v1/media?page=2").get_json()["media"] == []
    section_id = db.scalar(select(Post.section_id))
    db.rollback()
    created = api.post("/api/v1/newsletters/weekly-model/posts", json={
        "title": "With a picture", "section_id": section_id, "lead_image_id": ids[0]})
    assert created.status_code == 201
    with get_db_of(app).session() as session:
        session.scalars(select(Newsletter)).one().logo_dark = session.get(Media, ids[1])
    assert len(_stored_files(app)) == 12
    for media_id, user in ((ids[0], "the lead image of the post “With a picture”"),
                           (ids[1], "the logo of The Weekly Model")):
        refused = api.delete(f"/api/v1/media/{media_id}")
        assert refused.status_code == 409
        assert user in refused.get_json()["fields"]["media"]
    assert len(_stored_files(app)) == 12 and _count(db) == 3
    web = listing["media"][0]["sizes"]["web"]["url"].removeprefix("https://news.example.org")
    assert app.test_client().get(web).status_code == 200
    assert api.delete(f"/api/v1/media/{ids[2]}").status_code == 204
    assert len(_stored_files(app)) == 8 and _count(db) == 2
    assert app.test_client().get(web).status_code == 404
    assert api.delete(f"/api/v1/media/{ids[2]}").status_code == 404
    assert api.get("/api/v1/media").get_json()["total"] == 2


def test_editor_deletes_an_unused_image_and_is_told_what_uses_another(app: Flask, client, db: Session) -> None:  # type: ignore[no-untyped-def]
    """The library's Delete button (CSRF-checked) removes an image nothing shows, files and
    all; for one a post's body shows, the refusal appears next to that image."""
    token = _upload_page(client, app)
    urls = []
    for name in ("used.png", "spare.png"):
        answer = client.post("/editor/media", data={"csrf_token": token, "alt": name,
                                                    "file": (io.BytesIO(png()), name)},
                             headers={"Accept": "application/json"})
        urls.append(answer.get_json()["url"])
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        posts.create_post(session, newsletter, posts.PostInput(
            title="Charts", section_id=newsletter.sections[0].id, body_md=f"![A chart]({urls[0]})"))
    used, spare = (db.scalar(select(Media.id).where(Media.filename == n)) for n in ("used.png", "spare.png"))
    db.rollback()
    page = client.get("/editor/media").get_data(as_text=True)
    assert f'action="/editor/media/{spare}/delete"' in page and "data-confirm=" in page
    assert client.post(f"/editor/media/{spare}/delete").status_code == 400  # no CSRF token
    assert _count(db) == 2
    refused = client.post(f"/editor/media/{used}/delete", data={"csrf_token": token}, follow_redirects=True)
    html = refused.get_data(as_text=True)
    notice = html[html.index(f'id="media-{used}"'):].split("</li>")[0]
    assert "in use as the body of the post “Charts”" in notice and 'id="notice-media-' in notice
    assert _count(db) == 2 and len(_stored_files(app)) == 8
    done = client.post(f"/editor/media/{spare}/delete", data={"csrf_token": token}, follow_redirects=True)
    assert "“spare.png” is deleted." in done.get_data(as_text=True)
    assert _count(db) == 1 and len(_stored_files(app)) == 4
    assert client.get(urls[1].removeprefix("https://news.example.org")).status_code == 404
