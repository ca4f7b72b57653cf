"""Two-factor sign-in on the account page: set up an authenticator, turn it off."""

from __future__ import annotations

import segno
from flask import current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from digest.core.db import utcnow
from digest.core.extensions import db_session
from digest.domain import editors, two_factor
from digest.web.editor import bp


@bp.get("/account/two-factor")
def two_factor_setup() -> Response | str:
    """Set up an authenticator: its QR code and secret, then one code to confirm it."""
    if two_factor.is_on(current_user):
        return redirect(url_for("editor.account"))
    secret = two_factor.pending_secret(current_user, current_app.config["SECRET_KEY"])
    return _enrol_page(secret, None)[0]


@bp.post("/account/two-factor/start")
def two_factor_start() -> Response:
    """Make a new pending secret for the editor's authenticator."""
    dbs = db_session()
    try:
        two_factor.start_enrolment(dbs, current_user, current_app.config["SECRET_KEY"])
    except two_factor.TwoFactorError as exc:
        dbs.rollback()
        flash(str(exc).capitalize() + ".", "error")
        return redirect(url_for("editor.account"))
    dbs.commit()
    return redirect(url_for("editor.two_factor_setup"))


@bp.post("/account/two-factor")
def two_factor_confirm() -> Response | tuple[str, int]:
    """Confirm the authenticator with one code: 2FA is on; show the recovery codes once."""
    dbs = db_session()
    key = current_app.config["SECRET_KEY"]
    try:
        codes = two_factor.confirm_enrolment(dbs, current_user, key, request.form.get("code", "").strip(),
                                             utcnow())
    except two_factor.TwoFactorError as exc:
        dbs.rollback()
        return _enrol_page(two_factor.pending_secret(current_user, key), str(exc).capitalize() + ".")
    dbs.commit()
    return render_template("editor/recovery_codes.html", codes=codes), 200


@bp.post("/account/two-factor/off")
def two_factor_off() -> Response | tuple[str, int]:
    """Turn the editor's own second factor off (their password confirms it)."""
    dbs = db_session()
    if two_factor.required(dbs):
        flash("Two-factor sign-in is required in this workspace: it cannot be turned off.", "error")
    elif editors.authenticate(dbs, current_user.email, request.form.get("password", "")) is None:
        flash("That is not your current password: two-factor sign-in stays on.", "error")
    else:
        two_factor.turn_off(dbs, current_user)
        dbs.commit()
        flash("Two-factor sign-in is off.", "success")
    return redirect(url_for("editor.account"))


@bp.post("/account/two-factor/recovery-codes")
def recovery_codes_renew() -> Response | tuple[str, int]:
    """Replace the editor's recovery codes with ten new ones (their password confirms it)."""
    dbs = db_session()
    if not two_factor.is_on(current_user):
        return redirect(url_for("editor.account"))
    if editors.authenticate(dbs, current_user.email, request.form.get("password", "")) is None:
        flash("That is not your current password: your recovery codes are unchanged.", "error")
        return redirect(url_for("editor.account"))
    codes = two_factor.new_recovery_codes(dbs, current_user, current_app.config["SECRET_KEY"], utcnow())
    dbs.commit()
    return render_template("editor/recovery_codes.html", codes=codes), 200


def _enrol_page(secret: str | None, error: str | None) -> tuple[str, int]:
    qr = None
    if secret is not None:
        issuer = g.newsletter.name if g.get("newsletter") else "digest"
        uri = two_factor.provisioning_uri(current_user, secret, issuer)
        qr = segno.make(uri, error="m").svg_inline(scale=4, border=4, dark="#000", light="#fff", omitsize=True,
                                                   title="QR code for your authenticator app")
    return render_template("editor/two_factor.html", secret=secret, qr=qr, error=error,
                           required=two_factor.required(db_session())), (400 if error else 200)
