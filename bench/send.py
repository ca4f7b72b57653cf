"""Send throughput, end to end, against the ceiling and the naive pipeline, in one run.

    .venv/bin/python bench/send.py READERS [--procs 4] [--threads 1] [--db sqlite|postgresql]
                                   [--naive 300]

End to end: the demo newsletter's issue grown to 20 posts (bench/sample_issue.py's
content) to READERS readers, personalised (sections, name, links), DKIM-signed with
RSA-2048 by the product's signer, through the real ledger (fan-out, claims, one commit
per message: its `sending` with the previous message's `sent`) by `--procs` processes of
`--threads` SenderPool threads, over SMTP to bench/sink.py. Ceiling: the same number of processes and reused
connections sending one pre-built signed message READERS times to the same sink (with
the product's transport, which pipelines the envelope; and, for reference, one command
per round trip as smtplib.sendmail does). Naive: bench/naive.py's pipeline (Jinja for
both parts, css-inline, EmailMessage, dkimpy) with a new SMTP connection per message,
one process, `--naive` messages, signed like the end-to-end run and unsigned. The
stage rows are each stage's CPU per message measured alone in the same run.
"""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import smtplib
import time
from dataclasses import dataclass
from typing import Any

from common import (  # type: ignore[import-not-found]
    DEMO_READERS,
    Bench,
    cleanup,
    dkim_settings,
    make_bench,
    sink,
    table,
    wait_until,
)

from digest.core.extensions import get_db
from digest.core.models import DeliveryState
from digest.domain import deliveries, issues
from digest.mail.mailer import mailer_for


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def sender_child(overrides: dict, threads: int, ready: Any, stop: Any, results: Any) -> None:
    """A sender process: SenderPool threads on the bench ledger until told to stop."""
    from digest import create_app
    from digest.engine.sender import SenderPool

    app = create_app(overrides)
    pool = SenderPool(app, threads, mail_jobs=(), idle_seconds=0.01, mailer_factory=mailer_for).start()
    started = _cpu()
    ready.release()
    stop.wait()
    pool.stop()
    results.put(("sender", _cpu() - started, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024))


def ceiling_child(
    port: int, data: bytes, count: int, threads: int, pipelining: bool, start: Any, results: Any
) -> None:
    """Send pre-built bytes count times over `threads` reused connections, with the
    product's transport (PIPELINING) or one command per round trip (smtplib.sendmail)."""
    import threading

    from digest.mail.transport import SMTPSettings, SMTPTransport

    def run(n: int) -> None:
        if pipelining:
            transport = SMTPTransport(SMTPSettings.from_url(f"smtp://127.0.0.1:{port}", timeout=60))
            transport.connect()
            send = lambda: transport.send("bounces@news.example.org", "reader@example.org", data)  # noqa: E731
            close = transport.close
        else:
            smtp = smtplib.SMTP("127.0.0.1", port)
            smtp.ehlo()
            smtp.esmtp_features.pop("pipelining", None)
            send = lambda: smtp.sendmail("bounces@news.example.org", ["reader@example.org"], data)  # noqa: E731
            close = smtp.quit
        start.wait()
        began = _cpu()
        for _ in range(n):
            send()
        close()
        spent.append(_cpu() - began)

    spent: list[float] = []

    workers = [threading.Thread(target=run, args=(count // threads + (i < count % threads),)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    results.put(("ceiling", max(spent), 0.0))


def naive_child(overrides: dict, port: int, count: int, sign: bool, results: Any) -> None:
    """The naive pipeline of bench/naive.py (Jinja for both parts, css-inline, EmailMessage,
    dkimpy when sign) with a new SMTP connection per message, one process."""
    from naive import NaivePipeline, NaiveSigner  # type: ignore[import-not-found]
    from sqlalchemy import select

    from digest import create_app
    from digest.core.models import Subscriber, Subscription, SubscriptionSection
    from digest.domain.issue_mail import prepare_issue
    from digest.mail.dkim import signer_from_config
    from digest.mail.render import Reader

    app = create_app(overrides)
    with app.app_context():
        session = get_db().sessionmaker()
        prepared = prepare_issue(session, overrides["BENCH_ISSUE"], app.config)
        signer = None
        if sign:
            product = signer_from_config(app.config)
            signer = NaiveSigner(product.domain, product.selector, product.key)  # type: ignore[union-attr]
        pipeline = NaivePipeline(prepared, signer)
        started = time.perf_counter()
        # Naive code loads ORM entities, reader by reader.
        rows = session.execute(
            select(Subscriber, Subscription).join(Subscription).order_by(Subscriber.id).limit(count)
        ).all()
        for subscriber, subscription in rows:
            chosen = frozenset(
                session.scalars(
                    select(SubscriptionSection.section_id).where(SubscriptionSection.subscription_id == subscription.id)
                )
            )
            reader = Reader(subscriber.id, subscription.uid, subscriber.email, subscriber.name, chosen)
            outgoing = pipeline.message_for(reader, subscriber.id)
            with smtplib.SMTP("127.0.0.1", port) as smtp:
                smtp.sendmail(outgoing.envelope_from, [outgoing.recipient], outgoing.data)
        elapsed = time.perf_counter() - started
    results.put(("naive", elapsed, len(rows)))


def one_message(bench: Bench) -> bytes:
    """Return the first reader's message exactly as the pipeline sends it (signed)."""
    from digest.domain.issue_mail import prepare_issue
    from digest.engine.sender import load_readers

    app = bench.app()
    with app.app_context():
        session = get_db().sessionmaker()
        prepared = prepare_issue(session, bench.issue_id, app.config)
        recipient = load_readers(session, prepared.newsletter.id, [1], app.config)[1]
        outgoing = prepared.message_for(recipient.reader, 1)
        data = mailer_for(app.config).sign(outgoing.data, outgoing.body_hash)
        session.close()
        get_db().dispose()
    return data


STAGE_SAMPLE = 500


def stage_costs(bench: Bench, data: bytes) -> list[tuple[str, float]]:
    """CPU ms per message of each stage of the pipeline, measured one by one in this process."""
    from sqlalchemy import update

    from digest.core.db import utcnow
    from digest.core.models import DeliveryState, Issue, IssueStatus
    from digest.domain.issue_mail import prepare_issue
    from digest.engine.sender import _ledger_connections, load_readers, new_owner

    app = bench.app()
    costs = []
    with app.app_context():
        database = get_db()
        with database.session() as session:
            prepared = prepare_issue(session, bench.issue_id, app.config)
            readers = list(load_readers(session, prepared.newsletter.id, range(1, STAGE_SAMPLE + 1), app.config).values())
            deliveries.resend(session, bench.issue_id, [DeliveryState.SENT])
            session.execute(update(Issue).where(Issue.id == bench.issue_id).values(status=IssueStatus.SENDING))

        def measure(name: str, action: Any) -> None:
            began = _cpu()
            action()
            costs.append((name, (_cpu() - began) / STAGE_SAMPLE * 1000))

        mailer = mailer_for(app.config)
        measure("render (message_for)", lambda: [prepared.message_for(r.reader, 1) for r in readers])
        body_hash = prepared.message_for(readers[0].reader, 1).body_hash
        measure("DKIM RSA-2048 sign", lambda: [mailer.sign(data, body_hash) for _ in readers])

        def ledger() -> None:
            owner = new_owner("stage")
            with _ledger_connections(database) as (conn, settle):
                for _ in range(STAGE_SAMPLE // 100):
                    claimed = deliveries.claim(conn, bench.issue_id, owner, 100, 300)
                    conn.commit()
                    accepted = None
                    for item, reader in zip(claimed, readers):
                        deliveries.mark_sending(
                            conn, item.id, owner, prepared.newsletter.id, reader.email_hash, 300, accepted=accepted
                        )
                        conn.commit()
                        accepted = deliveries.Accepted(item.id, 250, "2.0.0 Ok: queued as X", "X", utcnow())
                    if accepted is not None:
                        deliveries.mark_sent(settle, accepted.delivery_id, owner, 250, accepted.response, "X")
                        settle.commit()

        measure("ledger (claim + sending with the previous sent)", ledger)
        database.dispose()
    return costs


def run_ceiling(ctx: Any, port: int, data: bytes, args: Any, pipelining: bool, results: Any) -> tuple[float, int, float]:
    """Return msg/s, messages and client CPU ms/msg of pre-built bytes to the sink."""
    start = ctx.Event()
    children = [
        ctx.Process(target=ceiling_child, args=(port, data, args.readers // args.procs, args.threads, pipelining, start, results))
        for _ in range(args.procs)
    ]
    for child in children:
        child.start()
    time.sleep(2.0)  # every connection open before the clock starts
    began = time.perf_counter()
    start.set()
    stats = [results.get(timeout=3600) for _ in children]
    elapsed = time.perf_counter() - began
    for child in children:
        child.join(60)
    sent = (args.readers // args.procs) * args.procs
    return sent / elapsed, sent, sum(s[1] for s in stats) / sent * 1000


@dataclass
class SendRun:
    """Timings of one end-to-end send of the bench issue."""

    fan_out_started: float
    sending_from: float
    sent_at: float
    delivered: int
    stats: list[tuple[str, float, float]]


def send_issue(ctx: Any, bench: Bench, procs: int, threads: int, results: Any) -> SendRun:
    """Start procs sender processes, fan the bench issue out, and time them sending it all."""
    ready, stop = ctx.Semaphore(0), ctx.Event()
    # Made before the senders are ready: they look for work every 10 ms meanwhile.
    app = bench.app()
    children = [
        ctx.Process(target=sender_child, args=(bench.overrides, threads, ready, stop, results))
        for _ in range(procs)
    ]
    for child in children:
        child.start()
    for _ in children:
        ready.acquire()
    with app.app_context():
        database = get_db()
        session = database.sessionmaker()
        fan_out_started = time.perf_counter()
        issues.send_now(session, bench.issue_id)
        for _step in issues.start_issue_chunks(session, bench.issue_id, app.config):
            session.commit()
        session.commit()
        session.close()
        sending_from = time.perf_counter()

        def finished() -> bool:
            with database.engine.connect() as conn:
                counts = deliveries.counts(conn, bench.issue_id)
                conn.commit()
            return counts.open == 0

        sent_at = wait_until(finished, timeout=3600, every=0.05)
        with database.engine.connect() as conn:
            delivered = deliveries.counts(conn, bench.issue_id)[DeliveryState.SENT]
        database.dispose()
    stop.set()
    stats = [results.get(timeout=120) for _ in children]
    for child in children:
        child.join(60)
    return SendRun(fan_out_started, sending_from, sent_at, delivered, stats)


def main() -> None:
    """Run the pipelines and print one table."""
    parser = argparse.ArgumentParser(description="Send throughput: end to end vs ceiling vs naive.")
    parser.add_argument("readers", type=int)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--db", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument("--naive", type=int, default=300)
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    connections = args.procs * args.threads
    with sink() as (port, accepted):
        bench = make_bench(args.db, args.readers, SMTP_URL=f"smtp://127.0.0.1:{port}", BATCH_SIZE=100)
        bench.overrides.update(dkim_settings(bench.folder), BENCH_ISSUE=bench.issue_id)
        total = args.readers + DEMO_READERS
        results = ctx.Queue()
        run = send_issue(ctx, bench, args.procs, args.threads, results)
        delivered, sender_stats = run.delivered, run.stats
        fan_out_started, sending_from, sent_at = run.fan_out_started, run.sending_from, run.sent_at
        e2e = total / (sent_at - sending_from)
        e2e_cpu_ms = sum(s[1] for s in sender_stats) / total * 1000

        data = one_message(bench)
        stages = stage_costs(bench, data)
        ceiling, ceiling_sent, ceiling_cpu_ms = run_ceiling(ctx, port, data, args, True, results)
        classic, classic_sent, classic_cpu_ms = run_ceiling(ctx, port, data, args, False, results)
        naive_runs = []
        for sign in (True, False):
            process = ctx.Process(target=naive_child, args=(bench.overrides, port, min(args.naive, total), sign, results))
            process.start()
            _name, elapsed, count = results.get(timeout=3600)
            process.join(60)
            naive_runs.append((count / elapsed, count))
    (naive, naive_sent), (unsigned, unsigned_sent) = naive_runs
    expected = total + ceiling_sent + classic_sent + naive_sent + unsigned_sent
    rss = max(s[2] for s in sender_stats)
    table(
        f"bench/send.py {args.readers} --procs {args.procs} --threads {args.threads} --db {args.db}"
        f"  (a 20-post issue, {len(data) / 1024:.1f} KiB signed; {delivered} of {total} delivered; "
        f"the sink accepted {accepted[0] if accepted else '?'} of {expected} messages)",
        ["pipeline", "messages", "connections", "msg/s", "vs ceiling", "vs naive", "sender CPU ms/msg"],
        [
            ["end to end: render + DKIM RSA-2048 + ledger + SMTP", total, connections, f"{e2e:.0f}",
             f"{e2e / ceiling:.0%}", f"{e2e / naive:.1f}x", f"{e2e_cpu_ms:.2f}"],
            ["ceiling: the same signed bytes, same connections", ceiling_sent, connections,
             f"{ceiling:.0f}", "100%", f"{ceiling / naive:.1f}x", f"{ceiling_cpu_ms:.2f}"],
            ["  the same, one command per round trip (no PIPELINING)", classic_sent, connections,
             f"{classic:.0f}", f"{classic / ceiling:.0%}", f"{classic / naive:.1f}x", f"{classic_cpu_ms:.2f}"],
            ["naive: Jinja + css-inline + EmailMessage + dkimpy, new connection each", naive_sent, 1,
             f"{naive:.0f}", f"{naive / ceiling:.0%}", "1.0x", "-"],
            ["  the same without DKIM", unsigned_sent, 1, f"{unsigned:.0f}", f"{unsigned / ceiling:.0%}",
             f"{unsigned / naive:.1f}x", "-"],
            *[[f"  stage: {name}", STAGE_SAMPLE, 1, "-", "-", "-", f"{ms:.3f}"] for name, ms in stages],
        ],
    )
    stage_sum = sum(ms for _name, ms in stages) + ceiling_cpu_ms
    print(f"sender CPU per message: the whole {e2e_cpu_ms:.2f} ms against its stages alone "
          f"{stage_sum:.2f} ms (render + DKIM + ledger + the ceiling's transfer {ceiling_cpu_ms:.2f}): "
          f"{e2e_cpu_ms / stage_sum:.2f}x")
    print(f"fan-out of {total} readers: {sending_from - fan_out_started:.2f} s; "
          f"sender peak RSS {rss:.0f} MB; end to end is {e2e / unsigned:.1f}x the naive pipeline "
          f"without DKIM and {e2e / classic:.0%} of the ceiling without PIPELINING")
    cleanup(bench)


if __name__ == "__main__":
    main()
