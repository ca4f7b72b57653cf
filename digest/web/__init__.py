"""Web layer: blueprints, security headers and error pages."""

from __future__ import annotations

import logging
import time
from typing import Any

from flask import Flask, Response, current_app, g, render_template, request
from flask_babel import gettext
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from digest.core import logs
from digest.core.extensions import db_session, login_manager
from digest.core.translatable import N_, Text
from digest.domain import editors
from digest.domain.archive import local_date
from digest.domain.subscribers import imports
from digest.web import api, archive, editor, guard, language, media, ops, public, unavailable
from digest.web.api.spec import body_limit
from digest.web.json_errors import json_error
from digest.web.language import translated

access_log = logging.getLogger("digest.web.access")

FORM_ALLOWANCE = 64 * 1024  # the upload form's other fields and multipart framing

# What a reader's page says for an HTTP error, in the page's language (the workspace shows
# the error's own English description, which often says more).
READER_ERRORS: dict[int, tuple[Text, Text]] = {
    400: (N_("This request could not be read"),
          N_("Something in what your browser sent was not as expected. Go back and try again.")),
    404: (N_("Page not found"),
          N_("There is nothing at this address. The link may be cut short, or the page may "
             "have moved.")),
    405: (N_("This request could not be read"),
          N_("This address does not take this kind of request. Go back and try again.")),
    413: (N_("This is too large"),
          N_("What you sent is larger than this site accepts. Please send less.")),
    429: (N_("Please wait a moment"),
          N_("We received many requests from your network in a short time. Please wait a "
             "minute, then try again.")),
    503: (N_("Please try again shortly"),
          N_("The service cannot answer just now. Please try again in a minute.")),
}
SERVER_ERROR = (N_("Something went wrong"),
                N_("This page could not be shown because of a fault on our side. Please try "
                   "again in a few minutes."))


def error_page(error: HTTPException) -> tuple[str, str]:
    """Return the title and message of an error's page: a reader's in the page's language."""
    if request.path.startswith("/editor"):
        return error.name, error.description or ""
    title, message = READER_ERRORS.get(error.code or 500, SERVER_ERROR)
    return translated(title), translated(message)


def upload_allowance() -> dict[str, int]:
    """Return the body size each upload endpoint accepts, beyond guard.MAX_BODY_BYTES."""
    media_bytes = current_app.config["MEDIA_MAX_BYTES"] + FORM_ALLOWANCE
    return {"editor.subscriber_import": imports.MAX_UPLOAD_BYTES + FORM_ALLOWANCE,
            "editor.media_upload": media_bytes, "api.editor_api.media_upload": media_bytes}


CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def init_app(app: Flask) -> None:
    """Register the blueprints, the input guards, the security headers and the error pages."""
    # Before any rule is added: every <int:…> in a path then stops at the largest id.
    app.url_map.converters["int"] = guard.IdConverter
    app.json = guard.JsonProvider(app)
    language.init_app(app)
    app.register_blueprint(public.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(ops.bp)
    app.register_blueprint(media.bp)
    app.add_template_global(media.image_url)
    app.jinja_env.globals["look_url"] = archive.look_url
    app.jinja_env.globals["local_date"] = local_date
    login_manager.user_loader(lambda editor_id: editors.load_editor(db_session(), editor_id))
    unavailable.init_app(app)

    @app.url_value_preprocessor
    def _body_allowance(endpoint: str | None, _values: dict[str, Any] | None) -> None:
        # Runs before every before_request hook (so before CSRF reads the form), on every
        # request, routed or not; a declared length over the limit is refused unread, a
        # chunked body stops at the limit when something reads it.
        view = current_app.view_functions.get(endpoint or "")
        allowance = upload_allowance().get(endpoint or "") or (
            view is not None and body_limit(view, request.method))
        if allowance:
            request.max_content_length = allowance
        limit = request.max_content_length
        if limit is not None and (request.content_length or 0) > limit:
            raise RequestEntityTooLarge()

    @app.before_request
    def _request_id() -> None:
        g.request_id = logs.request_id()
        g.request_started = time.perf_counter()

    @app.before_request
    def _refuse_bad_input() -> Response | tuple[str, int] | None:
        # The editors' API checks after its token check (api/auth.py), so 401 comes first.
        return None if request.blueprint == "api.editor_api" else guard.refuse_bad_input()

    @app.after_request
    def _access_log(response: Response) -> Response:
        if "request_id" in g:
            response.headers["X-Request-ID"] = g.request_id
            access_log.info(
                "%s %s %s", request.method, request.path, response.status_code,
                extra={"method": request.method, "path": request.path, "status": response.status_code,
                       "duration_ms": round((time.perf_counter() - g.request_started) * 1000, 1),
                       "remote_addr": request.remote_addr},
            )
        return response

    @app.after_request
    def _security_headers(response: Response) -> Response:
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "no-referrer")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", "camera=(), microphone=(), geolocation=()")
        if app.config["BASE_URL"].startswith("https://"):
            headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        return response

    @app.errorhandler(CSRFError)
    def _csrf_error(error: CSRFError) -> tuple[str, int]:
        return render_template(
            "error.html",
            title=gettext("This form has expired"),
            message=gettext("Please go back, reload the page and try again."),
        ), 400

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response | tuple[str, int]:
        if request.path.startswith("/api/"):
            return json_error(error)
        title, message = error_page(error)
        return render_template("error.html", title=title, message=message), error.code or 500
