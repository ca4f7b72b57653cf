"""A signup burst against one `digest run` process, idle and while an issue sends.

    .venv/bin/python bench/signup_load.py [--signups 1500] [--rate 300] [--clients 16]
                                          [--paced-clients 64] [--seconds 20]
                                          [--readers 6000] [--db sqlite|postgresql]
                                          [--before REV]

One `digest run` process (waitress, the clock and the sender threads, SMTP to
bench/sink.py) behind a pretend reverse proxy (DIGEST_TRUSTED_PROXIES=1, every signup
from its own X-Forwarded-For address, so the per-IP limit stays the product's). A load
generator in a second process POSTs JSON signups of new addresses to /api/v1/subscribe,
each on a keep-alive connection, until `--signups` are answered or `--seconds` pass, while
one more thread asks /healthz every 20 ms. Two kinds of run:

- paced (the target's): signup n is due at n / `--rate` seconds, whatever the answers,
  sent by whichever of `--paced-clients` threads is free; its answer time counts from
  when it was due, so a server that falls behind shows it in p99 (no coordinated
  omission).
- as answered: `--clients` threads each send their next signup when the last is
  answered: what one process takes at most.

After an unmeasured warm-up of WARM_UP signups, each runs idle, then while an issue to
`--readers` readers is being sent by the same process. Prints signups/s, answer p50/p99,
/healthz p50/p99 (and the same with no load at all), the server's CPU per signup
(answer, engine, confirmation, and while sending the digests sent meanwhile), and how
long after the last answer every confirmation email had reached the sink; the load
generator's own CPU shows the second core is not what limits the server.

With --before REV (a git revision with this tree's schema, e.g. main) the same runs are
made first against `digest run` of that revision (exported with git archive, on a fresh
database of its own), so one run prints the figures before and after a change on the
same machine at about the same load.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from common import ROOT, Bench, cleanup, make_bench, sink, table, wait_until  # type: ignore[import-not-found]
from sqlalchemy import func, select

from digest.core.db import Database
from digest.core.models import DeliveryState, TransactionalMail, TransactionalState
from digest.domain import issues

WARM_UP = 300  # signups answered before the measured runs


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def _connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def load_child(
    port: int, prefix: str, first_ip: int, signups: int, clients: int, seconds: float,
    rate: float | None, results: Any,
) -> None:
    """The load generator: keep-alive signups plus one /healthz prober.

    Without rate, clients threads each send their next signup when the last is answered
    (what the server can take at most). With rate, signup n is due at n / rate seconds
    whatever the answers (readers arrive on their own, not when others are answered), sent
    by whichever of clients threads is free, and its time counts from when it was due, so
    a late sender's wait is part of the answer time.
    """
    answered: list[float] = []
    statuses: dict[int, int] = {}
    health: list[float] = []
    lock = threading.Lock()
    counter = iter(range(signups))
    started = time.perf_counter()
    started_wall = time.time()
    started_cpu = time.process_time()
    deadline = started + seconds
    done = threading.Event()

    def client(number: int) -> None:
        connection = _connect(port)
        while time.perf_counter() < deadline:
            with lock:
                n = next(counter, None)
            if n is None:
                break
            due = time.perf_counter()
            if rate:
                due = started + n / rate
                time.sleep(max(0.0, due - time.perf_counter()))
            body = json.dumps({"email": f"{prefix}{n}@example.org", "name": f"Burst {n}", "consent": True})
            ip = first_ip + n
            headers = {"Content-Type": "application/json",
                       "X-Forwarded-For": f"10.{ip >> 16 & 255}.{ip >> 8 & 255}.{ip & 255}"}
            try:
                connection.request("POST", "/api/v1/subscribe", body, headers)
                response = connection.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException):
                connection.close()
                connection = _connect(port)
                status = 0
            took = time.perf_counter() - due
            with lock:
                answered.append(took)
                statuses[status] = statuses.get(status, 0) + 1
        connection.close()

    def prober() -> None:
        connection = _connect(port)
        while not done.is_set():
            asked = time.perf_counter()
            connection.request("GET", "/healthz")
            connection.getresponse().read()
            health.append(time.perf_counter() - asked)
            time.sleep(0.02)
        connection.close()

    results.put("started")
    probe = threading.Thread(target=prober)
    probe.start()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    done.set()
    probe.join()
    results.put({"answered": answered, "statuses": statuses, "health": health, "elapsed": elapsed,
                 "cpu": time.process_time() - started_cpu, "window": (started_wall, started_wall + elapsed)})


def idle_health(port: int, samples: int = 100) -> list[float]:
    """Return /healthz answer times with no other load."""
    connection = _connect(port)
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        connection.request("GET", "/healthz")
        connection.getresponse().read()
        times.append(time.perf_counter() - started)
        time.sleep(0.01)
    connection.close()
    return times


def confirmations_sent(database: Database, prefix: str) -> int:
    """Return how many confirmation emails of this phase's signups went out."""
    from digest.core.models import Subscriber, Subscription

    with database.session() as session:
        return session.scalar(
            select(func.count())
            .select_from(TransactionalMail)
            .join(Subscription, TransactionalMail.subscription_id == Subscription.id)
            .join(Subscriber, Subscription.subscriber_id == Subscriber.id)
            .where(TransactionalMail.state == TransactionalState.SENT,
                   Subscriber.email.like(f"{prefix}%"))
        ) or 0


def delivered(database: Database, issue_id: int, window: tuple[float, float] | None = None) -> int:
    """Return how many readers of the issue have been sent it (in the window of wall-clock
    seconds, if given)."""
    from digest.core.models import Delivery

    query = (select(func.count()).select_from(Delivery)
             .where(Delivery.issue_id == issue_id, Delivery.state == DeliveryState.SENT))
    if window:
        start, end = (dt.datetime.fromtimestamp(t, dt.UTC) for t in window)
        query = query.where(Delivery.sent_at >= start, Delivery.sent_at < end)
    with database.session() as session:
        return session.scalar(query) or 0


def cpu_seconds(pid: int) -> float:
    """Return the CPU time (user + system) process pid has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_phase(
    ctx: Any, port: int, pid: int, database: Database, prefix: str, first_ip: int,
    args: argparse.Namespace, rate: float | None,
) -> dict[str, Any]:
    """Run one burst; return its figures."""
    results = ctx.Queue()
    child = ctx.Process(
        target=load_child,
        args=(port, prefix, first_ip, args.signups, args.paced_clients if rate else args.clients,
              args.seconds, rate, results),
    )
    child.start()
    results.get(timeout=120)  # the load generator has started (spawning it takes a second)
    cpu_before = cpu_seconds(pid)
    figures = results.get(timeout=args.seconds + 120)
    child.join(30)
    answered_at = time.perf_counter()
    accepted = figures["statuses"].get(202, 0)
    try:
        wait_until(lambda: confirmations_sent(database, prefix) >= accepted, timeout=120, every=0.1)
        trail = f"{time.perf_counter() - answered_at:.1f} s"
    except TimeoutError:
        trail = f"> 120 s ({confirmations_sent(database, prefix)} of {accepted})"
    figures["trail"] = trail
    figures["cpu_total"] = cpu_seconds(pid) - cpu_before
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--signups", type=int, default=1500)
    parser.add_argument("--rate", type=float, default=300.0,
                        help="signups per second offered in the paced runs (0: none)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--paced-clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--readers", type=int, default=6000)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--before", metavar="REV", help="measure this git revision first")
    args = parser.parse_args()

    ctx = multiprocessing.get_context("spawn")
    rows: list[tuple[Any, ...]] = []
    if args.before:
        with tempfile.TemporaryDirectory(prefix="digest-before-") as tree:
            archive = subprocess.run(["git", "-C", str(ROOT), "archive", args.before],
                                     check=True, capture_output=True).stdout
            subprocess.run(["tar", "-x", "-C", tree], input=archive, check=True)
            rows += measure(ctx, args, args.before, Path(tree))
    rows += measure(ctx, args, "this tree" if args.before else "", ROOT)
    table(
        f"Signup burst on one `digest run` ({args.db}, load generator in a second process)",
        ("phase", "offered", "signups", "per s", "p50 ms", "p99 ms", "healthz p50", "healthz p99",
         "server CPU ms/signup", "load generator CPU", "answers; after the burst"),
        rows,
    )
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; server CPU "
          "per signup covers the answer, the engine's work and the confirmation (and, while "
          "sending, the digests sent meanwhile)")


def measure(ctx: Any, args: argparse.Namespace, label: str, tree: Path) -> list[tuple[Any, ...]]:
    """Run the phases against one `digest run` of the code in tree; return the table's rows."""
    bench: Bench = make_bench(args.db, args.readers)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log = bench.folder / "run.log"
    name = f"{label}: " if label else ""
    rows: list[tuple[Any, ...]] = []
    with sink() as (smtp_port, _accepted):
        env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
        env.update({f"DIGEST_{k}": str(v) for k, v in bench.overrides.items()})
        env.update(DIGEST_SMTP_URL=f"smtp://127.0.0.1:{smtp_port}", DIGEST_TRUSTED_PROXIES="1",
                   DIGEST_TICK_SECONDS="1", PYTHONUNBUFFERED="1", PYTHONPATH=str(tree))
        with open(log, "ab") as out:
            server = subprocess.Popen([sys.executable, "-m", "digest", "run", "--port", str(port)],
                                      env=env, cwd=tree, stdout=out, stderr=subprocess.STDOUT)
        database = Database(bench.overrides["DATABASE_URL"])
        try:
            wait_until(lambda: _healthy(port), timeout=60, every=0.2)
            quiet = idle_health(port)
            # Unmeasured: a new process's first answers compile its SQL, load its templates
            # and fill SQLite's cache; a burst meets a service that has been running.
            warm = argparse.Namespace(**{**vars(args), "signups": WARM_UP})
            run_phase(ctx, port, server.pid, database, "warm-", 15 << 20, warm, None)
            rows.append((f"{name}no load", "", "", "", "", "", _ms(quiet, 0.5), _ms(quiet, 0.99), "", "", ""))
            sending = False
            phases = [(phase, rate) for phase in ("idle", "sending")
                      for rate in ([args.rate] if args.rate else []) + [None]]
            for number, (phase, rate) in enumerate(phases):
                if phase == "sending" and not sending:
                    with database.session() as session:
                        issues.send_now(session, bench.issue_id)
                    wait_until(lambda: delivered(database, bench.issue_id) > 0, timeout=60, every=0.1)
                    sending = True
                prefix = f"{phase}-{number}-"
                figures = run_phase(ctx, port, server.pid, database, prefix, number << 20, args, rate)
                answered = figures["answered"]
                offered = f"{rate:.0f}/s" if rate else f"as answered ({args.clients} clients)"
                achieved = len(answered) / figures["elapsed"]
                statuses = ", ".join(f"{k}: {v}" for k, v in sorted(figures["statuses"].items()))
                note = figures["trail"]
                if sending:
                    during = delivered(database, bench.issue_id, figures["window"])
                    note += f"; {during} digests sent meanwhile"
                cpu = figures["cpu_total"] * 1000 / max(1, len(answered))
                rows.append((f"{name}{phase}", offered, len(answered), f"{achieved:.0f}",
                             _ms(answered, 0.5), _ms(answered, 0.99), _ms(figures["health"], 0.5),
                             _ms(figures["health"], 0.99), f"{cpu:.1f}",
                             f"{figures['cpu'] / figures['elapsed'] * 100:.0f}%",
                             f"{statuses}; confirmations all out {note}"))
        finally:
            server.terminate()
            server.wait(60)
            database.dispose()
    cleanup(bench)
    return rows


def _healthy(port: int) -> bool:
    try:
        connection = _connect(port)
        connection.request("GET", "/healthz")
        ok = connection.getresponse().status == 200
        connection.close()
        return ok
    except OSError:
        return False


def _ms(values: list[float], share: float) -> str:
    return f"{_percentile(values, share) * 1000:.1f}"


if __name__ == "__main__":
    main()
