"""Issues to render in tests: the demo issue, or one built from given posts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import Issue, IssuePost, Newsletter, Post, PostStatus, Section
from digest.core.storage import media_storage
from digest.domain.demo import load_demo, load_demo_images


def demo_issue(db: Session) -> Issue:
    """Load the demo newsletter and return its draft issue (committed)."""
    load_demo(db)
    db.commit()
    return db.scalars(select(Issue)).one()


def pictured_demo_issue(app: Flask, db: Session) -> Issue:
    """Load the demo newsletter with its pictures drawn and stored in the app's media
    storage, as `digest demo` does; return its draft issue (committed)."""
    newsletter = load_demo(db)
    assert newsletter is not None
    load_demo_images(db, app.config, media_storage(app.config), newsletter)
    db.commit()
    return db.scalars(select(Issue)).one()


@dataclass(frozen=True)
class PostSpec:
    """A post to put in an issue."""

    section: str
    title: str
    summary: str = ""
    body: str = ""
    link: str | None = None


def make_issue(
    db: Session,
    posts: Sequence[PostSpec],
    *,
    subject: str = "This week",
    preheader: str = "",
    intro: str = "",
    name: str = "The Test Weekly",
    postal_address: str = "1 Test Lane, 12345 Testing",
    sections: Sequence[str] = ("News", "Tools", "Careers"),
) -> Issue:
    """Add a newsletter with sections, the given posts and an issue carrying them (committed)."""
    newsletter = Newsletter(
        slug=f"test-{utcnow().timestamp():.0f}-{len(posts)}",
        name=name,
        postal_address=postal_address,
        reply_to="editors@news.example.org",
        time_zone="Europe/Berlin",
    )
    by_name = {
        title: Section(newsletter=newsletter, slug=title.lower(), name=title, position=i)
        for i, title in enumerate(sections)
    }
    db.add(newsletter)
    db.add_all(by_name.values())
    created = [
        Post(
            newsletter=newsletter,
            section=by_name[spec.section],
            slug=f"post-{i}",
            title=spec.title,
            summary=spec.summary,
            body_md=spec.body,
            link_url=spec.link,
            status=PostStatus.PUBLISHED,
            published_at=utcnow(),
        )
        for i, spec in enumerate(posts)
    ]
    db.add_all(created)
    issue = Issue(
        newsletter=newsletter,
        slug="this-week",
        subject=subject,
        preheader=preheader,
        intro_md=intro,
    )
    db.add(issue)
    db.flush()
    issue.issue_posts = [IssuePost(post_id=p.id, position=i) for i, p in enumerate(created)]
    db.commit()
    return issue


def section_ids(db: Session, *names: str) -> frozenset[int]:
    """Return the ids of the sections with these names."""
    return frozenset(db.scalars(select(Section.id).where(Section.name.in_(names))))
