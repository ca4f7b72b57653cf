"""The public archive: sent issues and published posts as readers may see them.

Contract: only SENT issues are public, and within them only posts that are still
published (unpublishing a post retracts it from the archive too). Sections follow the
order of their first post in the issue, posts the editor's order, as in the email.
Dates are shown in the newsletter's time zone.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest import posts
from digest.models import Issue, IssuePost, IssueStatus, Newsletter, Post

FEED_ENTRIES = 50
_WITH_POSTS = selectinload(Issue.issue_posts).selectinload(IssuePost.post).selectinload(Post.section)


def sent_issues(session: Session, newsletter: Newsletter, limit: int | None = None,
                with_posts: bool = False) -> list[Issue]:
    """Return the newsletter's sent issues, newest first (with their posts if asked)."""
    query = (
        select(Issue)
        .where(Issue.newsletter_id == newsletter.id, Issue.status == IssueStatus.SENT)
        .order_by(Issue.sent_at.desc(), Issue.id.desc())
    )
    if with_posts:
        query = query.options(_WITH_POSTS)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))


def sent_issue(session: Session, newsletter: Newsletter, slug: str) -> Issue | None:
    """Return the sent issue with this slug and its posts, or None."""
    return session.scalar(
        select(Issue)
        .where(
            Issue.newsletter_id == newsletter.id,
            Issue.slug == slug,
            Issue.status == IssueStatus.SENT,
        )
        .options(_WITH_POSTS)
    )


def issue_sections(issue: Issue) -> list[posts.IssueSection]:
    """Return the issue's still-published posts grouped by section, as the email grouped them."""
    return posts.issue_sections(issue, published_only=True)


def local_time(newsletter: Newsletter, moment: dt.datetime | None) -> dt.datetime | None:
    """Return moment in the newsletter's time zone."""
    return moment.astimezone(ZoneInfo(newsletter.time_zone)) if moment else None
