"""Bearer tokens on the editors' API: who is asking, what they may do, how often.

Every request to `editor_bp` must carry `Authorization: Bearer dg_…`; cookies are never
read, so a logged-in browser session alone gets 401 and cross-site requests cannot ride
on it (which is why CSRF does not apply). The token acts with its editor's current role;
an Operation marked admin answers 403 to other editors. Requests are rate limited per
token (DIGEST_API_RATE_LIMIT), and failed authentications per client IP
(DIGEST_API_FAILED_AUTH_LIMIT), so guessing tokens gets nowhere.
"""

from __future__ import annotations

from flask import Response, current_app, g, request
from flask_limiter.util import get_remote_address

from digest.core.extensions import db_session, limiter
from digest.core.models import ApiToken, Editor
from digest.domain import api_tokens
from digest.web import guard
from digest.web.api import editor_bp
from digest.web.api.spec import operation_of
from digest.web.json_errors import error_response

REALM = 'Bearer realm="digest"'


def bearer_token() -> str | None:
    """Return the token of the request's `Authorization: Bearer` header, or None."""
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    value = value.strip()
    return value if scheme.lower() == "bearer" and value else None


def _rate_key() -> str:
    token = bearer_token()
    if token is None:
        return "api-anonymous:" + (get_remote_address() or "")
    return "api-token:" + api_tokens.hash_token(token)


limiter.limit(lambda: current_app.config["API_RATE_LIMIT"], key_func=_rate_key)(editor_bp)
limiter.limit(
    lambda: current_app.config["API_FAILED_AUTH_LIMIT"],
    key_func=lambda: "api-failed-auth:" + (get_remote_address() or ""),
    deduct_when=lambda response: response.status_code == 401,
)(editor_bp)


def _unauthorized(message: str, invalid: bool) -> Response:
    response = error_response(401, message)
    challenge = REALM + (', error="invalid_token"' if invalid else "")
    response.headers["WWW-Authenticate"] = challenge
    return response


@editor_bp.before_request
def _authenticate() -> Response | None:
    secret = bearer_token()
    if secret is None:
        return _unauthorized(
            "Send an API token in the header `Authorization: Bearer TOKEN`; "
            "cookies do not authenticate API requests.",
            invalid=False,
        )
    session = db_session()
    token = api_tokens.authenticate(session, secret)
    if token is None:
        return _unauthorized(
            "This token is not valid: it is mistyped, revoked, or its editor is deactivated.",
            invalid=True,
        )
    session.commit()  # keeps last_used_at when it moved; otherwise ends a read
    g.api_token = token
    view = current_app.view_functions[request.endpoint or ""]
    described = operation_of(view, request.method)
    if described is not None and described.admin and not token.editor.is_admin:
        return error_response(403, "Only admins may do this; the token's editor is not one.")
    return None


editor_bp.before_request(guard.refuse_bad_input)  # after the token check above


@editor_bp.after_request
def _no_store(response: Response) -> Response:
    response.headers["Cache-Control"] = "no-store"
    return response


def current_token() -> ApiToken:
    """Return the token the request authenticated with."""
    token: ApiToken = g.api_token
    return token


def current_editor() -> Editor:
    """Return the editor the request acts for."""
    return current_token().editor
