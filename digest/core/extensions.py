"""Flask extensions and the request-scoped database session."""

from __future__ import annotations

from flask import Flask, current_app, g
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf.csrf import CSRFProtect
from sqlalchemy.orm import Session

from digest.core.db import Database

csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
login_manager = LoginManager()


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
    return current_app.extensions["digest.db"]


def db_session() -> Session:
    """Return this app context's session; the view or command that changes data commits."""
    if "db_session" not in g:
        g.db_session = get_db().sessionmaker()
    return g.db_session
