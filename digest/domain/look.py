"""A newsletter's look: accent colours checked for contrast, email-safe fonts, footer text.

Contract: `check_look(data)` validates a look form as a whole and returns the Look, or
raises Invalid naming each bad field; an accent colour is refused when its contrast
against any background it is shown on (emails and pages, light or dark mode) is under
WCAG AA's 4.5:1 for text, and the message gives the measured ratios. `update_look`
applies a valid look to a newsletter (flushes; the caller commits). `look_of` reads a
newsletter's look as digest.mail renders it; `stylesheet` is the CSS the reader pages
and the archive load for it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlalchemy.orm import Session

from digest.core.models import Newsletter
from digest.core.validation import Invalid, text
from digest.mail.look import DEFAULT_LOOK, FONTS, Look

AA_TEXT = 4.5  # WCAG 2.x AA, normal-size text (links, the brand line, button labels)
# Where each accent is shown: links and the brand on these backgrounds, and (the last of
# each) the label of a button painted in the accent.
LIGHT_BACKGROUNDS = {
    "#ffffff": "the email's card and white button labels",
    "#fbfaf7": "the pages' background",
}
DARK_BACKGROUNDS = {
    "#1e1f25": "the email's card in dark mode",
    "#121316": "the email's background in dark mode",
    "#1f2026": "the pages' cards in dark mode",
    "#15161a": "the pages' background in dark mode",
    "#0d1020": "dark button labels",
}
_HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class LookInput:
    """What the look form carries (all text, as a browser sends it)."""

    accent: str = DEFAULT_LOOK.accent
    accent_dark: str = DEFAULT_LOOK.accent_dark
    heading_font: str = DEFAULT_LOOK.heading_font
    body_font: str = DEFAULT_LOOK.body_font
    footer_text: str = ""


def parse_colour(value: str) -> str | None:
    """Return a #rrggbb colour in lower case from #rgb or #rrggbb (with or without #), or None."""
    match = _HEX.match(value.strip())
    if not match:
        return None
    digits = match[1].lower()
    if len(digits) == 3:
        digits = "".join(c * 2 for c in digits)
    return f"#{digits}"


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """Return the WCAG relative luminance of a #rrggbb colour."""
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(first: str, second: str) -> float:
    """Return the WCAG contrast ratio of two #rrggbb colours (1 to 21)."""
    a, b = sorted((luminance(first), luminance(second)), reverse=True)
    return (a + 0.05) / (b + 0.05)


def _ratio(value: float) -> str:
    # Floor to one decimal: 4.48 must not read as a passing "4.5".
    return f"{int(value * 10) / 10:.1f}:1"


def contrast_problem(colour: str, backgrounds: dict[str, str], mode: str) -> str | None:
    """Return why colour fails WCAG AA on one of backgrounds (with every ratio), or None."""
    ratios = {bg: contrast(colour, bg) for bg in backgrounds}
    worst = min(ratios, key=lambda bg: ratios[bg])
    if ratios[worst] >= AA_TEXT:
        return None
    hint = "darker" if mode == "light" else "lighter"
    measured = "; ".join(f"{_ratio(r)} on {bg} ({backgrounds[bg]})" for bg, r in ratios.items())
    return (
        f"{colour} is too hard to read in {mode} mode: {_ratio(ratios[worst])} against "
        f"{worst}, and WCAG AA asks at least {AA_TEXT}:1 for text. Choose a {hint} colour. "
        f"Measured: {measured}."
    )


def check_look(data: LookInput) -> Look:
    """Return the look the form describes; raise Invalid naming each field it breaks."""
    errors: dict[str, str] = {}
    colours: dict[str, str] = {}
    for field, backgrounds, mode in (
        ("accent", LIGHT_BACKGROUNDS, "light"),
        ("accent_dark", DARK_BACKGROUNDS, "dark"),
    ):
        raw = getattr(data, field) or ""
        colour = parse_colour(raw)
        if colour is None:
            errors[field] = f"{raw.strip() or 'An empty value'} is not a colour such as #2c5cc5."
            continue
        problem = contrast_problem(colour, backgrounds, mode)
        if problem:
            errors[field] = problem
        colours[field] = colour
    for field in ("heading_font", "body_font"):
        if getattr(data, field) not in FONTS:
            errors[field] = "Choose one of the listed fonts."
    footer = text(data.footer_text, "footer_text", errors, max_length=500, multiline=True,
                  label="Footer text")
    if errors:
        raise Invalid(errors)
    return Look(colours["accent"], colours["accent_dark"], data.heading_font, data.body_font,
                footer)


def look_of(newsletter: Newsletter | None) -> Look:
    """Return a newsletter's look (the default one for no newsletter)."""
    if newsletter is None:
        return DEFAULT_LOOK
    return Look(newsletter.accent_color, newsletter.accent_color_dark, newsletter.heading_font,
                newsletter.body_font, newsletter.footer_text)


def as_input(look: Look) -> LookInput:
    """Return the look form filled with look."""
    return LookInput(look.accent, look.accent_dark, look.heading_font, look.body_font,
                     look.footer_text)


def update_look(session: Session, newsletter: Newsletter, data: LookInput) -> Look:
    """Apply a look form to the newsletter; raise Invalid (changing nothing) when it is bad."""
    look = check_look(data)
    newsletter.accent_color = look.accent
    newsletter.accent_color_dark = look.accent_dark
    newsletter.heading_font = look.heading_font
    newsletter.body_font = look.body_font
    newsletter.footer_text = look.footer_text
    session.flush()
    return look


def stylesheet(look: Look) -> str:
    """Return the CSS that gives the reader pages and the archive a newsletter's look."""
    return (
        f":root {{ --accent: {look.accent}; --accent-fg: #ffffff; "
        f"--font: {look.body.stack}; --heading-font: {look.heading.stack}; }}\n"
        "@media (prefers-color-scheme: dark) {\n"
        f"  :root {{ --accent: {look.accent_dark}; --accent-fg: #0d1020; }}\n"
        "}\n"
        "h1, h2, h3, .brand { font-family: var(--heading-font); }\n"
    )
