"""Newsletters and their sections (read only: settings change in the workspace)."""

from __future__ import annotations

from flask import Response, current_app, jsonify

from digest.core.extensions import db_session
from digest.domain import newsletters
from digest.web.api import editor_bp, newsletter_or_404, shapes
from digest.web.api.auth import current_token
from digest.web.api.spec import operation


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


@editor_bp.get("/newsletters/<newsletter>/sections")
@operation("GET", "List a newsletter's sections", tag="newsletters",
           responses={200: "SectionList"})
def sections_list(newsletter: str) -> Response:
    """A newsletter's sections in the order readers see them."""
    items = newsletters.sections(db_session(), newsletter_or_404(newsletter))
    return jsonify({"sections": [shapes.section(s) for s in items]})
