"""The demo's pictures, drawn with Pillow when the demo loads: lead images, the pictures
of the notebook post, and the logo in its light and dark variants. Nothing is fetched.

Each function returns the encoded bytes of one image, as an editor's upload would be.
"""

from __future__ import annotations

import io
import math
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

Colour = tuple[int, int, int]
INK: Colour = (28, 32, 48)
PAPER: Colour = (248, 247, 243)
# Two colours per section: the gradient a lead image runs through.
PALETTES: dict[str, tuple[Colour, Colour]] = {
    "news": ((33, 52, 110), (96, 64, 170)),
    "engineers": ((14, 84, 92), (46, 140, 110)),
    "startups": ((140, 48, 40), (214, 122, 52)),
    "tools": ((52, 60, 78), (92, 118, 170)),
    "careers": ((88, 40, 96), (190, 80, 110)),
}


@lru_cache(maxsize=16)
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size)


def _encoded(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    if fmt == "JPEG":
        image.convert("RGB").save(out, "JPEG", quality=90)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def _mix(a: Colour, b: Colour, t: float) -> Colour:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


def lead(section: str, label: str, seed: int, size: tuple[int, int] = (1200, 630)) -> bytes:
    """Return a JPEG lead image: the section's diagonal gradient, soft circles, the label."""
    first, second = PALETTES[section]
    width, height = size
    # A diagonal gradient from a small ramp, scaled up (smooth, and fast to draw).
    down = Image.linear_gradient("L")
    ramp = Image.blend(down, down.transpose(Image.Transpose.ROTATE_90), 0.5).resize(
        size, Image.Resampling.BILINEAR)
    image = Image.composite(Image.new("RGB", size, second), Image.new("RGB", size, first), ramp)
    shapes = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(shapes)
    for n in range(5):
        angle = seed * 1.7 + n * 2.1
        x = width * (0.55 + 0.35 * math.cos(angle))
        y = height * (0.45 + 0.4 * math.sin(angle * 1.3))
        radius = height * (0.12 + 0.07 * ((seed + n) % 4))
        draw.ellipse((x - radius, y - radius, x + radius, y + radius),
                     fill=(*_mix(PAPER, second, 0.3), 46 + 12 * n))
    image = Image.alpha_composite(image.convert("RGBA"), shapes)
    text = ImageDraw.Draw(image)
    text.rounded_rectangle((60, height - 190, 60 + 14, height - 70), radius=7, fill=PAPER)
    text.text((100, height - 190), section.upper(), font=_font(34), fill=(*PAPER, 210))
    text.text((100, height - 140), label, font=_font(60), fill=PAPER)
    return _encoded(image, "JPEG")


def diff_screenshot(size: tuple[int, int] = (2400, 1350)) -> bytes:
    """Return a PNG of a code review's notebook diff: old cells left, new cells right."""
    width, height = size
    image = Image.new("RGB", size, PAPER)
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, width, 110), fill=INK)
    draw.text((60, 30), "notebooks/retrieval.ipynb", font=_font(48), fill=PAPER)
    half = width // 2
    for side, (tint, mark) in enumerate((((253, 226, 226), "-"), ((222, 246, 228), "+"))):
        left = 60 + side * half
        draw.text((left, 150), ("Before" if side == 0 else "After"), font=_font(44), fill=INK)
        for row in range(9):
            top = 240 + row * 118
            changed = row in (2, 3, 6)
            draw.rounded_rectangle((left, top, left + half - 120, top + 92), radius=14,
                                   fill=tint if changed else (236, 235, 230))
            draw.text((left + 24, top + 22), mark if changed else " ", font=_font(40), fill=INK)
            length = (half - 320) * (0.45 + 0.5 * ((row * 7 + side * 3) % 5) / 4)
            draw.rounded_rectangle((left + 80, top + 34, left + 80 + length, top + 58), radius=12,
                                   fill=_mix(INK, PAPER, 0.55))
    draw.line((half, 130, half, height - 40), fill=_mix(INK, PAPER, 0.7), width=4)
    return _encoded(image, "PNG")


def chart(values: tuple[int, ...], caption: str, size: tuple[int, int] = (1200, 800)) -> bytes:
    """Return a PNG bar chart of percentages with a caption."""
    width, height = size
    image = Image.new("RGB", size, PAPER)
    draw = ImageDraw.Draw(image)
    draw.text((60, 40), caption, font=_font(44), fill=INK)
    base, top = height - 90, 150
    draw.line((60, base, width - 60, base), fill=INK, width=4)
    slot = (width - 120) / len(values)
    for n, value in enumerate(values):
        left = 60 + n * slot + slot * 0.18
        bar_top = base - (base - top) * value / 100
        draw.rectangle((left, bar_top, left + slot * 0.64, base - 2), fill=PALETTES["engineers"][1])
        draw.text((left, bar_top - 46), f"{value}%", font=_font(34), fill=INK)
    return _encoded(image, "PNG")


def settings_panel(size: tuple[int, int] = (320, 120)) -> bytes:
    """Return a PNG of a small settings panel with one switch, turned on."""
    width, height = size
    image = Image.new("RGB", size, (236, 235, 230))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((8, 8, width - 8, height - 8), radius=14, fill=PAPER, outline=(200, 198, 190))
    draw.text((28, 44), "Diff notebooks", font=_font(24), fill=INK)
    draw.rounded_rectangle((220, 42, 290, 78), radius=18, fill=PALETTES["engineers"][1])
    draw.ellipse((256, 46, 284, 74), fill=PAPER)
    return _encoded(image, "PNG")


def logo(name: str, ink: Colour, size: tuple[int, int] = (640, 128)) -> bytes:
    """Return a transparent PNG logo: a ringed mark and the newsletter's name in ink."""
    width, height = size
    image = Image.new("RGBA", size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    accent = PALETTES["news"][1]
    draw.ellipse((8, 14, 8 + height - 28, height - 14), outline=ink, width=10)
    draw.ellipse((38, 44, height - 50, height - 44), fill=accent)
    draw.text((height + 4, height // 2), name, font=_font(56), fill=ink, anchor="lm")
    return _encoded(image.crop((0, 0, min(width, height + 24 + int(draw.textlength(name, font=_font(56)))),
                                height)), "PNG")
