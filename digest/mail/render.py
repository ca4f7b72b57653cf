"""Issue → per-reader message bytes, rendered once and filled in per reader.

`PreparedIssue(content, settings)` renders everything an issue's readers share, once,
from plain data: the issue's IssueContent (read from the database by
digest.domain.issue_mail, links already made) and RenderSettings (the mail domain, the
templates folder, and ReaderLinks, which signs a reader's links and bounce address).
Shared are the Markdown of the intro and posts (sanitized HTML, and wrapped text built
from the Markdown itself), the sender identity, the list headers. A reader's message then
depends on only two things beyond a handful of values: which sections they chose and
whether they gave a name. For each such variant (few per issue) both templates are
rendered once with placeholders in place of the reader's values (name, address,
preference and unsubscribe links), the CSS is inlined once, and the result is kept as
quoted-printable bytes with holes (a digest.mail.stencil Stencil).
`PreparedIssue.message_for(reader, delivery_id)` fills in one reader's values, encodes
only the lines that hold them, and joins bytes: the exact message that reader receives,
ready for the DKIM signer and the wire.

`size_report` and `check_sendable` say whether an issue may be sent: an empty postal
address, or HTML that Gmail would clip (hiding the unsubscribe link and the address),
refuse it; HTML close to the limit warns the editor.
"""

from __future__ import annotations

import datetime as dt
import re
import string
import threading
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any, Protocol

from babel.support import NullTranslations
from jinja2 import TemplateError
from markupsafe import Markup

from digest.mail.language import PACKAGED, SOURCE_LANGUAGE, language, translations
from digest.mail.look import DEFAULT_LOOK, Look
from digest.mail.markdown import parse_markdown, render_email_tokens
from digest.mail.message import (
    CRLF,
    alternative_frame,
    ascii_address,
    date_header,
    encode_text_header,
    format_mailbox,
    header_block,
    list_unsubscribe_headers,
    make_message_id,
    new_boundary,
)
from digest.mail.plaintext import WIDTH, markdown_to_text, wrap
from digest.mail.stencil import Slots, Stencil, email_templates
from digest.mail.tracking import OPEN_LINK, LinkTable, Tracking, link_table, rewrite

# Gmail clips HTML past ~102 KB, cutting the footer with the unsubscribe link and the
# postal address; its own rewriting (link wrapping, class renaming) adds bytes, and clipping
# is reported from ~99 KB of what was sent: refuse well before, warn before that.
WARN_BYTES = 75_000
REFUSE_BYTES = 90_000
CLIP_KB = 100  # what editors are told Gmail clips at
# The longest values a reader can bring (Subscriber.name, an RFC 5321 path) when sizing.
_LONGEST_NAME = 200
_LONGEST_EMAIL = 254
_VARIANTS_KEPT = 128
_LARGEST_DELIVERY = 2**32 - 1  # a delivery id as long as a click token can carry
# A variant: the sections a reader chose, whether they gave a name, whether they are tracked.
_Key = tuple[frozenset[int], bool, bool]
# The subscription uid of previews and test sends: no subscription has it (real ones are
# 22 random characters), so their unsubscribe and preference links act on nobody.
PREVIEW_UID = "preview"


def N_(message: str) -> str:  # noqa: N802  # the name gettext's tools look for
    """Return message as it is: marks a string for the catalogue, translated where it is used."""
    return message


# What a preheader may say about the reader's own part of the issue, and the line inboxes
# show when the editor leaves the preheader empty.
PREHEADER_PLACEHOLDERS = {
    "count": 'how many pieces the reader gets, with the word: "3 pieces"',
    "headlines": "the titles of the reader's pieces, joined by ' · '",
    "sections": "the names of the reader's sections that have pieces",
}
# Translators: the line inboxes show beside the subject. Keep {count} and {headlines} as
# they are: "3 pieces" and the titles of the pieces are put there.
DEFAULT_PREHEADER = N_("{count} this week: {headlines}")
# Words by which a preheader addresses its reader, which a public page must not repeat.
_TO_THE_READER = re.compile(r"\byou(?:r|rs|rself|'re|'ll|'ve|’re|’ll|’ve)?\b", re.IGNORECASE)
_HEADLINES_CHARS = 160  # inboxes show ~90-140 characters of preview; the rest is "and N more"
# Each reader's values in the digest, by the names the templates print them as.
SLOTS = {
    "name": "reader.name",
    "first_name": "reader.first_name",
    "email": "reader.email",
    "unsubscribe_url": "unsubscribe_url",
    "preferences_url": "preferences_url",
}


@dataclass(frozen=True)
class Reader:
    """What personalisation needs to know about one reader."""

    subscriber_id: int | None
    subscription_uid: str
    email: str
    name: str = ""
    section_ids: frozenset[int] = frozenset()  # empty: every section
    tracked: bool = True  # False: the reader turned tracking off; links go straight out

    @property
    def first_name(self) -> str:
        """Return the name a greeting uses (empty: greet nobody by name)."""
        return first_name(self.name)


@dataclass(frozen=True)
class Outgoing:
    """One message ready for the wire."""

    envelope_from: str
    recipient: str
    data: bytes
    # SHA-256 of the body in DKIM relaxed canonical form, when the renderer knows it.
    body_hash: bytes | None = None


@dataclass(frozen=True)
class ImageView:
    """An image as an email shows it: its address, the size it is drawn at, its description."""

    src: str
    width: int
    height: int
    alt: str


@dataclass(frozen=True)
class Logo:
    """The newsletter's logo; `dark` (when set) replaces `light` where the client is dark."""

    light: ImageView
    dark: ImageView | None = None


@dataclass(frozen=True)
class RenderedPost:
    """A post as the digest shows it, in HTML and in wrapped text.

    The digest shows a post's summary, or its whole body when it has none; the body is
    rendered only then (body_html and body_text are empty for a post with a summary).
    """

    id: int
    title: str
    summary: str
    url: str
    body_html: Markup
    title_text: str
    summary_text: str
    body_text: str
    image: ImageView | None = None  # the lead image, when the newsletter shows them


@dataclass(frozen=True)
class RenderedSection:
    """A section of the issue with its posts in the editor's order."""

    id: int
    name: str
    posts: tuple[RenderedPost, ...]


@dataclass(frozen=True)
class NewsletterView:
    """The newsletter fields messages need, copied so no database session is kept."""

    id: int
    slug: str
    name: str
    postal_address: str
    reply_to: str | None
    from_header: str
    list_id: str
    sections: tuple[tuple[int, str], ...]  # every section, in the newsletter's order
    # Readers whose sections get no post: a short note (True), or nothing (the sender skips them).
    note_when_no_post: bool = False
    logo: Logo | None = None
    image_display: str = "none"  # how lead images show: "none", "lead" or "thumbnail"
    look: Look = DEFAULT_LOOK
    language: str = SOURCE_LANGUAGE  # what readers read: a code digest.mail.language knows


@dataclass(frozen=True)
class IssueView:
    """The issue fields templates show, rendered and wrapped once."""

    id: int
    subject: str
    preheader: str  # as the editor wrote it: placeholders are filled per reader
    intro_html: Markup
    intro_text: str
    subject_text: str
    subject_width: int
    web_url: str
    date: dt.datetime


@dataclass(frozen=True)
class PostContent:
    """A post as an issue carries it: its Markdown, and the link its title points to."""

    id: int
    title: str
    summary: str
    body_md: str
    url: str
    image: ImageView | None = None  # the lead image at the size the newsletter shows it


@dataclass(frozen=True)
class SectionContent:
    """A section of an issue with its posts, in the editor's order."""

    id: int
    name: str
    posts: tuple[PostContent, ...]


@dataclass(frozen=True)
class IssueContent:
    """Everything the shared rendering of an issue depends on, as plain values: two equal
    contents render alike (the sender's render cache compares them)."""

    id: int
    subject: str
    preheader: str
    intro_md: str
    web_url: str
    date: dt.datetime  # in the newsletter's time zone
    feedback_id: str
    newsletter: NewsletterView
    sections: tuple[SectionContent, ...]  # in the order the issue shows them
    tracking: Tracking = field(default_factory=Tracking)
    # What the images the largest message shows weigh (fetched by the client, outside
    # Gmail's HTML limit).
    image_bytes: int = 0


class ReaderLinks(Protocol):
    """A reader's signed links and a message's bounce address, made by whoever holds the
    secret (digest.domain.identity.SignedLinks)."""

    def unsubscribe_url(self, subscription_uid: str) -> str:
        """Return the reader's one-click unsubscribe URL."""
        ...

    def unsubscribe_mailto(self, subscription_uid: str) -> str:
        """Return the reader's mailto: unsubscribe URI."""
        ...

    def preferences_url(self, subscription_uid: str) -> str:
        """Return the reader's preference-center link."""
        ...

    def bounce_address(self, ref: str, recipient: str) -> str:
        """Return the envelope sender (VERP) of the message ref names, to recipient."""
        ...

    def click_urls(self, issue_id: int, delivery_id: int, links: Iterable[int]) -> dict[int, str]:
        """Return the signed redirects that record clicks on a message's links, by index
        (OPEN_LINK: the open pixel), signed once for the message."""
        ...


@dataclass(frozen=True)
class RenderSettings:
    """What rendering needs of the app's settings."""

    mail_domain: str  # the right-hand side of Message-IDs
    templates: tuple[Path, ...]  # the folders holding emails/, an operator's overrides first
    links: ReaderLinks
    catalogues: tuple[Path, ...] = (PACKAGED,)  # gettext catalogues, an operator's first


@dataclass(frozen=True)
class SizeReport:
    """How big the largest reader's HTML is, and what that means for sending; the images it
    shows are counted apart (clients fetch them; Gmail's limit is the HTML's)."""

    bytes: int
    warn: bool
    refuse: bool
    message: str
    image_bytes: int = 0


class NotSendable(Exception):
    """The issue must not be sent as it is; the message says why and what to change."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(" ".join(reasons))
        self.reasons = reasons


@dataclass(frozen=True)
class _ReaderFields:
    name: str
    email: str
    first_name: str


class PreparedIssue:
    """The parts of an issue shared by every reader, rendered once from its content; see
    the module doc."""

    def __init__(self, content: IssueContent, settings: RenderSettings) -> None:
        self.content = content
        newsletter = content.newsletter
        self.issue = _issue_view(content)
        self.issue_id = content.id
        self.subject = self.issue.subject
        self.newsletter = newsletter
        self.sections = tuple(
            RenderedSection(section.id, section.name, tuple(map(_rendered_post, section.posts)))
            for section in content.sections
        )
        self.links = settings.links
        # The newsletter's language, or English when no catalogue of it is installed.
        self.language = language(newsletter.language, *settings.catalogues)
        self.env = email_templates(
            *settings.templates, language=self.language.code, catalogues=settings.catalogues
        )
        self.translations = translations(self.language.code, "emails", *settings.catalogues)
        self.web_url = content.web_url
        self.date = content.date
        self.mail_domain = settings.mail_domain
        self.feedback_id = content.feedback_id
        self._boundary = new_boundary()
        self._frame = alternative_frame(self._boundary)
        # Headers every reader shares, encoded once: these before, those after each reader's.
        self._head = header_block(
            [("From", newsletter.from_header), ("Subject", encode_text_header(self.subject))]
            + ([("Reply-To", newsletter.reply_to)] if newsletter.reply_to else [])
            + [("List-Id", newsletter.list_id)]
        )
        self._tail = header_block(
            [
                ("Feedback-ID", self.feedback_id),
                ("MIME-Version", "1.0"),
                ("Content-Type", f'multipart/alternative; boundary="{self._boundary}"'),
            ]
        )
        self.tracking = content.tracking
        self.link_table: LinkTable = link_table(
            self.sections, self.issue.web_url, str(self.issue.intro_html), content.tracking
        )
        self._slots = Slots({**SLOTS, **self.link_table.slots(content.tracking.opens)})
        self._section_names = dict(newsletter.sections)
        self._variants: OrderedDict[_Key, Stencil] = OrderedDict()
        self._variant_links: dict[_Key, tuple[int, ...]] = {}
        self._lock = threading.Lock()

    # -- variants -------------------------------------------------------------------

    def chosen_sections(self, reader: Reader) -> frozenset[int]:
        """Return the ids of the sections a reader chose that exist (empty: every section)."""
        # Sections that no longer exist are ignored; choosing none (or only those) means all.
        return frozenset(reader.section_ids & self._section_names.keys())

    def sections_for(self, reader: Reader) -> list[RenderedSection]:
        """Return the sections of this issue the reader gets (empty: none of theirs has posts)."""
        return self._sections(self.chosen_sections(reader))

    def preheader_for(self, reader: Reader) -> str:
        """Return the preheader the reader's inbox shows (placeholders filled for them)."""
        return fill_preheader(self.issue.preheader, self.sections_for(reader), self.translations)

    def _sections(self, chosen: frozenset[int]) -> list[RenderedSection]:
        return [s for s in self.sections if not chosen or s.id in chosen]

    def tracks(self, reader: Reader, delivery_id: int | None) -> bool:
        """Return whether this reader's message gets tracked links (a real delivery, a
        newsletter that tracks, a reader who did not opt out)."""
        return (
            delivery_id is not None
            and reader.tracked
            and (self.tracking.clicks or self.tracking.opens)
        )

    def _key(self, reader: Reader, tracked: bool = False) -> _Key:
        return self.chosen_sections(reader), bool(_clean_name(reader.name)), tracked

    def context_for(
        self, chosen: frozenset[int], reader: _ReaderFields | Reader, urls: Mapping[str, str]
    ) -> dict[str, Any]:
        """Return the template context of a reader who chose `chosen` (empty: every section)."""
        sections = self._sections(chosen)
        preheader = fill_preheader(self.issue.preheader, sections, self.translations)
        return {
            "issue": self.issue,
            "newsletter": self.newsletter,
            "look": self.newsletter.look,
            "reader": reader,
            "preheader": preheader,
            "preheader_text": wrap(preheader),
            "piece_count": _pieces(sum(len(s.posts) for s in sections), self.translations),
            "headlines": [post.title for section in sections for post in section.posts],
            "sections": sections,
            "chosen_sections": [name for sid, name in self.newsletter.sections if sid in chosen],
            "unsubscribe_url": urls["unsubscribe_url"],
            "preferences_url": urls["preferences_url"],
        }

    def _build(self, key: _Key) -> Stencil:
        chosen, named, tracked = key
        slots = self._slots
        reader = _ReaderFields(slots["name"] if named else "", slots["email"], slots["first_name"] if named else "")
        urls = {slot: slots[slot] for slot in ("unsubscribe_url", "preferences_url")}
        context = self.context_for(chosen, reader, urls)
        if not tracked:
            return slots.stencil(self.env, "digest", context)
        used: list[int] = []

        def tracked_parts(html: str, text: str) -> tuple[str, str]:
            html, text, found = rewrite(html, text, self.link_table, slots, self.tracking)
            used.extend(found)
            return html, text

        stencil = slots.stencil(self.env, "digest", context, tracked_parts)
        self._variant_links[key] = tuple(used)
        return stencil

    def _variant(self, key: _Key) -> Stencil:
        with self._lock:
            variant = self._variants.get(key)
            if variant is not None:
                self._variants.move_to_end(key)
                return variant
            variant = self._build(key)
            self._variants[key] = variant
            if len(self._variants) > _VARIANTS_KEPT:
                dropped, _ = self._variants.popitem(last=False)
                self._variant_links.pop(dropped, None)
            return variant

    def _values(self, reader: Reader, key: _Key, delivery_id: int | None) -> dict[str, str]:
        values = {
            "name": _clean_name(reader.name),
            "first_name": first_name(reader.name),
            "email": reader.email,
            "unsubscribe_url": self.links.unsubscribe_url(reader.subscription_uid),
            "preferences_url": self.links.preferences_url(reader.subscription_uid),
        }
        if key[2] and delivery_id is not None:
            used = self._variant_links[key]
            urls = self.links.click_urls(
                self.issue_id, delivery_id, (*used, OPEN_LINK) if self.tracking.opens else used
            )
            values.update((f"link{index}", urls[index]) for index in used)
            if self.tracking.opens:
                values["open_url"] = urls[OPEN_LINK]
        return values

    # -- what callers use -------------------------------------------------------------

    def parts_for(self, reader: Reader, delivery_id: int | None = None) -> tuple[str, str]:
        """Return (HTML, text) of one reader's message, as their mail client shows them."""
        key = self._key(reader, self.tracks(reader, delivery_id))
        return self._variant(key).filled(self._values(reader, key, delivery_id))

    def message_for(self, reader: Reader, delivery_id: int | None) -> Outgoing:
        """Return the exact bytes, envelope sender and recipient of one reader's message.

        Raises HeaderError for an address that cannot be sent without SMTPUTF8.
        """
        key = self._key(reader, self.tracks(reader, delivery_id))
        variant = self._variant(key)
        values = self._values(reader, key, delivery_id)
        mailto = self.links.unsubscribe_mailto(reader.subscription_uid)
        ref = f"d{delivery_id}" if delivery_id is not None else "preview"
        message_id = make_message_id(
            self.mail_domain,
            f"digest.{self.issue_id}.{ref}" if delivery_id is not None else None,
        )
        headers = header_block(
            [
                ("To", format_mailbox(values["name"], reader.email)),
                ("Date", date_header()),
                ("Message-ID", message_id),
                *list_unsubscribe_headers(values["unsubscribe_url"], mailto),
            ]
            + ([("X-Digest-Delivery", str(delivery_id))] if delivery_id is not None else [])
        )
        body, body_hash = variant.mime_body(self._frame, values)
        return Outgoing(
            envelope_from=self.links.bounce_address(ref, reader.email),
            recipient=ascii_address(reader.email),
            data=self._head + headers + self._tail + CRLF + body,
            body_hash=body_hash,
        )

    def largest_html(self) -> str:
        """Return the biggest HTML any reader can get: every section, the longest values,
        the links rewritten when the issue tracks them."""
        reader = Reader(
            None, "x" * 22, "x" * (_LONGEST_EMAIL - 12) + "@example.org", "x" * _LONGEST_NAME
        )
        return self.parts_for(reader, _LARGEST_DELIVERY)[0]


_SOURCE = NullTranslations()  # English: the source strings


def _pieces(count: int, t: NullTranslations) -> str:
    # Translators: how many pieces (posts) a reader gets in this issue.
    return t.ngettext("%(count)d piece", "%(count)d pieces", count) % {"count": count}


class _UnknownPlaceholder(ValueError):
    pass


def _fields(template: str) -> list[tuple[str, str | None]]:
    # string.Formatter's own parsing, so "{{" and "}}" are literal braces as in str.format;
    # only bare names are allowed: no attribute access, index, conversion or format spec.
    parts: list[tuple[str, str | None]] = []
    for literal, name, spec, conversion in string.Formatter().parse(template):
        if name is not None and (spec or conversion or name not in PREHEADER_PLACEHOLDERS):
            raise _UnknownPlaceholder(name)
        parts.append((literal, name))
    return parts


def preheader_problem(template: str) -> str | None:
    """Return why a preheader's placeholders cannot be filled, or None when they can."""
    known = ", ".join(f"{{{name}}}" for name in PREHEADER_PLACEHOLDERS)
    try:
        _fields(template)
    except _UnknownPlaceholder as exc:
        return f"{{{exc}}} is not a placeholder; use {known} (a literal brace is written {{{{ or }}}})."
    except ValueError:
        return f"A brace is not closed: write placeholders as {known}, and a literal brace as {{{{ or }}}}."
    return None


def _headlines(titles: list[str], t: NullTranslations) -> str:
    shown: list[str] = []
    for title in titles:
        if shown and len(" · ".join([*shown, title])) > _HEADLINES_CHARS:
            more = len(titles) - len(shown)
            # Translators: the titles that fit in an inbox's preview line, then how many do not.
            return t.ngettext(
                "%(headlines)s and %(count)d more", "%(headlines)s and %(count)d more", more
            ) % {"headlines": " · ".join(shown), "count": more}
        shown.append(title)
    return " · ".join(shown)


def _filled(
    parts: list[tuple[str, str | None]], titles: list[str], names: list[str], t: NullTranslations
) -> str:
    values = {
        "count": _pieces(len(titles), t), "headlines": _headlines(titles, t), "sections": ", ".join(names)
    }
    return "".join(literal + (values[name] if name else "") for literal, name in parts)


def fill_preheader(
    template: str, sections: list[RenderedSection], t: NullTranslations = _SOURCE
) -> str:
    """Return the preheader of a reader who gets sections: the editor's, its placeholders
    filled with that reader's pieces, or the default one when the editor wrote none (in
    the language of t, the newsletter's "emails" catalogue)."""
    titles = [post.title for section in sections for post in section.posts]
    if not titles:
        return t.gettext("Nothing new in your sections this week.")
    try:
        parts = _fields(template.strip() or t.gettext(DEFAULT_PREHEADER))
    except ValueError:  # saved before placeholders were checked: shown as written
        return template.strip()
    return _filled(parts, titles, [section.name for section in sections], t)


def public_preheader(
    template: str, sections: list[tuple[str, list[str]]], t: NullTranslations = _SOURCE
) -> str:
    """Return an issue's summary for public pages (archive, feed): its preheader filled with
    every section's pieces, or the default one when the editor's speaks to a reader ("you"),
    in the language of t (the newsletter's "emails" catalogue)."""
    titles = [title for _, section_titles in sections for title in section_titles]
    if not titles:
        return ""
    default = t.gettext(DEFAULT_PREHEADER)
    try:
        parts = _fields(template.strip() or default)
    except ValueError:
        parts = [(template.strip(), None)]
    # The editor's own words, not the headlines: a post may well be called "What you missed".
    if _TO_THE_READER.search(" ".join(literal for literal, _ in parts)):
        parts = _fields(default)
    return _filled(parts, titles, [name for name, section_titles in sections if section_titles], t)


def _bullet(text: str) -> str:
    return "* " + text.replace("\n", "\n  ")


def _indent(text: str) -> str:
    return "\n".join(f"  {line}" if line else line for line in text.split("\n"))


def _clean_name(name: str) -> str:
    # A name is display text: no line breaks or runs of spaces reach a header or a greeting.
    return " ".join(name.split())


def first_name(name: str) -> str:
    """Return the first word of a reader's name, which greetings use; empty for no name."""
    words = name.split()
    return words[0] if words else ""


def _rendered_post(post: PostContent) -> RenderedPost:
    summary = post.summary.strip()
    tokens = [] if summary else parse_markdown(post.body_md)
    return RenderedPost(
        id=post.id,
        title=post.title,
        summary=summary,
        url=post.url,
        body_html=Markup(render_email_tokens(tokens, 3) if tokens else ""),  # under the post's h3
        title_text=_bullet(wrap(post.title, WIDTH - 2)),
        summary_text=_indent(wrap(summary, WIDTH - 2)),
        body_text=_indent(markdown_to_text(tokens, WIDTH - 2)) if tokens else "",
        image=post.image,
    )


def _issue_view(content: IssueContent) -> IssueView:
    subject = " ".join(content.subject.split())  # a line break in a subject is a typo, not a header
    subject_text = wrap(subject)
    intro = parse_markdown(content.intro_md)
    return IssueView(
        id=content.id,
        subject=subject,
        preheader=content.preheader.strip(),
        intro_html=Markup(render_email_tokens(intro, 1)),  # under the subject's h1
        intro_text=markdown_to_text(intro),
        subject_text=subject_text,
        subject_width=min(WIDTH, max(len(line) for line in subject_text.split("\n"))),
        web_url=content.web_url,
        date=content.date,
    )


def size_report(prepared: PreparedIssue) -> SizeReport:
    """Return the size of the largest reader's HTML and whether to warn or refuse."""
    size = len(prepared.largest_html().encode("utf-8"))
    kb = f"{size / 1000:.1f} KB"
    if size > REFUSE_BYTES:
        message = (
            f"The email's HTML is {kb}, over the {REFUSE_BYTES // 1000} KB this service sends: "
            f"Gmail clips messages near {CLIP_KB} KB and hides the unsubscribe link and postal "
            "address. Remove posts or shorten the intro and summaries before sending."
        )
    elif size > WARN_BYTES:
        message = (
            f"The email's HTML is {kb}, close to the {REFUSE_BYTES // 1000} KB this service "
            f"sends (Gmail clips near {CLIP_KB} KB); consider fewer posts or shorter summaries."
        )
    else:
        message = f"The email's HTML is {kb} (sending stops at {REFUSE_BYTES // 1000} KB; Gmail clips near {CLIP_KB} KB)."
    images = prepared.content.image_bytes
    if images:
        message += (f" Its images weigh {images / 1000:.1f} KB more, loaded by the reader's "
                    "client and not counted in that limit.")
    return SizeReport(size, size > WARN_BYTES, size > REFUSE_BYTES, message, images)


def essentials_problems(prepared: PreparedIssue) -> list[tuple[str, str]]:
    """Return (part, what is missing) for each essential a reader's message lacks: in HTML the
    unsubscribe link and the postal address; in text the unsubscribe URL, the postal address
    and the issue's links (the web version's and every post's)."""
    reader = Reader(None, "x" * 22, "reader@example.org")
    html, text = (unescape(part) for part in prepared.parts_for(reader))
    unsubscribe = prepared.links.unsubscribe_url(reader.subscription_uid)
    address = [line.strip() for line in prepared.newsletter.postal_address.splitlines() if line.strip()]
    missing: list[tuple[str, str]] = []
    if f'href="{unsubscribe}"' not in html:
        missing.append(("html", "the HTML part has no unsubscribe link"))
    if any(line not in html for line in address):
        missing.append(("html", "the HTML part does not show the postal address"))
    if unsubscribe not in text:
        missing.append(("text", "the text part does not give the unsubscribe URL"))
    if any(line not in text for line in address):
        missing.append(("text", "the text part does not show the postal address"))
    urls = [prepared.web_url] + [post.url for section in prepared.sections for post in section.posts]
    lost = [url for url in urls if url not in text]
    if lost:
        missing.append(("text", f"the text part drops {len(lost)} of the issue's links ({lost[0]} …)"))
    return missing


def check_sendable(prepared: PreparedIssue) -> SizeReport:
    """Return the size report if the issue may be sent; raise NotSendable saying why not."""
    reasons = []
    if not prepared.newsletter.postal_address:
        reasons.append(
            f"{prepared.newsletter.name} has no postal address; the law (CAN-SPAM) requires "
            "one in every email. Add it in the newsletter's settings."
        )
    try:
        report = size_report(prepared)
        missing = essentials_problems(prepared) if prepared.newsletter.postal_address else []
    except TemplateError as exc:
        raise NotSendable(
            reasons + [f"The email templates do not render ({exc}); `digest templates check` names the line."]
        ) from exc
    if missing:
        reasons.append(
            "The email templates (an override in the instance's templates folder) leave out what "
            f"every email must carry: {'; '.join(m for _, m in missing)}. Fix or remove the "
            "override; `digest templates check` names the line."
        )
    if report.refuse:
        reasons.append(report.message)
    if reasons:
        raise NotSendable(reasons)
    return report


def marked_as_test(
    prepared: PreparedIssue, address: str, section_ids: frozenset[int] = frozenset()
) -> Outgoing:
    """Return the (unsigned) message of a test send to address: a preview reader's (the
    sections given, every one by default; no name, no subscription), "[Test]" before its
    subject. It belongs to no delivery, so nothing about it reaches the ledger."""
    outgoing = prepared.message_for(Reader(None, PREVIEW_UID, address, "", section_ids), None)
    subject = header_block([("Subject", encode_text_header(prepared.subject))])
    marked = header_block([("Subject", encode_text_header(f"[Test] {prepared.subject}"))])
    return Outgoing(outgoing.envelope_from, outgoing.recipient, outgoing.data.replace(subject, marked, 1))
