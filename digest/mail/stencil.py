"""Emails from templates: rendered once with holes for each reader's values, filled per reader.

Every email (the digest, the confirmation, the welcome, the "already subscribed" note)
is a pair of templates, templates/emails/NAME.html and NAME.txt, on the shared layout
(emails/layout.html and layout.txt), rendered with `email_templates(folder, language=…)`
(the caller names the templates folder and the newsletter's language, whose "emails"
catalogue, dates and writing direction the templates get) through `render_email`: it inlines the CSS (css-inline, never
fetching remote stylesheets; `<style data-keep>` blocks stay as they are) and tidies both
parts.

Inlining costs far more than filling in a name, so an email is rendered once per
variant with markers (`Slots`) where each reader's values go (name, address, links),
and the result is kept as a `Stencil`: static lines already quoted-printable, the lines
with markers filled in per reader (joined from pieces encoded once where the values need
no encoding, as signed links do). Templates print those values as they are (never
through a filter, which would corrupt the marker; `Slots.stencil` refuses such a
template) and test only whether they are empty.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import re
import secrets
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import css_inline
from babel.dates import format_date
from jinja2 import Environment, FileSystemLoader, StrictUndefined, TemplateError, select_autoescape
from markupsafe import escape

from digest.mail.dkim import relaxed_lines
from digest.mail.language import PACKAGED, SOURCE_LANGUAGE, Language, translations
from digest.mail.language import language as find_language
from digest.mail.look import DEFAULT_LOOK
from digest.mail.message import quoted_printable
from digest.mail.plaintext import wrap


@functools.cache
def email_templates(
    *folders: Path, language: str = SOURCE_LANGUAGE, catalogues: tuple[Path, ...] = (PACKAGED,)
) -> Environment:
    """Return the Jinja environment emails in language render with (outside requests too),
    for the templates folders that hold emails/ (a template in the first that has it wins)
    and the folders of gettext catalogues (digest.mail.language; the first one's win).

    Its strings are looked up as a template renders, which is once per issue and variant
    (or per transactional email kind): never per reader."""
    env = Environment(
        loader=FileSystemLoader([str(folder) for folder in folders]),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        extensions=["jinja2.ext.i18n"],
    )
    env.policies["ext.i18n.trimmed"] = True  # as the extraction reads them (emails.cfg)
    speaks = find_language(language, *catalogues)
    env.install_gettext_translations(  # type: ignore[attr-defined]  # added by the i18n extension
        translations(speaks.code, "emails", *catalogues), newstyle=True
    )
    env.globals["look"] = DEFAULT_LOOK  # an email of a newsletter gets its own in the context
    env.globals.update(layout_globals(speaks))
    env.filters["wrap"] = wrap  # text parts: {% filter wrap %}…{% endfilter %}, never URLs split
    env.filters["format_date"] = functools.partial(_format_date, locale=speaks.code)
    return env


def layout_globals(speaks: Language) -> dict[str, Any]:
    """Return what templates write a language's direction with: lang and dir for <html>,
    start and end ("left"/"right", swapped right-to-left) for align and text-align,
    sides(top, end, bottom, start) for a padding or margin shorthand, and the arrow that
    points onwards."""
    rtl = speaks.direction == "rtl"

    def sides(top: str, end: str, bottom: str, start: str) -> str:
        return f"{top} {start} {bottom} {end}" if rtl else f"{top} {end} {bottom} {start}"

    return {
        "lang": speaks.tag,
        "dir": speaks.direction,
        "start": "right" if rtl else "left",
        "end": "left" if rtl else "right",
        "sides": sides,
        "onwards": "\N{LEFTWARDS ARROW}" if rtl else "\N{RIGHTWARDS ARROW}",
    }


def _format_date(value: dt.date, format: str = "full", *, locale: str) -> str:  # noqa: A002  # Babel's name
    return format_date(value, format, locale=locale)


@functools.cache
def _inliner() -> css_inline.CSSInliner:
    # Never fetch <link> stylesheets (SSRF). The layout's @media rules sit in <style data-keep>
    # blocks (inline_css); an @media rule a child writes among the inlined ones is kept too.
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True)


_PRE = re.compile(r"(<pre\b.*?</pre>)", re.IGNORECASE | re.DOTALL)
_INDENT = re.compile(r"[ \t]*\n\s*")
_RUNS = re.compile(r"[ \t]{2,}")
_BLANK_LINES = re.compile(r"\n{3,}")
_TRAILING = re.compile(r"[ \t]+$", re.MULTILINE)


def tidy_html(html: str) -> str:
    """Return html without indentation, blank lines or runs of spaces (outside <pre>)."""
    parts = _PRE.split(html)
    for i in range(0, len(parts), 2):
        parts[i] = _RUNS.sub(" ", _INDENT.sub("\n", parts[i]))
    return "".join(parts).strip() + "\n"


def tidy_text(text: str) -> str:
    """Return text without trailing spaces (but the "-- " signature line) or blank runs."""
    text = _TRAILING.sub("", unix_lines(text)).replace("\n--\n", "\n-- \n")
    return _BLANK_LINES.sub("\n\n", text).strip("\n") + "\n"


def unix_lines(text: str) -> str:
    """Return text with "\\n" line ends (browser forms send CRLF; parts are built from "\\n")."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


def render_email(env: Environment, name: str, context: Mapping[str, Any]) -> tuple[str, str]:
    """Return (HTML with inlined CSS, text) of templates emails/NAME.html and emails/NAME.txt."""
    html = env.get_template(f"emails/{name}.html").render(context)
    text = env.get_template(f"emails/{name}.txt").render(context)
    return tidy_html(inline_css(unix_lines(html))), tidy_text(text)


_KEPT = re.compile(r"<style data-keep>(.*?)</style>", re.DOTALL)
_KEPT_MARK = "<!--kept-style-{}-->"


def inline_css(html: str) -> str:
    """Return html with its <style> rules copied onto the elements, but <style data-keep>
    blocks left where they are, each on its own (a client that drops one keeps the rest)."""
    kept: list[str] = []

    def set_aside(match: re.Match[str]) -> str:
        kept.append(f"<style>{match.group(1)}</style>")
        return _KEPT_MARK.format(len(kept) - 1)

    inlined = _inliner().inline(_KEPT.sub(set_aside, html))
    for i, block in enumerate(kept):
        inlined = inlined.replace(_KEPT_MARK.format(i), block, 1)
    return inlined


def render_subject(env: Environment, name: str, context: Mapping[str, Any]) -> str:
    """Return the subject line of emails/NAME.subject.txt, on one line."""
    return " ".join(env.get_template(f"emails/{name}.subject.txt").render(context).split())


# A value made only of these characters reads the same HTML-escaped and quoted-printable,
# and holds no whitespace (a signed link, say): lines whose values are all like it are
# joined from pieces encoded once, not encoded again for every reader.
_PLAIN = re.compile(r"[A-Za-z0-9._~:/?#@!$+,;%-]+")
_QP_LINE = 76  # quoted-printable breaks a longer line (RFC 2045); CRLF not counted
_RUNS_KEPT = 256  # a part's joining plans, one per set of value lengths


@dataclass(frozen=True)
class _Line:
    """One line holding placeholders: static pieces around slot names, and those pieces
    quoted-printable and in relaxed form as they read between plain values (None: the
    line is one value alone, encoded whole: "." on its own line is escaped)."""

    pieces: tuple[str, ...]  # static, slot, static, slot, …, static
    encoded: tuple[bytes, ...] | None = None
    canonical: tuple[bytes, ...] | None = None

    @classmethod
    def of(cls, line: str, placeholder: re.Pattern[str]) -> _Line:
        """Return the line split at its placeholders, its static pieces encoded."""
        pieces = tuple(placeholder.split(line))
        if len(pieces) == 3 and not pieces[0] and not pieces[2]:
            return cls(pieces)
        statics = pieces[::2]
        last = len(statics) - 1
        # Each piece is encoded with a plain neighbour where a value will stand, so its
        # trailing spaces are not taken for the line's end.
        encoded = tuple(
            quoted_printable(("x" if i else "") + piece + ("x" if i < last else "\n"))[
                (1 if i else 0) : (-1 if i < last else None)
            ]
            for i, piece in enumerate(statics)
        )
        return cls(pieces, encoded, tuple(map(relaxed_lines, encoded)))

    @property
    def slots(self) -> tuple[str, ...]:
        """Return the slot names the line holds, in order."""
        return self.pieces[1::2]

    def fill(self, values: Mapping[str, str]) -> str:
        pieces = self.pieces
        out = [pieces[0]]
        for i in range(1, len(pieces), 2):
            out.append(values[pieces[i]])
            out.append(pieces[i + 1])
        return "".join(out)


@dataclass(frozen=True)
class _Static:
    """Lines without placeholders, as text, already quoted-printable, and in DKIM's
    relaxed canonical form."""

    text: str
    encoded: bytes
    canonical: bytes


@dataclass(frozen=True)
class _Run:
    """Consecutive lines joined from encoded pieces and plain values: statics[0], value
    of slots[0], statics[1], …; canonical: the same pieces in relaxed form (None: alike)."""

    statics: tuple[bytes, ...]
    canonical: tuple[bytes, ...] | None
    slots: tuple[str, ...]

    def join(self, plain: Mapping[str, bytes]) -> tuple[bytes, bytes]:
        """Return the run's bytes and relaxed canonical form for one reader's plain values."""
        values = [plain[slot] for slot in self.slots]
        out: list[bytes] = [b""] * (2 * len(values) + 1)
        out[::2] = self.statics
        out[1::2] = values
        encoded = b"".join(out)
        if self.canonical is None:
            return encoded, encoded
        out[::2] = self.canonical
        return encoded, b"".join(out)


class _Part:
    """A rendered body kept as quoted-printable bytes, with lines to fill per reader."""

    def __init__(self, text: str, placeholder: re.Pattern[str]) -> None:
        self.items: list[_Static | _Line] = []
        static: list[str] = []
        for line in text.split("\n")[:-1]:  # text ends with "\n"
            if placeholder.search(line):
                if static:
                    self._add_static(static)
                    static = []
                self.items.append(_Line.of(line, placeholder))
            else:
                static.append(line)
        if static:
            self._add_static(static)
        self._slots = tuple(dict.fromkeys(
            slot for item in self.items if isinstance(item, _Line) and item.encoded for slot in item.slots
        ))
        self._plans: dict[tuple[int, ...], list[_Run | _Line]] = {}

    def _add_static(self, lines: list[str]) -> None:
        text = "\n".join(lines) + "\n"
        encoded = quoted_printable(text)
        self.items.append(_Static(text, encoded, relaxed_lines(encoded)))

    def _plan(self, lengths: dict[str, int]) -> list[_Run | _Line]:
        """Return the part as runs of joined pieces and the lines to encode whole, for
        plain values of these lengths (-1: not plain)."""
        plan: list[_Run | _Line] = []
        statics: list[bytes] = [b""]
        canonical: list[bytes] = [b""]
        slots: list[str] = []

        def close() -> None:
            if slots or statics[0]:
                alike = statics == canonical
                plan.append(_Run(tuple(statics), None if alike else tuple(canonical), tuple(slots)))
            statics[:], canonical[:], slots[:] = [b""], [b""], []

        for item in self.items:
            if isinstance(item, _Static):
                statics[-1] += item.encoded
                canonical[-1] += item.canonical
                continue
            if item.encoded is None or item.canonical is None or any(
                lengths[slot] < 0 for slot in item.slots
            ) or sum(map(len, item.encoded)) - 2 + sum(lengths[slot] for slot in item.slots) > _QP_LINE:
                close()
                plan.append(item)
                continue
            statics[-1] += item.encoded[0]
            canonical[-1] += item.canonical[0]
            for slot, piece, relaxed in zip(item.slots, item.encoded[1:], item.canonical[1:], strict=True):
                slots.append(slot)
                statics.append(piece)
                canonical.append(relaxed)
        close()
        return plan

    def encoded(
        self, values: Mapping[str, str], digest: Any = None, plain: Mapping[str, bytes] | None = None
    ) -> bytes:
        """Return the part's quoted-printable bytes for one reader's values; with digest
        (a hashlib object), feed it their relaxed canonical form too. `plain` holds the
        values that need no encoding, as bytes (plain_values)."""
        plain = plain or {}
        key = tuple([len(plain[slot]) if slot in plain else -1 for slot in self._slots])
        plan = self._plans.get(key)
        if plan is None:
            plan = self._plan(dict(zip(self._slots, key, strict=True)))
            if len(self._plans) >= _RUNS_KEPT:
                self._plans.clear()
            self._plans[key] = plan
        chunks = []
        for step in plan:
            if isinstance(step, _Run):
                encoded, canonical = step.join(plain)
            else:
                encoded = quoted_printable(step.fill(values) + "\n")
                canonical = relaxed_lines(encoded)
            chunks.append(encoded)
            if digest is not None:
                digest.update(canonical)
        return b"".join(chunks)

    def filled(self, values: Mapping[str, str]) -> str:
        """Return the part's text for one reader's values."""
        return "".join(
            item.text if isinstance(item, _Static) else item.fill(values) + "\n"
            for item in self.items
        )


@dataclass(frozen=True)
class Stencil:
    """An email's HTML and text, rendered and inlined once, with holes for one reader's values."""

    html: _Part
    text: _Part

    def mime_body(
        self, frame: tuple[bytes, bytes, bytes], values: Mapping[str, str]
    ) -> tuple[bytes, bytes]:
        """Return one reader's multipart/alternative body in frame (message.alternative_frame)
        and the SHA-256 of its DKIM relaxed canonical form, hashed from the static lines'
        canonical form computed once, so the signer need not canonicalize the body again."""
        opening, between, closing = frame
        digest = hashlib.sha256(relaxed_lines(opening))
        plain = plain_values(values)
        text = self.text.encoded(values, digest, plain)
        digest.update(relaxed_lines(between))
        html = self.html.encoded(_escaped(values, plain), digest, plain)
        digest.update(relaxed_lines(closing))
        return b"".join([opening, text, between, html, closing]), digest.digest()

    def filled(self, values: Mapping[str, str]) -> tuple[str, str]:
        """Return (HTML, text) for one reader's values (plain text; escaped here for HTML)."""
        return self.html.filled(_escaped(values)), self.text.filled(values)


def plain_values(values: Mapping[str, str]) -> dict[str, bytes]:
    """Return the values that read the same escaped and encoded (see _PLAIN), as bytes."""
    return {key: value.encode("ascii") for key, value in values.items() if _PLAIN.fullmatch(value)}


def _escaped(values: Mapping[str, str], plain: Collection[str] = ()) -> dict[str, str]:
    return {key: value if key in plain else str(escape(value)) for key, value in values.items()}


class Slots:
    """Markers that stand in for per-reader values while an email renders once.

    `labels` maps each slot to the name templates know it by (e.g. "name" →
    "reader.name"), for the error that names a value a template filtered.
    """

    def __init__(self, labels: Mapping[str, str]) -> None:
        self.labels = dict(labels)
        self._marker = f"q{secrets.token_hex(6)}q"
        self.pattern = re.compile(f"{self._marker}({'|'.join(self.labels)}){self._marker}")

    def __getitem__(self, slot: str) -> str:
        """Return the marker of slot, to put in a template's context."""
        if slot not in self.labels:
            raise KeyError(slot)
        return f"{self._marker}{slot}{self._marker}"

    def stencil(
        self,
        env: Environment,
        name: str,
        context: Mapping[str, Any],
        after: Callable[[str, str], tuple[str, str]] | None = None,
    ) -> Stencil:
        """Render emails/NAME once with markers in context, then pass (HTML, text) through
        after (which may add markers, e.g. rewritten links); raise TemplateError if a
        template changed a marker."""
        html, text = render_email(env, name, context)
        if after is not None:
            html, text = after(html, text)
        for rendered in (html, text):
            if self._marker in self.pattern.sub("", rendered).lower():
                raise TemplateError(
                    f"the emails/{name} template changed a per-reader value "
                    f"({', '.join(self.labels.values())}) with a filter; print them as they are"
                )
        return Stencil(_Part(html, self.pattern), _Part(text, self.pattern))
