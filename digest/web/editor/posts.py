"""Posts: list, write with a live preview, publish, unpublish, delete drafts."""

from __future__ import annotations

from collections.abc import Callable

from flask import abort, current_app, flash, g, jsonify, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.models import Post, PostStatus
from digest.core.validation import Invalid
from digest.domain import engagement, inbox, media, newsletters, posts
from digest.mail.markdown import render_markdown
from digest.web.editor import bp, commit_change, int_arg, newsletter_or_409

PREVIEW_LIMIT = 200_000


def _post(post_id: int) -> Post:
    post = posts.get_post(db_session(), newsletter_or_409(), post_id)
    if post is None:
        abort(404)
    return post


def _form() -> posts.PostInput:
    form = request.form
    return posts.PostInput(
        title=form.get("title", ""),
        section_id=form.get("section_id"),
        summary=form.get("summary", ""),
        body_md=form.get("body_md", ""),
        link_url=form.get("link_url", ""),
        lead_image_id=form.get("lead_image_id") or None,
        slug=form.get("slug", ""),
    )


def _describe_lead(dbs: Session, post: Post) -> None:
    # The lead image's description is the image's own: typed here, kept in the library.
    if post.lead_image is not None and "lead_image_alt" in request.form:
        media.set_alt(dbs, post.lead_image, request.form["lead_image_alt"])


@bp.get("/posts")
def posts_list() -> str:
    """List the newsletter's posts, filtered and paged."""
    newsletter = g.newsletter
    if newsletter is None:
        return render_template("editor/posts.html", page=None, sections=[])
    dbs = db_session()
    page = posts.list_posts(
        dbs, newsletter,
        status=request.args.get("status", ""),
        section_id=int_arg("section"),
        search=request.args.get("q", ""),
        page=int_arg("page") or 1,
    )
    return render_template("editor/posts.html", page=page, sections=newsletters.sections(dbs, newsletter),
                           inbox_new=inbox.count_new(dbs, newsletter))


def _editor_page(post: Post | None, data: posts.PostInput | None, errors: dict[str, str],
                 status: int = 200) -> tuple[str, int]:
    newsletter = newsletter_or_409()
    return render_template(
        "editor/post_form.html",
        post=post,
        data=data or (posts.PostInput.of(post) if post else posts.PostInput()),
        errors=errors,
        sections=newsletters.sections(db_session(), newsletter),
        images=media.library(db_session()),
        lead_alt=request.form.get("lead_image_alt") if request.method == "POST" else None,
        preview_html=render_markdown((data.body_md if data else post.body_md if post else "") or ""),
        post_clicks=engagement.post_clicks(db_session(), post) if post else [],
    ), status


@bp.route("/posts/new", methods=["GET", "POST"])
def post_new() -> Response | tuple[str, int]:
    """Show the empty post form; create the post (and publish it if asked)."""
    newsletter = g.newsletter
    if newsletter is None or not newsletters.sections(db_session(), newsletter):
        return render_template("editor/post_needs_section.html"), 200 if request.method == "GET" else 409
    if request.method == "GET":
        return _editor_page(None, None, {})
    data = _form()
    dbs = db_session()
    try:
        post = posts.create_post(dbs, newsletter, data, author=current_user)
        _describe_lead(dbs, post)
        if request.form.get("publish") == "1":
            posts.publish_post(dbs, current_app.config, post)
    except Invalid as exc:
        dbs.rollback()
        return _editor_page(None, data, exc.errors, 400)
    dbs.commit()
    flash(f"“{post.title}” is {'published' if post.status is PostStatus.PUBLISHED else 'saved as a draft'}.",
          "success")
    return redirect(url_for("editor.post_edit", post_id=post.id))


@bp.route("/posts/<int:post_id>", methods=["GET", "POST"])
def post_edit(post_id: int) -> Response | tuple[str, int]:
    """Show a post's form; save it (and publish it if asked)."""
    post = _post(post_id)
    if request.method == "GET":
        return _editor_page(post, None, {})
    data = _form()
    dbs = db_session()
    try:
        posts.update_post(dbs, post, data)
        _describe_lead(dbs, post)
        if request.form.get("publish") == "1" and post.status is PostStatus.DRAFT:
            posts.publish_post(dbs, current_app.config, post)
    except Invalid as exc:
        dbs.rollback()
        return _editor_page(_post(post_id), data, exc.errors, 400)
    dbs.commit()
    flash(f"“{post.title}” is saved{' and published' if request.form.get('publish') == '1' else ''}.",
          "success")
    return redirect(url_for("editor.post_edit", post_id=post.id))


def _change(post_id: int, change: Callable[[Session, Post], object], done: str) -> Response:
    post = _post(post_id)
    changed = commit_change(lambda dbs: change(dbs, post), done.format(title=post.title), (Invalid,))
    return redirect(url_for("editor.posts_list") if changed and change is posts.delete_post
                    else url_for("editor.post_edit", post_id=post_id))


@bp.post("/posts/<int:post_id>/publish")
def post_publish(post_id: int) -> Response:
    """Publish a post."""
    return _change(post_id, lambda dbs, post: posts.publish_post(dbs, current_app.config, post),
                   "“{title}” is published.")


@bp.post("/posts/<int:post_id>/unpublish")
def post_unpublish(post_id: int) -> Response:
    """Return a post to draft."""
    return _change(post_id, posts.unpublish_post, "“{title}” is back to draft and off the public site.")


@bp.post("/posts/<int:post_id>/delete")
def post_delete(post_id: int) -> Response:
    """Delete a draft."""
    return _change(post_id, posts.delete_post, "“{title}” is deleted.")


@bp.post("/preview")
def markdown_preview() -> Response | tuple[Response, int]:
    """Return the sanitized HTML of posted Markdown (the live preview)."""
    payload = request.get_json(silent=True)
    if not isinstance(payload, dict) or not isinstance(payload.get("markdown", ""), str):
        return jsonify(error='Send a JSON object such as {"markdown": "text"}.'), 400
    source = payload.get("markdown", "")
    if len(source) > PREVIEW_LIMIT:
        return jsonify(error="The text is too long to preview."), 400
    return jsonify(html=render_markdown(source))
