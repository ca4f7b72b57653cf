"""The inbox: links from sources and saved by hand, waiting for an editor to accept or dismiss.

Contract: an item is unique in its newsletter by canonical URL (tracking parameters
removed, see feeds.canonical_url) and by GUID, enforced by the schema; adding one that
is already there, in any state, changes nothing, so a feed read twice or a link saved
twice shows once. Accepting a new item makes a draft post in its section (or the one
chosen), with the item's link, its summary (which the editor may change on the way) and
a line naming its source; dismissing hides it for good. The weekly assembly publishes
the drafts accepted this way when the newsletter says so (`publish_accepted`).
Functions flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, joinedload

from digest.core.db import utcnow
from digest.core.models import InboxItem, InboxState, Newsletter, Post, PostStatus, Section, Source
from digest.core.validation import Invalid, optional_http_url, text
from digest.domain import posts
from digest.domain.feeds import Entry, canonical_url, plain_text
from digest.domain.sources import url_hash

PAGE_SIZE = 25


@dataclass(frozen=True)
class InboxPage:
    """One page of the inbox and how many items it holds in all."""

    items: list[InboxItem]
    page: int
    total: int

    @property
    def pages(self) -> int:
        """Return the number of pages."""
        return max(1, -(-self.total // PAGE_SIZE))


def _known(session: Session, newsletter_id: int, key: str, guid_key: str | None) -> InboxItem | None:
    condition = InboxItem.url_hash == key
    if guid_key is not None:
        condition = or_(condition, InboxItem.guid_hash == guid_key)
    return session.scalar(
        select(InboxItem).where(InboxItem.newsletter_id == newsletter_id, condition).limit(1)
    )


def _insert(session: Session, item: InboxItem) -> InboxItem | None:
    # A savepoint: a concurrent insert of the same link loses the race quietly.
    try:
        with session.begin_nested():
            session.add(item)
    except IntegrityError:
        return None
    return item


def add_entries(session: Session, source: Source, entries: list[Entry],
                now: dt.datetime | None = None) -> int:
    """Put a feed's new entries in the inbox; return how many were new."""
    added = 0
    name = source.title or source.url
    for entry in entries:
        key = url_hash(canonical_url(entry.url))
        guid_key = url_hash(f"guid:{entry.guid}") if entry.guid else None
        if _known(session, source.newsletter_id, key, guid_key) is not None:
            continue
        item = InboxItem(
            newsletter_id=source.newsletter_id, source_id=source.id, section_id=source.section_id,
            url=entry.url, url_hash=key, guid_hash=guid_key, title=entry.title,
            summary=entry.summary, source_name=name[:300], published_at=entry.published_at,
            created_at=now or utcnow(),
        )
        if _insert(session, item) is not None:
            added += 1
    session.flush()
    return added


def save_link(session: Session, newsletter: Newsletter, url: str, title: str = "",
              description: str = "", now: dt.datetime | None = None) -> tuple[InboxItem, bool]:
    """Put any page in the inbox; return (item, created). Without a title the clock reads
    the page's own; a link already there is returned as it is."""
    errors: dict[str, str] = {}
    clean = optional_http_url(url, "url", errors)
    if clean is None and not errors:
        errors["url"] = "Give the page's address (http:// or https://)."
    given_title = text(title, "title", errors, max_length=2000)
    given_description = text(description, "description", errors, max_length=20_000,
                             multiline=True)
    if errors:
        raise Invalid(errors)
    assert clean is not None
    key = url_hash(canonical_url(clean))
    existing = _known(session, newsletter.id, key, None)
    if existing is not None:
        return existing, False
    item = InboxItem(
        newsletter_id=newsletter.id, url=clean, url_hash=key,
        title=plain_text(given_title, 300) or clean[:300],
        summary=plain_text(given_description), source_name="Saved link",
        page_pending=not given_title, created_at=now or utcnow(),
    )
    if _insert(session, item) is None:
        found = _known(session, newsletter.id, key, None)
        assert found is not None
        return found, False
    session.flush()
    return item, True


def pending_page_ids(session: Session, limit: int = 20) -> list[int]:
    """Return saved links whose page has not been read yet, oldest first."""
    return list(session.scalars(
        select(InboxItem.id).where(InboxItem.page_pending.is_(True)).order_by(InboxItem.id)
        .limit(limit)
    ))


def record_page(session: Session, item_id: int, title: str, description: str) -> None:
    """Fill a saved link with what its page says (what is empty stays as saved)."""
    values: dict[str, object] = {"page_pending": False}
    if title:
        values["title"] = title
    if description:
        values["summary"] = description
    session.execute(
        update(InboxItem).where(InboxItem.id == item_id, InboxItem.page_pending.is_(True))
        .values(**values).execution_options(synchronize_session=False)
    )
    session.flush()


def list_items(session: Session, newsletter: Newsletter, *, state: str = "new",
               page: int = 1) -> InboxPage:
    """Return one page of the inbox in a state, newest first."""
    query = select(InboxItem).where(InboxItem.newsletter_id == newsletter.id)
    if state in {s.value for s in InboxState}:
        query = query.where(InboxItem.state == InboxState(state))
    total = session.scalar(select(func.count()).select_from(query.subquery())) or 0
    page = max(1, page)
    items = list(session.scalars(
        query.options(joinedload(InboxItem.section))
        .order_by(InboxItem.published_at.desc().nulls_last(), InboxItem.id.desc())
        .limit(PAGE_SIZE).offset((page - 1) * PAGE_SIZE)
    ))
    return InboxPage(items=items, page=page, total=total)


def count_new(session: Session, newsletter: Newsletter) -> int:
    """Return how many items wait for a decision."""
    return session.scalar(
        select(func.count()).select_from(InboxItem)
        .where(InboxItem.newsletter_id == newsletter.id, InboxItem.state == InboxState.NEW)
    ) or 0


def get_item(session: Session, item_id: int, newsletter: Newsletter | None = None) -> InboxItem | None:
    """Return the inbox item with this id (of this newsletter when given), or None."""
    item = session.get(InboxItem, item_id)
    if item is None or (newsletter is not None and item.newsletter_id != newsletter.id):
        return None
    return item


def _undecided(item: InboxItem) -> None:
    if item.state is not InboxState.NEW:
        raise Invalid({"state": f"This item is already {item.state.value}."})


def attribution(item: InboxItem) -> str:
    """Return the line a post accepted from an item names its source with (Markdown)."""
    name = item.source_name.replace("[", "(").replace("]", ")")
    if item.source is not None:
        return f"Found via [{name}]({item.source.url})."
    return f"Found via {name.lower() if name == 'Saved link' else name}."


def accept(session: Session, item: InboxItem, *, summary: str | None = None,
           section_id: int | None = None, now: dt.datetime | None = None) -> Post:
    """Turn a new item into a draft post (link, summary, attribution); return the post."""
    _undecided(item)
    newsletter = session.get(Newsletter, item.newsletter_id)
    assert newsletter is not None
    chosen = section_id or item.section_id
    if chosen is None:
        first = session.scalar(select(Section.id).where(Section.newsletter_id == newsletter.id)
                               .order_by(Section.position, Section.id))
        chosen = first
    post = posts.create_post(session, newsletter, posts.PostInput(
        title=item.title, section_id=chosen,
        summary=item.summary if summary is None else summary,
        body_md=attribution(item), link_url=item.url,
    ))
    item.state = InboxState.ACCEPTED
    item.decided_at = now or utcnow()
    item.post_id = post.id
    session.flush()
    return post


def dismiss(session: Session, item: InboxItem, now: dt.datetime | None = None) -> InboxItem:
    """Hide a new item for good (it will not come back from its feed)."""
    _undecided(item)
    item.state = InboxState.DISMISSED
    item.decided_at = now or utcnow()
    session.flush()
    return item


def publish_accepted(session: Session, config: Mapping[str, Any], newsletter: Newsletter,
                     now: dt.datetime) -> int:
    """Publish the drafts accepted from the inbox, when the newsletter pulls them into its
    weekly issue; return how many."""
    if not newsletter.include_accepted:
        return 0
    drafts = list(session.scalars(
        select(Post).join(InboxItem, InboxItem.post_id == Post.id)
        .where(InboxItem.newsletter_id == newsletter.id,
               InboxItem.state == InboxState.ACCEPTED,
               Post.status == PostStatus.DRAFT, Post.published_at.is_(None))
    ))
    for post in drafts:
        posts.publish_post(session, config, post, now)
    return len(drafts)


def set_include_accepted(session: Session, newsletter: Newsletter, include: bool) -> None:
    """Choose whether the weekly assembly pulls in the drafts accepted from the inbox."""
    newsletter.include_accepted = include
    session.flush()
