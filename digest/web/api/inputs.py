"""What /api/v1 accepts: JSON bodies and query parameters, declared once.

Each `Body` and `Param` both parses the request and describes itself in the OpenAPI
document, so the two cannot drift apart. Parsing checks only shape and type (a string
where a string belongs, an id within range, no unknown field) and reports every problem
by field; what a value means (a valid address, an existing section) is the domain
modules' business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from flask import request

from digest.core.validation import MAX_ID, Invalid, control_character, text_pattern

Kind = Literal["string", "integer", "boolean", "strings"]
_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "boolean": "true or false",
    "strings": "a list of strings",
}


class NotAnObject(ValueError):
    """The request body is not a JSON object."""




@dataclass(frozen=True)
class Field:
    """One member of a JSON body."""

    kind: Kind
    description: str
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    multiline: bool = False  # tabs and line breaks allowed; never other control characters
    example: Any = None

    def parse(self, name: str, value: Any, errors: dict[str, str]) -> Any:
        """Return value if it has this field's type; otherwise record why under name."""
        if value is None and self.nullable:
            return None
        ok = {
            "string": isinstance(value, str),
            "integer": isinstance(value, int) and not isinstance(value, bool),
            "boolean": isinstance(value, bool),
            "strings": isinstance(value, list) and all(isinstance(v, str) for v in value),
        }[self.kind]
        if not ok:
            errors[name] = f"{name} must be {_TYPE_NAMES[self.kind]}" + (
                " or null." if self.nullable else "."
            )
            return None
        if self.kind == "integer" and not 0 <= value <= MAX_ID:
            errors[name] = f"{name} must be between 0 and {MAX_ID}."
        texts = [value] if self.kind == "string" else value if self.kind == "strings" else []
        for text in texts:
            problem = control_character(text, name, self.multiline)
            if problem:
                errors[name] = problem
        if self.max_length is not None and self.kind == "string" and len(value) > self.max_length:
            errors[name] = f"{name} must be at most {self.max_length} characters."
        return value

    def schema(self) -> dict[str, Any]:
        """Return this field's JSON Schema."""
        if self.kind == "strings":
            schema: dict[str, Any] = {"type": "array",
                                      "items": {"type": "string", "pattern": text_pattern()}}
        else:
            schema = {"type": self.kind}
        if self.kind == "string":
            schema["pattern"] = text_pattern(self.multiline)
        if self.kind == "integer":
            schema.update(minimum=0, maximum=MAX_ID)
        if self.max_length is not None:
            schema["maxLength"] = self.max_length
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        schema["description"] = self.description
        if self.example is not None:
            schema["examples"] = [self.example]
        return schema


@dataclass(frozen=True)
class Body:
    """A JSON object body: its fields by name."""

    name: str
    description: str
    fields: Mapping[str, Field]
    partial: bool = False  # PATCH: every field optional, at least one given
    strict: bool = True  # refuse fields it does not know
    optional: bool = False  # a request without any body counts as {}

    def parse(self, payload: Any) -> dict[str, Any]:
        """Return the given fields, type-checked; raise Invalid naming every bad field."""
        if not isinstance(payload, dict):
            raise NotAnObject()
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name in payload:
            if self.strict and name not in self.fields:
                errors[name] = f"There is no field {name!r} here."
        for name, spec in self.fields.items():
            if name in payload:
                values[name] = spec.parse(name, payload[name], errors)
            elif spec.required and not self.partial:
                errors[name] = f"{name} is required."
        if self.partial and not payload:
            errors["body"] = "Give at least one field to change."
        if errors:
            raise Invalid(errors)
        return values

    def schema(self) -> dict[str, Any]:
        """Return the body's JSON Schema."""
        schema: dict[str, Any] = {
            "type": "object",
            "description": self.description,
            "properties": {name: spec.schema() for name, spec in self.fields.items()},
            "additionalProperties": not self.strict,
        }
        required = [n for n, s in self.fields.items() if s.required and not self.partial]
        if required:
            schema["required"] = required
        if self.partial:
            schema["minProperties"] = 1
        return schema


def json_body(body: Body) -> dict[str, Any]:
    """Return the request's JSON body parsed by body; raise NotAnObject or Invalid."""
    if body.optional and not request.get_data():
        return body.parse({})
    return body.parse(request.get_json(silent=True))


@dataclass(frozen=True)
class Param:
    """A query-string parameter."""

    name: str
    kind: Literal["string", "integer"]
    description: str
    choices: Sequence[str] = ()
    minimum: int = 0
    maximum: int = MAX_ID
    default: Any = None

    def parse(self, errors: dict[str, str]) -> Any:
        """Return the parameter's value from the query string (default when absent)."""
        raw = request.args.get(self.name)
        if raw is None or raw == "":
            return self.default
        problem = control_character(raw, self.name)
        if problem:
            errors[self.name] = problem
            return self.default
        if self.kind == "string":
            if self.choices and raw not in self.choices:
                errors[self.name] = f"{self.name} must be one of: {', '.join(self.choices)}."
            return raw
        if not raw.isascii() or not raw.isdigit() or not self.minimum <= int(raw) <= self.maximum:
            errors[self.name] = (
                f"{self.name} must be a whole number from {self.minimum} to {self.maximum}."
            )
            return self.default
        return int(raw)

    def schema(self) -> dict[str, Any]:
        """Return the parameter's OpenAPI description."""
        schema: dict[str, Any] = {"type": self.kind}
        if self.kind == "string" and not self.choices:
            schema["pattern"] = text_pattern()
        if self.kind == "integer":
            schema.update(minimum=self.minimum, maximum=self.maximum)
        if self.choices:
            schema["enum"] = list(self.choices)
        if self.default is not None:
            schema["default"] = self.default
        return {
            "name": self.name,
            "in": "query",
            "required": False,
            "description": self.description,
            "schema": schema,
        }


def query(params: Sequence[Param]) -> dict[str, Any]:
    """Return every parameter's value by name; raise Invalid naming every bad one."""
    errors: dict[str, str] = {}
    values = {param.name: param.parse(errors) for param in params}
    if errors:
        raise Invalid(errors)
    return values
