"""Sources: the feeds a newsletter reads into its inbox, and the health of each.

Contract: a source is an http(s) URL, once per newsletter, feeding one of the
newsletter's sections. The clock claims a due source with one guarded UPDATE (due, and
no live lease), so two schedulers never fetch the same source at once; each fetch ends
in `record_success` (validators kept for the next conditional GET, next fetch one
interval away, failures reset) or `record_failure` (the error kept, the next try
doubling away from the last up to MAX_BACKOFF). Functions flush; the caller commits.
"""

from __future__ import annotations

import datetime as dt
import hashlib

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, joinedload

from digest.core.db import rowcount, utcnow
from digest.core.models import Newsletter, Section, Source
from digest.core.validation import Invalid, optional_http_url

LEASE = dt.timedelta(minutes=5)
MAX_BACKOFF = dt.timedelta(days=1)
ERROR_MAX = 500


def url_hash(url: str) -> str:
    """Return the key a URL is unique by (sha256, hex)."""
    return hashlib.sha256(url.encode()).hexdigest()


def _section(session: Session, newsletter: Newsletter, slug: str) -> Section:
    section = session.scalar(
        select(Section).where(Section.newsletter_id == newsletter.id, Section.slug == slug.strip())
    )
    if section is None:
        known = ", ".join(s.slug for s in newsletter.sections) or "none yet"
        raise Invalid({"section": f"There is no section {slug!r} (sections: {known})."})
    return section


def add_source(session: Session, newsletter: Newsletter, url: str, section_slug: str,
               now: dt.datetime | None = None) -> Source:
    """Add a feed for a section, due at once; raises Invalid on a bad or known URL or section."""
    errors: dict[str, str] = {}
    clean = optional_http_url(url, "url", errors)
    if clean is None and not errors:
        errors["url"] = "Give the feed's address (http:// or https://)."
    if errors:
        raise Invalid(errors)
    assert clean is not None
    section = _section(session, newsletter, section_slug)
    key = url_hash(clean)
    if session.scalar(select(Source.id).where(Source.newsletter_id == newsletter.id,
                                              Source.url_hash == key)) is not None:
        raise Invalid({"url": "This feed is already a source."})
    source = Source(newsletter=newsletter, section=section, url=clean, url_hash=key,
                    next_fetch_at=now or utcnow())
    session.add(source)
    session.flush()
    return source


def list_sources(session: Session, newsletter: Newsletter) -> list[Source]:
    """Return the newsletter's sources, oldest first, with their sections."""
    return list(session.scalars(
        select(Source).options(joinedload(Source.section))
        .where(Source.newsletter_id == newsletter.id).order_by(Source.id)
    ))


def get_source(session: Session, source_id: int, newsletter: Newsletter | None = None) -> Source | None:
    """Return the source with this id (of this newsletter when given), or None."""
    source = session.get(Source, source_id)
    if source is None or (newsletter is not None and source.newsletter_id != newsletter.id):
        return None
    return source


def remove_source(session: Session, source: Source) -> None:
    """Delete a source; its inbox items stay, attributed by name."""
    session.delete(source)
    session.flush()


def due_source_ids(session: Session, now: dt.datetime, *, every: bool = False) -> list[int]:
    """Return the ids of sources due for a fetch (all of them when every)."""
    query = select(Source.id).order_by(Source.next_fetch_at, Source.id)
    if not every:
        query = query.where(Source.next_fetch_at <= now)
    return list(session.scalars(query))


def claim(session: Session, source_id: int, now: dt.datetime, *, every: bool = False) -> bool:
    """Take the lease on a due source for one fetch; False if it is not due or taken."""
    statement = (
        update(Source)
        .where(Source.id == source_id,
               or_(Source.lease_until.is_(None), Source.lease_until < now))
        .values(lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    if not every:
        statement = statement.where(Source.next_fetch_at <= now)
    return rowcount(session.execute(statement)) == 1


def record_success(session: Session, source: Source, status: int, *, title: str | None,
                   etag: str | None, last_modified: str | None, interval: dt.timedelta,
                   now: dt.datetime) -> None:
    """Note a fetch that worked (200 or 304): keep the validators, due again in interval."""
    source.last_fetch_at = now
    source.last_status = status
    source.last_error = None
    source.failures = 0
    source.next_fetch_at = now + interval
    source.lease_until = None
    if status != 304:
        source.etag = etag[:500] if etag else None
        source.last_modified = last_modified[:100] if last_modified else None
    if title:
        source.title = title
    session.flush()


def backoff(failures: int, interval: dt.timedelta) -> dt.timedelta:
    """Return the wait after this many failures in a row: interval doubled each time, at most a day."""
    wait: dt.timedelta = interval * (2 ** min(max(failures - 1, 0), 16))
    return min(wait, MAX_BACKOFF)


def record_failure(session: Session, source: Source, error: str, status: int | None, *,
                   interval: dt.timedelta, now: dt.datetime) -> None:
    """Note a failed fetch: keep why, try again later and later."""
    source.last_fetch_at = now
    source.last_status = status
    source.last_error = error[:ERROR_MAX]
    source.failures += 1
    source.next_fetch_at = now + backoff(source.failures, interval)
    source.lease_until = None
    session.flush()
