"""Posts: list, read, write, publish, unpublish, delete drafts (Markdown sanitized)."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from flask import Response, abort, current_app, jsonify, url_for
from sqlalchemy.orm import Session

from digest.core.extensions import db_session
from digest.core.models import Post, PostStatus
from digest.core.validation import URL_MAX
from digest.domain import posts
from digest.web.api import ID, editor_bp, newsletter_or_404, shapes
from digest.web.api.auth import current_editor
from digest.web.api.inputs import Body, Field, Param, json_body, query
from digest.web.api.spec import operation

LIST = [
    Param("status", "string", "Only drafts or only published posts.",
          choices=[s.value for s in PostStatus]),
    Param("section_id", "integer", "Only posts of this section."),
    Param("search", "string", "Words in the title, summary or body."),
    Param("page", "integer", "Page number (25 posts a page).", minimum=1, default=1),
]
_FIELDS = {
    "title": Field("string", "The headline.", required=True, max_length=posts.TITLE_MAX,
                   blank=False, example="A faster tokenizer"),
    "section_id": Field("integer", "The id of one of the newsletter's sections (409 if it is "
                                   "not one).", required=True),
    "summary": Field("string", "A sentence or two shown in the issue.",
                     max_length=posts.SUMMARY_MAX, multiline=True),
    "body_md": Field("string", "The body in Markdown; HTML in it is sanitized.",
                     max_length=posts.BODY_MAX, multiline=True),
    "link_url": Field("string", "An external http(s) link the post is about; empty or null "
                                "for none.", nullable=True, max_length=URL_MAX, fmt="http-url"),
    "lead_image_id": Field("integer", "The id of an image of the media library (`POST /media`) "
                                      "shown with the post; null for none (409 if there is no "
                                      "such image).", nullable=True),
}
NEW = Body("NewPost", "A post to create, as a draft unless `publish` is true.", {
    **_FIELDS,
    "publish": Field("boolean", "Publish it at once (default false)."),
})
CHANGES = Body("PostChanges", "The fields to change; the others keep their values.", _FIELDS,
               partial=True)


def _input(values: dict[str, Any], start: posts.PostInput | None = None) -> posts.PostInput:
    changes = {k: ("" if v is None else v) for k, v in values.items() if k != "publish"}
    return dataclasses.replace(start or posts.PostInput(), **changes)


def _post(post_id: int) -> Post:
    post = posts.find_post(db_session(), post_id)
    if post is None:
        abort(404, f"There is no post {post_id}.")
    return post


def _answer(post: Post, status: int = 200) -> Response:
    response = jsonify(shapes.post(post, current_app.config))
    response.status_code = status
    return response


def _change(post_id: int, change: Callable[[Session, Post], object]) -> Response:
    post = _post(post_id)
    dbs = db_session()
    change(dbs, post)
    dbs.commit()
    return _answer(post)


@editor_bp.get("/newsletters/<newsletter>/posts")
@operation("GET", "List posts", tag="posts", params=LIST, responses={200: "PostPage"})
def posts_list(newsletter: str) -> Response:
    """A page of the newsletter's posts, most recently changed first."""
    item = newsletter_or_404(newsletter)
    args = query(LIST)
    page = posts.list_posts(db_session(), item, status=args["status"] or "",
                            section_id=args["section_id"], search=args["search"] or "",
                            page=args["page"])
    return jsonify({
        "posts": [shapes.post(p, current_app.config) for p in page.posts],
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    })


@editor_bp.post("/newsletters/<newsletter>/posts")
@operation("POST", "Write a post", tag="posts", body=NEW, errors=[409], responses={201: "Post"},
           description="409 if `section_id` is not one of the newsletter's sections.")
def post_create(newsletter: str) -> Response:
    """Create a draft (published at once if asked); its slug follows the title."""
    item = newsletter_or_404(newsletter)
    values = json_body(NEW)
    dbs = db_session()
    post = posts.create_post(dbs, item, _input(values), author=current_editor())
    if values.get("publish"):
        posts.publish_post(dbs, current_app.config, post)
    dbs.commit()
    response = _answer(post, 201)
    response.headers["Location"] = url_for(".post_get", post_id=post.id)
    return response


@editor_bp.get(f"/posts/<{ID}:post_id>")
@operation("GET", "Get a post", tag="posts", responses={200: "Post"})
def post_get(post_id: int) -> Response:
    """One post, with its body rendered."""
    return _answer(_post(post_id))


@editor_bp.patch(f"/posts/<{ID}:post_id>")
@operation("PATCH", "Change a post", tag="posts", body=CHANGES, errors=[409],
           responses={200: "Post"},
           description="A never-published post's slug follows its title; a published one keeps "
                       "its slug, so its public address never changes. 409 if `section_id` is "
                       "not one of the newsletter's sections.")
def post_update(post_id: int) -> Response:
    """Change some fields of a post."""
    post = _post(post_id)
    values = json_body(CHANGES)
    dbs = db_session()
    posts.update_post(dbs, post, _input(values, posts.PostInput.of(post)))
    dbs.commit()
    return _answer(post)


@editor_bp.post(f"/posts/<{ID}:post_id>/publish")
@operation("POST", "Publish a post", tag="posts", errors=[409], responses={200: "Post"},
           description="It gets a public page and joins the next issue. 409 if it is published.")
def post_publish(post_id: int) -> Response:
    """Publish a draft."""
    return _change(post_id, lambda dbs, post: posts.publish_post(dbs, current_app.config, post))


@editor_bp.post(f"/posts/<{ID}:post_id>/unpublish")
@operation("POST", "Unpublish a post", tag="posts", errors=[409], responses={200: "Post"},
           description="Back to draft, off the public site and the archive. 409 if it is a draft.")
def post_unpublish(post_id: int) -> Response:
    """Return a published post to draft."""
    return _change(post_id, posts.unpublish_post)


@editor_bp.delete(f"/posts/<{ID}:post_id>")
@operation("DELETE", "Delete a draft", tag="posts", errors=[409], responses={204: None},
           description="Only drafts that no issue carries (409 otherwise); unpublish a published "
                       "post first.")
def post_delete(post_id: int) -> Response:
    """Delete a draft."""
    post = _post(post_id)
    dbs = db_session()
    posts.delete_post(dbs, post)
    dbs.commit()
    return Response(status=204)
