"""Markdown to safe HTML: CommonMark (plus tables and strikethrough), then nh3.

Every post body and issue intro passes through `render_markdown` (pages) or
`render_email_tokens` (emails) before any template sees it; raw HTML in the source is
escaped by the parser and anything that still slips through (a javascript: link, an
event handler) is removed by the sanitizer. Emails get the same HTML shaped for mail
clients: headings moved below the heading they sit under, images sized to the column
and out of their paragraphs, quotes and code in padded table cells (Outlook pads and
borders only table cells).
"""

from __future__ import annotations

import copy
import re
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
    "th": {"align", "scope"},
}
# The width of the emails' text column (600 px card, less its border and 40 px gutters):
# Outlook draws an image at the width its attribute says, or at its natural size.
EMAIL_IMAGE_WIDTH = 518
_ALIGN = re.compile(r"text-align:\s*(left|right|center)")
# Block elements Outlook neither pads nor borders: each is wrapped in a table cell the
# stylesheet pads (nh3's output is well-formed, so these strings are only ever tags).
_CELL = '<table role="presentation" class="{0}" width="100%" cellpadding="0" cellspacing="0" border="0"><tr><td class="{0}-cell">'
_WRAPPED = {
    "<blockquote>": _CELL.format("quote") + "<blockquote>",
    "</blockquote>": "</blockquote></td></tr></table>",
    "<pre>": _CELL.format("code") + "<pre>",
    "</pre>": "</pre></td></tr></table>",
}
_WRAP = re.compile("|".join(map(re.escape, _WRAPPED)))
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
    return sanitize_html(parser.renderer.render(_cells(tokens), parser.options, {}))


def render_email_tokens(tokens: list[Token], heading_below: int) -> str:
    """Return sanitized HTML of tokens for an email, its headings ranked below h{heading_below}."""
    tokens = copy.deepcopy(tokens)  # the caller renders the text part from the same tokens
    for i, token in enumerate(tokens):
        if token.type in ("heading_open", "heading_close"):
            token.tag = f"h{min(6, int(token.tag[1]) + heading_below)}"
        elif token.type == "paragraph_open" and _only_images(tokens[i + 1]):
            token.hidden = tokens[i + 2].hidden = True  # an image stands as a block, not in a line
        elif token.type == "inline":
            for child in token.children or []:
                if child.type == "image":
                    child.attrSet("width", str(EMAIL_IMAGE_WIDTH))
    return _WRAP.sub(lambda match: _WRAPPED[match.group(0)], render_tokens(tokens))


def _only_images(inline: Token) -> bool:
    children = inline.children or []
    return any(c.type == "image" for c in children) and all(
        c.type in ("image", "softbreak", "link_open", "link_close")
        or (c.type == "text" and not c.content.strip())
        for c in children
    )


def _cells(tokens: list[Token]) -> list[Token]:
    # markdown-it aligns table cells with style="text-align:…", which the sanitizer drops
    # (and mail clients may too): use the align attribute; header cells name their scope.
    for token in tokens:
        if token.type in ("th_open", "td_open"):
            style = str(token.attrGet("style") or "")
            if match := _ALIGN.search(style):
                token.attrs.pop("style", None)
                token.attrSet("align", match.group(1))
            if token.type == "th_open":
                token.attrSet("scope", "col")
    return tokens


_HTML_IMG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_HTML_ALT = re.compile(r"""\balt\s*=\s*(?:"\s*[^"\s][^"]*"|'\s*[^'\s][^']*'|[^\s"'>]+)""", re.IGNORECASE)


def images_without_alt(source: str) -> list[str]:
    """Return the address of every image in a Markdown source that has no description."""
    missing = []
    for token in parse_markdown(source):
        for child in token.children or ():
            if child.type == "image" and not child.content.strip():
                missing.append(str(child.attrGet("src") or ""))
            elif child.type == "html_inline":
                missing += [tag for tag in _HTML_IMG.findall(child.content) if not _HTML_ALT.search(tag)]
        if token.type == "html_block":
            missing += [tag for tag in _HTML_IMG.findall(token.content) if not _HTML_ALT.search(tag)]
    return missing
