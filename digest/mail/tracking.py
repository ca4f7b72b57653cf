"""Click and open tracking in a rendered digest: which links an issue has, and the
rewriting of a variant's parts so each link becomes a per-reader slot.

Contract: `link_table` numbers an issue's http(s) links (the web version, links in the
intro, each post's link and the links in its body) once per issue, keeping the indices
earlier sends gave (`Tracking.known_links`) and appending new ones, with the post and
section each belongs to. `rewrite` turns, in a variant's HTML and text already rendered
with markers, every link of the table into the marker `link<i>` (the reader's signed
redirect is filled in per message, a string substitution) and adds the open pixel
(marker `open_url`) when the issue counts opens. Unsubscribe and preference links are
markers already, never http(s) URLs, so they are never rewritten; neither is a mailto:.
"""

from __future__ import annotations

import html as html_lib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

OPEN_LINK = 0xFFFF  # the link index a message's open pixel is counted under
_HREF = re.compile(r'(<a\b[^>]*?\bhref=")([^"]*)(")', re.IGNORECASE)
# A rewritten href goes on a line of its own (a line break between attributes is plain
# whitespace to HTML): only that short line is encoded per reader, not the paragraph.
_REWRITTEN = re.compile(r'(<a\b[^>]*?)\s+(href=")([^"]*)(")\s*', re.IGNORECASE)
_TEXT_URL = re.compile(r"https?://[^\s<>\"]+")
_BODY_END = re.compile(r"</body>", re.IGNORECASE)


@dataclass(frozen=True)
class Tracking:
    """Whether an issue's links are rewritten and an open pixel added, and the links its
    tokens already name (by index, from earlier sends of the issue: kept in place)."""

    clicks: bool = False
    opens: bool = False
    known_links: tuple[str, ...] = ()


class _Post(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def url(self) -> str: ...
    @property
    def body_html(self) -> str: ...


class _Section(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def posts(self) -> Sequence[_Post]: ...


@dataclass(frozen=True)
class TrackedLink:
    """One link of an issue: its index in click tokens, target, and where it appears."""

    index: int
    url: str
    post_id: int | None
    section_id: int | None


class _Markers(Protocol):
    def __getitem__(self, slot: str) -> str: ...


@dataclass(frozen=True)
class LinkTable:
    """An issue's links by index and by URL."""

    links: tuple[TrackedLink, ...]
    by_url: dict[str, int]

    def slots(self, opens: bool) -> dict[str, str]:
        """Return the slots (name → label) a tracked variant may hold."""
        slots = {f"link{link.index}": f"link {link.index}" for link in self.links}
        return {**slots, "open_url": "open pixel"} if opens else slots


def _hrefs(html: str) -> list[str]:
    return [html_lib.unescape(m.group(2)) for m in _HREF.finditer(html)]


def _trackable(url: str) -> bool:
    return url.startswith(("https://", "http://"))


def link_table(
    sections: Iterable[_Section], web_url: str, intro_html: str, tracking: Tracking
) -> LinkTable:
    """Return the issue's links, numbered as the module doc says (empty without clicks)."""
    if not tracking.clicks:
        return LinkTable((), {})
    found: list[tuple[str, int | None, int | None]] = [(web_url, None, None)]
    found += [(url, None, None) for url in _hrefs(intro_html)]
    for section in sections:
        for post in section.posts:
            found.append((post.url, post.id, section.id))
            found += [(url, post.id, section.id) for url in _hrefs(str(post.body_html))]
    place: dict[str, tuple[int | None, int | None]] = {}
    for url, post_id, section_id in found:
        if _trackable(url):
            place.setdefault(url, (post_id, section_id))
    urls = list(tracking.known_links) + [u for u in place if u not in set(tracking.known_links)]
    links = tuple(TrackedLink(i, url, *place.get(url, (None, None))) for i, url in enumerate(urls))
    return LinkTable(links, {link.url: link.index for link in reversed(links)})


def rewrite(
    html: str, text: str, table: LinkTable, markers: _Markers, tracking: Tracking
) -> tuple[str, str, list[int]]:
    """Return (HTML, text) with the table's links turned into link markers and the open
    pixel added, and the indices of the links they hold."""
    used: dict[int, None] = {}

    def marker(url: str) -> str | None:
        index = table.by_url.get(url)
        if index is None:
            return None
        used[index] = None
        return markers[f"link{index}"]

    def href(match: re.Match[str]) -> str:
        found = marker(html_lib.unescape(match.group(3)))
        if found is None:
            return match.group(0)
        return f"{match.group(1)}\n{match.group(2)}{found}{match.group(4)}\n"

    def bare(match: re.Match[str]) -> str:
        return marker(match.group(0)) or match.group(0)

    html = _REWRITTEN.sub(href, html)
    text = _TEXT_URL.sub(bare, text)
    if tracking.opens:
        pixel = (
            f'<img src="{markers["open_url"]}" width="1" height="1" alt="" '
            'style="display:block;width:1px;height:1px;border:0">'
        )
        html = _BODY_END.sub(lambda _: pixel + "</body>", html, count=1)
    return html, text, list(used)
