"""A newsletter's look as its emails and pages show it: accent colours, fonts, footer text.

Contract: `Look` is plain data the templates read as `look` (emails: the digest's and the
reader's emails' context; pages: the newsletter's stylesheet). `FONTS` are the email-safe
stacks a newsletter may choose from, each with the font Outlook for Windows is told to use
(it ignores a stack whose first font it lacks and falls back to Times New Roman).
`DEFAULT_LOOK` is the look every email had before newsletters chose their own.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape


@dataclass(frozen=True)
class Font:
    """An email-safe font stack and the stack Outlook for Windows gets."""

    label: str
    stack: Markup  # written into <style> as it is: these are constants, never input
    mso: Markup


def _font(label: str, stack: str, mso: str) -> Font:
    return Font(label, Markup(stack), Markup(mso))  # noqa: S704 (constants of this module)


FONTS: dict[str, Font] = {
    "system": _font(
        "System sans-serif (San Francisco, Segoe UI, Roboto)",
        '-apple-system, BlinkMacSystemFont, "Segoe UI", Roboto, Helvetica, Arial, sans-serif',
        '"Segoe UI", Arial, sans-serif',
    ),
    "helvetica": _font("Helvetica, Arial", "Helvetica, Arial, sans-serif", "Arial, sans-serif"),
    "verdana": _font("Verdana", "Verdana, Geneva, sans-serif", "Verdana, sans-serif"),
    "trebuchet": _font(
        "Trebuchet MS", '"Trebuchet MS", "Lucida Grande", sans-serif', '"Trebuchet MS", sans-serif'
    ),
    "georgia": _font(
        "Georgia", 'Georgia, "Times New Roman", Times, serif', 'Georgia, "Times New Roman", serif'
    ),
    "palatino": _font(
        "Palatino",
        '"Palatino Linotype", Palatino, "Book Antiqua", Georgia, serif',
        '"Palatino Linotype", "Book Antiqua", serif',
    ),
    "times": _font(
        "Times New Roman", '"Times New Roman", Times, serif', '"Times New Roman", serif'
    ),
    "courier": _font(
        "Courier New (monospace)", '"Courier New", Courier, monospace', '"Courier New", monospace'
    ),
}


@dataclass(frozen=True)
class Look:
    """What a newsletter chose for its look; fonts are keys of FONTS."""

    accent: str = "#2c5cc5"  # links, brand and buttons on light backgrounds
    accent_dark: str = "#93b2ff"  # the same in dark mode
    heading_font: str = "georgia"
    body_font: str = "system"
    footer_text: str = ""

    @property
    def footer_html(self) -> Markup:
        """Return the footer text as HTML: escaped, its line breaks kept."""
        return Markup("<br>\n").join(escape(line) for line in self.footer_text.split("\n"))

    @property
    def heading(self) -> Font:
        """Return the heading font stack."""
        return FONTS.get(self.heading_font, FONTS["georgia"])

    @property
    def body(self) -> Font:
        """Return the body font stack."""
        return FONTS.get(self.body_font, FONTS["system"])


DEFAULT_LOOK = Look()
