"""Sending: claim a batch from the ledger, render each reader's message, hand it to SMTP.

Contract: `send_batch` is the one piece of code that sends an issue, whether it runs in
a sender thread of `digest run` / `digest worker` or in a Celery task. For each claimed
delivery it renders and signs the message, takes a token from the shared send rate,
commits `sending` (fenced: the issue must still be sending, the reader still confirmed
and not suppressed), sends over a reused SMTP connection and records the outcome:

- 250 → sent, with the server's reply and queue id, committed in the same transaction
  as the next message's `sending` (or on its own at the end of the batch, before a wait
  for the send rate, on a stop), so a connection still has at most one row in `sending`;
- 4xx or a connection lost before the end of the message → failed_temp, retried with
  exponential backoff and jitter until DIGEST_MAX_ATTEMPTS; 421/454 also slow the
  shared rate down;
- 5.1.x / 5.2.1 (or a bare 550 at RCPT) → failed_perm and the address is suppressed;
  other 5xx for the address → failed_perm;
- 5.7.x, authentication, TLS or configuration problems → the issue is paused with a
  reason for the editor and the delivery goes back to pending: no reader is blamed;
- connection lost after the whole message went out → unknown (held; or retried under
  DIGEST_AMBIGUOUS=resend);
- SMTP server unreachable → nothing is marked; the batch goes back to the queue and the
  sender backs off until the server answers again.

Claimed rows it did not get to (stop requested, issue paused) go back to pending at
once; a crash leaves them to the reaper.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

from flask import Flask
from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from digest.domain import deliveries, issues
from digest.core.db import Database, utcnow
from digest.domain.deliveries import Blocked
from digest.mail.mailer import Mailer, mailer_for
from digest.mail.render import NotSendable, PreparedIssue, Reader, check_sendable, prepare_issue
from digest.mail.transport import (
    RecipientRejected,
    SenderProblem,
    TemporaryFailure,
    UnclearOutcome,
)
from digest.core.models import Subscriber, Subscription, SubscriptionSection, SuppressionReason
from digest.domain.suppression import HASH_PURPOSE, suppress
from digest.core.tokens import keyed_hasher
from digest.engine.transactional import send_pending_transactional

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 6 * 3600.0
THROTTLE_PAUSE_SECONDS = 2.0
MAIL_JOB_SECONDS = 5.0
THROTTLE_CODES = frozenset({421, 454})

MailJob = Callable[[Flask, Mailer], int]


def send_transactional(app: Flask, mailer: Mailer) -> int:
    """Send the confirmation, welcome and "already subscribed" emails that are due."""
    return send_pending_transactional(app.extensions["digest.db"], mailer, app.config)


# Periodic mail jobs, run by the sender side every MAIL_JOB_SECONDS (in `digest run` and
# `digest worker`; in Celery mode the clock enqueues them as a task): each sends what is
# due over the mailer it is given, manages its own transactions, and returns how many
# messages went out. A failing job is logged and the others still run.
MAIL_JOBS: tuple[MailJob, ...] = (send_transactional,)


def new_owner(role: str = "sender") -> str:
    """Return a lease owner id unique to this sender: host, pid and a random part."""
    return f"{socket.gethostname()[:32]}:{os.getpid()}:{role}:{secrets.token_hex(3)}"


def retry_delay(attempts: int, base: float) -> float:
    """Return the wait before attempt attempts+1: exponential, capped, with jitter."""
    return min(MAX_RETRY_DELAY, base * 2 ** max(attempts - 1, 0)) * random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class Recipient:
    """A reader as the sender needs them: what to render and what to check."""

    reader: Reader
    email_hash: str


def load_readers(
    executor: Connection | Session,
    newsletter_id: int,
    subscriber_ids: Iterable[int],
    config: Mapping[str, Any],
) -> dict[int, Recipient]:
    """Return the readers of a batch by subscriber id, with their chosen section ids,
    in two Core queries."""
    ids = [i for i in subscriber_ids if i is not None]
    if not ids:
        return {}
    rows = executor.execute(
        select(Subscriber.id, Subscriber.email, Subscriber.name, Subscription.id, Subscription.uid)
        .join(
            Subscription,
            (Subscription.subscriber_id == Subscriber.id)
            & (Subscription.newsletter_id == newsletter_id),
        )
        .where(Subscriber.id.in_(ids))
    ).all()
    chosen: dict[int, set[int]] = {}
    for subscription_id, section_id in executor.execute(
        select(SubscriptionSection.subscription_id, SubscriptionSection.section_id).where(
            SubscriptionSection.subscription_id.in_([row[3] for row in rows])
        )
    ):
        chosen.setdefault(subscription_id, set()).add(section_id)
    # Stored addresses are canonical, so this is suppression.email_hash(config, address).
    hash_of = keyed_hasher(config["SECRET_KEY"], HASH_PURPOSE)
    return {
        sid: Recipient(
            Reader(sid, uid, email, name, frozenset(chosen.get(subscription_id, ()))),
            hash_of(email),
        )
        for sid, email, name, subscription_id, uid in rows
    }


class PreparedIssues:
    """Each issue rendered once per process (the shared parts), for every sender in it."""

    def __init__(self) -> None:
        self._items: dict[int, PreparedIssue] = {}
        self._lock = threading.Lock()

    def get(self, app: Flask, database: Database, issue_id: int) -> PreparedIssue:
        """Return the prepared issue, rendering it on first use; raise NotSendable if its
        readers must not get it (no postal address, HTML that Gmail would clip)."""
        with self._lock:
            prepared = self._items.get(issue_id)
            if prepared is None:
                with database.session() as session:
                    prepared = prepare_issue(session, issue_id, app)
                check_sendable(prepared)
                self._items[issue_id] = prepared
            return prepared

    def forget(self, keep: Iterable[int]) -> None:
        """Drop every issue not in keep (those no longer sending)."""
        keep = set(keep)
        with self._lock:
            for issue_id in [i for i in self._items if i not in keep]:
                del self._items[issue_id]


PREPARED = PreparedIssues()


@dataclass
class BatchOutcome:
    """What one send_batch did."""

    issue_id: int
    claimed: int = 0
    sent: int = 0
    failed_temp: int = 0
    failed_perm: int = 0
    skipped: int = 0
    unknown: int = 0
    released: int = 0
    throttled: bool = False
    stopped: bool = False
    paused: str | None = None
    smtp_unavailable: str | None = None
    notes: list[str] = field(default_factory=list)


class Throttle(Protocol):
    """The shared send rate (digest.engine.sendrate) as a sender sees it."""

    def acquire(self) -> float:
        """Take a token; return the seconds to wait before sending."""
        ...

    def slow_down(self) -> bool:
        """Lower the rate after a throttling reply."""
        ...


def send_batch(
    app: Flask,
    mailer: Mailer,
    issue_id: int,
    *,
    owner: str,
    rate: Throttle | None = None,
    prepared: PreparedIssues = PREPARED,
    stop: threading.Event | None = None,
) -> BatchOutcome:
    """Claim up to DIGEST_BATCH_SIZE deliveries of a sending issue and send them."""
    database: Database = app.extensions["digest.db"]
    outcome = BatchOutcome(issue_id)
    with _ledger_connections(database) as (conn, settle):
        claimed = deliveries.claim(
            conn, issue_id, owner, app.config["BATCH_SIZE"], app.config["LEASE_SECONDS"]
        )
        conn.commit()
        outcome.claimed = len(claimed)
        if not claimed:
            return outcome
        try:
            _Batch(app, database, conn, settle, mailer, issue_id, owner, rate, stop, outcome).run(
                claimed, prepared
            )
        finally:
            conn.rollback()
            outcome.released = deliveries.release(conn, owner, [c.id for c in claimed])
            conn.commit()
    return outcome


@contextmanager
def _ledger_connections(database: Database) -> Iterator[tuple[Connection, Connection]]:
    """Yield the connection for claims and `sending`, and the one for final outcomes.

    On PostgreSQL both autocommit (every ledger write is one statement: one round trip,
    not two; a `sent` riding with the next `sending` is a data-modifying CTE of it), and
    the outcome connection (failures, and a `sent` with no next message) does not wait for
    the WAL flush (synchronous_commit off): `sending` is durable before MAIL FROM, while a
    database crash that loses an outcome commit can only leave that row `sending`, which
    the reaper turns into `unknown`, never into a second message. On SQLite it is one connection, with BEGIN
    IMMEDIATE on every transaction.
    """
    with database.engine.connect() as conn:
        if database.dialect != "postgresql":
            yield conn, conn
            return
        conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        with database.engine.connect() as settle:
            settle = settle.execution_options(isolation_level="AUTOCOMMIT")
            settle.exec_driver_sql("SET synchronous_commit TO off")
            try:
                yield conn, settle
            finally:
                settle.exec_driver_sql("RESET synchronous_commit")


@dataclass
class _Batch:
    """One claimed batch on its way out; every step commits on conn right away, but a
    `sent`, which commits with the next message's `sending` (or at the batch's end)."""

    app: Flask
    database: Database
    conn: Connection
    settle: Connection
    mailer: Mailer
    issue_id: int
    owner: str
    rate: Throttle | None
    stop: threading.Event | None
    outcome: BatchOutcome
    # The last 250 whose `sent` rides in the transaction of the next `sending`.
    accepted: deliveries.Accepted | None = None

    def run(self, claimed: Sequence[deliveries.Claimed], prepared_issues: PreparedIssues) -> None:
        try:
            self._run(claimed, prepared_issues)
        finally:
            self.conn.rollback()  # only a step that failed leaves anything uncommitted
            self._settle()

    def _settle(self) -> None:
        """Commit the accepted delivery's `sent` on its own (no next `sending` to ride with)."""
        accepted, self.accepted = self.accepted, None
        if accepted is not None:
            deliveries.mark_accepted_sent(self.settle, self.owner, accepted)
            self.settle.commit()

    def _run(self, claimed: Sequence[deliveries.Claimed], prepared_issues: PreparedIssues) -> None:
        config = self.app.config
        lease = config["LEASE_SECONDS"]
        try:
            prepared = prepared_issues.get(self.app, self.database, self.issue_id)
        except NotSendable as exc:
            return self._pause(f"The issue cannot be sent: {exc}")
        except Exception as exc:  # noqa: BLE001  (any failure here is the issue's, not a reader's)
            log.exception("issue %s: cannot render", self.issue_id)
            return self._pause(f"The issue could not be rendered: {exc}")
        newsletter_id = prepared.newsletter.id
        readers = load_readers(
            self.conn, newsletter_id, (c.subscriber_id for c in claimed), config
        )
        self.conn.commit()
        beat = time.monotonic()
        for item in claimed:
            if self.stop is not None and self.stop.is_set():
                self.outcome.stopped = True
                return
            if time.monotonic() - beat > lease / 3:
                deliveries.renew_lease(self.conn, self.owner, lease)
                self.conn.commit()
                beat = time.monotonic()
            recipient = readers.get(item.subscriber_id) if item.subscriber_id else None
            if recipient is None:
                self._skip(item.id, Blocked.ERASED)
                continue
            try:
                outgoing = prepared.message_for(recipient.reader, item.id)
                data = self.mailer.sign(outgoing.data, outgoing.body_hash)
            except Exception as exc:  # noqa: BLE001  (a template or signing fault stops the issue)
                log.exception("issue %s: cannot build delivery %s", self.issue_id, item.id)
                return self._pause(f"The message for delivery {item.id} could not be built: {exc}")
            try:
                self.mailer.connect()
            except TemporaryFailure as exc:
                self.outcome.smtp_unavailable = str(exc)
                return
            except SenderProblem as exc:
                return self._pause(f"Sending stopped: {exc}")
            if self.rate is not None:
                wait = self.rate.acquire()
                if wait > 0:
                    self._settle()  # nobody waits on the rate with a 250 not yet recorded
                if _sleep(self.stop, wait):
                    self.outcome.stopped = True
                    return
            attempt = deliveries.mark_sending(
                self.conn, item.id, self.owner, newsletter_id, recipient.email_hash, lease,
                accepted=self.accepted,
            )
            self.accepted = None
            if attempt is None:
                why = deliveries.blocked_reason(
                    self.conn, item.id, self.owner, newsletter_id, recipient.email_hash
                )
                if why == Blocked.ISSUE_STOPPED:
                    self.conn.commit()
                    self.outcome.stopped = True
                    return
                if why == Blocked.LEASE_LOST:
                    self.conn.commit()
                else:
                    self._skip(item.id, why)
                continue
            self.conn.commit()
            self._send(item.id, attempt, recipient, outgoing.envelope_from, outgoing.recipient, data)
            if self.outcome.paused:
                return

    def _send(
        self,
        delivery_id: int,
        attempt: int,
        recipient: Recipient,
        envelope_from: str,
        address: str,
        data: bytes,
    ) -> None:
        config, conn, owner, outcome = self.app.config, self.settle, self.owner, self.outcome
        try:
            result = self.mailer.send_signed(envelope_from, address, data)
        except RecipientRejected as exc:
            # Suppression first: should the process die in between, the address is never
            # mailed again and the delivery ends up unknown, not the other way round.
            if exc.suppress:
                with self.database.session() as session:
                    suppress(session, config, recipient.reader.email, SuppressionReason.HARD_BOUNCE, str(exc))
            deliveries.mark_failed_perm(conn, delivery_id, owner, exc.code, str(exc))
            conn.commit()
            outcome.failed_perm += 1
        except TemporaryFailure as exc:
            self._retry_later(delivery_id, attempt, exc.code, str(exc))
            if exc.code in THROTTLE_CODES:
                outcome.throttled = True
                if self.rate is not None:
                    self.rate.slow_down()
                else:
                    _sleep(self.stop, THROTTLE_PAUSE_SECONDS)
        except SenderProblem as exc:
            deliveries.unsend(self.conn, delivery_id, owner)
            self.conn.commit()
            self._pause(f"Sending stopped: {exc}")
        except UnclearOutcome as exc:
            if config["AMBIGUOUS"] == "resend":
                self._retry_later(delivery_id, attempt, None, str(exc))
            else:
                deliveries.mark_unknown(conn, delivery_id, owner, str(exc))
                conn.commit()
                outcome.unknown += 1
        else:
            self.accepted = deliveries.Accepted(
                delivery_id, result.code, result.response, result.queue_id, utcnow()
            )
            outcome.sent += 1

    def _retry_later(self, delivery_id: int, attempt: int, code: int | None, text: str) -> None:
        config = self.app.config
        retry_at = None
        if attempt < config["MAX_ATTEMPTS"]:
            delay = retry_delay(attempt, config["RETRY_SECONDS"])
            retry_at = utcnow() + dt.timedelta(seconds=delay)
        deliveries.mark_failed_temp(self.settle, delivery_id, self.owner, code, text, retry_at)
        self.settle.commit()
        self.outcome.failed_temp += 1

    def _skip(self, delivery_id: int, why: str) -> None:
        if deliveries.skip(self.conn, delivery_id, self.owner, why):
            self.outcome.skipped += 1
        self.conn.commit()

    def _pause(self, reason: str) -> None:
        self.outcome.paused = reason
        with self.database.session() as session:
            try:
                issues.pause_issue(session, self.issue_id, reason)
            except issues.IssueError:
                pass  # already paused or cancelled by someone else: their word stands


def _sleep(stop: threading.Event | None, seconds: float) -> bool:
    """Sleep (interruptibly); return whether a stop was requested."""
    if seconds > 0:
        if stop is None:
            time.sleep(seconds)
        else:
            stop.wait(seconds)
    return bool(stop and stop.is_set())


def send_rate_for(app: Flask) -> Throttle | None:
    """Return the shared send rate of DIGEST_SEND_RATE, or None when unlimited."""
    from digest.engine.sendrate import SendRateLimiter

    rate = app.config.get("SEND_RATE")
    return SendRateLimiter(app.extensions["digest.db"], rate) if rate else None


def run_mail_jobs(app: Flask, mailer: Mailer, jobs: Sequence[MailJob] = MAIL_JOBS) -> int:
    """Run each periodic mail job once; return how many messages they sent. A failing job
    is logged and does not stop the others."""
    total = 0
    for job in jobs:
        try:
            with app.app_context():
                total += job(app, mailer) or 0
        except Exception:  # noqa: BLE001  (one broken job must not stop mail for the rest)
            log.exception("mail job %s failed", getattr(job, "__qualname__", job))
    return total


class SenderPool:
    """Sender threads in this process, each with its own SMTP connection, working on every
    sending issue (or only issue_ids), plus a thread running the periodic mail jobs.

    An idle sender looks for work every idle_seconds (wake() makes it look at once); a
    sender that cannot reach the SMTP server backs off, doubling up to BACKOFF_MAX.
    """

    BACKOFF_MAX = 30.0

    def __init__(
        self,
        app: Flask,
        threads: int | None = None,
        *,
        issue_ids: Sequence[int] | None = None,
        mail_jobs: Sequence[MailJob] = MAIL_JOBS,
        idle_seconds: float = 2.0,
        mailer_factory: Callable[[Mapping[str, Any]], Mailer] = mailer_for,
    ) -> None:
        self.app = app
        self.mailer_factory = mailer_factory
        self.threads = threads or app.config["SENDER_THREADS"]
        self.issue_ids = list(issue_ids) if issue_ids is not None else None
        self.mail_jobs = tuple(mail_jobs)
        self.idle_seconds = idle_seconds
        self.rate = send_rate_for(app)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SenderPool:
        """Start the threads; return self."""
        targets: list[tuple[str, Callable[[], None]]] = [
            (f"digest-sender-{i}", self._sender) for i in range(self.threads)
        ]
        if self.mail_jobs:
            targets.append(("digest-mail-jobs", self._run_mail_jobs))
        for name, target in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def wake(self) -> None:
        """Make idle senders look for work now."""
        self._wake.set()

    def dispatch(self, issue_ids: Sequence[int]) -> None:
        """The clock's Dispatcher: these threads send every sending issue, so wake them."""
        self.wake()

    def stop(self, timeout: float = 60.0) -> None:
        """Finish the message in hand, give unsent claims back, close connections."""
        self._stop.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    @property
    def stopping(self) -> bool:
        """Return whether stop() was called."""
        return self._stop.is_set()

    def _sending_ids(self) -> list[int]:
        if self.issue_ids is not None:
            return self.issue_ids
        database: Database = self.app.extensions["digest.db"]
        with database.session() as session:
            ids = issues.sending_issue_ids(session)
        PREPARED.forget(ids)
        return ids

    def _sender(self) -> None:
        mailer = self.mailer_factory(self.app.config)
        owner = new_owner(threading.current_thread().name.rsplit("-", 1)[-1])
        failures = 0
        try:
            while not self._stop.is_set():
                worked, trouble = False, None
                try:
                    for issue_id in self._sending_ids():
                        outcome = send_batch(
                            self.app, mailer, issue_id, owner=owner, rate=self.rate, stop=self._stop
                        )
                        worked = worked or outcome.claimed > 0
                        if outcome.smtp_unavailable:
                            trouble = outcome.smtp_unavailable
                            break
                except Exception as exc:  # noqa: BLE001  (a database outage must not kill the sender)
                    log.exception("sender %s: unexpected error", owner)
                    trouble = str(exc)
                if trouble:
                    failures += 1
                    delay = min(self.BACKOFF_MAX, 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)
                    log.warning("sender %s: %s; next try in %.0f s", owner, trouble, delay)
                    self._stop.wait(delay)
                    continue
                failures = 0
                if not worked:
                    self._wake.wait(self.idle_seconds)
                    self._wake.clear()
        finally:
            mailer.close()

    def _run_mail_jobs(self) -> None:
        mailer = self.mailer_factory(self.app.config)
        try:
            while not self._stop.is_set():
                run_mail_jobs(self.app, mailer, self.mail_jobs)
                self._stop.wait(MAIL_JOB_SECONDS)
        finally:
            mailer.close()
