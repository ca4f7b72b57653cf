"""The public archive: sent issues and published posts as readers may see them.

Contract: only SENT issues are public, and within them only posts that are still
published (unpublishing a post retracts it from the archive too). Sections follow the
order of their first post in the issue, posts the editor's order, as in the email.
Dates are shown in the newsletter's time zone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session, joinedload, selectinload
from sqlalchemy.sql import ColumnElement

from digest.core.models import Issue, IssuePost, IssueStatus, Newsletter, Post
from digest.core.resources import translation_folders
from digest.domain import posts
from digest.mail.language import translations
from digest.mail.render import public_preheader

FEED_ENTRIES = 50
_WITH_POSTS = selectinload(Issue.issue_posts).selectinload(IssuePost.post).selectinload(Post.section)


def _newest_first(newsletter: Newsletter) -> Select[Issue]:
    return (
        select(Issue)
        .where(Issue.newsletter_id == newsletter.id, Issue.status == IssueStatus.SENT)
        .order_by(Issue.sent_at.desc(), Issue.id.desc())
    )


def sent_issues(session: Session, newsletter: Newsletter, limit: int | None = None,
                with_posts: bool = False) -> list[Issue]:
    """Return the newsletter's sent issues, newest first (with their posts if asked)."""
    query = _newest_first(newsletter)
    if with_posts:
        query = query.options(_WITH_POSTS)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


@dataclass(frozen=True)
class IssuePage:
    """One page of sent issues, newest first."""

    issues: list[Issue]
    page: int
    total: int
    per_page: int

    @property
    def pages(self) -> int:
        """Return the number of pages."""
        return max(1, -(-self.total // self.per_page))


def sent_issue_page(session: Session, newsletter: Newsletter, page: int = 1,
                    per_page: int = 20) -> IssuePage:
    """Return one page of the newsletter's sent issues, newest first."""
    page = max(1, page)
    query = _newest_first(newsletter)
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    issues = list(
        session.scalars(
            query.options(joinedload(Issue.newsletter)).limit(per_page).offset((page - 1) * per_page)
        )
    )
    return IssuePage(issues=issues, page=page, total=total, per_page=per_page)


def _sent(session: Session, *conditions: ColumnElement[bool]) -> Issue | None:
    return session.scalar(
        select(Issue).where(Issue.status == IssueStatus.SENT, *conditions).options(_WITH_POSTS)
    )


def sent_issue(session: Session, newsletter: Newsletter, slug: str) -> Issue | None:
    """Return the sent issue with this slug and its posts, or None."""
    return _sent(session, Issue.newsletter_id == newsletter.id, Issue.slug == slug)


def sent_issue_by_id(session: Session, issue_id: int) -> Issue | None:
    """Return the sent issue with this id (any newsletter) and its posts, or None."""
    return _sent(session, Issue.id == issue_id)


def issue_sections(issue: Issue) -> list[posts.IssueSection]:
    """Return the issue's still-published posts grouped by section, as the email grouped them."""
    return posts.issue_sections(issue, published_only=True)


def summary(config: Mapping[str, Any], issue: Issue) -> str:
    """Return the issue's summary for public pages: its preheader as a reader of every
    section would see it (in the newsletter's language), never a placeholder or words
    meant for one reader."""
    sections = [(part.section.name, [post.title for post in part.posts]) for part in issue_sections(issue)]
    words = translations(issue.newsletter.language, "emails", *translation_folders(config))
    return public_preheader(issue.preheader, sections, words)


def local_time(newsletter: Newsletter, moment: dt.datetime | None) -> dt.datetime | None:
    """Return moment in the newsletter's time zone."""
    return moment.astimezone(ZoneInfo(newsletter.time_zone)) if moment else None


def local_date(newsletter: Newsletter, moment: dt.datetime | None) -> str:
    """Return moment's ISO date ("2026-12-05") in the newsletter's time zone ("" for none)."""
    local = local_time(newsletter, moment)
    return local.date().isoformat() if local else ""
