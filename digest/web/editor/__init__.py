"""The editor workspace under /editor: login, dashboard, posts, subscribers, admin pages.

Every route needs a logged-in editor (checked once, before any view runs, so a new
route cannot forget it); the nested `admin` blueprint additionally needs the admin
role. Views are thin: parse the request, call one domain function, commit, render.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar
from urllib.parse import urlencode

from flask import Blueprint, abort, current_app, flash, g, redirect, request, session, url_for
from flask_login import current_user, logout_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.models import Issue, Newsletter
from digest.core.validation import Invalid, as_id
from digest.domain import two_factor, webhooks
from digest.domain.newsletters import find_newsletter

bp = Blueprint("editor", __name__, url_prefix="/editor")
admin = Blueprint("admin", __name__)
PUBLIC_ENDPOINTS = {"editor.login", "editor.login_code"}
# Where an editor without a second factor may go when the workspace requires one.
ENROL_ENDPOINTS = {"editor.two_factor_setup", "editor.two_factor_start", "editor.two_factor_confirm",
                   "editor.logout"}
P = ParamSpec("P")
R = TypeVar("R")
M = TypeVar("M")


def end_browser_session() -> None:
    """Forget the editor in this browser: its session and its remember cookie."""
    session.clear()
    logout_user()  # after clear(): it marks the remember cookie for deletion in the session


def get_or_404(model: type[M], ident: int) -> M:
    """Return the row of model with this primary key, or answer 404."""
    found = db_session().get(model, ident)
    if found is None:
        abort(404)
    return found


def refusal(exc: Exception) -> str:
    """Return why a domain function refused a change, as a sentence for the editor."""
    if isinstance(exc, Invalid):
        return " ".join(exc.errors.values())
    text = str(exc)
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?")) else ".")


def commit_change(change: Callable[[Session], object], done: str,
                  refused: tuple[type[Exception], ...], place: str = "") -> bool:
    """Run change on the request's session: commit and flash done, or roll back and flash why
    (next to the control at place, when given: the page shows "kind@place" there)."""
    at = f"@{place}" if place else ""
    dbs = db_session()
    try:
        change(dbs)
    except refused as exc:
        dbs.rollback()
        flash(refusal(exc), "error" + at)
        return False
    dbs.commit()
    flash(done, "success" + at)
    return True


def int_arg(name: str) -> int | None:
    """Return the query-string argument name as an int that can be an id, or None."""
    return as_id(request.args.get(name, ""))


def newsletter_or_409() -> Newsletter:
    """Return the newsletter being edited, or answer 409 until an admin has set one up."""
    if g.newsletter is None:
        abort(409, "Set up the newsletter first: an admin fills in Settings.")
    newsletter: Newsletter = g.newsletter
    return newsletter


def issue_or_404(issue_id: int) -> Issue:
    """Return an issue of the newsletter being edited, or answer 404."""
    issue = get_or_404(Issue, issue_id)
    if g.newsletter is None or issue.newsletter_id != g.newsletter.id:
        abort(404)
    return issue


@bp.before_request
def _require_login() -> Response | None:
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    if not current_user.is_authenticated:
        remember_cookie = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
        if "_user_id" in session or remember_cookie in request.cookies:
            # A session or cookie whose id no longer matches: the editor's sessions were ended.
            end_browser_session()
            flash("You were signed out (a password change, \"sign out everywhere\" or an admin "
                  "ended your sessions): please log in again.", "error")
            return redirect(url_for("editor.login"))
        return redirect(url_for("editor.login") + "?" + urlencode({"next": request.full_path.rstrip("?")}))
    g.newsletter = find_newsletter(db_session())
    if request.endpoint not in ENROL_ENDPOINTS and not two_factor.is_on(current_user) \
            and two_factor.required(db_session()):
        flash("This workspace requires two-factor sign-in: set up an authenticator app to carry on.",
              "warning")
        return redirect(url_for("editor.two_factor_setup"))
    return None


@bp.after_request
def _no_store(response: Response) -> Response:
    # Workspace pages carry readers' data and, once, generated passwords: no cache keeps them.
    response.headers["Cache-Control"] = "no-store"
    return response


@admin.before_request
def _require_admin() -> None:
    if not current_user.is_admin:
        abort(403, "Only admins manage editors and newsletter settings.")


def admin_only(message: str) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Refuse a workspace view (403, with message) to editors who are not admins."""

    def decorate(view: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(view)
        def guarded(*args: P.args, **kwargs: P.kwargs) -> R:
            if not current_user.is_admin:
                abort(403, message)
            return view(*args, **kwargs)

        return guarded

    return decorate


@bp.context_processor
def _editor_context() -> dict[str, object]:
    admin_sees = current_user.is_authenticated and current_user.is_admin
    return {"newsletter": g.get("newsletter"),
            "disabled_webhooks": webhooks.failed_endpoints(db_session()) if admin_sees else []}


# Views attach themselves to bp and admin on import; admin nests under bp once.
from digest.web.editor import (  # noqa: E402,F401
    admin_views,
    api_tokens,
    auth,
    dashboard,
    engagement,
    imports,
    intake,
    issues,
    media,
    outbox,
    posts,
    sending,
    subscribers,
    times,
    two_factor_views,
    webhook_views,
)

bp.register_blueprint(admin)
