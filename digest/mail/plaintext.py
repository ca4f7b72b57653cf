"""Markdown to readable plain text, for the text part of every email.

The text comes from the Markdown token tree (the same parser as the HTML), never from
HTML: paragraphs are wrapped, lists keep hanging indents, quotes are prefixed with "> ",
code stays verbatim and indented, and links become numbered references ("text [1]")
listed under the text, so a paragraph reads like prose and every URL is whole on its
own line. Wrapping is the expensive step: do it once per issue, not per reader.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass, field
from functools import lru_cache
from urllib.parse import urlsplit

from markdown_it.token import Token
from markdown_it.tree import SyntaxTreeNode

from digest.mail.markdown import URL_SCHEMES, parse_markdown

WIDTH = 72
MIN_WIDTH = 24


@lru_cache(maxsize=64)
def _wrapper(width: int) -> textwrap.TextWrapper:
    # URLs and long words are never split: a broken URL is a dead link.
    return textwrap.TextWrapper(width=width, break_long_words=False, break_on_hyphens=False)


def wrap(text: str, width: int = WIDTH) -> str:
    """Return plain text with each paragraph wrapped; line breaks inside one are kept."""
    paragraphs = [p for p in text.replace("\r\n", "\n").split("\n\n") if p.strip()]
    return "\n\n".join(
        "\n".join(_wrapper(width).fill(line) or "" for line in p.strip("\n").split("\n"))
        for p in paragraphs
    )


def _safe_url(url: str) -> str | None:
    scheme = urlsplit(url).scheme.lower()
    return url if scheme in URL_SCHEMES else None


@dataclass
class _Refs:
    urls: list[str] = field(default_factory=list)

    def number(self, url: str) -> int:
        if url not in self.urls:
            self.urls.append(url)
        return self.urls.index(url) + 1


def _inline(node: SyntaxTreeNode, refs: _Refs) -> str:
    out: list[str] = []
    for child in node.children:
        kind = child.type
        if kind in ("text", "code_inline", "html_inline"):
            out.append(child.content)
        elif kind == "softbreak":
            out.append(" ")
        elif kind == "hardbreak":
            out.append("\n")
        elif kind == "link":
            label = _inline(child, refs)
            url = _safe_url(str(child.attrs.get("href", "")))
            if url is None:
                out.append(label)
            elif label.strip() in (url, url.removeprefix("mailto:")):
                out.append(url.removeprefix("mailto:"))
            else:
                out.append(f"{label} [{refs.number(url)}]")
        elif kind == "image":
            alt = _inline(child, refs).strip()
            out.append(f"[{alt}]" if alt else "")
        else:  # em, strong, s and anything new: their text
            out.append(_inline(child, refs))
    return "".join(out)


def _prefix(text: str, first: str, rest: str) -> str:
    lines = text.split("\n")
    return "\n".join(
        (first if i == 0 else rest) + line if line else line.rstrip()
        for i, line in enumerate(lines)
    )


def _list(node: SyntaxTreeNode, width: int, refs: _Refs) -> str:
    ordered = node.type == "ordered_list"
    start = int(node.attrs.get("start", 1)) if ordered else 1
    items = node.children
    markers = [f"{start + i}." if ordered else "-" for i in range(len(items))]
    indent = max(len(m) for m in markers) + 1 if markers else 2
    tight = all(
        grandchild.hidden
        for item in items
        for grandchild in item.children
        if grandchild.type == "paragraph"
    )
    rendered = [
        _prefix(
            _blocks(item.children, width - indent, refs, "\n" if tight else "\n\n"),
            marker.ljust(indent),
            " " * indent,
        )
        for item, marker in zip(items, markers, strict=True)
    ]
    return ("\n" if tight else "\n\n").join(rendered)


def _table(node: SyntaxTreeNode, refs: _Refs) -> str:
    rows = [
        [
            " ".join(_inline(cell.children[0], refs).split()) if cell.children else ""
            for cell in tr.children
        ]
        for part in node.children
        for tr in part.children
    ]
    if not rows:
        return ""
    columns = max(len(r) for r in rows)
    widths = [max(len(r[i]) if i < len(r) else 0 for r in rows) for i in range(columns)]
    lines = [" | ".join(cell.ljust(widths[i]) for i, cell in enumerate(r)).rstrip() for r in rows]
    lines.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(lines)


def _block(node: SyntaxTreeNode, width: int, refs: _Refs) -> str:
    width = max(width, MIN_WIDTH)
    kind = node.type
    if kind == "paragraph":
        return "\n".join(
            _wrapper(width).fill(line) for line in _inline(node.children[0], refs).split("\n")
        )
    if kind == "heading":
        text = wrap(" ".join(_inline(node.children[0], refs).split()), width)
        level = int(node.tag[1])
        if level > 2:
            return text
        underline = ("=" if level == 1 else "-") * max(len(line) for line in text.split("\n"))
        return f"{text}\n{underline}"
    if kind in ("bullet_list", "ordered_list"):
        return _list(node, width, refs)
    if kind == "blockquote":
        return _prefix(_blocks(node.children, width - 2, refs), "> ", "> ").replace("\n\n", "\n>\n")
    if kind in ("fence", "code_block"):
        return "\n".join(f"    {line}".rstrip() for line in node.content.rstrip("\n").split("\n"))
    if kind == "hr":
        return "* * *"
    if kind == "table":
        return _table(node, refs)
    if kind == "html_block":
        return wrap(node.content, width)
    return _blocks(node.children, width, refs)


def _blocks(nodes: list[SyntaxTreeNode], width: int, refs: _Refs, sep: str = "\n\n") -> str:
    return sep.join(text for node in nodes if (text := _block(node, width, refs)))


def markdown_to_text(source: str | list[Token], width: int = WIDTH) -> str:
    """Return Markdown (source or parse_markdown tokens) as wrapped text, links listed below."""
    refs = _Refs()
    tokens = parse_markdown(source) if isinstance(source, str) else source
    text = _blocks(SyntaxTreeNode(tokens).children, width, refs)
    if refs.urls:
        text += "\n\n" + "\n".join(f"[{i}] {url}" for i, url in enumerate(refs.urls, 1))
    return text
