"""Checks every request passes before a view reads it: ids in range, no NUL characters.

PostgreSQL stores neither an id beyond 32 bits nor a NUL character in text, and a file
name with a NUL cannot be opened, so such input never reaches a query: an id too large
or a NUL in a path part is a 404; a NUL in the query string, a form field, an uploaded
file's name, a JSON string or the User-Agent is refused with 400 (JSON under /api/v1,
with the status each endpoint gives its other refused input).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from flask import Response, abort, render_template, request
from werkzeug.exceptions import NotFound
from werkzeug.routing import IntegerConverter

from digest.core.validation import as_id
from digest.web.json_errors import error_response

NUL = "\x00"


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


def refuse_nul() -> Response | tuple[str, int] | None:
    """Answer a request that carries a NUL character (see the module's docstring)."""
    if any(isinstance(v, str) and NUL in v for v in (request.view_args or {}).values()):
        abort(404)
    fields = nul_fields()
    if not fields:
        return None
    message = "must not contain NUL characters."
    if request.path.startswith("/api/"):
        # As each endpoint answers its other refused input: the signup form's POST with
        # 400, everything else under /api/v1 with 422.
        signup = request.endpoint == "api.subscribe" and request.method == "POST"
        status = 400 if signup else 422
        return error_response(status, "Please correct the fields listed.",
                              {name: f"{name} {message}" for name in fields})
    return render_template(
        "error.html",
        title="This contains an invisible character",
        message="Something you sent contains a NUL character (an invisible control character, "
                "usually pasted by accident), which cannot be stored. Go back, remove it and "
                f"try again. (Found in: {', '.join(fields)}.)",
    ), 400
