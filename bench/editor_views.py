"""Editor read-side figures: subscriber pages (keyset vs OFFSET) and the dashboard's growth.

    .venv/bin/python bench/editor_views.py [READERS] [--postgres URL]

Builds a throw-away database with READERS confirmed readers (SQLite in a temp folder by
default), then times, in one run: the first subscriber page, the last page by keyset
(what the editor uses), the same last page by OFFSET (what it avoids), a substring
search, and reports.growth over 26 weeks. Prints medians of 5 runs and ratios.
"""

from __future__ import annotations

import argparse
import datetime as dt
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import insert, select, text

from digest.core.db import Base, Database, upgrade
from digest.core.models import Newsletter, Subscriber, Subscription, SubscriptionStatus
from digest.domain import reports


def _median_ms(work: Callable[[], object], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        work()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def _fill(database: Database, readers: int) -> int:
    now = dt.datetime.now(dt.UTC)
    with database.session() as session:
        newsletter = Newsletter(slug="bench", name="Bench", time_zone="Europe/Berlin")
        session.add(newsletter)
        session.flush()
        newsletter_id = newsletter.id
    chunk = 10_000
    with database.engine.begin() as conn:
        for start in range(0, readers, chunk):
            ids = range(start, min(start + chunk, readers))
            conn.execute(insert(Subscriber), [
                {"uid": f"u{n}", "email": f"reader{n:07d}@example.net", "name": f"Reader {n}",
                 "created_at": now} for n in ids])
        first = conn.scalar(select(Subscriber.id).order_by(Subscriber.id).limit(1)) or 1
        for start in range(0, readers, chunk):
            ids = range(start, min(start + chunk, readers))
            conn.execute(insert(Subscription), [
                {"uid": f"s{n}", "subscriber_id": first + n, "newsletter_id": newsletter_id,
                 "status": SubscriptionStatus.CONFIRMED, "created_at": now,
                 "confirmed_at": now - dt.timedelta(hours=n % (26 * 7 * 24))} for n in ids])
    return newsletter_id


def main() -> None:
    """Print the table of figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("readers", nargs="?", type=int, default=50_000)
    parser.add_argument("--postgres", help="an empty PostgreSQL database URL to use instead of SQLite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        url = args.postgres or f"sqlite:///{Path(folder) / 'bench.sqlite3'}"
        database = Database(url)
        if args.postgres:
            Base.metadata.drop_all(database.engine)
            with database.engine.begin() as conn:
                conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(database)
        newsletter_id = _fill(database, args.readers)
        with database.sessionmaker() as session:
            newsletter = session.get(Newsletter, newsletter_id)
            assert newsletter is not None
            oldest = session.scalar(select(Subscription.id).order_by(Subscription.id).limit(1)) or 0
            last_page_key = oldest + reports.SUBSCRIBER_PAGE + 1
            offset = args.readers - reports.SUBSCRIBER_PAGE

            def by_offset() -> object:
                return session.execute(
                    select(Subscriber, Subscription).join(Subscription, Subscription.subscriber_id == Subscriber.id)
                    .where(Subscription.newsletter_id == newsletter_id)
                    .order_by(Subscription.id.desc()).limit(reports.SUBSCRIBER_PAGE).offset(offset)
                ).all()

            rows = [
                ("first page (keyset)", _median_ms(lambda: reports.search_subscribers(session, newsletter))),
                ("last page (keyset)", _median_ms(
                    lambda: reports.search_subscribers(session, newsletter, before=last_page_key))),
                ("last page (OFFSET, avoided)", _median_ms(by_offset)),
                ("search 'reader00123'", _median_ms(
                    lambda: reports.search_subscribers(session, newsletter, search="reader00123"))),
                ("growth, 26 weeks", _median_ms(lambda: reports.growth(session, newsletter))),
            ]
        database.dispose()
    base = rows[0][1]
    print(f"{database.dialect}, {args.readers:,} readers (median of 5 runs)")
    print(f"{'query':<30}{'ms':>10}{'× first page':>15}")
    for name, ms in rows:
        print(f"{name:<30}{ms:>10.1f}{ms / base:>15.2f}")


if __name__ == "__main__":
    main()
