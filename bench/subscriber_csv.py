"""CSV import and export of subscribers: throughput and whether memory stays flat.

For two list sizes (N and 10×N) this imports a generated CSV with `digest subscribers
import`, exports it again with `digest subscribers export`, and prints rows per second
and the peak Python memory (tracemalloc) of each step. Streaming means the 10×N peak
stays close to the N peak (ratio near 1), not ten times higher.

    .venv/bin/python bench/subscriber_csv.py [--rows 2000]
"""

from __future__ import annotations

import argparse
import csv
import os
import tempfile
import time
import tracemalloc
from pathlib import Path

from digest import create_app
from digest.core.db import upgrade
from digest.core.extensions import db_session, get_db
from digest.domain.demo import load_demo
from digest.domain.subscribers.csv_io import export_rows

SECTIONS = ["news", "engineers;tools", "", "startups;careers"]
STATUSES = ["confirmed", "confirmed", "unsubscribed", "paused"]


def write_csv(path: Path, rows: int) -> None:
    """Write a realistic subscriber CSV with rows data lines."""
    with path.open("w", encoding="utf-8") as out:
        out.write("email,name,status,sections,created_at\n")
        for n in range(rows):
            out.write(
                f"reader{n:07d}@example.org,Reader {n},{STATUSES[n % 4]},{SECTIONS[n % 4]},"
                "2025-06-01T08:00:00+00:00\n"
            )


def run(rows: int, trace: bool) -> dict[str, float]:
    """Import then export rows subscribers on a fresh database; return the figures.

    With trace, memory is followed by tracemalloc (which slows everything down), so the
    rates come from an untraced run and the peaks from a traced one.
    """
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-csv-"))
    app = create_app({"INSTANCE_PATH": str(folder), "SECRET_KEY": "bench-secret-key"})
    with app.app_context():
        database = get_db()
    upgrade(database)
    with database.session() as session:
        load_demo(session)
    source = folder / "readers.csv"
    write_csv(source, rows)
    runner = app.test_cli_runner()

    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = runner.invoke(args=["subscribers", "import", str(source)])
    import_seconds = time.perf_counter() - started
    import_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert result.exit_code == 0, result.output

    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    # Straight to /dev/null: the CLI runner would keep the whole output in memory.
    with open(os.devnull, "w") as sink, app.app_context():
        writer = csv.writer(sink)
        count = sum(1 for row in export_rows(db_session(), app.config) if writer.writerow(row))
    export_seconds = time.perf_counter() - started
    export_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert count == rows + 5, count  # header + the demo's four readers
    database.dispose()
    return {
        "import_rate": rows / import_seconds,
        "import_peak": import_peak / 2**20,
        "export_rate": count / export_seconds,
        "export_peak": export_peak / 2**20,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    small, large = (
        {
            **run(size, trace=False),
            **{k: v for k, v in run(size, trace=True).items() if "peak" in k},
        }
        for size in (args.rows, args.rows * 10)
    )
    print(f"subscriber CSV on SQLite: {args.rows} vs {args.rows * 10} rows")
    line = "{:<22}{:>14}{:>14}{:>10}".format
    print(line("figure", f"{args.rows} rows", f"{args.rows * 10} rows", "ratio"))
    for key, label in (
        ("import_rate", "import rows/s"),
        ("import_peak", "import peak MiB*"),
        ("export_rate", "export rows/s"),
        ("export_peak", "export peak MiB*"),
    ):
        print(
            line(label, f"{small[key]:.1f}", f"{large[key]:.1f}", f"{large[key] / small[key]:.2f}")
        )
    print("* Python heap peak (tracemalloc, separate run); import keeps one entry per address")
    print("  to catch duplicates within the file, export keeps one batch of 500 rows.")


if __name__ == "__main__":
    main()
