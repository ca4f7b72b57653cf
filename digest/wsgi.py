"""The WSGI entry point for a web server of its own (`waitress-serve digest.wsgi:app`, gunicorn):
the app, with logging set up as DIGEST_LOG_FORMAT asks, as `digest run` does."""

from __future__ import annotations

from digest import create_app
from digest.core.logs import configure

app = create_app()
configure(app.config["LOG_FORMAT"])
