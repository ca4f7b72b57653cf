"""Logging in and out, and changing one's own password."""

from __future__ import annotations

import time
from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter import RateLimitExceeded
from flask_limiter.util import get_remote_address
from flask_login import current_user, login_user
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from digest.core.db import utcnow
from digest.core.extensions import db_session, limiter
from digest.core.models import Editor
from digest.core.tokens import keyed_hash
from digest.domain import editors, two_factor
from digest.web.editor import bp, end_browser_session

# Failed attempts only (a successful login redirects), counted whether or not an editor
# has the address, so the limits reveal nothing about which accounts exist. A stranger's
# failures limit the stranger's address (per client, and per account from that client),
# never the owner on another one; the account-wide ceiling only stops guessing spread over
# many addresses, and the owner's browsers (a device cookie from an earlier login) pass it.
LOGIN_LIMIT_PER_CLIENT = "20 per 10 minutes"
LOGIN_LIMIT_PER_CLIENT_AND_ACCOUNT = "5 per 10 minutes"
LOGIN_LIMIT_PER_ACCOUNT = "100 per hour"
CODE_LIMIT_PER_ACCOUNT = "5 per 10 minutes"
PENDING = "pending_second_factor"
PENDING_SECONDS = 300
DEVICE_COOKIE = "digest_device"
DEVICE_MAX_AGE = 365 * 24 * 3600


def failed_login(response: Response) -> bool:
    """Return whether a login step failed (success redirects): only failures count."""
    return response.status_code != 302


def _address_hash() -> str:
    address = request.form.get("email", "").strip().lower()
    return keyed_hash(current_app.config["SECRET_KEY"], "login-limit", address)


def _client_and_account_key() -> str:
    return f"login:{get_remote_address()}:{_address_hash()}"


def _account_key() -> str:
    return "login:" + _address_hash()


def _device_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt="digest.login-device")


def _devices() -> list[str]:
    """Return the accounts (as address hashes) this browser logged in to, newest first."""
    try:
        known = _device_serializer().loads(request.cookies.get(DEVICE_COOKIE, ""), max_age=DEVICE_MAX_AGE)
    except BadData:
        return []
    return [h for h in known if isinstance(h, str)] if isinstance(known, list) else []


def _known_device() -> bool:
    return _address_hash() in _devices()


def remember_device(response: Response, email: str) -> Response:
    """Mark this browser as one the editor logs in from (it passes the account-wide limit)."""
    mine = keyed_hash(current_app.config["SECRET_KEY"], "login-limit", email.strip().lower())
    known = [mine, *[h for h in _devices() if h != mine]][:5]
    response.set_cookie(DEVICE_COOKIE, _device_serializer().dumps(known), max_age=DEVICE_MAX_AGE,
                        secure=current_app.config["SESSION_COOKIE_SECURE"], httponly=True,
                        samesite="Lax", path=url_for("editor.login"))
    return response


def safe_next(target: str | None) -> str:
    """Return target when it is a path on this site, else the dashboard."""
    fallback = url_for("editor.dashboard")
    if not target or "\\" in target or any(ord(ch) < 32 for ch in target):
        return fallback
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return fallback
    return target


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(LOGIN_LIMIT_PER_CLIENT, methods=["POST"], deduct_when=failed_login)
@limiter.limit(LOGIN_LIMIT_PER_CLIENT_AND_ACCOUNT, methods=["POST"], key_func=_client_and_account_key,
               deduct_when=failed_login)
@limiter.limit(LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], key_func=_account_key,
               deduct_when=failed_login, exempt_when=_known_device)
def login() -> Response | str:
    """Show the login form; log an editor in (rate-limited per client and per account)."""
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url)
    if request.method == "POST":
        dbs = db_session()
        editor = editors.authenticate(dbs, request.form.get("email", ""), request.form.get("password", ""))
        if editor is not None:
            remember = request.form.get("remember") == "on"
            if two_factor.is_on(editor):
                dbs.commit()  # a rehashed password
                return _second_step(editor, remember, next_url)
            editor.last_login_at = utcnow()
            dbs.commit()
            session.clear()  # a fresh session for the logged-in editor
            login_user(editor, remember=remember)
            return remember_device(redirect(next_url), editor.email)
        flash("That address and password do not match an active editor account.", "error")
    return render_template(
        "editor/login.html", next_url=request.values.get("next", ""),
        email=request.form.get("email", ""),
    )


def _second_step(editor: Editor, remember: bool, next_url: str) -> Response:
    # The browser holds only this until the code passes: no editor session exists yet.
    session.clear()
    session[PENDING] = {"editor": editor.get_id(), "remember": remember, "next": next_url,
                        "since": int(time.time())}
    return redirect(url_for("editor.login_code"))


def _pending_editor() -> Editor | None:
    pending = session.get(PENDING)
    if not isinstance(pending, dict) or time.time() - pending.get("since", 0) > PENDING_SECONDS:
        return None
    return editors.load_editor(db_session(), str(pending.get("editor", "")))


def _pending_account_key() -> str:
    pending = session.get(PENDING)
    editor_id = str(pending.get("editor", "")).partition(".")[0] if isinstance(pending, dict) else ""
    return "login-code:" + editor_id


@bp.route("/login/code", methods=["GET", "POST"])
@limiter.limit(CODE_LIMIT_PER_ACCOUNT, methods=["POST"], key_func=_pending_account_key,
               deduct_when=failed_login)
def login_code() -> Response | tuple[str, int]:
    """The login's second step: a code from the authenticator app, or a recovery code."""
    if current_user.is_authenticated:
        return redirect(url_for("editor.dashboard"))
    editor = _pending_editor()
    if editor is None:
        session.pop(PENDING, None)
        flash("Please log in again: the code is asked for within five minutes of the password.", "error")
        return redirect(url_for("editor.login"))
    if request.method == "POST":
        dbs = db_session()
        now = utcnow()
        if two_factor.check_code(dbs, editor, current_app.config["SECRET_KEY"], request.form.get("code", ""), now):
            editor.last_login_at = now
            left = two_factor.recovery_codes_left(dbs, editor)
            dbs.commit()
            pending = session[PENDING]
            session.clear()
            login_user(editor, remember=bool(pending.get("remember")))
            if left < 3:
                flash(f"Only {left} recovery codes left: make new ones under your account.", "warning")
            return remember_device(redirect(safe_next(pending.get("next"))), editor.email)
        dbs.rollback()
        return render_template("editor/login_code.html", error="That code does not work. Type the "
                               "current one from your app, or one of your recovery codes."), 400
    return render_template("editor/login_code.html", error=None), 200


@bp.errorhandler(RateLimitExceeded)
def _too_many(error: RateLimitExceeded) -> tuple[str, int]:
    return render_template(
        "editor/login.html", next_url="", email="", limited=True,
    ), 429


@bp.post("/logout")
def logout() -> Response:
    """Log the editor out on every device (POST only, so a link cannot do it)."""
    # A session or remember cookie copied from this browser must stop working too, and
    # nothing tells a copy from the original: logging out ends all of the editor's sessions.
    dbs = db_session()
    editors.end_sessions(dbs, current_user)
    dbs.commit()
    end_browser_session()
    flash("You are logged out on every device.", "success")
    return redirect(url_for("editor.login"))


@bp.route("/account", methods=["GET", "POST"])
def account() -> Response | tuple[str, int]:
    """Show the editor's account; change their own password."""
    errors: dict[str, str] = {}
    if request.method == "POST":
        dbs = db_session()
        me = editors.authenticate(dbs, current_user.email, request.form.get("current_password", ""))
        new = request.form.get("new_password", "")
        if me is None:
            errors["current_password"] = "That is not your current password."
        elif new != request.form.get("confirm_password", ""):
            errors["confirm_password"] = "The two new passwords differ."
        else:
            try:
                editors.set_password(dbs, me, new)
            except editors.EditorError as exc:
                errors["new_password"] = str(exc).capitalize() + "."
            else:
                dbs.commit()
                # Every other session ends; this one carries on under the new session id.
                remember = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token") in request.cookies
                login_user(me, remember=remember)
                flash("Your password is changed.", "success")
                return redirect(url_for("editor.account"))
    dbs = db_session()
    return render_template(
        "editor/account.html", errors=errors, two_factor_required=two_factor.required(dbs),
        recovery_codes_left=two_factor.recovery_codes_left(dbs, current_user),
    ), (400 if errors else 200)
