"""Field validation shared by the domain modules.

Domain functions collect every problem with the input into an `Invalid` (field name →
message) and raise it before changing anything, so a form can show all its errors at
once and the database is left as it was. `Invalid` is the one error for refused input,
whoever typed it: an editor, a reader signing up, a row of a CSV file, an API client.

Text never holds control characters (`control_character`): they are invisible, break
the Atom feed (XML 1.0 forbids most of them) and email headers, and PostgreSQL stores
no NUL. Multi-line fields keep tabs and line breaks; every other field is one line.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Mapping

from email_validator import EmailNotValidError, validate_email

MAX_ID = 2**31 - 1  # ids are 32-bit integers in the database

# C0 and C1 controls and DEL, and U+FFFE/U+FFFF (not characters in XML); one-line fields
# also refuse U+2028/U+2029 (line breaks to some readers of email headers); multi-line
# fields may hold tab, line feed and carriage return (a textarea's CRLF). Written with \u
# escapes, which Python's re and the regular expressions of JSON Schema both read.
_CONTROLS = {
    False: r"\u0000-\u001f\u007f-\u009f\u2028\u2029\ufffe\uffff",
    True: r"\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffe\uffff",
}
# Lone surrogates too: no valid text holds one (JSON Schema patterns cannot name them).
_FORBIDDEN = {multiline: re.compile(f"[{chars}\\ud800-\\udfff]")
              for multiline, chars in _CONTROLS.items()}
# What str.strip() removes (str.isspace), spelled out: \s differs between Python and the
# ECMAScript regular expressions of JSON Schema (which counts U+FEFF, say).
_WHITESPACE = (r"\u0009-\u000d\u001c-\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029"
               r"\u202f\u205f\u3000")
# Whitespace a one-line field may hold: not a control character, nor U+2028/U+2029.
_SPACE = r"[\u0020\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"
_C = _CONTROLS[False]
# An absolute http(s) address: a host (no user name, no IPv6 literal), maybe a port, then
# anything without spaces; or nothing. Surrounding spaces are trimmed.
_HTTP_URL_BODY = (rf"[Hh][Tt][Tt][Pp][Ss]?://[^{_WHITESPACE}{_C}/?#@:\[\]]+"
                  rf"(?::[0-9]*)?(?:[/?#][^{_WHITESPACE}{_C}]*)?")
HTTP_URL_PATTERN = rf"^{_SPACE}*(?:{_HTTP_URL_BODY})?{_SPACE}*$"
REQUIRED_HTTP_URL_PATTERN = rf"^{_SPACE}*{_HTTP_URL_BODY}{_SPACE}*$"  # the same, never empty
_HTTP_URL = re.compile(HTTP_URL_PATTERN)
URL_MAX = 2000


def text_pattern(multiline: bool = False, blank: bool = True) -> str:
    """Return the JSON Schema pattern of text without the characters control_character refuses
    (and, unless blank, with at least one character that is not a space)."""
    chars = _CONTROLS[multiline]
    return f"^[^{chars}]*$" if blank else f"^[^{chars}]*[^{_WHITESPACE}{chars}][^{chars}]*$"


def find_control_character(value: str, multiline: bool = False) -> re.Match[str] | None:
    """Return where value's first control character is, or None when it has none."""
    return _FORBIDDEN[multiline].search(value)


def control_character(value: str, label: str, multiline: bool = False) -> str | None:
    """Return a message naming the first control character in value, or None when it has none."""
    found = find_control_character(value, multiline)
    if found is None:
        return None
    allowed = " (tabs and line breaks are fine)" if multiline else ""
    return (f"{label} must not contain control characters{allowed}; it has U+{ord(found.group()):04X} "
            f"at position {found.start() + 1}, an invisible character: remove it and try again.")


def check_text(value: str, field: str, errors: dict[str, str], *, label: str | None = None,
               multiline: bool = False) -> str:
    """Return value; record an error under field when it holds a control character."""
    problem = control_character(value, label or field.replace("_", " ").capitalize(), multiline)
    if problem:
        errors[field] = problem
    return value


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


def text(value: str | None, field: str, errors: dict[str, str], *, required: bool = False,
         max_length: int | None = None, label: str | None = None,
         multiline: bool = False) -> str:
    """Return value stripped; record an error when it is required and empty, too long, or
    holds a control character (tabs and line breaks are fine when multiline)."""
    label = label or field.replace("_", " ").capitalize()
    problem = control_character(value or "", label, multiline)
    value = (value or "").strip()
    if problem:
        errors[field] = problem
    elif required and not value:
        errors[field] = f"{label} is required."
    elif max_length is not None and len(value) > max_length:
        errors[field] = f"{label} must be at most {max_length} characters (it has {len(value)})."
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
    """Return an absolute http(s) URL (HTTP_URL_PATTERN), None when empty; record an error otherwise."""
    raw = value or ""
    stripped = raw.strip()
    if not stripped:
        return None
    problem = control_character(raw, "The link")
    if problem:
        errors[field] = problem
    elif _HTTP_URL.fullmatch(raw) is None:
        spaced = any(ch.isspace() for ch in stripped) and stripped.lower().startswith("http")
        errors[field] = ("The link must not contain spaces." if spaced else
                         "The link must be a full web address starting with http:// or "
                         "https:// and a host name.")
    elif len(stripped) > URL_MAX:
        errors[field] = f"The link must be at most {URL_MAX:,} characters."
    return stripped


_NOT_SLUG = re.compile(r"[^a-z0-9]+")


def slugify(title: str, max_length: int = 80, fallback: str = "item") -> str:
    """Return a readable ASCII slug of title ("Ünïcode & more!" → "unicode-more"), cut to
    max_length at the end of a word (mid-word only when its first word is longer)."""
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    slug = _NOT_SLUG.sub("-", ascii_title.lower()).strip("-")
    if len(slug) > max_length:
        head = slug[:max_length]
        if slug[max_length] != "-" and "-" in head:
            head = head.rsplit("-", 1)[0]
        slug = head.rstrip("-")
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
