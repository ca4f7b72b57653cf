"""Images in what readers get: the logo and lead images in the email aiosmtpd receives, the
size report counting image bytes apart, lead and body images on the archive pages."""

from __future__ import annotations

import io
import re

from PIL import Image
from sqlalchemy import select

from digest.core.models import EditorRole, Media, Post
from tests.support.apps import get_db_of
from tests.support.delivery import make_newsletter
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token, submit
from tests.support.images import photo, png
from tests.support.waiting import wait_until
from tests.support.workspace import sent_issue

BASE = "https://news.example.org"


def _upload(client, token: str, data: bytes, name: str, alt: str) -> dict:  # type: ignore[type-arg]
    answer = client.post("/editor/media", data={"csrf_token": token, "alt": alt,
                                                "file": (io.BytesIO(data), name)},
                         headers={"Accept": "application/json"})
    assert answer.status_code == 201, answer.get_data(as_text=True)
    body: dict = answer.get_json()  # type: ignore[type-arg]
    return body


def _images(html: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'(\w+)="([^"]*)"', tag)) for tag in re.findall(r"<img\b[^>]*>", html)]


def _admin_at_media(app, db):  # type: ignore[no-untyped-def]
    """Return a one-reader newsletter, an admin's client on the media page and its CSRF token."""
    with get_db_of(app).session() as session:
        setup = make_newsletter(session, readers=1)
    make_editor(db, "admin@example.com", EditorRole.ADMIN)
    client = app.test_client()
    log_in(client, "admin@example.com")
    return setup, client, csrf_token(client.get("/editor/media").get_data(as_text=True))


def test_logo_and_lead_image_reach_the_inbox(smtp_app, smtp_server, db) -> None:  # type: ignore[no-untyped-def]
    """An admin uploads a light and a dark logo and a lead image, picks them in "Media &
    logo"; the test email aiosmtpd receives shows the logo (dark variant for dark mode) and
    the lead image sized, described and served; the preview counts their bytes apart."""
    setup, client, token = _admin_at_media(smtp_app, db)
    light = _upload(client, token, png(600, 120, (20, 40, 120, 255)), "logo.png", "Test Weekly")
    dark = _upload(client, token, png(600, 120, (230, 230, 250, 255)), "logo-dark.png", "Test Weekly")
    lead = _upload(client, token, photo(1600, 900), "harbour.jpg", "Boats in the harbour at dawn")
    saved = submit(client, "/editor/settings/media", image_display="lead",
                   logo_light_id=str(light["id"]), logo_dark_id=str(dark["id"]))
    assert saved.status_code == 302
    db.execute(Post.__table__.update().where(Post.slug == "first").values(lead_image_id=lead["id"]))
    db.commit()

    preview = client.get(f"/editor/issues/{setup.issue_id}/preview").get_data(as_text=True)
    assert "Its images weigh" in preview and "not counted in that limit" in preview
    submit(client, f"/editor/issues/{setup.issue_id}/preview", f"/editor/issues/{setup.issue_id}/test")

    html = smtp_server.to("admin@example.com")[0].message.get_body(("html",)).get_content()
    images = {image["src"]: image for image in _images(html)}
    keys = {}
    for name, item in (("light", light), ("dark", dark), ("lead", lead)):
        with get_db_of(smtp_app).session() as session:
            stored = session.get(Media, item["id"])
            keys[name] = f"{BASE}/media/{stored.variants['email2x' if name == 'lead' else 'small']['key']}"
    assert images[keys["light"]]["alt"] == "The Test Weekly"
    assert (images[keys["light"]]["width"], images[keys["light"]]["height"]) == ("240", "48")
    assert keys["dark"] in images and "logo-dark-only" in html
    lead_image = images[keys["lead"]]
    assert lead_image["alt"] == "Boats in the harbour at dawn"
    assert (lead_image["width"], lead_image["height"]) == ("518", "292")
    served = client.get(keys["lead"].removeprefix(BASE))
    assert served.status_code == 200 and served.headers["X-Content-Type-Options"] == "nosniff"


def _grainy(width: int, height: int) -> bytes:
    """Return a JPEG with a camera's grain, which weighs what a real photo does."""
    from PIL import Image

    out = io.BytesIO()
    Image.merge("RGB", [Image.effect_noise((width, height), sigma).convert("L") for sigma in (40, 60, 80)]
                ).save(out, "JPEG", quality=90)
    return out.getvalue()


def _sent_images(smtp_server, client, setup, count: int) -> dict[str, dict[str, str]]:  # type: ignore[no-untyped-def]
    submit(client, f"/editor/issues/{setup.issue_id}/preview", f"/editor/issues/{setup.issue_id}/test")
    received = wait_until(lambda: smtp_server.to("admin@example.com")[count - 1:], timeout=30)
    html = received[0].message.get_body(("html",)).get_content()
    return {image["alt"]: image for image in _images(html)}


def test_thumbnails_and_logos_are_sent_in_the_small_size(smtp_app, smtp_server, db) -> None:  # type: ignore[no-untyped-def]
    """With thumbnails on, the email aiosmtpd receives points the thumbnail and the logo at
    their small size (twice the box they are drawn in), a fraction of the 2x email size's
    bytes; an image uploaded before the small size existed still shows, from its 2x size."""
    setup, client, token = _admin_at_media(smtp_app, db)
    logo = _upload(client, token, _grainy(1000, 200), "logo.jpg", "Test Weekly")
    lead = _upload(client, token, _grainy(1600, 1000), "harbour.jpg", "Boats in the harbour at dawn")
    assert submit(client, "/editor/settings/media", image_display="thumbnail",
                  logo_light_id=str(logo["id"]), logo_dark_id="").status_code == 302
    db.execute(Post.__table__.update().where(Post.slug == "first").values(lead_image_id=lead["id"]))
    db.commit()

    shown = _sent_images(smtp_server, client, setup, 1)
    thumbnail, brand = shown["Boats in the harbour at dawn"], shown["The Test Weekly"]
    assert thumbnail["src"].endswith("/small.jpg") and brand["src"].endswith("/small.jpg")
    assert (thumbnail["width"], thumbnail["height"]) == ("120", "75")
    assert (brand["width"], brand["height"]) == ("240", "48")
    with get_db_of(smtp_app).session() as session:
        sizes = {item["id"]: session.get(Media, item["id"]).variants for item in (logo, lead)}
    for image, item, size in ((thumbnail, lead, (240, 150)), (brand, logo, (480, 96))):
        served = client.get(image["src"].removeprefix(BASE))
        assert served.status_code == 200
        with Image.open(io.BytesIO(served.data)) as decoded:
            assert decoded.size == size  # twice what the email draws: sharp on dense screens
        email2x = sizes[item["id"]]["email2x"]["bytes"]
        assert len(served.data) * 4 < email2x, (len(served.data), email2x)

    # An upload stored before the small size existed has only email, email2x and web.
    with get_db_of(smtp_app).session() as session:
        stored = session.get(Media, lead["id"])
        stored.variants = {name: v for name, v in stored.variants.items() if name != "small"}
    old = _sent_images(smtp_server, client, setup, 2)["Boats in the harbour at dawn"]
    assert old["src"] == f"{BASE}/media/{sizes[lead['id']]['email2x']['key']}"
    assert (old["width"], old["height"]) == ("120", "75")
    assert client.get(old["src"].removeprefix(BASE)).status_code == 200


def test_archive_shows_lead_and_body_images(app, db) -> None:  # type: ignore[no-untyped-def]
    """A sent issue's page shows each post's lead image and the images of its body."""
    with get_db_of(app).session() as session:
        make_newsletter(session, readers=0)
    make_editor(db, "admin@example.com", EditorRole.ADMIN)
    client = app.test_client()
    log_in(client, "admin@example.com")
    token = csrf_token(client.get("/editor/media").get_data(as_text=True))
    lead = _upload(client, token, photo(800, 400), "lead.jpg", "A wide lead picture")
    body = _upload(client, token, png(400, 300), "chart.png", "A chart")
    post = db.scalar(select(Post).where(Post.slug == "first"))
    post.lead_image_id = lead["id"]
    post.body_md = f"Before.\n\n{body['markdown']}\n\nAfter."
    newsletter = post.newsletter
    sent_issue(db, newsletter, "week-1", [post])
    page = client.get("/archive/weekly/week-1").get_data(as_text=True)
    shown = {image["alt"]: image for image in _images(page)}
    assert shown["A wide lead picture"]["width"] == "800"
    assert shown["A chart"]["src"] == body["url"]


def test_thumbnails_and_logo_keep_the_email_lint_clean(app, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """With thumbnails and a light and dark logo, the digest's HTML draws each image at a
    set width and height with its description, and `digest templates check`'s lint finds
    no problem in it."""
    from digest.core.storage import LocalStorage
    from digest.domain import media
    from digest.domain.issue_mail import prepare_issue
    from digest.mail.lint import lint_html
    from digest.mail.render import Reader

    setup = make_newsletter(db, readers=0)
    storage, limits = LocalStorage(tmp_path / "m"), media.Limits.of(app.config)
    post = db.scalar(select(Post).where(Post.slug == "first"))
    post.lead_image = media.upload(db, storage, photo(900, 600), "t.jpg", limits, alt="A thumbnail")
    post.newsletter.image_display = "thumbnail"
    post.newsletter.logo_light = media.upload(db, storage, png(400, 100), "l.png", limits)
    post.newsletter.logo_dark = media.upload(db, storage, png(400, 100, (250, 250, 250, 255)), "d.png", limits)
    db.commit()
    html = prepare_issue(db, setup.issue_id, app.config).parts_for(Reader(None, "x" * 22, "a@example.org"))[0]
    shown = {image["alt"]: image for image in _images(html)}
    assert (shown["A thumbnail"]["width"], shown["A thumbnail"]["height"]) == ("120", "80")
    assert [image["alt"] for image in _images(html)].count("The Test Weekly") == 2
    problems = lint_html(html)
    assert problems == [], [problem.message for problem in problems]
