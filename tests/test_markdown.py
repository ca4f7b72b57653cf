"""Markdown: rendered, and nothing that can run survives."""

from __future__ import annotations

from html.parser import HTMLParser

import pytest

from digest.mail.markdown import render_markdown


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
