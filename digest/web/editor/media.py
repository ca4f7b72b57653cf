"""The media library: upload images (a form, or the post editor's button, drop and paste),
describe them, copy them into posts, and delete those nothing shows."""

from __future__ import annotations

from flask import current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.models import Media
from digest.core.storage import app_storage
from digest.core.validation import Invalid
from digest.domain import links, media
from digest.web.editor import (
    admin,
    bp,
    commit_change,
    get_or_404,
    int_arg,
    newsletter_or_409,
    refusal,
)


def described(item: Media) -> dict[str, object]:
    """Return what the post editor needs of an uploaded image."""
    url = links.absolute(current_app.config, media.path(item))
    return {"id": item.id, "url": url, "alt": item.alt, "width": item.width, "height": item.height,
            "markdown": f"![{item.alt}]({url})"}


def _wants_json() -> bool:
    return request.accept_mimetypes.best == "application/json"


@bp.get("/media")
def media_library() -> str:
    """Show the uploaded images, newest first, with their descriptions."""
    page = int_arg("page") or 1
    items = media.library(db_session(), page)
    return render_template("editor/media.html", items=items, page=page, described=described,
                           max_mb=current_app.config["MEDIA_MAX_BYTES"] // 2**20)


@bp.post("/media")
def media_upload() -> Response | tuple[Response, int]:
    """Take an uploaded image; answer JSON to the post editor, or go back to the library."""
    upload = request.files.get("file")
    dbs = db_session()
    try:
        if upload is None or not upload.filename:
            raise media.Refused("Choose an image file to upload.")
        item = media.upload(dbs, app_storage(), upload.read(), upload.filename,
                            media.Limits.of(current_app.config),
                            alt=request.form.get("alt", ""), editor=current_user)
    except (media.Refused, Invalid) as exc:
        dbs.rollback()
        reason = refusal(exc)
        if _wants_json():
            return jsonify(error=reason), 422
        flash(reason, "error")
        return redirect(url_for("editor.media_library"))
    dbs.commit()
    if _wants_json():
        return jsonify(described(item)), 201
    flash(f"“{item.filename}” is uploaded ({item.width} × {item.height}).", "success")
    return redirect(url_for("editor.media_library"))


@bp.post("/media/<int:media_id>/alt")
def media_alt(media_id: int) -> Response:
    """Change an image's description."""
    item = get_or_404(Media, media_id)
    commit_change(lambda dbs: media.set_alt(dbs, item, request.form.get("alt", "")),
                  "The description is saved.", (Invalid,))
    return redirect(url_for("editor.media_library") + f"#media-{media_id}")


@bp.post("/media/<int:media_id>/delete")
def media_delete(media_id: int) -> Response:
    """Delete an image nothing shows, with its stored files; or say next to it what does."""
    item = get_or_404(Media, media_id)
    dbs = db_session()
    try:
        variants = media.delete(dbs, item)
    except Invalid as exc:
        dbs.rollback()
        flash(refusal(exc), f"error@media-{media_id}")
        return redirect(url_for("editor.media_library") + f"#media-{media_id}")
    dbs.commit()
    media.forget(app_storage(), variants)
    flash(f"“{item.filename}” is deleted.", "success")
    return redirect(url_for("editor.media_library"))


@admin.route("/settings/media", methods=["GET", "POST"])
def media_settings() -> Response | tuple[str, int]:
    """Show and save the logo and how the digest shows lead images."""
    newsletter = newsletter_or_409()
    errors: dict[str, str] = {}
    form = request.form
    if request.method == "POST":
        dbs = db_session()
        try:
            media.set_newsletter_images(dbs, newsletter, form.get("image_display", ""),
                                        form.get("logo_light_id", ""), form.get("logo_dark_id", ""))
        except Invalid as exc:
            dbs.rollback()
            errors = exc.errors
        else:
            dbs.commit()
            flash("Media & logo settings are saved.", "success")
            return redirect(url_for("editor.admin.media_settings"))
    return render_template("editor/media_settings.html", errors=errors,
                           images=media.library(db_session()), displays=media.IMAGE_DISPLAYS,
                           described=described), 400 if errors else 200
