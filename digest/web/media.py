"""Uploaded images, served to anyone who has the link (emails load them without a login).

A link names the image's random uid (128 bits) and one of its sizes; the bytes come from
the media storage, whichever backend holds them. They never change under a link, so
caches may keep them for a year; sniffing is off and nothing in them runs.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app

from digest.core.models import Media
from digest.core.storage import KEY, app_storage
from digest.domain import links
from digest.domain import media as images

bp = Blueprint("media", __name__)
_TYPES = {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}
ONE_YEAR = 365 * 24 * 3600


@bp.get("/media/<uid>/<name>")
def image(uid: str, name: str) -> Response:
    """Return one stored size of an uploaded image."""
    key = f"{uid}/{name}"
    if not KEY.match(key):
        abort(404)
    data = app_storage().get(key)
    if data is None:
        abort(404)
    response = Response(data, mimetype=_TYPES[name.rpartition(".")[2]])
    response.headers["Cache-Control"] = f"public, max-age={ONE_YEAR}, immutable"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Content-Security-Policy"] = "default-src 'none'; sandbox"
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    return response


def image_url(item: Media, size: str = "web") -> str:
    """Return the absolute URL of one size of an image (templates: feeds need absolute)."""
    return links.absolute(current_app.config, images.path(item, size))
