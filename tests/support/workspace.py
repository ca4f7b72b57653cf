"""Data for the editor workspace tests: the demo newsletter, sent issues, deliveries."""

from __future__ import annotations

import datetime as dt

from sqlalchemy.orm import Session

from digest.db import utcnow
from digest.demo import load_demo
from digest.models import Issue, IssuePost, IssueStatus, Newsletter, Post


def demo_newsletter(db: Session) -> Newsletter:
    """Load and commit the demo newsletter; return it."""
    newsletter = load_demo(db)
    assert newsletter is not None
    db.commit()
    return newsletter


def sent_issue(db: Session, newsletter: Newsletter, slug: str, posts: list[Post],
               sent_at: dt.datetime | None = None, subject: str = "An issue") -> Issue:
    """Add and commit an issue in the SENT state carrying posts in this order."""
    sent_at = sent_at or utcnow()
    issue = Issue(newsletter=newsletter, slug=slug, subject=subject, status=IssueStatus.SENT,
                  intro_md="Hello **readers**.", preheader="The preheader", started_at=sent_at,
                  sent_at=sent_at, created_at=sent_at - dt.timedelta(hours=1))
    db.add(issue)
    db.flush()
    issue.issue_posts = [IssuePost(post_id=p.id, position=i) for i, p in enumerate(posts)]
    db.commit()
    return issue
