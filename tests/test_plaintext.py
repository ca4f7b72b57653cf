"""Markdown to the text part: readable prose, not stripped HTML."""

from __future__ import annotations

from digest.mail.plaintext import markdown_to_text, wrap


def test_paragraphs_wrap_and_links_become_references() -> None:
    """Paragraphs wrap at 72 columns; links read as "text [n]" with whole URLs listed below."""
    source = (
        "We re-ran the [retrieval benchmark](https://example.org/a-very/long/path/to/the/benchmark"
        "?with=query&and=more) with chunk sizes from 128 to 2,048 tokens while holding the "
        "embedding model fixed, as [the paper](https://example.org/paper) and "
        "[the benchmark](https://example.org/a-very/long/path/to/the/benchmark?with=query&and=more) "
        "suggest. See <https://example.org/auto> or write to [us](mailto:editors@example.org)."
    )
    text = markdown_to_text(source)
    lines = text.split("\n")
    assert all(len(line) <= 72 for line in lines if "://" not in line)
    assert "retrieval benchmark [1]" in " ".join(text.split())
    assert "the paper [2]" in " ".join(text.split())
    assert "the benchmark [1]" in " ".join(text.split())  # the same URL keeps its number
    assert "https://example.org/auto" in text and "mailto:editors" in text
    assert lines[-3:] == [
        "[1] https://example.org/a-very/long/path/to/the/benchmark?with=query&and=more",
        "[2] https://example.org/paper",
        "[3] mailto:editors@example.org",
    ]
    assert "<" not in text and "](" not in text


def test_structure_survives() -> None:
    """Headings, nested lists, numbered lists, quotes, code and tables stay readable."""
    source = """## Results

1. first
2. second, a long item that goes on and on until it must wrap onto the next line
   - nested point

> Measured, not guessed.
> Twice.

```
x  =  1
```

| model | score |
|-------|------:|
| small | 71 |
| large | 84 |

***
**Bold** and *em* and `code`.
"""
    text = markdown_to_text(source)
    assert text.startswith("Results\n-------\n\n1. first\n2. second, a long item")
    assert "until it must wrap onto the\n   next line\n   - nested point\n" in text
    assert "> Measured, not guessed. Twice." in text
    assert "\n    x  =  1\n" in text
    assert "model | score\n------+------\nsmall | 71\nlarge | 84" in text
    assert "* * *" in text
    assert "Bold and em and code." in text


def test_html_in_markdown_is_text_and_unsafe_links_are_dropped() -> None:
    """Raw HTML is shown as typed; a javascript: link keeps its label but never its URL."""
    text = markdown_to_text('<b>hi</b> [label](https://ok.example) [bad](javascript:alert(1) "t")')
    assert "<b>hi</b>" in text and "label [1]" in text
    assert "[1] https://ok.example" in text


def test_wrap_keeps_paragraphs_and_long_urls() -> None:
    """wrap() refills each paragraph and never breaks a URL."""
    url = "https://example.org/" + "x" * 90
    assert wrap(f"one two\n\n\nthree {url} four", 20) == f"one two\n\nthree\n{url}\nfour"
