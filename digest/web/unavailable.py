"""When the database cannot take a request (its disk is full, it is not answering).

Every such request is rolled back and answered 503 with Retry-After and "try again
shortly" (as JSON under /api/), never 500: nothing half-done is kept, and the reader or
program can send the same thing again. The signup form shows itself again with what the
reader typed (digest.web.public).
"""

from __future__ import annotations

import logging

from flask import Flask, Response, make_response, render_template, request
from sqlalchemy.exc import OperationalError

from digest.core.extensions import db_session
from digest.core.translatable import N_
from digest.web.json_errors import error_response
from digest.web.language import translated

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 30
TRY_AGAIN = N_(
    "We could not save this just now: the service is short of storage or its database is "
    "not answering. Nothing was recorded. Please try again in a minute."
)
TRY_AGAIN_TITLE = N_("Please try again shortly")


def retry_after() -> dict[str, str]:
    """Return the headers that tell a client when to try again."""
    return {"Retry-After": str(RETRY_AFTER_SECONDS)}


def unavailable(error: OperationalError) -> None:
    """Roll the request's transaction back and log why (once per failed request)."""
    db_session().rollback()
    log.warning("database unavailable for %s %s: %s", request.method, request.path, error.orig)


def init_app(app: Flask) -> None:
    """Answer every request that meets a database failure with 503 and Retry-After."""

    @app.errorhandler(OperationalError)
    def _unavailable(error: OperationalError) -> Response:
        unavailable(error)
        if request.path.startswith("/api/"):
            response = error_response(503, TRY_AGAIN)
        else:
            response = make_response(
                render_template("error.html", title=translated(TRY_AGAIN_TITLE),
                                message=translated(TRY_AGAIN)),
                503,
            )
        response.headers.update(retry_after())
        return response
