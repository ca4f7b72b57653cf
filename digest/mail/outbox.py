"""The outbox: the .eml files OutboxTransport writes when no SMTP server is configured.

Contract:
- This module owns the names: `new_name` makes them ("20261126T081500123456Z-<12 hex>.eml",
  so they sort by the time written) and only names of that form that the folder's own
  listing contains are ever opened, without following links: a name
  from a URL is never joined to a path unchecked, so nothing outside the folder is read.
- Listing reads the folder's names (newest first, as the names sort by time) and only
  the headers of the messages on the page; a page of N costs the same in any outbox.
- Messages larger than MAX_BYTES are not parsed.
- Nothing here writes, moves or deletes a file.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.parser import BytesHeaderParser, BytesParser
from email.utils import parsedate_to_datetime
from pathlib import Path
from urllib.parse import urlsplit

_STAMP = "%Y%m%dT%H%M%S%f"  # UTC, to the microsecond
NAME = re.compile(r"\A(\d{8}T\d{12})Z-[0-9a-f]{12}\.eml\Z")
PAGE = 50
MAX_BYTES = 20 * 1024 * 1024
HEADER_BYTES = 64 * 1024
MAX_IMAGE_ORIGINS = 30
_URL = re.compile(r"https?://[^\s<>\"')\]]+")
_IMAGE_URL = re.compile(
    r"""(?:\bsrc|\bbackground)\s*=\s*["']?(https?://[^"'\s>]+)|url\(\s*["']?(https?://[^"')\s]+)""",
    re.IGNORECASE,
)
_HOST = re.compile(r"\A[A-Za-z0-9.-]+(?::\d{1,5})?\Z")


@dataclass(frozen=True)
class Entry:
    """One message in the list: its file name and the headers an editor scans for."""

    name: str
    written_at: dt.datetime
    date: dt.datetime | None
    to: str
    subject: str
    size: int


@dataclass(frozen=True)
class Page:
    """A page of messages, newest first, with the name to continue after (None at the end)."""

    entries: list[Entry]
    total: int
    older: str | None


@dataclass(frozen=True)
class Message:
    """One message opened: every header, the text part and the HTML part."""

    name: str
    headers: list[tuple[str, str]]
    text: str | None
    html: str | None
    size: int


def new_name() -> str:
    """Return the name of a message written now: the UTC time, then a random part."""
    return f"{dt.datetime.now(dt.UTC):{_STAMP}}Z-{uuid.uuid4().hex[:12]}.eml"


def names(folder: Path) -> list[str]:
    """Return the outbox's message names, newest first (an absent folder is an empty outbox)."""
    try:
        found = os.listdir(folder)
    except (FileNotFoundError, NotADirectoryError):
        return []
    return sorted((name for name in found if NAME.match(name)), reverse=True)


def _open(folder: Path, name: str, limit: int, listed: Collection[str] | None = None) -> bytes | None:
    if not NAME.match(name) or name not in (names(folder) if listed is None else listed):
        return None
    try:
        descriptor = os.open(folder / name, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(descriptor, "rb") as stream:
        return stream.read(limit)


def _written_at(name: str) -> dt.datetime:
    match = NAME.match(name)
    assert match is not None  # only listed names get here
    return dt.datetime.strptime(match.group(1), _STAMP).replace(tzinfo=dt.UTC)


def _date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _header(message: EmailMessage, name: str) -> str:
    try:
        return str(message.get(name, ""))
    except (ValueError, IndexError):
        # A malformed header the policy cannot decode: show the raw text.
        return next((value for key, value in message.raw_items() if key.lower() == name.lower()), "")


def _headers(message: EmailMessage) -> list[tuple[str, str]]:
    decoded = []
    for key, raw in message.raw_items():
        try:
            value = str(message.policy.header_fetch_parse(key, raw))
        except (ValueError, IndexError):
            value = raw
        decoded.append((key, value))
    return decoded


def _entry(folder: Path, name: str, listed: Collection[str]) -> Entry | None:
    head = _open(folder, name, HEADER_BYTES, listed)
    if head is None:
        return None
    message = BytesHeaderParser(policy=policy.default).parsebytes(head)
    return Entry(
        name=name,
        written_at=_written_at(name),
        date=_date(_header(message, "Date")),
        to=_header(message, "To"),
        subject=_header(message, "Subject"),
        size=(folder / name).stat().st_size,
    )


def list_messages(folder: Path, before: str | None = None, limit: int = PAGE) -> Page:
    """Return a page of messages, newest first, continuing after the name `before`."""
    every = names(folder)
    start = 0
    if before is not None and NAME.match(before):
        start = next((i for i, name in enumerate(every) if name < before), len(every))
    chosen = every[start:start + limit]
    listed = set(every)
    entries = [entry for entry in (_entry(folder, name, listed) for name in chosen) if entry is not None]
    more = start + limit < len(every)
    return Page(entries=entries, total=len(every), older=chosen[-1] if more and chosen else None)


def raw_message(folder: Path, name: str) -> bytes | None:
    """Return a message's exact bytes, or None if the name is not a message of this outbox."""
    data = _open(folder, name, MAX_BYTES + 1)
    if data is None or len(data) > MAX_BYTES:
        return None
    return data


def _part(message: EmailMessage, subtype: str) -> str | None:
    part = message.get_body(preferencelist=(subtype,))
    if part is None:
        return None
    try:
        content = part.get_content()
    except (LookupError, ValueError):  # an unknown charset or a broken encoding
        payload = part.get_payload(decode=True)
        content = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else None
    return content if isinstance(content, str) else None


def read_message(folder: Path, name: str) -> Message | None:
    """Return a message's headers and parts, or None if the name is not a message of this outbox."""
    data = raw_message(folder, name)
    return None if data is None else parse_message(name, data)


def parse_message(name: str, data: bytes) -> Message:
    """Return the headers and parts of a message's bytes."""
    message = BytesParser(policy=policy.default).parsebytes(data)
    assert isinstance(message, EmailMessage)
    return Message(
        name=name,
        headers=_headers(message),
        text=_part(message, "plain"),
        html=_part(message, "html"),
        size=len(data),
    )


def text_segments(text: str) -> list[tuple[str, bool]]:
    """Split text into (piece, is_link) so a template can make its http(s) URLs clickable."""
    segments: list[tuple[str, bool]] = []
    position = 0
    for match in _URL.finditer(text):
        # A sentence that ends on a URL: its full stop or comma is not part of the link.
        url = match.group(0).rstrip(".,;:!?")
        if match.start() > position:
            segments.append((text[position:match.start()], False))
        segments.append((url, True))
        position = match.start() + len(url)
    if position < len(text):
        segments.append((text[position:], False))
    return segments


def image_origins(html: str) -> list[str]:
    """Return the origins (scheme://host[:port]) the HTML loads images from, for a CSP."""
    origins: dict[str, None] = {}
    for match in _IMAGE_URL.finditer(html):
        parts = urlsplit(match.group(1) or match.group(2))
        if parts.scheme in ("http", "https") and _HOST.match(parts.netloc):
            origins[f"{parts.scheme}://{parts.netloc.lower()}"] = None
        if len(origins) >= MAX_IMAGE_ORIGINS:
            break
    return list(origins)
