"""Images: upload one into the media library (decoded, stripped and re-encoded), list the
library, delete an image nothing uses."""

from __future__ import annotations

from typing import Any

from flask import Response, abort, current_app, jsonify, request

from digest.core.extensions import db_session
from digest.core.storage import app_storage
from digest.core.validation import Invalid, text_pattern
from digest.domain import media
from digest.web.api import ID, editor_bp, shapes
from digest.web.api.auth import current_editor
from digest.web.api.inputs import BadInput, Param, query
from digest.web.api.spec import operation

LIST = [Param("page", "integer", f"Page number ({media.PAGE_SIZE} images a page).", minimum=1,
              default=1)]
UPLOAD: dict[str, Any] = {
    "type": "object",
    "description": "The image file, and what it shows.",
    "properties": {
        "file": {"type": "string", "contentMediaType": "application/octet-stream",
                 "description": "A PNG, JPEG, GIF or WebP file; its name's extension, when it "
                                "has one, must match its content."},
        "alt": {"type": "string", "maxLength": media.ALT_MAX, "pattern": text_pattern(),
                "description": "What the image shows (alt text); needed before a post that "
                               "shows it is published."},
    },
    "required": ["file"],
    "additionalProperties": False,
}


@editor_bp.post("/media")
@operation("POST", "Upload an image", tag="media", upload=UPLOAD, responses={201: "Media"},
           errors=(409, 413),
           description="Pillow decodes the file and writes it anew in three sizes (email 1×, "
                       "email 2×, web): camera data and GPS positions are dropped. 409 refuses "
                       "the content with the reason under `fields.file`: not a PNG, JPEG, GIF "
                       "or WebP image, an extension that names another format, more bytes, "
                       "pixels or animation frames than the server takes, or an SVG (refused "
                       "outright: it can carry scripts, and Gmail and Outlook do not show it). "
                       "A refused file leaves nothing behind. 413: the body is over "
                       "DIGEST_MEDIA_MAX_BYTES plus 64 KiB for the form around the file.")
def media_upload() -> Response:
    """Take an image into the media library."""
    unknown = (set(request.form) | set(request.files)) - set(UPLOAD["properties"])
    if unknown:
        raise BadInput({name: f"There is no field {name!r} here." for name in sorted(unknown)})
    part = request.files.get("file")
    if part is not None:
        data, filename = part.read(), part.filename or ""
    elif "file" in request.form:
        data, filename = request.form["file"].encode("utf-8", "surrogateescape"), ""
    else:
        raise BadInput({"file": "Send the image as the multipart/form-data part `file`."})
    dbs = db_session()
    try:
        item = media.upload(dbs, app_storage(), data, filename, media.Limits.of(current_app.config),
                            alt=request.form.get("alt", ""), editor=current_editor())
    except media.Refused as exc:
        raise Invalid({"file": str(exc)}) from None  # answered 409
    except Invalid as exc:
        raise BadInput(exc.errors) from None
    dbs.commit()
    response = jsonify(shapes.media_item(item, current_app.config))
    response.status_code = 201
    return response


@editor_bp.get("/media")
@operation("GET", "List images", tag="media", params=LIST, responses={200: "MediaPage"})
def media_list() -> Response:
    """A page of the media library, newest first."""
    page = query(LIST)["page"]
    dbs = db_session()
    total = media.count(dbs)
    return jsonify({
        "media": [shapes.media_item(item, current_app.config) for item in media.library(dbs, page)],
        "page": page,
        "pages": max(1, -(-total // media.PAGE_SIZE)),
        "total": total,
    })


@editor_bp.delete(f"/media/<{ID}:media_id>")
@operation("DELETE", "Delete an image", tag="media", errors=[409], responses={204: None},
           description="Removes the image and every stored size of it from the media storage. "
                       "409 while a post (lead image or body), an issue's introduction or the "
                       "logo shows it; `fields.media` names where.")
def media_delete(media_id: int) -> Response:
    """Delete an image nothing shows, with its stored files."""
    dbs = db_session()
    item = media.get_media(dbs, media_id)
    if item is None:
        abort(404, f"There is no image {media_id}.")
    variants = media.delete(dbs, item)
    dbs.commit()
    media.forget(app_storage(), variants)
    return Response(status=204)
