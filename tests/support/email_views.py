"""An email's HTML as different mail clients would show it, for the browser tests.

`as_is` is the message as sent. `without_styles` drops every <style> block, as Gmail does
for non-Google accounts. `like_outlook` approximates Word's engine in Outlook for Windows:
it opens the `<!--[if mso]>` blocks (the ghost table, the button spacers), drops the
<style> blocks (Word reads no @media), uses mso-padding-alt where given, and removes the
CSS Word ignores (caniemail: padding off table cells, borders on p, div and inline
elements, max-width off tables, width on images, display, border-radius).
"""

from __future__ import annotations

import re

_STYLE = re.compile(r"<style\b[^>]*>.*?</style>", re.DOTALL | re.IGNORECASE)
_MSO_BLOCK = re.compile(r"<!--\[if mso\]>(.*?)<!\[endif\]-->", re.DOTALL)
_TAG_STYLE = re.compile(r'<(\w+)([^>]*?)\sstyle="([^"]*)"')
_CELLS = {"td", "th"}
_UNBORDERED = {"p", "div", "span", "a"}  # caniemail: borders there are unreliable in Word


def as_is(html: str) -> str:
    """Return html unchanged."""
    return html


def without_styles(html: str) -> str:
    """Return html without its <style> blocks (inline styles stay)."""
    return _STYLE.sub("", html)


def like_outlook(html: str) -> str:
    """Return html as Word's engine would lay it out, roughly (see the module doc)."""
    html = _MSO_BLOCK.sub(lambda m: _STYLE.sub("", m.group(1)), html)
    html = _STYLE.sub("", html)
    return _TAG_STYLE.sub(_word_style, html)


def _word_style(match: re.Match[str]) -> str:
    tag, attrs, style = match.group(1).lower(), match.group(2), match.group(3)
    declarations = [d.strip() for d in style.split(";") if ":" in d]
    by_name = {d.split(":", 1)[0].strip().lower(): d.split(":", 1)[1].strip() for d in declarations}
    kept = []
    for name, value in by_name.items():
        if name.startswith("padding") and tag not in _CELLS:
            continue
        if name.startswith("border") and name != "border-radius" and tag in _UNBORDERED:
            continue
        if name == "max-width" and tag != "table":
            continue
        if name in ("display", "border-radius") or (name == "width" and tag == "img"):
            continue
        if name.startswith("padding") and "mso-padding-alt" in by_name:
            continue
        if name == "mso-padding-alt":
            name = "padding"
        kept.append(f"{name}: {value}")
    return f'<{match.group(1)}{attrs} style="{"; ".join(kept)}"'


VIEWS = {"as-is": as_is, "no-style": without_styles, "outlook": like_outlook, "dark": as_is}
