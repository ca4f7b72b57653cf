"""Images editors upload: checked, decoded and re-encoded, stored in sizes, listed for reuse.

Contract: `upload` takes the bytes and the name a browser or program sent and either
returns a flushed Media row whose sizes are all stored, or raises Refused with one
sentence saying why, having stored nothing (a size already put is deleted again). Every
upload is decoded by Pillow and written anew, so nothing of the original file survives but
its pixels: no EXIF (camera, GPS position), no comments, no colour-profile tricks, no
trailing bytes. Refused: anything Pillow cannot decode as PNG, JPEG, GIF or WebP; a name
whose extension says another format; more bytes than DIGEST_MEDIA_MAX_BYTES; more pixels
than DIGEST_MEDIA_MAX_PIXELS (checked from the header, before any pixel is decoded: a
decompression bomb never expands); an animation of more frames than
DIGEST_MEDIA_MAX_FRAMES; and every SVG: an SVG is a document that can carry scripts and
remote loads, and the email clients that matter (Gmail, Outlook) do not show SVG at all,
so sanitising one would only keep an image that most readers never see.

Sizes: "email" fits the email's content column (EMAIL_WIDTH, Outlook's width), "email2x"
is twice that for sharp screens (the email shows it at EMAIL_WIDTH), "small" is twice
the digest's thumbnail and logo box (sharp there, and a fraction of "email2x"'s bytes),
"web" is for the archive; none is ever larger than the original. Images uploaded before
"small" existed have none: `small_variant` falls back to "email2x" for them. WebP, which
Outlook cannot show, becomes PNG (with transparency) or JPEG.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from PIL import Image, ImageOps, ImageSequence, UnidentifiedImageError
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from digest.core.models import Editor, Issue, Media, Newsletter, Post, new_uid
from digest.core.storage import MediaStorage
from digest.core.validation import Invalid, text
from digest.mail.markdown import EMAIL_IMAGE_WIDTH

EMAIL_WIDTH = EMAIL_IMAGE_WIDTH  # the 600 px column less its gutters
# How wide the digest draws a thumbnail, and the box a logo fits in (CSS pixels).
THUMBNAIL_WIDTH = 120
LOGO_BOX = (240, 48)
WEB_WIDTH = 1600
ALT_MAX = 1000
FILENAME_MAX = 200
PAGE_SIZE = 60
_FORMATS = {"PNG": ("png", "image/png"), "JPEG": ("jpg", "image/jpeg"), "GIF": ("gif", "image/gif")}
_EXTENSIONS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "jpe": "JPEG", "gif": "GIF", "webp": "WEBP"}
_SVG = re.compile(rb"<svg[\s>]|<!doctype\s+svg", re.IGNORECASE)


class Refused(Exception):
    """The upload is not stored; the message says why, in a sentence an editor can act on."""


@dataclass(frozen=True)
class Limits:
    """What an upload may be."""

    max_bytes: int
    max_pixels: int
    max_frames: int

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> Limits:
        """Return the limits the settings give."""
        return cls(config["MEDIA_MAX_BYTES"], config["MEDIA_MAX_PIXELS"], config["MEDIA_MAX_FRAMES"])


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def _extension(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return name.rpartition(".")[2].lower() if "." in name else ""


def _open(data: bytes, filename: str, limits: Limits) -> Image.Image:
    if len(data) > limits.max_bytes:
        raise Refused(f"The file is {_megabytes(len(data))}; images may be at most "
                      f"{_megabytes(limits.max_bytes)}.")
    if not data:
        raise Refused("The file is empty.")
    extension = _extension(filename)
    if extension == "svg" or _SVG.search(data[:4096]):
        raise Refused("SVG images are refused: an SVG can carry scripts, and Gmail and Outlook "
                      "do not show SVG at all. Export it as PNG and upload that.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=["PNG", "JPEG", "GIF", "WEBP"])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Refused(f"The image has too many pixels; the limit is {limits.max_pixels:,}.") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError):
        raise Refused("This file is not an image this service takes: upload a PNG, JPEG, GIF "
                      "or WebP.") from None
    if extension and _EXTENSIONS.get(extension) != image.format:
        raise Refused(f"The file is named .{extension} but holds a {image.format} image; "
                      "rename it or export it again.")
    width, height = image.size
    if width * height > limits.max_pixels:
        raise Refused(f"The image is {width:,} × {height:,} pixels ({width * height:,}); the "
                      f"limit is {limits.max_pixels:,} pixels.")
    frames = getattr(image, "n_frames", 1)
    if frames > limits.max_frames:
        raise Refused(f"The animation has {frames} frames; at most {limits.max_frames} are taken.")
    if frames * width * height > limits.max_pixels * 2:
        raise Refused("The animation holds too many pixels in all its frames; make it smaller "
                      "or shorter.")
    return image


def _decoded(image: Image.Image) -> list[Image.Image]:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            frames = [frame.copy() for frame in ImageSequence.Iterator(image)]
            upright = [ImageOps.exif_transpose(frame) or frame for frame in frames[:1]] + frames[1:]
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombWarning):
        raise Refused("The image is damaged and cannot be decoded; export it again.") from None
    return upright


def _encode(frames: list[Image.Image], fmt: str, width: int, durations: list[int]) -> tuple[bytes, int, int]:
    first = frames[0]
    height = max(1, round(first.height * width / first.width))
    sized = [frame.resize((width, height), Image.Resampling.LANCZOS)
             if frame.size != (width, height) else frame.copy() for frame in frames]
    for frame in sized:
        frame.info = {}  # nothing of the original's metadata is written back
    out = io.BytesIO()
    if fmt == "JPEG":
        sized[0].convert("RGB").save(out, "JPEG", quality=85, optimize=True, progressive=True)
    elif fmt == "GIF" and len(sized) > 1:
        sized[0].save(out, "GIF", save_all=True, append_images=sized[1:], loop=0,
                      duration=durations, optimize=False)
    else:
        sized[0].save(out, fmt, optimize=True)
    return out.getvalue(), width, height


def _target_format(image: Image.Image, frames: list[Image.Image]) -> str:
    if image.format == "WEBP":
        return "PNG" if frames[0].mode in ("RGBA", "LA", "P", "PA") else "JPEG"
    return str(image.format)


def _normalised(frame: Image.Image, fmt: str) -> Image.Image:
    if fmt == "JPEG":
        return frame.convert("RGB")
    if fmt == "GIF":
        return frame.convert("P") if frame.mode not in ("P", "L") else frame
    return frame.convert("RGBA") if frame.mode not in ("RGB", "RGBA", "L", "LA") else frame


@dataclass(frozen=True)
class Processed:
    """An upload decoded and written anew: each size's (bytes, width, height), and more."""

    sizes: dict[str, tuple[bytes, int, int]]
    format: str  # PNG, JPEG or GIF
    frames: int
    width: int  # the original's, upright
    height: int


def process(data: bytes, filename: str, limits: Limits) -> Processed:
    """Return the sizes an image is stored in; raise Refused saying why a file is not taken."""
    image = _open(data, filename, limits)
    frames = _decoded(image)
    fmt = _target_format(image, frames)
    durations = [int(frame.info.get("duration", 100)) for frame in frames]
    frames = [_normalised(frame, fmt) for frame in (frames if fmt == "GIF" else frames[:1])]
    width, height = frames[0].size
    widths = {"email": min(width, EMAIL_WIDTH), "email2x": min(width, 2 * EMAIL_WIDTH),
              "small": _small_width(width, height), "web": min(width, WEB_WIDTH)}
    sizes = {name: _encode(frames, fmt, size, durations) for name, size in widths.items()}
    return Processed(sizes, fmt, len(frames), width, height)


def _small_width(width: int, height: int) -> int:
    # Twice a thumbnail's width, or twice the logo box for a logo wider than the box's shape
    # (a logo is drawn at most LOGO_BOX[1] tall); never wider than the original.
    logo = min(2 * LOGO_BOX[0], round(2 * LOGO_BOX[1] * width / height))
    return min(width, max(2 * THUMBNAIL_WIDTH, logo))


def upload(session: Session, storage: MediaStorage, data: bytes, filename: str, limits: Limits,
           *, alt: str = "", editor: Editor | None = None) -> Media:
    """Check, re-encode and store an image in every size; raise Refused (storing nothing)
    or Invalid (alt text too long)."""
    errors: dict[str, str] = {}
    alt = text(alt, "alt", errors, max_length=ALT_MAX)
    if errors:
        raise Invalid(errors)
    processed = process(data, filename, limits)
    extension, content_type = _FORMATS[processed.format]
    uid = new_uid()
    variants: dict[str, dict[str, object]] = {}
    try:
        for name, (encoded, width, height) in processed.sizes.items():
            key = f"{uid}/{name}.{extension}"
            storage.put(key, encoded, content_type)
            variants[name] = {"key": key, "width": width, "height": height, "bytes": len(encoded)}
    except Exception:
        forget(storage, variants)
        raise
    media = Media(uid=uid, filename=_extension_free_name(filename), alt=alt,
                  content_type=content_type, width=processed.width, height=processed.height,
                  frames=processed.frames, variants=variants,
                  uploaded_by_id=editor.id if editor else None)
    session.add(media)
    try:
        session.flush()
    except Exception:
        forget(storage, variants)
        raise
    return media


def _extension_free_name(filename: str) -> str:
    name = filename.rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    return "".join(c for c in name if c.isprintable())[:FILENAME_MAX]


def forget(storage: MediaStorage, variants: Mapping[str, Mapping[str, object]]) -> None:
    """Delete the stored sizes of an image (after a failure, or with its row)."""
    for variant in variants.values():
        storage.delete(str(variant["key"]))


def set_alt(session: Session, media: Media, alt: str) -> Media:
    """Change an image's description (its alt text, wherever it is shown)."""
    errors: dict[str, str] = {}
    media.alt = text(alt, "alt", errors, max_length=ALT_MAX)
    if errors:
        raise Invalid(errors)
    session.flush()
    return media


IMAGE_DISPLAYS = {"none": "No images", "lead": "Lead image, full width",
                  "thumbnail": "Thumbnail beside the title"}


def set_newsletter_images(session: Session, newsletter: Newsletter, image_display: str,
                          logo_light_id: str, logo_dark_id: str) -> Newsletter:
    """Set how the digest shows lead images and which library images are the logo."""
    errors: dict[str, str] = {}
    if image_display not in IMAGE_DISPLAYS:
        errors["image_display"] = "Choose none, lead image or thumbnail."
    logos: dict[str, Media | None] = {}
    for field, value in (("logo_light_id", logo_light_id), ("logo_dark_id", logo_dark_id)):
        logos[field] = session.get(Media, int(value)) if value.isdigit() and len(value) < 10 else None
        if value and logos[field] is None:
            errors[field] = "Choose an image of the media library, or none."
    if errors:
        raise Invalid(errors)
    newsletter.image_display = image_display
    newsletter.logo_light, newsletter.logo_dark = logos["logo_light_id"], logos["logo_dark_id"]
    session.flush()
    return newsletter


def get_media(session: Session, media_id: int) -> Media | None:
    """Return the image with this id, or None."""
    return session.get(Media, media_id)


def library(session: Session, page: int = 1) -> list[Media]:
    """Return a page of uploaded images, newest first."""
    return list(session.scalars(select(Media).order_by(Media.id.desc())
                                .limit(PAGE_SIZE).offset((max(1, page) - 1) * PAGE_SIZE)))


def count(session: Session) -> int:
    """Return how many images the library holds."""
    return session.scalar(select(func.count()).select_from(Media)) or 0


def uses(session: Session, item: Media) -> list[str]:
    """Return where an image is shown: each post, issue intro or logo that uses it, named."""
    shown = f"/media/{item.uid}/"
    found = [f"the logo of {name}" for name in session.scalars(select(Newsletter.name).where(
        or_(Newsletter.logo_light_id == item.id, Newsletter.logo_dark_id == item.id)))]
    for title, lead in session.execute(select(Post.title, Post.lead_image_id).where(
            or_(Post.lead_image_id == item.id, Post.body_md.contains(shown, autoescape=True)))
            .order_by(Post.id)):
        found.append(f"the {'lead image' if lead == item.id else 'body'} of the post “{title}”")
    found += [f"the introduction of the issue “{subject}”" for subject in session.scalars(
        select(Issue.subject).where(Issue.intro_md.contains(shown, autoescape=True)).order_by(Issue.id))]
    return found


def delete(session: Session, item: Media) -> dict[str, dict[str, object]]:
    """Delete an image no post, issue or logo uses (raise Invalid naming the users) and
    return its stored sizes, for the caller to forget once the deletion is committed."""
    found = uses(session, item)
    if found:
        more = f" and {len(found) - 3} more" if len(found) > 3 else ""
        raise Invalid({"media": f"This image is in use as {', '.join(found[:3])}{more}: "
                                "remove it there first."})
    variants = dict(item.variants)
    session.delete(item)
    session.flush()
    return variants


def by_uid(session: Session, uid: str) -> Media | None:
    """Return the image with this public uid, or None."""
    return session.scalar(select(Media).where(Media.uid == uid))


def variant(media: Media, name: str) -> Mapping[str, Any]:
    """Return one stored size of an image ("email", "email2x", "small" or "web")."""
    return media.variants[name]


def small_variant(media: Media) -> Mapping[str, Any]:
    """Return the size thumbnails and logos are sent in: "small", or "email2x" for an
    image uploaded before "small" was made."""
    return media.variants.get("small") or media.variants["email2x"]


def path(media: Media, name: str = "web") -> str:
    """Return the site path an image size is served at."""
    return f"/media/{variant(media, name)['key']}"


_MEDIA_LINK = re.compile(r"/media/([A-Za-z0-9_-]{8,64})/web\.(png|jpg|gif)")


def email_sized(markdown: str) -> str:
    """Return Markdown with links to uploaded images' web size turned to their 2× email
    size (shown at the column's width: sharp, and lighter than the web size)."""
    return _MEDIA_LINK.sub(r"/media/\1/email2x.\2", markdown)


def linked_uids(markdown: str) -> list[str]:
    """Return the uids of uploaded images a Markdown text shows."""
    return [match[0] for match in _MEDIA_LINK.findall(markdown)]
