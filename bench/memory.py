"""Peak memory of the sender (and of the fan-out) against the size of the ledger.

    .venv/bin/python bench/memory.py 10000 1000000 [--send 10000] [--db sqlite|postgresql]

For each size, a fresh database with that many readers; one fresh process fans the issue
out (the real chunked start_issue_chunks); another fresh process then sends `--send`
messages of it with the real send_batch (render, DKIM RSA-2048, ledger, SMTP to
bench/sink.py) and, every 2,000 messages, runs the queries that span the whole ledger
(the scheduler's maintenance: reaper, retries, finish check; and the progress counts).
Each process reports its peak RSS (getrusage ru_maxrss). Sending the same number of
messages from a small and a large ledger isolates what the ledger's size costs in memory
without putting a million messages through SMTP: everything the sender holds is per
batch, so the difference should be noise.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import time
from typing import Any

from common import cleanup, dkim_settings, make_bench, sink, table  # type: ignore[import-not-found]


def _rss() -> float:
    """Peak RSS of this process in MB since start, or since the last _reset_peak()."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _reset_peak() -> None:
    """Start the peak over from the current RSS (Linux clear_refs), so start-up (imports,
    the editors module's argon2 hash at import) does not hide what sending costs."""
    try:
        with open("/proc/self/clear_refs", "w") as refs:
            refs.write("5")
    except OSError:
        pass


def fan_out_child(overrides: dict, issue_id: int, results: Any) -> None:
    """Fan the issue out in this fresh process; report seconds and peak RSS."""
    from digest import create_app
    from digest.core.extensions import get_db
    from digest.domain import issues

    app = create_app(overrides)
    with app.app_context():
        session = get_db().sessionmaker()
        issues.send_now(session, issue_id)
        session.commit()
        _reset_peak()
        before = _rss()
        began = time.perf_counter()
        for _step in issues.start_issue_chunks(session, issue_id, app.config):
            session.commit()
        session.commit()
        results.put((time.perf_counter() - began, before, _rss()))


def sender_child(overrides: dict, issue_id: int, count: int, results: Any) -> None:
    """Send count messages of the issue with send_batch; report messages and peak RSS."""
    from digest import create_app
    from digest.core.extensions import get_db
    from digest.domain import issues
    from digest.engine.scheduler import maintain
    from digest.engine.sender import new_owner, send_batch
    from digest.mail.mailer import mailer_for

    app = create_app(overrides)
    mailer = mailer_for(app.config)
    owner = new_owner("memory")
    whole_process = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    _reset_peak()
    start = _rss()
    sent = 0
    next_check = 2000
    with app.app_context():
        database = get_db()
        while sent < count:
            outcome = send_batch(app, mailer, issue_id, owner=owner)
            if not outcome.claimed:
                break
            sent += outcome.sent
            if sent >= next_check:
                maintain(app)
                with database.session() as session:
                    issues.issue_progress(session, issue_id)
                next_check += 2000
    mailer.close()
    results.put((sent, start, _rss(), max(whole_process, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))


def main() -> None:
    """Measure each size and print one table."""
    parser = argparse.ArgumentParser(description="Sender memory against ledger size.")
    parser.add_argument("readers", type=int, nargs="+")
    parser.add_argument("--send", type=int, default=10000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    results = ctx.Queue()
    rows, peaks = [], []
    with sink() as (port, _accepted):
        for readers in args.readers:
            bench = make_bench(args.db, readers, SMTP_URL=f"smtp://127.0.0.1:{port}", BATCH_SIZE=100)
            bench.overrides.update(dkim_settings(bench.folder))
            child = ctx.Process(target=fan_out_child, args=(bench.overrides, bench.issue_id, results))
            child.start()
            seconds, fan_before, fan_peak = results.get(timeout=3600)
            child.join()
            child = ctx.Process(target=sender_child, args=(bench.overrides, bench.issue_id, args.send, results))
            child.start()
            sent, start, peak, whole = results.get(timeout=3600)
            child.join()
            peaks.append(peak)
            rows.append([
                f"{readers:,}", f"{seconds:.1f}", f"{fan_before:.0f} -> {fan_peak:.0f}", f"{sent:,}",
                f"{start:.1f} -> {peak:.1f}", f"{peak - peaks[0]:+.1f}", f"{whole:.0f}",
            ])
            cleanup(bench)
    table(
        f"bench/memory.py {' '.join(map(str, args.readers))} --send {args.send} --db {args.db}",
        ["readers", "fan-out s", "fan-out RSS MB (start -> peak)", "sent",
         "sender RSS MB (start -> peak)", "peak vs first", "ru_maxrss MB (whole process)"],
        rows,
    )


if __name__ == "__main__":
    main()
