"""Feed intake: the clock's fetch of due sources, and the reading of saved links' pages.

Contract: every request goes through the shared outbound client (digest.core.outbound:
no private, loopback or link-local address unless DIGEST_ALLOW_PRIVATE_URLS, timeouts,
a size cap of DIGEST_FEED_MAX_BYTES). A source is claimed by a lease before its fetch
and released by the outcome, each in its own short transaction, so no transaction is
held open across the network; a fetch sends the last ETag and Last-Modified back, and a
304 adds nothing. An error of any kind (network, status, size, a hostile or unreadable
document) is recorded on the source, which backs off; it never stops the other sources.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

from flask import Flask

from digest.core import outbound
from digest.core.db import Database, utcnow
from digest.core.models import Source
from digest.domain import inbox, sources
from digest.domain.feeds import FeedError, page_metadata, parse_feed

log = logging.getLogger(__name__)
ACCEPT = ("application/feed+json, application/json;q=0.9, application/atom+xml, "
          "application/rss+xml, application/xml;q=0.9, text/xml;q=0.8, */*;q=0.1")
PAGE_ACCEPT = "text/html,application/xhtml+xml;q=0.9,*/*;q=0.1"


@dataclass
class FetchReport:
    """What one round of fetching did: per source id, new items or the error."""

    added: dict[int, int] = field(default_factory=dict)
    unchanged: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)


def _client(app: Flask) -> outbound.OutboundClient:
    return outbound.client_from_config(
        app.config, max_bytes=app.config["FEED_MAX_BYTES"], follow_redirects=True,
        user_agent="digest feed reader",
    )


def _charset(content_type: str) -> str:
    for part in content_type.split(";")[1:]:
        name, _, value = part.strip().partition("=")
        if name.lower() == "charset":
            return value.strip().strip('"') or "utf-8"
    return "utf-8"


def _interval(app: Flask) -> dt.timedelta:
    return dt.timedelta(seconds=app.config["FEED_INTERVAL_SECONDS"])


def _fetch_one(app: Flask, source_id: int, now: dt.datetime, report: FetchReport,
               client: outbound.OutboundClient) -> None:
    database: Database = app.extensions["digest.db"]
    with database.session() as session:
        source = session.get(Source, source_id)
        if source is None:
            return
        url, etag, modified = source.url, source.etag, source.last_modified
    headers = {"Accept": ACCEPT}
    if etag:
        headers["If-None-Match"] = etag
    if modified:
        headers["If-Modified-Since"] = modified
    status: int | None = None
    try:
        reply = client.request("GET", url, headers=headers)
        status = reply.status
        if status == 304:
            feed = None
        elif status != 200:
            raise FeedError(f"The server answered {status}.")
        else:
            feed = parse_feed(reply.body, reply.headers.get("Content-Type", ""))
    except Exception as exc:  # noqa: BLE001  (whatever a stranger's server does, the source says why)
        with database.session() as session:
            source = session.get(Source, source_id)
            if source is not None:
                sources.record_failure(session, source, str(exc), status,
                                       interval=_interval(app), now=now)
        report.failed[source_id] = str(exc)
        log.info("source %s: %s", url, exc)
        return
    with database.session() as session:
        source = session.get(Source, source_id)
        if source is None:
            return
        if feed is None:
            report.unchanged.append(source_id)
        else:
            if feed.title:
                source.title = feed.title
            report.added[source_id] = inbox.add_entries(session, source, feed.entries, now)
        sources.record_success(
            session, source, status or 200, title=feed.title if feed else None,
            etag=reply.headers.get("ETag"), last_modified=reply.headers.get("Last-Modified"),
            interval=_interval(app), now=now,
        )


def fetch_sources(app: Flask, now: dt.datetime | None = None, *, every: bool = False) -> FetchReport:
    """Fetch every due source (every source when every); return what each gave."""
    database: Database = app.extensions["digest.db"]
    now = now or utcnow()
    report = FetchReport()
    with database.session() as session:
        due = sources.due_source_ids(session, now, every=every)
    if not due:
        return report
    with _client(app) as client:
        for source_id in due:
            with database.session() as session:
                claimed = sources.claim(session, source_id, now, every=every)
            if claimed:
                _fetch_one(app, source_id, now, report, client)
    return report


def read_saved_pages(app: Flask) -> int:
    """Read the title and description of saved links from their pages; return how many."""
    database: Database = app.extensions["digest.db"]
    with database.session() as session:
        pending = [(i, item.url) for i in inbox.pending_page_ids(session)
                   if (item := inbox.get_item(session, i)) is not None]
    if not pending:
        return 0
    with _client(app) as client:
        for item_id, url in pending:
            title = description = ""
            try:
                reply = client.request("GET", url, headers={"Accept": PAGE_ACCEPT})
                if reply.status == 200:
                    meta = page_metadata(reply.body,
                                         _charset(reply.headers.get("Content-Type", "")))
                    title, description = meta.title, meta.description
            except Exception as exc:  # noqa: BLE001  (the link stays, with the title it was saved with)
                log.info("saved link %s: %s", url, exc)
            with database.session() as session:
                inbox.record_page(session, item_id, title, description)
    return len(pending)
