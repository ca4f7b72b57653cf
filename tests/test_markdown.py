"""Markdown: rendered, and nothing that can run survives."""

from __future__ import annotations

import re
from html.parser import HTMLParser

import pytest

from digest.mail.markdown import parse_markdown, render_email_tokens, render_markdown
from digest.mail.plaintext import markdown_to_text


def test_markdown_renders() -> None:
    """Headings, emphasis, lists, links and tables come out as HTML."""
    html = render_markdown("## Title\n\n**bold** [link](https://example.org)\n\n- a\n- b\n\n| x | y |\n|---|---|\n| 1 | 2 |\n")
    assert "<h2>Title</h2>" in html
    assert "<strong>bold</strong>" in html
    assert '<a href="https://example.org" rel="noopener noreferrer">link</a>' in html
    assert "<li>a</li>" in html and "<table>" in html


@pytest.mark.parametrize(
    "source",
    [
        "<script>alert(1)</script>",
        "[x](javascript:alert(1))",
        '<img src=x onerror="alert(1)">',
        "![x](javascript:alert(1))",
        "<a href='javascript:alert(1)'>x</a>",
        "[x](JaVaScRiPt:alert(1))",
        "[x](  javascript:alert(1) )",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
        "<iframe src='https://evil.example'></iframe>",
        '<svg onload="alert(1)">',
    ],
)
def test_nothing_executable_survives(source: str) -> None:
    """Scripts, event handlers and javascript: URLs never become elements or attributes."""
    elements = _elements(render_markdown(source))
    assert not {tag for tag, _ in elements} & {"script", "iframe", "svg", "object", "embed"}
    for _tag, attrs in elements:
        for name, value in attrs:
            assert not name.startswith("on")
            assert not (value or "").strip().lower().startswith("javascript:")


def test_raw_html_is_shown_not_interpreted() -> None:
    """An editor's raw HTML appears as text, so readers see what was typed."""
    assert "&lt;b&gt;hi&lt;/b&gt;" in render_markdown("<b>hi</b>")


def _elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    found: list[tuple[str, list[tuple[str, str | None]]]] = []

    class Collector(HTMLParser):
        def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
            found.append((tag, attrs))

    Collector().feed(html)
    return found


def test_sanitizer_strips_what_the_parser_might_let_through() -> None:
    """Defense in depth: the sanitizer alone removes handlers, scripts and bad schemes."""
    from digest.mail.markdown import sanitize_html

    html = sanitize_html('<a href="javascript:alert(1)" onclick="x">y</a><img src="data:x" onerror="1"><script>x</script>')
    assert html == '<a rel="noopener noreferrer">y</a><img>'


def test_email_html_is_shaped_for_mail_clients() -> None:
    """In an email, headings rank below the post's title, pictures (linked or not) stand on
    their own at the column's width, quotes and code sit in cells Outlook pads, tables keep
    their alignment and header scope; the text part from the same tokens is unchanged."""
    source = (
        "# Top\n\n### Third\n\nSee ![a dot](https://example.org/dot.png) inline.\n\n"
        "![A chart](https://example.org/chart.png)\n\n"
        "[![A linked chart](https://example.org/linked.png)](https://example.org/post)\n\n"
        "> Quoted\n\n```\ncode\n```\n\n| A | B |\n|:-:|--:|\n| 1 | 2 |\n"
    )
    tokens = parse_markdown(source)
    text_before = markdown_to_text(tokens)
    html = render_email_tokens(tokens, 3)
    assert "<h4>Top</h4>" in html and "<h6>Third</h6>" in html and "<h1>" not in html
    assert '<p>See <img src="https://example.org/dot.png" alt="a dot" width="518"> inline.</p>' in html
    assert '<img src="https://example.org/chart.png" alt="A chart" width="518">' in html
    assert re.search(r'<a href="https://example.org/post"[^>]*><img [^>]*width="518"></a>', html)
    assert not re.search(r"<p>\s*(<a [^>]*>)?<img", html)  # no picture alone in a paragraph
    assert '<td class="quote-cell"><blockquote>' in html and "</blockquote></td></tr></table>" in html
    assert '<td class="code-cell"><pre><code>code' in html and "</pre></td></tr></table>" in html
    assert '<th align="center" scope="col">A</th>' in html and '<td align="right">2</td>' in html
    assert markdown_to_text(tokens) == text_before
    assert "<h1>Top</h1>" in render_markdown(source)  # pages keep the author's headings
