"""The JSON API under /api/v1.

Two blueprints share the prefix. `bp` holds what needs no account: the public signup
(`subscribe`, for forms on other sites) and the OpenAPI document (`spec`). The nested
`editor_bp` holds everything an editor's program does with a bearer token (`auth`):
newsletters, sections, subscribers, posts and sent issues. Every answer under /api/v1,
errors included (unknown paths and methods too), is JSON: `{"error": message}` plus
`fields` (field → message) when input was refused: 422 when it breaks a rule the OpenAPI
document states, 409 when it keeps them but the stored data refuses it (an unknown
section, a post already published, a suppressed address).

Views are thin: parse the request (`inputs`), call one domain function, commit, and
answer with the shapes in `shapes`, which the OpenAPI document declares and the tests
check real answers against.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Response, abort, current_app, request
from werkzeug.exceptions import HTTPException

from digest.core.extensions import csrf, db_session
from digest.core.models import Newsletter
from digest.core.validation import Invalid
from digest.domain import links
from digest.domain.newsletters import find_newsletter
from digest.web.api.inputs import BadInput, NotAnObject
from digest.web.json_errors import error_response, json_error

PREFIX = "/api/v1"
bp = Blueprint("api", __name__, url_prefix=PREFIX)
# Token-authenticated: no cookie is read, so CSRF cannot apply (see auth.py).
# Named apart from the workspace blueprint "editor": Flask-Limiter keys limits by this name.
editor_bp = Blueprint("editor_api", __name__)
csrf.exempt(editor_bp)


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    return json_error(error)


@bp.errorhandler(BadInput)
def _bad_input(error: BadInput) -> Response:
    db_session().rollback()
    return error_response(422, "Please correct the fields listed.", error.errors)


@bp.errorhandler(Invalid)
def _conflict(error: Invalid) -> Response:
    # Input that keeps every rule the document states, refused by what is stored now.
    db_session().rollback()
    return error_response(409, "The current data refuses this; `fields` says why.", error.errors)


@bp.errorhandler(NotAnObject)
def _not_an_object(_error: NotAnObject) -> Response:
    return error_response(400, "Send a JSON object, with the header Content-Type: application/json.")


# Ids in paths: the app's int converter stops at the database's 32-bit range (404 beyond).
ID = "int"


def newsletter_or_404(slug: str) -> Newsletter:
    """Return the newsletter with this slug, or answer 404."""
    found = None if "\x00" in slug else find_newsletter(db_session(), slug)
    if found is None:
        abort(404, f"There is no newsletter {slug!r}.")
    return found


def page_link(values: Mapping[str, Any], **cursor: int | None) -> str | None:
    """Return the URL of this listing with its validated values and cursor, or None without one.

    Only the parsed parameters go into the link, under DIGEST_BASE_URL: nothing of the raw
    query string or the Host header can change where it points.
    """
    if all(value is None for value in cursor.values()):
        return None
    args = {k: v for k, v in values.items()
            if v is not None and v != "" and k not in {"before", "after", "page"}}
    args.update({k: v for k, v in cursor.items() if v is not None})
    return links.absolute(current_app.config, f"{quote(request.path)}?{urlencode(args)}")


# Views attach themselves to bp and editor_bp on import; editor_bp nests under bp once.
from digest.web.api import (  # noqa: E402,F401
    auth,
    intake,
    issues,
    media,
    newsletters,
    posts,
    spec,
    subscribe,
    subscribers,
    webhooks,
)

bp.register_blueprint(editor_bp)
