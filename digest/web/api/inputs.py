"""What /api/v1 accepts: JSON bodies and query parameters, declared once.

Each `Body` and `Param` both parses the request and describes itself in the OpenAPI
document, so the two cannot drift apart: every rule a field states in the document (type,
range, length, pattern, format, allowed values) is checked here, and nothing else is, so
a request the document refuses is refused with 422 (`BadInput`) and a request it allows
passes. What a valid value then meets in the database (a section that no longer exists,
a post that is already published, a suppressed address) is the domain modules' business,
answered with 409.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from email_validator import SPECIAL_USE_DOMAIN_NAMES
from flask import request

from digest.core.validation import (
    HTTP_URL_PATTERN,
    MAX_ID,
    REQUIRED_HTTP_URL_PATTERN,
    Invalid,
    control_character,
    text_pattern,
)
from digest.domain.subscribers.signup import NAME_MAX, normalize_email
from digest.web.guard import MAX_BODY_BYTES

Kind = Literal["string", "integer", "boolean", "strings"]
Format = Literal["email", "ip", "http-url"]
_TYPE_NAMES = {
    "string": "a string",
    "integer": "a whole number",
    "boolean": "true or false",
    "strings": "a list of strings",
}
# RFC 5321: an address is at most 254 characters.
EMAIL_MAX = 254
# The longest text form of an IPv6 address (with an IPv4 tail).
IP_MAX = 45
# The database's columns: a slug, a consent wording's version.
SLUG_MAX = 64
CONSENT_VERSION_MAX = 32
# More sections than any newsletter has; bounds the body like every other field.
SECTIONS_MAX = 100
# Free text no column keeps whole (a browser's name, a trap field).
TEXT_MAX = 512
# JSON escapes a character beyond the Basic Multilingual Plane as two \uXXXX: 12 bytes.
_ESCAPED_CHAR = 12
# A member's quotes, colon, comma and spaces; a number, true, false or null, with room.
_MEMBER_FRAME = 8
_SCALAR = 32
_IP_SCHEMA = {"anyOf": [{"format": "ipv4"}, {"format": "ipv6"}]}
# email-validator (normalize_email) refuses special-use domains such as .test and .invalid.
_SPECIAL_USE = ", ".join(f".{name}" for name in SPECIAL_USE_DOMAIN_NAMES)
_EMAIL_SCHEMA = {"format": "email", "not": {
    "pattern": f"(?i)[@.]({'|'.join(map(re.escape, SPECIAL_USE_DOMAIN_NAMES))})$"}}


class NotAnObject(ValueError):
    """The request body is not a JSON object."""


class BadInput(Invalid):
    """The request breaks a rule the OpenAPI document states (answered 422)."""


def _format_problem(fmt: Format, name: str, value: str) -> str | None:
    if fmt == "email":
        if value != value.strip():
            return f"{name} must not start or end with spaces."
        try:
            normalize_email(value)
        except Invalid as exc:
            return next(iter(exc.errors.values()))
        return None
    if fmt == "ip":
        try:
            ipaddress.ip_address(value)
        except ValueError:
            return f"{name} must be an IPv4 or IPv6 address."
        # Python reads a zone ("fe80::1%eth0"), which the ipv6 format does not allow.
        return f"{name} must be an IPv4 or IPv6 address." if "%" in value else None
    if not re.fullmatch(HTTP_URL_PATTERN, value):
        return f"{name} must be a full http:// or https:// address with a host name, or empty."
    return None


@dataclass(frozen=True)
class Field:
    """One member of a JSON body."""

    kind: Kind
    description: str
    required: bool = False
    nullable: bool = False
    max_length: int | None = None
    multiline: bool = False  # tabs and line breaks allowed; never other control characters
    blank: bool = True  # False: at least one character that is not a space
    fmt: Format | None = None
    const: bool | None = None
    min_items: int | None = None
    max_items: int | None = None  # "strings": at most this many, each at most max_length
    example: Any = None
    # "string": the values allowed, asked when a request or the document needs them (they
    # may depend on the app: the languages whose catalogues are installed).
    choices: Callable[[], Collection[str]] | None = None

    def max_bytes(self) -> int:
        """Return the size of the longest value this field allows, as JSON escapes it."""
        if self.kind == "string":
            return 2 + _ESCAPED_CHAR * (self.max_length or 0)
        if self.kind == "strings":
            return 2 + (self.max_items or 0) * (4 + _ESCAPED_CHAR * (self.max_length or 0))
        return _SCALAR

    def parse(self, name: str, value: Any, errors: dict[str, str]) -> Any:
        """Return value if it keeps every rule of this field; otherwise record why under name."""
        if value is None and self.nullable:
            return None
        if self.kind == "integer" and isinstance(value, float) and value.is_integer():
            value = int(value)  # JSON Schema counts 2.0 as an integer, so this API does too
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
        problem = self._problem(name, value)
        if problem:
            errors[name] = problem
        return value

    def _problem(self, name: str, value: Any) -> str | None:
        if self.kind == "integer" and not 0 <= value <= MAX_ID:
            return f"{name} must be between 0 and {MAX_ID}."
        if self.const is not None and value != self.const:
            return f"{name} must be {str(self.const).lower()}."
        if self.kind == "strings":
            if self.min_items is not None and len(value) < self.min_items:
                return f"{name} must list at least {self.min_items} (omit it for every one)."
            if self.max_items is not None and len(value) > self.max_items:
                return f"{name} must list at most {self.max_items}."
            if self.max_length is not None and any(len(v) > self.max_length for v in value):
                return f"Each of {name} must be at most {self.max_length} characters."
            return next((p for p in (control_character(v, name) for v in value) if p), None)
        if self.kind != "string":
            return None
        problem = control_character(value, name, self.multiline)
        if problem:
            return problem
        if self.max_length is not None and len(value) > self.max_length:
            return f"{name} must be at most {self.max_length} characters."
        if not self.blank and not value.strip():
            return f"{name} must not be empty or only spaces."
        if self.choices is not None and value not in (allowed := self.choices()):
            return f"{name} must be one of {', '.join(sorted(allowed))}."
        return _format_problem(self.fmt, name, value) if self.fmt else None

    def schema(self) -> dict[str, Any]:
        """Return this field's JSON Schema: every rule parse checks."""
        if self.kind == "strings":
            items: dict[str, Any] = {"type": "string", "pattern": text_pattern()}
            if self.max_length is not None:
                items["maxLength"] = self.max_length
            schema: dict[str, Any] = {"type": "array", "items": items}
            if self.min_items is not None:
                schema["minItems"] = self.min_items
            if self.max_items is not None:
                schema["maxItems"] = self.max_items
        else:
            schema = {"type": self.kind}
        if self.kind == "string":
            if self.fmt == "http-url":
                schema["pattern"] = HTTP_URL_PATTERN if self.blank else REQUIRED_HTTP_URL_PATTERN
            else:
                schema["pattern"] = text_pattern(self.multiline, self.blank)
            if self.fmt == "email":
                schema.update(_EMAIL_SCHEMA)
            elif self.fmt == "ip":
                schema.update(_IP_SCHEMA)
        if self.kind == "integer":
            schema.update(minimum=0, maximum=MAX_ID)
        if self.const is not None:
            schema["const"] = self.const
        if self.choices is not None:
            schema["enum"] = sorted(self.choices())
        if self.max_length is not None and self.kind == "string":
            schema["maxLength"] = self.max_length
        if self.nullable:
            schema["type"] = [schema["type"], "null"]
        schema["description"] = self.description + {
            "string": " Multi-line: tabs and line breaks are allowed, other control characters "
                      "are not." if self.multiline else " One line, without control characters.",
            "strings": " Each one line, without control characters.",
        }.get(self.kind, "")
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
    optional: bool = False  # a request without any body counts as {}

    def parse(self, payload: Any) -> dict[str, Any]:
        """Return the given fields, checked; raise BadInput naming every bad field."""
        if not isinstance(payload, dict):
            raise NotAnObject()
        errors: dict[str, str] = {}
        values: dict[str, Any] = {}
        for name in payload:
            if name not in self.fields:
                errors[name] = f"There is no field {name!r} here."
        for name, spec in self.fields.items():
            if name in payload:
                values[name] = spec.parse(name, payload[name], errors)
            elif spec.required and not self.partial:
                errors[name] = f"{name} is required."
        if self.partial and not payload:
            errors["body"] = "Give at least one field to change."
        if errors:
            raise BadInput(errors)
        return values

    def max_bytes(self) -> int:
        """Return the size of the largest body these rules allow, as JSON escapes it."""
        return 2 + sum(len(name) + _MEMBER_FRAME + spec.max_bytes()
                       for name, spec in self.fields.items())

    def limit(self) -> int:
        """Return the body size this endpoint reads: room for every body its rules allow."""
        return max(MAX_BODY_BYTES, self.max_bytes())

    def schema(self) -> dict[str, Any]:
        """Return the body's JSON Schema."""
        schema: dict[str, Any] = {
            "type": "object",
            "description": self.description,
            "properties": {name: spec.schema() for name, spec in self.fields.items()},
            "additionalProperties": False,
        }
        required = [n for n, s in self.fields.items() if s.required and not self.partial]
        if required:
            schema["required"] = required
        if self.partial:
            schema["minProperties"] = 1
        return schema


def reader_fields(who: str) -> dict[str, Field]:
    """Return the fields of a signup, as the public form and the editors' API take them."""
    return {
        "email": Field("string", f"{who} address, in a domain that can receive mail (not "
                                 f"{_SPECIAL_USE}).", required=True, max_length=EMAIL_MAX,
                       fmt="email", example="ada@example.org"),
        "name": Field("string", f"{who} name, used in the greeting (optional).",
                      max_length=NAME_MAX),
        "sections": Field("strings", "Slugs of the sections wanted; omit for every section "
                                     "(409 naming an unknown one).", min_items=1,
                          max_items=SECTIONS_MAX, max_length=SLUG_MAX),
        "consent": Field("boolean", "The reader agreed to receive the newsletter (must be "
                                    "true).", required=True, const=True),
        "consent_version": Field("string", "The consent wording's version the reader agreed "
                                           "to (from the newsletter); 409 when it is not the "
                                           "current one.", max_length=CONSENT_VERSION_MAX),
    }


def json_body(body: Body) -> dict[str, Any]:
    """Return the request's JSON body parsed by body; raise NotAnObject or BadInput."""
    if body.optional and not request.get_data():
        return body.parse({})
    return body.parse(request.get_json(silent=True))


_WHOLE_NUMBER = re.compile(r"([0-9]{1,10})(?:\.0+)?", re.ASCII)


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
    max_length: int = 200

    def parse(self, errors: dict[str, str]) -> Any:
        """Return the parameter's value from the query string (default when absent)."""
        raw = request.args.get(self.name)
        if raw is None or (raw == "" and self.kind == "string" and not self.choices):
            return self.default
        problem = control_character(raw, self.name)
        if problem:
            errors[self.name] = problem
            return self.default
        if self.kind == "string":
            if self.choices and raw not in self.choices:
                errors[self.name] = f"{self.name} must be one of: {', '.join(self.choices)}."
            elif len(raw) > self.max_length:
                errors[self.name] = f"{self.name} must be at most {self.max_length} characters."
            return raw
        # JSON Schema counts 2.0 as an integer, so a query string's "2.0" is one too.
        whole = _WHOLE_NUMBER.fullmatch(raw)
        if whole is None or not self.minimum <= int(whole[1]) <= self.maximum:
            errors[self.name] = (
                f"{self.name} must be a whole number from {self.minimum} to {self.maximum}."
            )
            return self.default
        return int(whole[1])

    def schema(self) -> dict[str, Any]:
        """Return the parameter's OpenAPI description."""
        schema: dict[str, Any] = {"type": self.kind}
        if self.kind == "string" and not self.choices:
            schema.update(pattern=text_pattern(), maxLength=self.max_length)
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
    """Return every parameter's value by name; raise BadInput naming every bad one."""
    errors: dict[str, str] = {}
    values = {param.name: param.parse(errors) for param in params}
    if errors:
        raise BadInput(errors)
    return values
