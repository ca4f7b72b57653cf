"""Checks every request passes before a view reads it: ids in range, sane JSON, no NULs.

PostgreSQL stores neither an id beyond 32 bits nor a NUL character in text, and a file
name with a NUL cannot be opened, so such input never reaches a query: an id too large
or a NUL in a path part is a 404; a NUL in the query string, a form field, an uploaded
file's name, a JSON string or the User-Agent is refused with 400 (JSON under /api/v1,
with the status each endpoint gives its other refused input).

JSON nested deeper than MAX_JSON_DEPTH is never parsed (Python's parser recurses, and
walking its result would too): the app's JSON provider refuses it before parsing, so
every `get_json` anywhere sees a malformed body, and the guard answers such a request
400 on any URL with a message saying why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from flask import Response, abort, render_template, request
from flask.json.provider import DefaultJSONProvider
from flask_babel import gettext
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from digest.core.validation import as_id
from digest.web.json_errors import error_response

NUL = "\x00"
# Every request body is read (form, JSON, CSRF token) before any view or rate limit runs:
# keep them small, and allow more only where an endpoint's rules allow more.
MAX_BODY_BYTES = 2**20
# Ten times the deepest body any endpoint takes, far below Python's recursion limit.
MAX_JSON_DEPTH = 32
# A JSON string (whose brackets do not count) or one bracket.
_JSON_NESTING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]', re.DOTALL)


class JsonTooDeep(ValueError):
    """A JSON document nests arrays and objects deeper than MAX_JSON_DEPTH."""


def json_too_deep(document: str | bytes) -> bool:
    """Return whether document nests deeper than MAX_JSON_DEPTH, stopping as soon as it does."""
    if isinstance(document, bytes | bytearray):
        document = bytes(document).decode(json.detect_encoding(document), "replace")
    depth = 0
    for match in _JSON_NESTING.finditer(document):
        token = match.group()
        if token in ("[", "{"):
            depth += 1
            if depth > MAX_JSON_DEPTH:
                return True
        elif token in ("]", "}"):
            depth -= 1
    return False


class JsonProvider(DefaultJSONProvider):
    """Flask's JSON, refusing documents nested deeper than MAX_JSON_DEPTH before parsing."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse s; raise JsonTooDeep (a ValueError: a malformed body) when it nests too deep."""
        if json_too_deep(s):
            raise JsonTooDeep(f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        return super().loads(s, **kwargs)


class IdConverter(IntegerConverter):
    """The `int` URL converter: a number beyond the database's largest id is a 404."""

    def to_python(self, value: str) -> int:
        """Return the id; raise NotFound when no row can have it."""
        # NotFound, not ValidationError: werkzeug converts once the rule matched path and
        # method, and a ValidationError would answer 405 when another method shares the path.
        found = as_id(value)
        if found is None:
            raise NotFound()
        return found


def _json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield key
            yield from _json_strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _json_strings(item)


def nul_fields() -> list[str]:
    """Return the names of the request's inputs that contain a NUL character."""
    found = {
        name
        for name, value in [*request.args.items(multi=True), *request.form.items(multi=True)]
        if NUL in name or NUL in value
    }
    found.update(name for name, upload in request.files.items(multi=True)
                 if NUL in name or NUL in (upload.filename or ""))
    payload = request.get_json(silent=True) if request.is_json else None
    if isinstance(payload, dict):
        found.update(key for key, value in payload.items()
                     if any(NUL in text for text in _json_strings({key: value})))
    elif any(NUL in text for text in _json_strings(payload)):
        found.add("body")
    if NUL in request.headers.get("User-Agent", ""):
        found.add("User-Agent")
    return sorted(name.replace(NUL, "\\0") for name in found)


def refuse_bad_input() -> Response | tuple[str, int] | None:
    """Answer a request with over-nested JSON or a NUL character (see the module's docstring)."""
    if any(isinstance(v, str) and NUL in v for v in (request.view_args or {}).values()):
        abort(404)
    if request.is_json and json_too_deep(request.get_data(cache=True)):
        message = (f"The JSON body nests arrays and objects deeper than {MAX_JSON_DEPTH} "
                   "levels; no request here needs that.")
        if request.path.startswith("/api/"):
            return error_response(400, message)
        return render_template(
            "error.html", title=gettext("This request is malformed"),
            message=gettext("This request nests its data deeper than %(depth)s levels; no page "
                            "here sends that. Go back and try again.", depth=MAX_JSON_DEPTH),
        ), 400
    fields = nul_fields()
    if not fields:
        return None
    message = "must not contain NUL characters."
    if request.path.startswith("/api/"):
        # As each endpoint answers its other refused input: the signup form's POST with
        # 400, everything else under /api/v1 with 422.
        signup = request.endpoint == "api.subscribe" and request.method == "POST"
        return error_response(400 if signup else 422, "Please correct the fields listed.",
                              {name: f"{name} {message}" for name in fields})
    return render_template(
        "error.html",
        title=gettext("This contains an invisible character"),
        message=gettext("Something you sent contains a NUL character (an invisible control "
                        "character, usually pasted by accident), which cannot be stored. Go "
                        "back, remove it and try again. (Found in: %(fields)s.)",
                        fields=", ".join(fields)),
    ), 400
