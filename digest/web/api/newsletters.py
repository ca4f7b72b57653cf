"""Newsletters and their sections (settings change in the workspace; the language here too)."""

from __future__ import annotations

from flask import Response, current_app, jsonify

from digest.core.extensions import db_session
from digest.domain import newsletters
from digest.web.api import editor_bp, newsletter_or_404, shapes
from digest.web.api.auth import current_token
from digest.web.api.inputs import Body, Field, json_body
from digest.web.api.spec import operation
from digest.web.language import available

LANGUAGE_MAX = 16  # Newsletter.language

CHANGES = Body("NewsletterChanges", "The settings to change (the others change in the workspace).", {
    "language": Field("string", "What readers read: the emails, the digest's own words and dates, "
                                "the reader pages. One of the languages whose catalogues this "
                                "server has.", max_length=LANGUAGE_MAX, choices=lambda: available().keys(),
                      example="de"),
}, partial=True)


@editor_bp.get("/me")
@operation("GET", "The editor this token acts for", tag="meta", responses={200: "Me"},
           description="A cheap way to check a token: who it acts for, with which role.")
def me() -> Response:
    """Return the token's editor and the token."""
    return jsonify(shapes.me(current_token()))


@editor_bp.get("/newsletters")
@operation("GET", "List newsletters", tag="newsletters", responses={200: "NewsletterList"})
def newsletters_list() -> Response:
    """Every newsletter of the instance."""
    items = newsletters.list_newsletters(db_session())
    return jsonify({"newsletters": [shapes.newsletter(n, current_app.config) for n in items]})


@editor_bp.get("/newsletters/<newsletter>")
@operation("GET", "Get a newsletter", tag="newsletters", responses={200: "Newsletter"})
def newsletter_get(newsletter: str) -> Response:
    """One newsletter's settings."""
    return jsonify(shapes.newsletter(newsletter_or_404(newsletter), current_app.config))


@editor_bp.patch("/newsletters/<newsletter>")
@operation("PATCH", "Change a newsletter", tag="newsletters", admin=True, body=CHANGES,
           responses={200: "Newsletter"})
def newsletter_update(newsletter: str) -> Response:
    """Change a newsletter's language."""
    item = newsletter_or_404(newsletter)
    values = json_body(CHANGES)
    dbs = db_session()
    newsletters.set_language(dbs, item, values["language"], available())
    dbs.commit()
    return jsonify(shapes.newsletter(item, current_app.config))


@editor_bp.get("/newsletters/<newsletter>/sections")
@operation("GET", "List a newsletter's sections", tag="newsletters",
           responses={200: "SectionList"})
def sections_list(newsletter: str) -> Response:
    """A newsletter's sections in the order readers see them."""
    items = newsletters.sections(db_session(), newsletter_or_404(newsletter))
    return jsonify({"sections": [shapes.section(s) for s in items]})
