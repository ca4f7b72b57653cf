"""Helpers for /api/v1 tests: tokens, and a client that checks every answer against the document.

`ApiClient` sends the bearer token and validates each answer it gets: its status must be
one the OpenAPI document lists for that operation, and its JSON body must match the
schema listed for that status. So every endpoint test also proves the document true.
"""

from __future__ import annotations

import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012
from werkzeug.test import TestResponse

from digest.core.models import EditorRole
from digest.domain import api_tokens
from digest.domain.editors import create_editor, find_editor
from tests.support.apps import get_db_of
from tests.support.editor import PASSWORD

DOC_URI = "urn:digest:openapi"


def make_token(app: Flask, email: str = "admin@example.com",
               role: EditorRole = EditorRole.ADMIN, name: str = "tests") -> str:
    """Create an editor (unless they exist) with a new API token; return the token."""
    with get_db_of(app).session() as session:
        editor = find_editor(session, email) or create_editor(session, email, PASSWORD, role)
        _token, secret = api_tokens.create_token(session, editor, name)
        return secret


def _operation(doc: dict[str, Any], method: str, path: str) -> dict[str, Any] | None:
    for template, operations in doc["paths"].items():
        pattern = "^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(template)) + "$"
        if re.match(pattern, path) and method.lower() in operations:
            operation: dict[str, Any] = operations[method.lower()]
            return operation
    return None


def check_answer(doc: dict[str, Any], method: str, path: str, response: TestResponse) -> None:
    """Assert that the document lists the answer's status and that its body matches the schema."""
    operation = _operation(doc, method, path)
    assert operation is not None, f"{method} {path} is not in the OpenAPI document"
    status = str(response.status_code)
    assert status in operation["responses"], (
        f"{method} {path} answered {status}, which the document does not list: "
        f"{response.get_data(as_text=True)[:300]}"
    )
    content = operation["responses"][status].get("content")
    if content is None:
        assert not response.get_data(), f"{method} {path} {status} should have no body"
        return
    assert response.mimetype == "application/json"
    schema = content["application/json"]["schema"]
    registry = Registry().with_resource(
        DOC_URI, Resource.from_contents(doc, default_specification=DRAFT202012)
    )
    validator = Draft202012Validator(
        {"$ref": DOC_URI + schema["$ref"]},
        registry=registry,
        format_checker=Draft202012Validator.FORMAT_CHECKER,
    )
    errors = sorted(validator.iter_errors(response.get_json()), key=lambda e: list(e.path))
    assert not errors, f"{method} {path} {status}: " + "; ".join(
        f"{list(e.path)}: {e.message}" for e in errors[:5]
    )


class ApiClient:
    """A test client for /api/v1 that sends a token and checks each answer against the document."""

    def __init__(self, client: FlaskClient, token: str | None = None) -> None:
        self.client = client
        self.token = token
        self.doc = client.get("/api/v1/openapi.json").get_json()

    def request(self, method: str, path: str, *, token: str | None = None,
                headers: dict[str, str] | None = None, **options: Any) -> TestResponse:
        """Send a request (with this client's token unless another is given) and check the answer."""
        headers = dict(headers or {})
        token = token if token is not None else self.token
        if token:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.open(path, method=method, headers=headers, **options)
        check_answer(self.doc, method, path.partition("?")[0], response)
        return response

    def get(self, path: str, **options: Any) -> TestResponse:
        """GET path."""
        return self.request("GET", path, **options)

    def post(self, path: str, **options: Any) -> TestResponse:
        """POST path."""
        return self.request("POST", path, **options)

    def patch(self, path: str, **options: Any) -> TestResponse:
        """PATCH path."""
        return self.request("PATCH", path, **options)

    def delete(self, path: str, **options: Any) -> TestResponse:
        """DELETE path."""
        return self.request("DELETE", path, **options)
