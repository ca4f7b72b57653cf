"""Markdown to safe HTML: CommonMark (plus tables and strikethrough), then nh3.

Every post body and issue intro passes through `render_markdown` before any template
sees it; raw HTML in the source is escaped by the parser and anything that still
slips through (a javascript: link, an event handler) is removed by the sanitizer.
"""

from __future__ import annotations

from functools import lru_cache

import nh3
from markdown_it import MarkdownIt
from markdown_it.token import Token

ALLOWED_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "del", "em", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "li", "ol", "p", "pre", "s", "strong", "sub", "sup",
    "table", "tbody", "td", "th", "thead", "tr", "ul",
}
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "width", "height"},
    "ol": {"start"},
    "td": {"align"},
    "th": {"align"},
}
URL_SCHEMES = {"http", "https", "mailto"}


@lru_cache(maxsize=1)
def _parser() -> MarkdownIt:
    # html=False: raw HTML in the source is shown as text, never interpreted.
    return MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False}).enable(
        ["table", "strikethrough"]
    )


def sanitize_html(html: str) -> str:
    """Return html with only the allowed tags, attributes and URL schemes left."""
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=URL_SCHEMES,
        link_rel="noopener noreferrer",
    )


def render_markdown(source: str) -> str:
    """Return sanitized HTML for a Markdown source."""
    return render_tokens(parse_markdown(source))


def parse_markdown(source: str) -> list[Token]:
    """Return the token stream of a Markdown source, from the parser render_markdown uses."""
    return _parser().parse(source)


def render_tokens(tokens: list[Token]) -> str:
    """Return sanitized HTML for tokens from parse_markdown (parse once, render HTML and text)."""
    parser = _parser()
    return sanitize_html(parser.renderer.render(tokens, parser.options, {}))
