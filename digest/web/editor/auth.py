"""Logging in and out, and changing one's own password."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app, flash, redirect, render_template, request, session, url_for
from flask_limiter import RateLimitExceeded
from flask_login import current_user, login_user
from werkzeug.wrappers import Response

from digest.core.db import utcnow
from digest.core.extensions import db_session, limiter
from digest.core.tokens import keyed_hash
from digest.domain import editors
from digest.web.editor import bp, end_browser_session

# Failed attempts only (a successful login redirects); per address whether or not an
# editor has it, so the limit reveals nothing about which accounts exist.
LOGIN_LIMIT_PER_IP = "20 per 10 minutes"
LOGIN_LIMIT_PER_ACCOUNT = "5 per 10 minutes"


def _failed(response: Response) -> bool:
    return response.status_code != 302


def _account_key() -> str:
    address = request.form.get("email", "").strip().lower()
    return "login:" + keyed_hash(current_app.config["SECRET_KEY"], "login-limit", address)


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
@limiter.limit(LOGIN_LIMIT_PER_IP, methods=["POST"], deduct_when=_failed)
@limiter.limit(LOGIN_LIMIT_PER_ACCOUNT, methods=["POST"], key_func=_account_key,
               deduct_when=_failed)
def login() -> Response | str:
    """Show the login form; log an editor in (rate-limited per address and per IP)."""
    next_url = safe_next(request.values.get("next"))
    if current_user.is_authenticated:
        return redirect(next_url)
    if request.method == "POST":
        dbs = db_session()
        editor = editors.authenticate(dbs, request.form.get("email", ""), request.form.get("password", ""))
        if editor is not None:
            editor.last_login_at = utcnow()
            dbs.commit()
            session.clear()  # a fresh session for the logged-in editor
            login_user(editor, remember=request.form.get("remember") == "on")
            return redirect(next_url)
        flash("That address and password do not match an active editor account.", "error")
    return render_template(
        "editor/login.html", next_url=request.values.get("next", ""),
        email=request.form.get("email", ""),
    )


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
    return render_template("editor/account.html", errors=errors), (400 if errors else 200)
