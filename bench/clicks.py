"""Click redirects under a bounded local load: latency p50/p99 and clicks/s sustained,
with and without a send running, and whether every click reached the database.

Usage: python bench/clicks.py [SECONDS] [CLIENT_THREADS] [READERS]   (default 5 4 2000)

Builds a throwaway SQLite bench (bench/common.py: the 20-post issue, READERS readers),
fans the issue out and renders it once (which stores its links), then serves the app in
a child process (Werkzeug's threaded server, one process: one web worker) and drives it
from CLIENT_THREADS keep-alive HTTP clients following random readers' click links for
SECONDS: first with no send running, then while a sender process sends the issue to
bench/sink.py. The server is then stopped cleanly (its recorder writes what is left) and
the click events in the database are counted against the clicks answered.
"""

from __future__ import annotations

import logging
import multiprocessing
import random
import sys
import threading
import time
from typing import Any

import requests
from common import cleanup, make_bench, sink, table  # type: ignore[import-not-found]
from send import sender_child  # type: ignore[import-not-found]
from sqlalchemy import func, select

from digest import create_app
from digest.core.extensions import get_db
from digest.core.models import ClickEvent, ClickTally, Delivery, IssueLink
from digest.core.tokens import ClickSigner
from digest.domain import issues


def server_child(overrides: dict[str, Any], ports: Any, stop: Any) -> None:
    """Serve the app on a free port until told to stop, then stop its recorder cleanly."""
    from werkzeug.serving import make_server

    from digest.engine.clicks import recorder

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no line per request
    app = create_app(overrides)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ports.put(server.server_port)
    stop.wait()
    server.shutdown()
    thread.join(10)
    recorder(app).stop()


def load(base: str, paths: list[str], seconds: float, threads: int) -> tuple[list[float], int]:
    """Follow random click paths from `threads` clients for `seconds`; return latencies (s)
    and how many answered 302."""
    latencies: list[list[float]] = [[] for _ in range(threads)]
    ok = [0] * threads
    deadline = time.perf_counter() + seconds

    def client(n: int) -> None:
        rng = random.Random(n)
        with requests.Session() as session:
            while time.perf_counter() < deadline:
                start = time.perf_counter()
                answer = session.get(base + rng.choice(paths), allow_redirects=False, timeout=10,
                                     headers={"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/133.0"})
                latencies[n].append(time.perf_counter() - start)
                ok[n] += answer.status_code == 302

    workers = [threading.Thread(target=client, args=(n,)) for n in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return [x for part in latencies for x in part], sum(ok)


def _percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))] * 1000


def main(seconds: float, threads: int, readers: int) -> None:
    """Run the benchmark and print the table."""
    with sink(1) as (port, _accepted):
        # Every client here is 127.0.0.1, standing in for many readers: no per-address limit.
        bench = make_bench("sqlite", readers, SMTP_URL=f"smtp://127.0.0.1:{port}", SEND_RATE=0,
                           CLICK_RECORD_LIMIT="1000000/minute")
        app = bench.app()
        with app.app_context():
            from digest.engine.sender import prepared_issues

            session = get_db().sessionmaker()
            issues.send_now(session, bench.issue_id)
            for _step in issues.start_issue_chunks(session, bench.issue_id, app.config):
                session.commit()
            session.commit()
            prepared_issues(app).get(bench.issue_id)  # renders once and stores the links
            deliveries = list(session.scalars(select(Delivery.id).where(Delivery.issue_id == bench.issue_id)))
            links = list(session.scalars(select(IssueLink.idx).where(IssueLink.issue_id == bench.issue_id)))
            session.close()
        signer = ClickSigner(app.config["SECRET_KEY"])
        rng = random.Random(7)
        paths = [f"/c/{signer.refs(bench.issue_id, delivery, [link])[link]}"
                 for delivery, link in ((rng.choice(deliveries), rng.choice(links)) for _ in range(5000))]
        ctx = multiprocessing.get_context("spawn")
        ports, stop = ctx.Queue(), ctx.Event()
        server = ctx.Process(target=server_child, args=(bench.overrides, ports, stop))
        server.start()
        base = f"http://127.0.0.1:{ports.get(timeout=180)}"
        _warm, answered = load(base, paths, 1.0, threads)  # warm up: the link cache, connections
        rows = []
        quiet, ok = load(base, paths, seconds, threads)
        answered += ok
        rows.append(("no send running", _percentile(quiet, 0.5), _percentile(quiet, 0.99),
                     len(quiet) / seconds))
        ready, sender_stop, results = ctx.Semaphore(0), ctx.Event(), ctx.Queue()
        sender = ctx.Process(target=sender_child, args=(bench.overrides, 2, ready, sender_stop, results))
        sender.start()
        ready.acquire()
        time.sleep(0.5)
        busy, ok = load(base, paths, seconds, threads)
        answered += ok
        with app.app_context():
            with get_db().engine.connect() as conn:
                sent = conn.scalar(select(func.count()).where(
                    Delivery.issue_id == bench.issue_id, Delivery.sent_at.is_not(None)))
        sender_stop.set()
        results.get(timeout=120)
        sender.join(60)
        rows.append((f"a send running ({sent} sent by then)", _percentile(busy, 0.5),
                     _percentile(busy, 0.99), len(busy) / seconds))
        stop.set()
        server.join(60)
        with app.app_context():
            with get_db().engine.connect() as conn:
                pending = conn.scalar(select(func.count()).select_from(ClickEvent)) or 0
                settled = conn.scalar(select(func.sum(ClickTally.clicks))) or 0
            get_db().dispose()
        cleanup(bench)
    table(
        f"click redirect /c/<token>/<link>: {threads} keep-alive clients, {seconds:.0f} s each, "
        f"{readers} readers × {len(links)} links, SQLite, one Werkzeug process, one run",
        ["load", "p50 ms", "p99 ms", "clicks/s"],
        [(name, f"{p50:.2f}", f"{p99:.2f}", f"{rate:,.0f}") for name, p50, p99, rate in rows],
    )
    print(f"clicks in the database after a clean stop: {pending + settled:,} of the "
          f"{answered:,} answered 302 (warm-up included)")


if __name__ == "__main__":
    args = [float(a) for a in sys.argv[1:]]
    main(args[0] if args else 5.0, int(args[1]) if len(args) > 1 else 4,
         int(args[2]) if len(args) > 2 else 2000)
