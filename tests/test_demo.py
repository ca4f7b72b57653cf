"""`digest demo`: its pictures are drawn at load time, stored like uploads and served by
this instance; nothing of the demo points at images elsewhere."""

from __future__ import annotations

import io
import re

from PIL import Image
from sqlalchemy import select

from digest.core.models import Media, Newsletter, Post
from digest.domain import media
from tests.support.apps import BASE_URL

IMAGE_LINK = re.compile(r"!\[[^\]]*\]\(([^)\s]+)")


def _image(client, path: str) -> Image.Image:  # type: ignore[no-untyped-def]
    response = client.get(path)
    assert response.status_code == 200, path
    assert response.mimetype in ("image/png", "image/jpeg"), path
    return Image.open(io.BytesIO(response.data))


def test_demo_pictures_are_served_by_this_instance(runner, client, db) -> None:  # type: ignore[no-untyped-def]
    """The demo's lead images, the notebook post's pictures and the logo are real images
    this instance serves, described, and no post shows an image from anywhere else."""
    assert "with 11 pictures" in runner.invoke(args=["demo"]).output
    newsletter = db.scalars(select(Newsletter)).one()
    assert newsletter.image_display == "thumbnail"
    assert newsletter.logo_light is not None and newsletter.logo_dark is not None
    posts = list(db.scalars(select(Post).where(Post.newsletter_id == newsletter.id)))
    leads = [p.lead_image for p in posts if p.lead_image is not None]
    assert len(leads) == 5 and all(item.alt for item in leads)
    linked = [url for p in posts for url in IMAGE_LINK.findall(p.body_md)]
    assert len(linked) == 4
    assert all(url.startswith(f"{BASE_URL}/media/") for url in linked), linked
    assert not any("example.org/images" in p.body_md or "demo:" in p.body_md for p in posts)
    shown = {media.path(item, size) for item in [*leads, newsletter.logo_light, newsletter.logo_dark]
             for size in ("email", "email2x", "small", "web")}
    shown |= {url.removeprefix(BASE_URL) for url in linked}
    paths = sorted(shown)
    db.rollback()
    for path in paths:
        assert _image(client, path).width > 0
    wide = _image(client, next(u.removeprefix(BASE_URL) for u in linked if "web." in u))
    assert wide.size == (1600, 900)  # drawn at 2400 × 1350, stored in the web size
    assert "already loaded" in runner.invoke(args=["demo"]).output
    assert db.query(Media).count() == 11
