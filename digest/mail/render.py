"""Issue → per-reader message bytes.

`prepare_issue` loads and renders everything that is the same for every reader once;
`PreparedIssue.message_for(reader, delivery_id)` then produces the exact bytes one reader
receives (only their sections, their name, their links).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from jinja2 import Environment
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest import links
from digest.mail import identity
from digest.mail.message import Mail, ascii_address, format_mailbox, make_message_id
from digest.markdown import render_markdown
from digest.models import Issue, IssuePost, Newsletter, Post


@dataclass(frozen=True)
class Reader:
    """What personalisation needs to know about one reader."""

    subscriber_id: int | None
    subscription_uid: str
    email: str
    name: str = ""
    section_ids: frozenset[int] = frozenset()  # empty: every section


@dataclass(frozen=True)
class Outgoing:
    """One message ready for the wire."""

    envelope_from: str
    recipient: str
    data: bytes


@dataclass(frozen=True)
class RenderedPost:
    """A post as the digest shows it."""

    id: int
    title: str
    summary: str
    url: str
    body_html: str


@dataclass(frozen=True)
class RenderedSection:
    """A section of the issue with its posts in the editor's order."""

    id: int
    name: str
    posts: tuple[RenderedPost, ...]


@dataclass
class PreparedIssue:
    """The parts of an issue shared by every reader, computed once."""

    issue_id: int
    subject: str
    preheader: str
    intro_html: str
    newsletter: Newsletter
    sections: tuple[RenderedSection, ...]
    config: Mapping[str, Any]
    env: Environment
    web_url: str
    date: dt.datetime | None
    extra: dict[str, Any] = field(default_factory=dict)

    def sections_for(self, reader: Reader) -> list[RenderedSection]:
        """Return the sections this reader chose (all when they chose none)."""
        if not reader.section_ids:
            return list(self.sections)
        return [s for s in self.sections if s.id in reader.section_ids]

    def context_for(self, reader: Reader) -> dict[str, Any]:
        """Return the template context of one reader's message."""
        return {
            "issue": self,
            "newsletter": self.newsletter,
            "reader": reader,
            "sections": self.sections_for(reader),
            "unsubscribe_url": links.unsubscribe_url(self.config, reader.subscription_uid),
            "preferences_url": links.preferences_url(self.config, reader.subscription_uid),
            "web_url": self.web_url,
        }

    def message_for(self, reader: Reader, delivery_id: int | None) -> Outgoing:
        """Return the exact bytes, envelope sender and recipient of one reader's message."""
        context = self.context_for(reader)
        html = self.env.get_template("emails/digest.html").render(context)
        text = self.env.get_template("emails/digest.txt").render(context)
        domain = links.mail_domain(self.config)
        ref = f"d{delivery_id}" if delivery_id is not None else "preview"
        headers = [
            *identity.list_headers(self.config, self.newsletter, reader.subscription_uid),
            ("Feedback-ID", f"{self.issue_id}:{self.newsletter.slug}:digest:{domain}"),
        ]
        if delivery_id is not None:
            headers.append(("X-Digest-Delivery", str(delivery_id)))
        mail = Mail(
            from_=identity.from_header(self.config, self.newsletter),
            to=format_mailbox(reader.name, reader.email),
            subject=self.subject,
            text=text,
            html=html,
            headers=headers,
            message_id=make_message_id(domain, f"digest.{self.issue_id}.{ref}"),
            reply_to=self.newsletter.reply_to,
        )
        return Outgoing(
            envelope_from=identity.verp_address(self.config, ref),
            recipient=ascii_address(reader.email),
            data=mail.as_bytes(),
        )


def prepare_issue(session: Session, issue_id: int, app: Flask) -> PreparedIssue:
    """Load an issue and render what every reader shares."""
    issue = session.scalars(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(
            selectinload(Issue.issue_posts).selectinload(IssuePost.post).selectinload(Post.section),
            selectinload(Issue.newsletter).selectinload(Newsletter.sections),
        )
    ).one()
    config = app.config
    newsletter = issue.newsletter
    by_section: dict[int, list[RenderedPost]] = {}
    for item in issue.issue_posts:
        post = item.post
        by_section.setdefault(post.section_id, []).append(
            RenderedPost(
                id=post.id,
                title=post.title,
                summary=post.summary,
                url=post.link_url or links.post_url(config, newsletter.slug, post.slug),
                body_html=render_markdown(post.body_md),
            )
        )
    # Sections follow the order of their first post in the issue (the editor's order).
    order = list(by_section)
    names = {s.id: s.name for s in newsletter.sections}
    sections = tuple(
        RenderedSection(id=sid, name=names[sid], posts=tuple(by_section[sid])) for sid in order
    )
    return PreparedIssue(
        issue_id=issue.id,
        subject=issue.subject,
        preheader=issue.preheader,
        intro_html=render_markdown(issue.intro_md),
        newsletter=newsletter,
        sections=sections,
        config=config,
        env=app.jinja_env,
        web_url=links.issue_url(config, newsletter.slug, issue.slug),
        date=issue.sent_at or issue.scheduled_at,
    )
