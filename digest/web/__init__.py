"""Web layer: blueprints, security headers and error pages."""

from __future__ import annotations

from flask import Flask, Response, render_template, request
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from digest.core.extensions import db_session, login_manager
from digest.domain import editors
from digest.web import api, archive, editor, guard, public, unavailable
from digest.web.json_errors import json_error

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data: https:; style-src 'self'; script-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"
)


def init_app(app: Flask) -> None:
    """Register the blueprints, the input guards, the security headers and the error pages."""
    # Before any rule is added: every <int:…> in a path then stops at the largest id.
    app.url_map.converters["int"] = guard.IdConverter
    app.register_blueprint(public.bp)
    app.register_blueprint(editor.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(api.bp)
    login_manager.user_loader(lambda editor_id: editors.load_editor(db_session(), editor_id))
    unavailable.init_app(app)

    @app.before_request
    def _refuse_nul() -> Response | tuple[str, int] | None:
        # The editors' API checks after its token check (api/auth.py), so 401 comes first.
        return None if request.blueprint == "api.editor_api" else guard.refuse_nul()

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
            title="This form has expired",
            message="Please go back, reload the page and try again.",
        ), 400

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Response | tuple[str, int]:
        if request.path.startswith("/api/"):
            return json_error(error)
        return render_template(
            "error.html", title=error.name, message=error.description
        ), error.code or 500
