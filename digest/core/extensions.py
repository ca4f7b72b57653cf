"""Flask extensions and the request-scoped database session."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

from flask import Flask, current_app, g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session
from werkzeug.local import LocalProxy

from digest.core.db import Database

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
login_manager = LoginManager()

View = TypeVar("View", bound=Callable[..., object])


def csrf_exempt(view: View) -> View:
    """Decorator: the view takes POSTs without a CSRF token (CSRFProtect.exempt, typed)."""
    csrf.exempt(view)
    return view


def init_db(app: Flask) -> Database:
    """Attach the Database to the app and close each request's session at teardown."""
    database = Database(app.config["DATABASE_URL"])
    app.extensions["digest.db"] = database

    @app.teardown_appcontext
    def _close_session(_exc: BaseException | None) -> None:
        session = g.pop("db_session", None)
        if session is not None:
            session.close()

    return database


def get_db() -> Database:
    """Return the current app's Database."""
    database: Database = current_app.extensions["digest.db"]
    return database


def db_session() -> Session:
    """Return this app context's session; the view or command that changes data commits."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    session: Session = g.db_session
    return session


def current_app_object() -> Flask:
    """Return the app behind current_app, for work that outlives the app context."""
    # Flask declares current_app as the Flask it stands for; it is a LocalProxy.
    return cast("LocalProxy[Flask]", current_app)._get_current_object()
