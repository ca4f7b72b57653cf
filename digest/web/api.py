"""The JSON API under /api/v1.

`/api/v1/subscribe` is public so a signup form can live on another site: GET describes
the form (newsletter, consent text and version, sections), POST subscribes with the same
rules and the same answers as the front page, rate limited per IP alike. It reads no
cookie, so it is exempt from CSRF and open to every origin (CORS `*`, no credentials):
limiting origins would stop no script that runs outside a browser, and the per-IP and
per-address limits are what protect readers.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException

from digest import subscribers
from digest.extensions import csrf, db_session
from digest.models import ConsentSource, Newsletter
from digest.subscribers import InvalidSignup, Signup
from digest.web.public import client_ip, run_signup, signup_limit

bp = Blueprint("api", __name__, url_prefix="/api/v1")

CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Expose-Headers": "Retry-After",
    "Access-Control-Max-Age": "86400",
}
CHECK_INBOX = (
    "If this address can receive the newsletter, an email is on its way: "
    "open it and press the button inside to confirm."
)


def _cors(response: Response) -> Response:
    response.headers.update(CORS_HEADERS)
    return response


def _error(status: int, message: str, fields: dict[str, str] | None = None) -> Response:
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = fields
    response = jsonify(body)
    response.status_code = status
    return response


@bp.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    if isinstance(error, RateLimitExceeded):
        response = _error(429, "Too many requests from your network; please wait a minute.")
    else:
        response = _error(error.code or 500, error.description or error.name)
    if request.endpoint == "api.subscribe":
        _cors(response)
    return response


def _newsletter(slug: str | None) -> Newsletter | None:
    return subscribers.newsletter_by_slug(db_session(), slug)


def _describe(newsletter: Newsletter) -> dict[str, Any]:
    return {
        "newsletter": {
            "slug": newsletter.slug,
            "name": newsletter.name,
            "description": newsletter.description,
        },
        "consent_text": subscribers.consent_text(newsletter),
        "consent_version": newsletter.consent_version,
        "sections": [
            {"slug": s.slug, "name": s.name, "description": s.description}
            for s in newsletter.sections
        ],
    }


def _as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() in {"1", "true", "yes", "on"}


def _signup(payload: dict[str, Any]) -> Signup | str:
    email = payload.get("email", "")
    name = payload.get("name") or ""
    sections = payload.get("sections")
    if not isinstance(email, str) or not isinstance(name, str):
        return "email and name must be strings"
    if sections is not None and (
        not isinstance(sections, list) or not all(isinstance(s, str) for s in sections)
    ):
        return "sections must be a list of section slugs"
    version = payload.get("consent_version")
    return Signup(
        email=email,
        name=name,
        sections=sections,
        consent=_as_bool(payload.get("consent", False)),
        consent_version=str(version) if version is not None else None,
        honeypot=str(payload.get("website") or ""),
        source=ConsentSource.API,
        ip=client_ip(),
        user_agent=request.user_agent.string,
    )


@bp.route("/subscribe", methods=["GET", "POST", "OPTIONS"])
@csrf.exempt
@signup_limit
def subscribe() -> Response:
    """GET: what the form must show. POST: subscribe. OPTIONS: CORS preflight."""
    if request.method == "OPTIONS":
        return _cors(Response(status=204))
    if request.method == "GET":
        newsletter = _newsletter(request.args.get("newsletter"))
        if newsletter is None:
            return _cors(_error(404, "There is no such newsletter."))
        return _cors(jsonify(_describe(newsletter)))
    if request.is_json:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            return _cors(_error(400, "The body must be a JSON object."))
    else:
        payload = {**request.form.to_dict(), "sections": request.form.getlist("sections") or None}
    slug = payload.get("newsletter")
    if slug is not None and not isinstance(slug, str):
        return _cors(_error(400, "newsletter must be a newsletter's slug"))
    newsletter = _newsletter(slug)
    if newsletter is None:
        return _cors(_error(404, "There is no such newsletter."))
    signup = _signup(payload)
    if isinstance(signup, str):
        return _cors(_error(400, signup))
    try:
        run_signup(newsletter, signup)
    except InvalidSignup as exc:
        return _cors(_error(400, "Please correct the fields listed.", exc.errors))
    response = jsonify({"status": "check-your-inbox", "message": CHECK_INBOX})
    response.status_code = 202
    return _cors(response)
