"""Posts: what editors write through the week.

Contract: a post belongs to one newsletter and one of its sections, has a slug unique
within the newsletter (derived from the title while it was never published; an editor
may set it, and once published a post's earlier slugs are kept as PostAddress rows, so
its old public URL, in archives and sent emails, redirects to the new one), and is
either a draft or published.
Publishing stamps `published_at` (the weekly issue collects posts by it); unpublishing
returns the post to draft and takes it off the public site. Only drafts that no issue
carries can be deleted. Every function validates before it changes anything, raises
`Invalid` with one message per field, and flushes; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypedDict

from sqlalchemy import delete, exists, func, or_, select
from sqlalchemy.orm import Session, joinedload

from digest.core.db import utcnow
from digest.core.models import (
    Editor,
    Issue,
    IssuePost,
    Media,
    Newsletter,
    Post,
    PostAddress,
    PostStatus,
    Section,
)
from digest.core.validation import (
    Invalid,
    check_text,
    like_pattern,
    optional_http_url,
    slugify,
    text,
    unique_slug,
)
from digest.domain import webhooks
from digest.mail.markdown import images_without_alt

PAGE_SIZE = 25
TITLE_MAX = 300
SUMMARY_MAX = 2000
BODY_MAX = 200_000


@dataclass(frozen=True)
class PostInput:
    """What the post form carries."""

    title: str = ""
    section_id: int | str | None = None
    summary: str = ""
    body_md: str = ""
    link_url: str = ""
    lead_image_id: int | str | None = None
    slug: str = ""  # empty, or unchanged: derived from the title as long as it may change

    @classmethod
    def of(cls, post: Post) -> PostInput:
        """Return a post's current values, as its form would carry them."""
        return cls(title=post.title, section_id=post.section_id, summary=post.summary,
                   body_md=post.body_md, link_url=post.link_url or "",
                   lead_image_id=post.lead_image_id, slug=post.slug)


@dataclass(frozen=True)
class IssueSection:
    """A section of an issue with its posts, in the editor's order."""

    section: Section
    posts: list[Post]


@dataclass(frozen=True)
class PostPage:
    """One page of the post list and whether more follow."""

    posts: list[Post]
    page: int
    total: int

    @property
    def pages(self) -> int:
        """Return the number of pages."""
        return max(1, -(-self.total // PAGE_SIZE))


def _section(session: Session, newsletter: Newsletter, section_id: int | str | None,
             errors: dict[str, str]) -> Section | None:
    try:
        section = session.get(Section, int(section_id or 0))
    except (TypeError, ValueError):
        section = None
    if section is None or section.newsletter_id != newsletter.id:
        errors["section_id"] = "Choose one of the newsletter's sections."
        return None
    return section


def _lead_image(session: Session, media_id: int | str | None, errors: dict[str, str]) -> Media | None:
    if media_id in (None, ""):
        return None
    try:
        found = session.get(Media, int(media_id or 0))
    except (TypeError, ValueError):
        found = None
    if found is None:
        errors["lead_image_id"] = "Choose an image of the media library, or none."
    return found


class _PostValues(TypedDict):
    title: str
    summary: str
    body_md: str
    link_url: str | None
    section: Section | None
    lead_image: Media | None


def _validate(session: Session, newsletter: Newsletter, data: PostInput) -> _PostValues:
    errors: dict[str, str] = {}
    values: _PostValues = {
        "title": text(data.title, "title", errors, required=True, max_length=TITLE_MAX),
        "summary": text(data.summary, "summary", errors, max_length=SUMMARY_MAX, multiline=True),
        "body_md": (data.body_md or "").replace("\r\n", "\n"),
        "link_url": optional_http_url(data.link_url, "link_url", errors),
        "section": _section(session, newsletter, data.section_id, errors),
        "lead_image": _lead_image(session, data.lead_image_id, errors),
    }
    if len(values["body_md"]) > BODY_MAX:
        errors["body_md"] = f"The body must be at most {BODY_MAX:,} characters."
    else:
        check_text(values["body_md"], "body_md", errors, label="The body", multiline=True)
    if errors:
        raise Invalid(errors)
    return values


def _free_slug(session: Session, newsletter: Newsletter, title: str, post_id: int | None) -> str:
    def taken(slug: str) -> bool:
        query = select(Post.id).where(Post.newsletter_id == newsletter.id, Post.slug == slug)
        if post_id is not None:
            query = query.where(Post.id != post_id)
        return session.scalar(query) is not None

    return unique_slug(slugify(title, fallback="post"), taken)


def create_post(session: Session, newsletter: Newsletter, data: PostInput,
                author: Editor | None = None) -> Post:
    """Add a draft post; raises Invalid on a missing title, foreign section or bad link."""
    values = _validate(session, newsletter, data)
    post = Post(
        newsletter=newsletter,
        author_id=author.id if author else None,
        slug=_free_slug(session, newsletter, values["title"], None),
        status=PostStatus.DRAFT,
        **values,
    )
    session.add(post)
    session.flush()
    return post


def _slug_taken(session: Session, newsletter_id: int, slug: str, post_id: int) -> bool:
    """Return whether another post has slug, now or as an earlier address."""
    return bool(session.scalar(select(
        exists().where(Post.newsletter_id == newsletter_id, Post.slug == slug, Post.id != post_id)
        | exists().where(PostAddress.newsletter_id == newsletter_id, PostAddress.slug == slug,
                         PostAddress.post_id != post_id)
    )))


def _chosen_slug(session: Session, post: Post, wanted: str) -> str | None:
    """Return the slug an editor typed, made an address; None when they left it as it was;
    raise Invalid when it is empty of letters or another post's."""
    wanted = wanted.strip()
    if not wanted or wanted == post.slug:
        return None
    slug = slugify(wanted, max_length=200, fallback="")
    if not slug:
        raise Invalid({"slug": "The web address needs letters or digits, such as weekly-notes."})
    if slug != post.slug and _slug_taken(session, post.newsletter_id, slug, post.id):
        raise Invalid({"slug": f"Another post has the web address {slug}: choose another."})
    return slug


def update_post(session: Session, post: Post, data: PostInput) -> Post:
    """Change a post; its slug is the one the editor set, or (never published, in no issue)
    follows its new title. A published post's old slug keeps redirecting."""
    values = _validate(session, post.newsletter, data)
    chosen = _chosen_slug(session, post, data.slug)
    for key, value in values.items():
        setattr(post, key, value)
    if chosen is not None and chosen != post.slug:
        if post.published_at is not None:
            session.execute(delete(PostAddress).where(PostAddress.post_id == post.id,
                                                      PostAddress.slug.in_([chosen, post.slug])))
            session.add(PostAddress(newsletter_id=post.newsletter_id, slug=post.slug, post_id=post.id))
        post.slug = chosen
    elif chosen is None and post.published_at is None and not _in_an_issue(session, post):
        post.slug = _free_slug(session, post.newsletter, post.title, post.id)
    session.flush()
    return post


def moved_post_slug(session: Session, newsletter: Newsletter, slug: str) -> str | None:
    """Return the current slug of the published post that had slug before, or None."""
    return session.scalar(
        select(Post.slug)
        .join(PostAddress, PostAddress.post_id == Post.id)
        .where(
            PostAddress.newsletter_id == newsletter.id,
            PostAddress.slug == slug,
            Post.status == PostStatus.PUBLISHED,
        )
    )


def _in_an_issue(session: Session, post: Post) -> bool:
    return session.scalar(select(exists().where(IssuePost.post_id == post.id))) or False


def publish_post(session: Session, config: Mapping[str, Any], post: Post,
                 now: dt.datetime | None = None) -> Post:
    """Publish a post: it gets a public page and joins the next issue."""
    if post.status is PostStatus.PUBLISHED:
        raise Invalid({"status": "This post is already published."})
    check_descriptions(post)
    post.status = PostStatus.PUBLISHED
    post.published_at = now or utcnow()
    session.flush()
    webhooks.post_event(session, config, post, post.published_at)
    return post


def check_descriptions(post: Post) -> None:
    """Raise Invalid unless every image the post shows has alt text (readers who cannot
    see it are told what it shows)."""
    errors = {}
    missing = images_without_alt(post.body_md)
    if missing:
        errors["body_md"] = (
            f"Describe every image before publishing: {len(missing)} "
            f"{'image has' if len(missing) == 1 else 'images have'} no alt text "
            "(write what it shows between the brackets of ![…](…))."
        )
    if post.lead_image is not None and not post.lead_image.alt.strip():
        errors["lead_image_alt"] = "Describe the lead image (its alt text) before publishing."
    if errors:
        raise Invalid(errors)


def unpublish_post(session: Session, post: Post) -> Post:
    """Return a published post to draft; its public page and archive entry disappear."""
    if post.status is not PostStatus.PUBLISHED:
        raise Invalid({"status": "This post is not published."})
    post.status = PostStatus.DRAFT
    session.flush()
    return post


def delete_post(session: Session, post: Post) -> None:
    """Delete a draft that no issue carries; published posts must be unpublished first."""
    if post.status is PostStatus.PUBLISHED:
        raise Invalid({"status": "Unpublish this post before deleting it."})
    if _in_an_issue(session, post):
        raise Invalid({"status": "An issue carries this post: remove it from the issue first."})
    session.delete(post)
    session.flush()


def issue_sections(issue: Issue, *, published_only: bool = False) -> list[IssueSection]:
    """Return the issue's posts grouped by section, as the email and the archive show them.

    Sections follow the order of their first post in the issue, posts the editor's
    order. published_only leaves out posts unpublished since (the archive's rule).
    """
    grouped: dict[int, IssueSection] = {}
    for item in issue.issue_posts:
        post = item.post
        if published_only and post.status is not PostStatus.PUBLISHED:
            continue
        grouped.setdefault(post.section_id, IssueSection(post.section, [])).posts.append(post)
    return list(grouped.values())


def get_post(session: Session, newsletter: Newsletter, post_id: int) -> Post | None:
    """Return the newsletter's post with this id, or None."""
    post = session.get(Post, post_id)
    return post if post is not None and post.newsletter_id == newsletter.id else None


def find_post(session: Session, post_id: int) -> Post | None:
    """Return the post with this id in any newsletter, section and newsletter loaded, or None."""
    return session.scalar(
        select(Post)
        .options(joinedload(Post.section), joinedload(Post.newsletter))
        .where(Post.id == post_id)
    )


def published_post(session: Session, newsletter: Newsletter, slug: str) -> Post | None:
    """Return the published post with this slug, or None."""
    return session.scalar(
        select(Post)
        .options(joinedload(Post.section))
        .where(
            Post.newsletter_id == newsletter.id,
            Post.slug == slug,
            Post.status == PostStatus.PUBLISHED,
        )
    )


def list_posts(session: Session, newsletter: Newsletter, *, status: str = "",
               section_id: int | None = None, search: str = "", page: int = 1) -> PostPage:
    """Return one page of the newsletter's posts, newest first, filtered."""
    query = select(Post).where(Post.newsletter_id == newsletter.id)
    if status in {s.value for s in PostStatus}:
        query = query.where(Post.status == PostStatus(status))
    if section_id:
        query = query.where(Post.section_id == section_id)
    words = search.strip()
    if words:
        pattern = like_pattern(words)
        query = query.where(
            or_(
                func.lower(Post.title).like(pattern, escape="\\"),
                func.lower(Post.summary).like(pattern, escape="\\"),
                func.lower(Post.body_md).like(pattern, escape="\\"),
            )
        )
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    posts = list(
        session.scalars(
            query.options(joinedload(Post.section))
            .order_by(Post.updated_at.desc(), Post.id.desc())
            .limit(PAGE_SIZE)
            .offset((page - 1) * PAGE_SIZE)
        )
    )
    return PostPage(posts=posts, page=page, total=total)
