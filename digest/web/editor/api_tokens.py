"""The editor's own API tokens: create one (shown once), see when each was used, revoke."""

from __future__ import annotations

from flask import abort, flash, make_response, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.validation import Invalid
from digest.domain import api_tokens
from digest.web.editor import bp


def _page(secret: str | None = None, created: str = "", errors: dict[str, str] | None = None,
          status: int = 200) -> Response:
    return make_response(render_template(
        "editor/api_tokens.html",
        tokens=api_tokens.list_tokens(db_session(), current_user),
        secret=secret,
        created=created,
        errors=errors or {},
        name=request.form.get("name", "") if errors else "",
    ), status)


@bp.get("/account/tokens")
def api_tokens_list() -> Response:
    """List the editor's API tokens with the form to create one."""
    return _page()


@bp.post("/account/tokens")
def api_token_create() -> Response:
    """Create a token for the editor and show its secret once."""
    dbs = db_session()
    try:
        token, secret = api_tokens.create_token(dbs, current_user, request.form.get("name", ""))
    except Invalid as exc:
        dbs.rollback()
        return _page(errors=exc.errors, status=400)
    dbs.commit()
    return _page(secret=secret, created=token.name, status=201)


@bp.post("/account/tokens/<int(max=2147483647):token_id>/revoke")
def api_token_revoke(token_id: int) -> Response:
    """Revoke one of the editor's tokens."""
    dbs = db_session()
    token = api_tokens.get_token(dbs, token_id, current_user)
    if token is None:
        abort(404)
    name = token.name
    api_tokens.revoke(dbs, token)
    dbs.commit()
    flash(f"The token “{name}” is revoked: programs using it are refused from now on.", "success")
    return redirect(url_for("editor.api_tokens_list"))
