"""Helpers for posting forms the way a browser does, CSRF token included."""

from __future__ import annotations

import re

from flask.testing import FlaskClient
from werkzeug.test import TestResponse

_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def csrf_token(html: str) -> str:
    """Return the CSRF token of the first form in html."""
    match = _TOKEN.search(html)
    assert match, "the page has no CSRF token"
    return match.group(1)


def submit(client: FlaskClient, page: str, action: str | None = None, **data: object) -> TestResponse:
    """GET page, then POST data (with the page's CSRF token) to action or to page."""
    html = client.get(page).get_data(as_text=True)
    return client.post(action or page, data={"csrf_token": csrf_token(html), **data})
