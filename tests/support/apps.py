"""The test apps' settings, and an app's database outside a request."""

from __future__ import annotations

from flask import Flask

from digest.core.db import Database
from digest.core.extensions import get_db

BASE_URL = "https://news.example.org"
MAIL_FROM = "Weekly Test <news@news.example.org>"
SECRET = "test-secret-key-6TQ2mVb9xK4rWc7LpZ1nHs8dJf3yGa5E0uRo"


def get_db_of(app: Flask) -> Database:
    """Return app's Database outside a request."""
    with app.app_context():
        return get_db()
