"""Fan-out speed: creating the ledger of one issue for N readers, on SQLite and PostgreSQL.

    .venv/bin/python bench/fanout.py 100000 1000000 [--db sqlite,postgresql]

For each size and database: a fresh database with N confirmed readers (inserted
set-based), then the real `start_issue_chunks` (INSERT … SELECT … ON CONFLICT DO NOTHING
per chunk of 50,000 subscriber ids, one commit per chunk), then the same fan-out again
(it must add nothing), then a fan-out with 100 addresses on the suppression list (each
chunk's addresses are hashed to leave them out).
"""

from __future__ import annotations

import argparse
import time

from common import cleanup, make_bench, table  # type: ignore[import-not-found]

from digest.core.extensions import get_db
from digest.core.models import Issue, IssueStatus, SuppressionReason
from digest.domain import deliveries, issues
from digest.domain.suppression import suppress


def timed_fan_out(session, issue_id: int, config) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    """Return seconds and rows added by a chunked, committed fan-out."""
    began = time.perf_counter()
    added = 0
    for step in issues.start_issue_chunks(session, issue_id, config):
        session.commit()
        added += step.inserted
    session.commit()
    return time.perf_counter() - began, added


def main() -> None:
    """Fan out each size on each database and print one table."""
    parser = argparse.ArgumentParser(description="Fan-out speed.")
    parser.add_argument("readers", type=int, nargs="+")
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    rows = []
    for kind in args.db.split(","):
        for readers in args.readers:
            began = time.perf_counter()
            bench = make_bench(kind, readers)
            prepared = time.perf_counter() - began
            app = bench.app()
            with app.app_context():
                session = get_db().sessionmaker()
                issues.send_now(session, bench.issue_id)
                session.commit()
                first, added = timed_fan_out(session, bench.issue_id, app.config)
                session.get(Issue, bench.issue_id).status = IssueStatus.SCHEDULED  # type: ignore[union-attr]
                session.commit()
                again, added_again = timed_fan_out(session, bench.issue_id, app.config)
                for n in range(100):
                    suppress(session, app.config, f"reader{n * 7}@example.org", SuppressionReason.MANUAL)
                session.get(Issue, bench.issue_id).status = IssueStatus.SCHEDULED  # type: ignore[union-attr]
                session.execute(deliveries.DELIVERY.delete())
                session.commit()
                suppressed, added_suppressed = timed_fan_out(session, bench.issue_id, app.config)
                session.close()
                get_db().dispose()
            rows.append([
                kind, f"{readers:,}", f"{prepared:.1f}", f"{first:.2f}", f"{added / first:,.0f}",
                f"{again:.2f} (+{added_again})", f"{suppressed:.2f} ({added - added_suppressed} left out)",
            ])
            cleanup(bench)
    table(
        "bench/fanout.py " + " ".join(map(str, args.readers)) + f" --db {args.db}",
        ["database", "readers", "setup s", "fan-out s", "rows/s", "again s (rows added)",
         "with 100 suppressed s"],
        rows,
    )


if __name__ == "__main__":
    main()
