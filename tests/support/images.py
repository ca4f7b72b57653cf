"""Image files for the media tests, made with Pillow: photos with EXIF and GPS, bombs,
animations, and files that only pretend to be images."""

from __future__ import annotations

import io

from PIL import Image, ImageDraw

CAMERA = "Canon EOS Testcam"


def photo(width: int = 1600, height: int = 1000, fmt: str = "JPEG") -> bytes:
    """Return a photo with a camera make, a GPS position and an orientation in its EXIF."""
    image = Image.new("RGB", (width, height), (40, 120, 200))
    ImageDraw.Draw(image).ellipse((width // 4, height // 4, width // 2, height // 2), fill=(250, 200, 0))
    exif = Image.Exif()
    exif[0x010F] = CAMERA
    exif[0x0112] = 1
    gps = exif.get_ifd(0x8825)
    gps[1], gps[2], gps[3], gps[4] = "N", (52.0, 31.0, 12.0), "E", (13.0, 24.0, 18.0)
    out = io.BytesIO()
    image.save(out, fmt, exif=exif.tobytes())
    return out.getvalue()


def png(width: int = 300, height: int = 200, color: tuple[int, int, int, int] = (200, 30, 30, 255)) -> bytes:
    """Return a plain PNG."""
    out = io.BytesIO()
    Image.new("RGBA", (width, height), color).save(out, "PNG")
    return out.getvalue()


def bomb(side: int = 20_000) -> bytes:
    """Return a PNG of side × side pixels that compresses to a few kilobytes."""
    out = io.BytesIO()
    Image.new("1", (side, side)).save(out, "PNG", optimize=True)
    return out.getvalue()


def animation(frames: int, width: int = 120, height: int = 40) -> bytes:
    """Return an animated GIF of distinct frames."""
    images = []
    for number in range(frames):
        frame = Image.new("RGB", (width, height), (255, 255, 255))
        ImageDraw.Draw(frame).rectangle((number * 3, 0, number * 3 + 8, 8), fill=(200, 0, 0))
        images.append(frame)
    out = io.BytesIO()
    images[0].save(out, "GIF", save_all=True, append_images=images[1:], duration=80, loop=0)
    return out.getvalue()


SCRIPTED_SVG = (b'<?xml version="1.0"?>\n<svg xmlns="http://www.w3.org/2000/svg" width="10" '
                b'height="10"><script>alert(document.cookie)</script><rect width="10" height="10"/></svg>')

