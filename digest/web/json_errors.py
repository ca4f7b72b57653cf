"""The JSON error every /api/v1 failure answers with: `{"error": message}` plus `fields`.

Shared by the API's blueprints and the input guard (digest.web.guard), which refuses bad
input under /api/v1 before any API view runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Response, jsonify, request
from flask_limiter.errors import RateLimitExceeded
from werkzeug.exceptions import HTTPException


def error_response(status: int, message: str, fields: Mapping[str, str] | None = None) -> Response:
    """Return the JSON error every /api/v1 failure answers with."""
    body: dict[str, Any] = {"error": message}
    if fields:
        body["fields"] = dict(fields)
    response = jsonify(body)
    response.status_code = status
    return response


def json_error(error: HTTPException) -> Response:
    """Return an HTTP error (404, 405, 429, 500 …) as a JSON answer, keeping its headers."""
    if isinstance(error, RateLimitExceeded):
        who = "this token" if request.blueprint == "api.editor_api" else "your network"
        response = error_response(429, f"Too many requests from {who}; please wait a minute.")
    else:
        response = error_response(error.code or 500, error.description or error.name)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response
