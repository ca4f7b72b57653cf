"""Feeds and pages as they come off the wire: RSS, Atom, JSON Feed, and a page's metadata.

Contract: every function takes bytes that a stranger wrote and returns plain data or
raises `FeedError` naming what is wrong. XML that declares entities (the billion laughs
and huge-entity attacks, external entities) is refused before any parser sees it;
summaries come out as plain text with every tag removed and script and style content
dropped (nh3), cut to SUMMARY_MAX; a date that cannot be read is None, never an error;
links that are not absolute http(s) URLs are left out. `canonical_url` is the identity
of a link: tracking parameters and the fragment removed, so the same article reached
from two campaigns is one item.
"""

from __future__ import annotations

import calendar
import datetime as dt
import html
import json
import re
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import feedparser
import nh3

from digest.core.validation import URL_MAX

TITLE_MAX = 300
SUMMARY_MAX = 2000
# Entries read from one feed: a feed of thousands is cut, newest as the feed orders them.
ENTRIES_MAX = 200
# What a page's <head> may take to read: metadata past this is not looked for.
PAGE_HEAD_MAX = 512 * 1024
_TRACKING = re.compile(
    r"^(utm_.*|fbclid|gclid|dclid|gbraid|wbraid|msclkid|mc_cid|mc_eid|yclid|igshid|_hsenc|_hsmi"
    r"|mkt_tok|oly_anon_id|oly_enc_id|vero_id|ref_src)$",
    re.IGNORECASE,
)
# An entity declaration anywhere in the prolog: refused, whatever it expands to.
_ENTITY = re.compile(rb"<!ENTITY", re.IGNORECASE)
_SPACES = re.compile(r"\s+")
# Control characters and lone surrogates: no field of ours takes them, PostgreSQL refuses the latter.
_UNWANTED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")


class FeedError(ValueError):
    """The document is not a feed we read, or is hostile; the message says which."""


@dataclass(frozen=True)
class Entry:
    """One item of a feed, cleaned."""

    url: str
    title: str
    summary: str
    guid: str | None
    published_at: dt.datetime | None


@dataclass(frozen=True)
class Feed:
    """A parsed feed: its title and entries."""

    title: str
    entries: list[Entry]


def canonical_url(url: str) -> str:
    """Return url without tracking parameters (utm_*, fbclid, gclid …) and fragment, the
    scheme and host lower-cased and the default port dropped."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    try:
        port = parts.port
    except ValueError:  # out of range: keep it as written, the fetch will say what is wrong
        port = None
        host = parts.netloc.rpartition("@")[2].lower()
    if port in {80 if scheme == "http" else 443}:
        port = None
    netloc = host if port is None else f"{host}:{port}"
    if parts.username or parts.password:
        netloc = f"{parts.username or ''}{':' + parts.password if parts.password else ''}@{netloc}"
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True)
             if not _TRACKING.match(k)]
    return urlunsplit((scheme, netloc, parts.path or "/", urlencode(query), ""))


def plain_text(fragment: str, limit: int = SUMMARY_MAX) -> str:
    """Return the text of an HTML fragment: tags removed, script and style dropped, one line."""
    cleaned = nh3.clean(_UNWANTED.sub("", fragment), tags=set(),
                        clean_content_tags={"script", "style"})
    text = _SPACES.sub(" ", _UNWANTED.sub("", html.unescape(cleaned))).strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _http_url(value: Any, base: str = "") -> str | None:
    if not isinstance(value, str) or not value.strip():
        return None
    url = urljoin(base, value.strip()) if base else value.strip()
    parts = urlsplit(url)
    try:
        if parts.scheme.lower() not in {"http", "https"} or not parts.hostname or parts.port == 0:
            return None
    except ValueError:  # a port out of range
        return None
    if len(url) > URL_MAX:
        return None
    if any(ch.isspace() for ch in url) or _UNWANTED.search(url):
        return None
    return url


def _when_struct(value: Any) -> dt.datetime | None:
    if not isinstance(value, time.struct_time):
        return None
    try:
        return dt.datetime.fromtimestamp(calendar.timegm(value), dt.UTC)
    except (OverflowError, ValueError, OSError):
        return None


def _when_text(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    for parse in (dt.datetime.fromisoformat, parsedate_to_datetime):
        try:
            moment = parse(value.strip().replace("Z", "+00:00"))
        except (TypeError, ValueError, IndexError, OverflowError):
            continue
        return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)
    return None


def _entry(url: str | None, title: Any, summary: Any, guid: Any,
           published_at: dt.datetime | None) -> Entry | None:
    if url is None:
        return None
    clean_title = plain_text(title if isinstance(title, str) else "", TITLE_MAX) or url[:TITLE_MAX]
    if isinstance(guid, int) and not isinstance(guid, bool):
        guid = str(guid)  # the JSON Feed spec says a string; numbers are common
    guid_text = _UNWANTED.sub("", guid).strip()[:1000] if isinstance(guid, str) else None
    return Entry(url=url, title=clean_title,
                 summary=plain_text(summary if isinstance(summary, str) else ""),
                 guid=guid_text or None, published_at=published_at)


def _json_feed(data: bytes) -> Feed:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise FeedError("The JSON Feed is not valid JSON.") from None
    if not isinstance(document, dict) or not isinstance(document.get("items"), list):
        raise FeedError("The JSON document is not a JSON Feed (no items list).")
    base = _http_url(document.get("home_page_url")) or ""
    entries = []
    for item in document["items"][:ENTRIES_MAX]:
        if not isinstance(item, dict):
            continue
        summary = item.get("summary") or item.get("content_html") or item.get("content_text") or ""
        entry = _entry(_http_url(item.get("url") or item.get("external_url"), base),
                       item.get("title"), summary, item.get("id"),
                       _when_text(item.get("date_published")))
        if entry is not None:
            entries.append(entry)
    title = document.get("title")
    return Feed(title=plain_text(title if isinstance(title, str) else "", TITLE_MAX),
                entries=entries)


def _xml_feed(data: bytes) -> Feed:
    if _ENTITY.search(data):
        raise FeedError("The feed declares XML entities, which are refused (billion laughs).")
    parsed = feedparser.parse(data, resolve_relative_uris=False, sanitize_html=False)
    if parsed.get("bozo") and not parsed.entries:
        problem = parsed.get("bozo_exception")
        raise FeedError(f"The document is not an RSS or Atom feed ({problem}).")
    if not parsed.version and not parsed.entries:
        raise FeedError("The document is not an RSS or Atom feed.")
    base = _http_url(parsed.feed.get("link")) or ""
    entries = []
    for item in parsed.entries[:ENTRIES_MAX]:
        summary = item.get("summary") or ""
        if not summary and item.get("content"):
            summary = item["content"][0].get("value", "")
        # dict.get: feedparser's own get() maps a missing "updated" onto "published", warning.
        published = _when_struct(dict.get(item, "published_parsed")) or _when_struct(
            dict.get(item, "updated_parsed"))
        entry = _entry(_http_url(item.get("link"), base), item.get("title"), summary,
                       item.get("id"), published)
        if entry is not None:
            entries.append(entry)
    return Feed(title=plain_text(parsed.feed.get("title", ""), TITLE_MAX), entries=entries)


def parse_feed(data: bytes, content_type: str = "") -> Feed:
    """Return the feed in data (RSS, Atom or JSON Feed); raise FeedError when it is none."""
    head = data[:64].lstrip()
    if "json" in content_type.lower() or head.startswith((b"{", b"\xef\xbb\xbf{")):
        return _json_feed(data.removeprefix(b"\xef\xbb\xbf"))
    return _xml_feed(data)


class _Head(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.meta: dict[str, str] = {}
        self.title = ""
        self._in_title = False
        self.done = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k.lower(): v or "" for k, v in attrs}
        if tag == "title":
            self._in_title = True
        elif tag == "meta":
            key = (values.get("property") or values.get("name") or "").lower()
            if key and key not in self.meta:
                self.meta[key] = values.get("content", "")
        elif tag == "body":
            self.done = True

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        elif tag == "head":
            self.done = True

    def handle_data(self, data: str) -> None:
        if self._in_title and len(self.title) < TITLE_MAX * 4:
            self.title += data


@dataclass(frozen=True)
class PageMeta:
    """What a page says about itself."""

    title: str
    description: str


def page_metadata(data: bytes, charset: str = "utf-8") -> PageMeta:
    """Return a page's title (og:title, then <title>) and description (og:description,
    then meta description), as plain text."""
    try:
        markup = data[:PAGE_HEAD_MAX].decode(charset or "utf-8", errors="replace")
    except LookupError:
        markup = data[:PAGE_HEAD_MAX].decode("utf-8", errors="replace")
    reader = _Head()
    for start in range(0, len(markup), 8192):
        reader.feed(markup[start:start + 8192])
        if reader.done:
            break
    title = reader.meta.get("og:title") or reader.meta.get("twitter:title") or reader.title
    description = (reader.meta.get("og:description") or reader.meta.get("description")
                   or reader.meta.get("twitter:description") or "")
    return PageMeta(title=plain_text(html.escape(title), TITLE_MAX),
                    description=plain_text(html.escape(description)))
