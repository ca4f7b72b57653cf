"""Helpers for the editor workspace tests: accounts and logged-in clients."""

from __future__ import annotations

from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from digest.core.models import Editor, EditorRole
from digest.domain.editors import create_editor
from tests.support.forms import submit

PASSWORD = "correct horse battery"


def make_editor(db: Session, email: str = "admin@example.com", role: EditorRole = EditorRole.ADMIN,
                password: str = PASSWORD) -> Editor:
    """Create and commit an editor."""
    editor = create_editor(db, email, password, role)
    db.commit()
    return editor


def log_in(client: FlaskClient, email: str, password: str = PASSWORD, **extra: str) -> TestResponse:
    """Submit the login form the way a browser does."""
    return submit(client, "/editor/login", email=email, password=password, **extra)
