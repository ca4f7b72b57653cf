"""The OpenAPI 3.1 document of /api/v1, built from the routes themselves.

Every view under /api/v1 carries an `Operation` per HTTP method (the `operation`
decorator); the document walks the app's URL map, so a route is described where it is
declared, path parameters come from its converters, request bodies and query parameters
from the same `inputs` declarations that parse them, and answers from `shapes`. The
token check reads the same `Operation` to know which endpoints are for admins only.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from flask import Flask, Response, current_app, jsonify
from werkzeug.routing import Rule

from digest.core.validation import MAX_ID
from digest.web.api import PREFIX, bp
from digest.web.api.inputs import Body, Param
from digest.web.api.shapes import SCHEMAS

TITLE = "digest API"
VERSION = "1.0.0"
# Flask answers these by itself (HEAD as GET, OPTIONS from the route's methods).
IMPLICIT_METHODS = frozenset({"HEAD", "OPTIONS"})
_ERRORS = {
    400: "The body is not a JSON object, or a JSON body nests deeper than 32 levels (for the "
         "signup, also: `fields` lists what to correct).",
    401: "No token, or a token that is wrong, revoked, or whose editor is deactivated.",
    403: "The token's editor is not an admin.",
    404: "There is no such item.",
    413: "The body is larger than any body the rules here allow, as JSON writes it: over "
         "{limit:,} bytes.",
    409: "The input keeps every rule stated here, but the stored data refuses it; `fields` "
         "says why.",
    422: "Input breaks a rule stated here; `fields` says why, field by field.",
    429: "Too many requests; wait for the seconds in Retry-After.",
    503: "Nothing was recorded (the database is full or not answering); send the same again "
         "after the seconds in Retry-After.",
}
_HEADERS = {
    401: {"WWW-Authenticate": {"description": "`Bearer realm=\"digest\"`, with "
                               "`error=\"invalid_token\"` when a token was sent.",
                               "schema": {"type": "string"}}},
    429: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
    503: {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}},
}
_CONVERTER = re.compile(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>")


@dataclass(frozen=True)
class Operation:
    """What one method of one route does, takes and answers."""

    summary: str
    tag: str
    responses: Mapping[int, str | None]  # status → component schema of the answer (None: empty)
    description: str = ""
    body: Body | None = None
    upload: Mapping[str, Any] | None = None  # a multipart/form-data body's JSON Schema
    params: Sequence[Param] = ()
    # Token endpoints add 401, 429 and what their parameters and body imply; public ones
    # list every error they answer.
    errors: Sequence[int] = ()
    public: bool = False
    admin: bool = False


def operation(method: str, summary: str, **details: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Attach the description of one method to a view (put it right under the route)."""

    def attach(view: Callable[..., Any]) -> Callable[..., Any]:
        operations = view.__dict__.setdefault("openapi", {})
        operations[method.upper()] = Operation(summary=summary, **details)
        return view

    return attach


def operation_of(view: Callable[..., Any], method: str) -> Operation | None:
    """Return the description of a view's method (HEAD is GET), or None."""
    operations = getattr(view, "openapi", {})
    return operations.get("GET" if method == "HEAD" else method)


def _path(rule: Rule) -> tuple[str, list[dict[str, Any]]]:
    parameters = []

    def replace(match: re.Match[str]) -> str:
        name = match["name"]
        schema: dict[str, Any] = {"type": "string"}
        if match["converter"] == "int":
            schema = {"type": "integer", "minimum": 0, "maximum": MAX_ID}
        parameters.append({"name": name, "in": "path", "required": True, "schema": schema})
        return "{" + name + "}"

    return _CONVERTER.sub(replace, rule.rule), parameters


def body_limit(view: Callable[..., Any], method: str) -> int | None:
    """Return the body size an operation reads (room for every body it allows), or None."""
    op = operation_of(view, method)
    return op.body.limit() if op is not None and op.body is not None else None


def _error(status: int, op: Operation) -> dict[str, Any]:
    if status == 413 and op.body is None:
        description = "The upload is larger than this endpoint takes (its description says how large)."
    else:
        description = _ERRORS[status].format(limit=op.body.limit() if op.body is not None else 0)
    answer: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status in _HEADERS:
        answer["headers"] = _HEADERS[status]
    return answer


def _describe(op: Operation, operation_id: str, path_params: list[dict[str, Any]]) -> dict[str, Any]:
    responses: dict[str, Any] = {
        str(status): {
            "description": SCHEMAS[schema]["description"],
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        } if schema is not None else {"description": "Done; no content."}
        for status, schema in op.responses.items()
    }
    # Any request may carry a JSON body nested too deep to read (digest.web.guard), and
    # meet a database that cannot answer (digest.web.unavailable).
    errors = set(op.errors) | {400, 503}
    if not op.public:
        errors.add(401)
        errors.add(429)
        if path_params:
            errors.add(404)
        if op.body is not None or op.upload is not None:
            errors.add(422)
        if op.params:
            errors.add(422)
    if op.body is not None:
        errors.add(413)
    if op.admin:
        errors.add(403)
    for status in sorted(errors):
        responses[str(status)] = _error(status, op)
    described: dict[str, Any] = {
        "operationId": operation_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": responses,
    }
    description = op.description + ("\n\nAdmins only." if op.admin else "")
    if description.strip():
        described["description"] = description.strip()
    parameters = path_params + [param.schema() for param in op.params]
    if parameters:
        described["parameters"] = parameters
    if op.body is not None:
        described["requestBody"] = {
            "required": not op.body.optional,
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{op.body.name}"}}},
        }
    if op.upload is not None:
        described["requestBody"] = {
            "required": True, "content": {"multipart/form-data": {"schema": dict(op.upload)}},
        }
    if op.public:
        described["security"] = []
    return described


def document(app: Flask) -> dict[str, Any]:
    """Return the OpenAPI 3.1 document of every documented route under /api/v1."""
    paths: dict[str, dict[str, Any]] = {}
    bodies: dict[str, Body] = {}
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if not rule.rule.startswith(PREFIX + "/"):
            continue
        view = app.view_functions[rule.endpoint]
        path, path_params = _path(rule)
        methods = sorted((rule.methods or set()) - IMPLICIT_METHODS)
        for method in methods:
            op = operation_of(view, method)
            if op is None:
                continue
            name = rule.endpoint.rpartition(".")[2]
            operation_id = f"{name}_{method.lower()}" if len(methods) > 1 else name
            paths.setdefault(path, {})[method.lower()] = _describe(op, operation_id, path_params)
            if op.body is not None:
                bodies[op.body.name] = op.body
    return {
        "openapi": "3.1.0",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": (
                "Manage a digest newsletter from programs: subscribers, posts, sent issues. "
                "Create a token with `digest api-token create EMAIL --name NAME` or under "
                "your account in the editor, and send it as `Authorization: Bearer TOKEN`. "
                "A token acts with its editor's role; cookies are never read. Every error "
                "answers `{\"error\": message}`, with `fields` naming each refused input: 422 "
                "when the input breaks a rule stated here (text never holds control "
                "characters: only fields described as multi-line keep tabs and line breaks), "
                "409 when it keeps them but the stored data refuses it."
            ),
        },
        "servers": [{"url": app.config["BASE_URL"]}],
        "security": [{"bearer": []}],
        "tags": [{"name": name} for name in sorted({
            op["tags"][0] for ops in paths.values() for op in ops.values()
        })],
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "dg_…",
                           "description": "An API token of an active editor."},
            },
            "schemas": {**SCHEMAS, **{name: body.schema() for name, body in bodies.items()}},
        },
    }


@bp.get("/openapi.json")
@operation("GET", "This document", tag="meta", responses={200: "OpenApiDocument"}, public=True,
           description="The OpenAPI 3.1 description of every endpoint under /api/v1.")
def openapi() -> Response:
    """The OpenAPI document (public: it describes, it holds no data)."""
    cache = current_app.extensions.setdefault("digest.openapi", {})
    if "document" not in cache:
        cache["document"] = document(current_app)
    return jsonify(cache["document"])
