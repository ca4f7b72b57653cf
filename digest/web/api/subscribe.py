"""The public signup for forms on other sites: `/api/v1/subscribe`.

GET describes the form (newsletter, consent text and version, sections), POST subscribes
with the same rules and the same answers as the front page, rate limited per IP alike.
It reads no cookie, so it is exempt from CSRF and open to every origin (CORS `*`, no
credentials): limiting origins would stop no script that runs outside a browser, and the
per-IP and per-address limits are what protect readers.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, jsonify, request

from digest.core.extensions import csrf_exempt, db_session
from digest.core.models import ConsentSource
from digest.core.validation import Invalid
from digest.domain.newsletters import find_newsletter
from digest.domain.subscribers.signup import Signup
from digest.web.api import bp, shapes
from digest.web.api.inputs import SLUG_MAX, TEXT_MAX, Body, Field, Param, query, reader_fields
from digest.web.api.spec import operation
from digest.web.json_errors import error_response
from digest.web.signup import client_ip, json_signup, signup_limit

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
NEWSLETTER = Param("newsletter", "string", "The newsletter's slug (default: the first one).")
SIGNUP = Body("Signup", "A signup, as the front page's form sends it (form fields work too).", {
    **reader_fields("The reader's"),
    "newsletter": Field("string", "The newsletter's slug (default: the first one).",
                        max_length=SLUG_MAX),
    "website": Field("string", "Leave empty: a trap field for bots.", max_length=TEXT_MAX),
})


@bp.after_request
def _cors(response: Response) -> Response:
    # Errors too (404, 429): a browser hides an answer without these headers from the page.
    if request.endpoint == "api.subscribe":
        response.headers.update(CORS_HEADERS)
    return response


def _form_payload() -> dict[str, Any]:
    """Return a form-encoded signup as its JSON twin (a ticked box is true, other fields of
    the page's form are left out)."""
    payload: dict[str, Any] = {k: v for k, v in request.form.items() if k in SIGNUP.fields}
    consent = payload.get("consent", "")
    payload["consent"] = consent.strip().lower() in {"1", "true", "yes", "on"}
    sections = request.form.getlist("sections")
    if sections:
        payload["sections"] = sections
    return payload


@bp.route("/subscribe", methods=["GET", "POST", "OPTIONS"])
@operation("GET", "What a signup form must show", tag="signup", public=True,
           params=[NEWSLETTER], errors=[404, 422, 429], responses={200: "SignupForm"})
@operation("POST", "Sign a reader up (double opt-in)", tag="signup", public=True, body=SIGNUP,
           errors=[400, 404, 409, 429], responses={202: "SignupAccepted"},
           description="The same answer for every address, whatever its state, so nobody can "
                       "learn who subscribes. 400 names each field that breaks a rule stated "
                       "here; 409 an unknown section or a consent version that is no longer "
                       "the current one. Rate limited per client IP.")
@csrf_exempt
@signup_limit
def subscribe() -> Response:
    """GET: what the form must show. POST: subscribe. OPTIONS: CORS preflight."""
    if request.method == "OPTIONS":
        return Response(status=204)
    if request.method == "GET":
        try:
            slug = query([NEWSLETTER])["newsletter"]
        except Invalid as exc:
            return error_response(422, "Please correct the fields listed.", exc.errors)
        newsletter = find_newsletter(db_session(), slug)
        if newsletter is None:
            return error_response(404, "There is no such newsletter.")
        return jsonify(shapes.signup_form(newsletter, current_app.config))
    if request.is_json:
        payload = request.get_json(silent=True)
        if not isinstance(payload, dict):
            return error_response(400, "The body must be a JSON object.")
    else:
        payload = _form_payload()
    try:
        values = SIGNUP.parse(payload)
    except Invalid as exc:
        return error_response(400, "Please correct the fields listed.", exc.errors)
    signup = Signup(
        email=values["email"],
        name=values.get("name") or "",
        sections=values.get("sections"),
        consent=values["consent"],
        consent_version=values.get("consent_version"),
        honeypot=values.get("website") or "",
        source=ConsentSource.API,
        ip=client_ip(),
        user_agent=request.user_agent.string,
    )
    try:
        if not json_signup(values.get("newsletter"), signup):
            return error_response(404, "There is no such newsletter.")
    except Invalid as exc:
        return error_response(409, "The current data refuses this; `fields` says why.", exc.errors)
    response = jsonify({"status": "check-your-inbox", "message": CHECK_INBOX})
    response.status_code = 202
    return response
