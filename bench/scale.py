"""Scale-out: send throughput with 1, 2, 4 … worker processes on PostgreSQL.

    .venv/bin/python bench/scale.py READERS [--workers 1,2,4] [--threads 1]

Each round puts the same issue to READERS readers back to pending and times `--workers`
sender processes (the real SenderPool: render, DKIM RSA-2048, ledger, SMTP to
bench/sink.py) sending it all. On a two-core machine shared with the sink and
PostgreSQL, the ceiling is the CPU: expect close to 2x from 1 to 2 workers, little more.
"""

from __future__ import annotations

import argparse
import multiprocessing

from common import cleanup, dkim_settings, make_bench, sink, table  # type: ignore[import-not-found]
from send import send_issue  # type: ignore[import-not-found]
from sqlalchemy import update

from digest.core.extensions import get_db
from digest.core.models import Issue, IssueStatus
from digest.domain import deliveries


def main() -> None:
    """Time each worker count on one ledger and print one table."""
    parser = argparse.ArgumentParser(description="Scale-out on PostgreSQL.")
    parser.add_argument("readers", type=int)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    rows = []
    first = None
    with sink() as (port, _accepted):
        bench = make_bench("postgresql", args.readers, SMTP_URL=f"smtp://127.0.0.1:{port}", BATCH_SIZE=100)
        bench.overrides.update(dkim_settings(bench.folder))
        app = bench.app()
        results = ctx.Queue()
        for workers in [int(w) for w in args.workers.split(",")]:
            with app.app_context():
                with get_db().session() as session:
                    session.execute(deliveries.DELIVERY.delete())
                    session.execute(update(Issue).values(status=IssueStatus.DRAFT, started_at=None))
                get_db().dispose()
            run = send_issue(ctx, bench, workers, args.threads, results)
            stats = run.stats
            rate = run.delivered / (run.sent_at - run.sending_from)
            first = first or rate
            cpu = sum(s[1] for s in stats) / run.delivered * 1000
            rows.append([workers, workers * args.threads, f"{rate:.0f}", f"{rate / first:.2f}x", f"{cpu:.2f}"])
        cleanup(bench)
    table(
        f"bench/scale.py {args.readers} --workers {args.workers} --threads {args.threads} (PostgreSQL)",
        ["worker processes", "connections", "msg/s", "vs 1 worker", "sender CPU ms/msg"],
        rows,
    )


if __name__ == "__main__":
    main()
