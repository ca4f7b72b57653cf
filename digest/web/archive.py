"""Public archive pages and the Atom feed (paths fixed in digest/links.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
from urllib.parse import urlsplit

from flask import Blueprint, Response, abort, current_app, redirect, render_template, url_for
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response as BaseResponse

from digest.core.extensions import db_session
from digest.core.models import Issue, Newsletter
from digest.domain import archive, links, look, newsletters, posts
from digest.domain.subscribers.signup import consent_text
from digest.mail.markdown import render_markdown
from digest.web.language import page_language, speak

bp = Blueprint("archive", __name__)


def _route(path: str) -> str:
    return path.replace("{", "<").replace("}", ">")


def _newsletter(session: Session, slug: str) -> Newsletter:
    newsletter = newsletters.find_newsletter(session, slug)
    if newsletter is None:
        abort(404)
    speak(newsletter.language)
    return newsletter


def _page(template: str, newsletter: Newsletter, **context: object) -> str:
    # Every archive page ends with the signup form, empty: errors show on the front page.
    return render_template(
        template, newsletter=newsletter, consent_text=consent_text(current_app.config, newsletter), form={}, errors={},
        local_time=archive.local_time, local_date=archive.local_date, summary=_summary, **context,
    )


def _summary(issue: Issue) -> str:
    return archive.summary(current_app.config, issue)


def _stamp(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@bp.get(_route(links.ARCHIVE_PATH))
def index(newsletter: str) -> str:
    """Show the archive index: every sent issue, newest first."""
    dbs = db_session()
    found = _newsletter(dbs, newsletter)
    return _page("archive/index.html", found, issues=archive.sent_issues(dbs, found, with_posts=True))


@bp.get(_route(links.ISSUE_PATH))
def issue(newsletter: str, issue: str) -> str:
    """Show a sent issue as a web page."""
    dbs = db_session()
    found = _newsletter(dbs, newsletter)
    sent = archive.sent_issue(dbs, found, issue)
    if sent is None:
        abort(404)
    return _page(
        "archive/issue.html", found, issue=sent, sections=archive.issue_sections(sent),
        intro_html=render_markdown(sent.intro_md), render_markdown=render_markdown,
        post_link=lambda post: url_for("archive.post", newsletter=found.slug, post=post.slug),
    )


@bp.get(_route(links.POST_PATH))
def post(newsletter: str, post: str) -> str | BaseResponse:
    """Show a published post as a web page (its earlier addresses redirect here)."""
    dbs = db_session()
    found = _newsletter(dbs, newsletter)
    published = posts.published_post(dbs, found, post)
    if published is None:
        moved = posts.moved_post_slug(dbs, found, post)
        if moved is None:
            abort(404)
        return redirect(url_for("archive.post", newsletter=found.slug, post=moved), 301)
    return _page("archive/post.html", found, post=published, body_html=render_markdown(published.body_md))


@bp.get(_route(links.ARCHIVE_PATH) + "look.css")
def look_css(newsletter: str) -> Response:
    """Return the stylesheet that gives the newsletter's pages its look (accent, fonts)."""
    css = look.stylesheet(look.look_of(_newsletter(db_session(), newsletter)))
    response = current_app.response_class(css, mimetype="text/css")
    # Pages link it with a version of its content (look_url), so a change shows at once.
    response.headers["Cache-Control"] = "public, max-age=86400"
    return response


def look_url(newsletter: Newsletter) -> str:
    """Return the URL of the newsletter's look stylesheet, versioned by its content."""
    css = look.stylesheet(look.look_of(newsletter))
    version = hashlib.sha256(css.encode()).hexdigest()[:12]
    return url_for("archive.look_css", newsletter=newsletter.slug, v=version)


@bp.get(_route(links.FEED_PATH))
def feed(newsletter: str) -> Response:
    """Return the Atom feed of sent issues."""
    dbs = db_session()
    found = _newsletter(dbs, newsletter)
    config = current_app.config

    def content(item: Issue, sections: list[posts.IssueSection]) -> str:
        # Rendered as HTML, then escaped once more by the XML template (type="html").
        return render_template(
            "archive/_issue_body.html", sections=sections, intro_html=render_markdown(item.intro_md),
            render_markdown=render_markdown,
            post_link=lambda p: links.post_url(config, found.slug, p.slug),
        )

    issues = archive.sent_issues(dbs, found, limit=archive.FEED_ENTRIES, with_posts=True)
    xml = render_template(
        "archive/feed.xml",
        newsletter=found,
        entries=[(item, archive.issue_sections(item)) for item in issues],
        host=urlsplit(config["BASE_URL"]).hostname,
        feed_url=links.absolute(config, links.FEED_PATH.format(newsletter=found.slug)),
        archive_url=links.absolute(config, links.ARCHIVE_PATH.format(newsletter=found.slug)),
        issue_url=lambda item: links.issue_url(config, found.slug, item.slug),
        content=content,
        stamp=_stamp,
        summary=_summary,
        lang=page_language().tag,
    )
    return Response(xml, mimetype="application/atom+xml")
