"""Field validation shared by the domain modules.

Domain functions collect every problem with the input into an `Invalid` (field name →
message) and raise it before changing anything, so a form can show all its errors at
once and the database is left as it was. `Invalid` is the one error for refused input,
whoever typed it: an editor, a reader signing up, a row of a CSV file, an API client.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email

MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database


def as_id(value: str) -> int | None:
    """Return text as an int that can be an id, or None."""
    if not (value.isascii() and value.isdigit() and len(value) <= len(str(MAX_ID))):
        return None
    return int(value) if int(value) <= MAX_ID else None


class Invalid(ValueError):
    """Input was refused; `errors` maps each field name to a message a person can act on."""

    def __init__(self, errors: Mapping[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {message}" for field, message in errors.items()))
        self.errors = dict(errors)


def has_line_break_or_control(value: str) -> bool:
    """Return whether value holds a line break or another control character (tab aside)."""
    return any(
        c != "\t" and unicodedata.category(c) in ("Cc", "Zl", "Zp") for c in value
    )


def text(value: str | None, field: str, errors: dict[str, str], *, required: bool = False,
         max_length: int | None = None, label: str | None = None, one_line: bool = False) -> str:
    """Return value stripped; record an error when it is required and empty, or too long, or
    (one_line: it ends up in an email header) holds a line break or control character."""
    value = (value or "").strip()
    label = label or field.replace("_", " ").capitalize()
    if required and not value:
        errors[field] = f"{label} is required."
    elif max_length is not None and len(value) > max_length:
        errors[field] = f"{label} must be at most {max_length} characters (it has {len(value)})."
    elif one_line and has_line_break_or_control(value):
        errors[field] = f"{label} must be a single line, without line breaks or control characters."
    return value


def optional_email(value: str | None, field: str, errors: dict[str, str]) -> str | None:
    """Return the normalized address, None when empty; record an error when malformed."""
    value = (value or "").strip()
    if not value:
        return None
    try:
        return validate_email(
            value, check_deliverability=False, test_environment=True, strict=True
        ).normalized
    except EmailNotValidError as exc:
        errors[field] = f"{value} is not a valid email address: {exc}"
        return value


def optional_http_url(value: str | None, field: str, errors: dict[str, str]) -> str | None:
    """Return an absolute http(s) URL, None when empty; record an error otherwise."""
    value = (value or "").strip()
    if not value:
        return None
    parts = urlsplit(value)
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        errors[field] = "The link must be a full web address starting with http:// or https://."
    elif len(value) > 2000:
        errors[field] = "The link must be at most 2,000 characters."
    elif any(ch.isspace() for ch in value):
        errors[field] = "The link must not contain spaces."
    return value


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(title: str, max_length: int = 80, fallback: str = "item") -> str:
    """Return a readable ASCII slug of title ("Ünïcode & more!" → "unicode-more")."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_title.lower()).strip("-")
    slug = slug[:max_length].rstrip("-")
    return slug or fallback


def unique_slug(base: str, taken: Callable[[str], bool]) -> str:
    """Return base, or base-2, base-3… : the first that taken() says is free."""
    slug, n = base, 1
    while taken(slug):
        n += 1
        slug = f"{base}-{n}"
    return slug


def like_pattern(words: str) -> str:
    """Return a lowercase LIKE pattern matching words anywhere, with %, _ and \\ taken literally."""
    escaped = words.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
