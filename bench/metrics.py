"""The cost of a Prometheus scrape and of a backup against the size of the ledger.

    .venv/bin/python bench/metrics.py 100000 [--db sqlite,postgresql]

For each size and database: a fresh database with N confirmed readers and one issue fanned
out to all of them (every delivery row exists), then the median of 5 scrapes of /metrics
(every figure is a query on the ledger at scrape time) and of /healthz, and the time and
size of `digest db backup`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from common import cleanup, make_bench, table  # type: ignore[import-not-found]

from digest.core.backup import backup
from digest.core.extensions import get_db
from digest.domain import issues

TOKEN = "bench-metrics-token-0123456789"


def median_ms(client, path: str, headers: dict[str, str]) -> float:  # type: ignore[no-untyped-def]
    """Return the median answer time of 5 GETs of path, in milliseconds."""
    times = []
    for _ in range(5):
        began = time.perf_counter()
        assert client.get(path, headers=headers).status_code in (200, 503)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def main() -> None:
    """Measure each size on each database and print one table."""
    parser = argparse.ArgumentParser(description="Scrape and backup cost.")
    parser.add_argument("readers", type=int, nargs="+")
    parser.add_argument("--db", default="sqlite,postgresql")
    args = parser.parse_args()
    rows = []
    for kind in args.db.split(","):
        for readers in args.readers:
            bench = make_bench(kind, readers, METRICS_TOKEN=TOKEN)
            app = bench.app()
            with app.app_context():
                session = get_db().sessionmaker()
                issues.send_now(session, bench.issue_id)
                for _ in issues.start_issue_chunks(session, bench.issue_id, app.config):
                    session.commit()
                session.commit()
                session.close()
                client = app.test_client()
                scrape = median_ms(client, "/metrics", {"Authorization": f"Bearer {TOKEN}"})
                health = median_ms(client, "/healthz", {})
                with tempfile.TemporaryDirectory() as folder:
                    target = Path(folder) / "backup.bin"
                    began = time.perf_counter()
                    backup(get_db(), target)
                    took = time.perf_counter() - began
                    size = target.stat().st_size / 2**20
                get_db().dispose()
            rows.append([kind, f"{readers:,}", f"{scrape:.0f}", f"{health:.0f}", f"{took:.2f}", f"{size:.1f}"])
            cleanup(bench)
    table(
        "bench/metrics.py " + " ".join(map(str, args.readers)) + f" --db {args.db}",
        ["database", "readers = deliveries", "/metrics ms", "/healthz ms", "backup s", "backup MB"],
        rows,
    )


if __name__ == "__main__":
    main()
