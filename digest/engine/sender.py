"""Sending: claim a batch from the ledger, render each reader's message, hand it to SMTP.

Contract: `send_batch` is the one piece of code that sends an issue, whether it runs in
a sender thread of `digest run` / `digest worker` or in a Celery task. For each claimed
delivery it renders and signs the message, takes a token from the shared send rate,
writes the message over a reused SMTP connection up to its final dot, commits `sending`
there (fenced: the issue must still be sending, the reader still confirmed and not
suppressed; if the fence holds, the connection is dropped without the dot and the server
takes nothing), writes the dot and records the outcome:

- 250 → sent, with the server's reply and queue id, committed in the same transaction
  as the next message's `sending` (or on its own at the end of the batch, before a wait
  for the send rate, on a stop), so a connection still has at most one row in `sending`;
- 4xx, or a connection lost (or a server that hung up) before the final dot was
  written → failed_temp, retried with exponential backoff and jitter until
  DIGEST_MAX_ATTEMPTS; 421/454 also slow the shared rate down;
- 5.1.x / 5.2.1 (or a bare 550 at RCPT) → failed_perm and the address is suppressed;
  other 5xx for the address → failed_perm;
- 5.7.x, authentication, TLS or configuration problems → the issue is paused with a
  reason for the editor and the delivery goes back to pending: no reader is blamed;
- connection lost after the final dot was written, before the reply → unknown (held; or
  retried under DIGEST_AMBIGUOUS=resend); a crash leaves `sending` only on a row whose
  dot may have gone out, and the takeover of a dead sender (digest.engine.liveness)
  makes it unknown, while its claimed rows (transfer unfinished) go back to the queue;
- a reader none of whose sections has a post in the issue → skipped ("no post for their
  sections") unless the newsletter sends such readers a short note;
- SMTP server unreachable, or silent past a phase's timeout before the end of a
  message (DIGEST_SMTP_*_TIMEOUT) → nothing is marked; the batch goes back to the queue
  and the sender backs off until the server answers again, reporting the obstacle.

Claimed rows it did not get to (stop requested, issue paused) go back to pending at
once; a crash leaves them to the takeover (seconds) or the reaper (lease expiry). A
release that fails (database outage) is done again before the owner's next batch, and
what the sender knows of its message in hand is recorded then, not left to be judged
unknown: a 250 whose `sent` did not commit is sent, and a message dropped without its
final dot because committing its `sending` failed (the commit may have gone through
unseen) goes back to the queue.
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
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence, Set
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from flask import Flask
from sqlalchemy import Connection, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from digest.core import foreground
from digest.core.db import Database, utcnow
from digest.core.models import (
    DeliveryState,
    Issue,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SuppressionReason,
)
from digest.core.tokens import keyed_hasher
from digest.domain import deliveries, engagement, issues
from digest.domain.deliveries import Blocked
from digest.domain.issue_mail import load_issue, render_settings
from digest.domain.suppression import HASH_PURPOSE, suppress
from digest.engine.liveness import DATABASE_TROUBLE, Liveness, liveness_for
from digest.engine.transactional import WAKE, deliver_transactional
from digest.mail.mailer import Mailer, mailer_for
from digest.mail.render import NotSendable, Outgoing, PreparedIssue, Reader, check_sendable
from digest.mail.transport import (
    RecipientRejected,
    SenderProblem,
    SendError,
    SendResult,
    ServerTimeout,
    TemporaryFailure,
    UnclearOutcome,
    Withdrawn,
)

log = logging.getLogger(__name__)

MAX_RETRY_DELAY = 6 * 3600.0
THROTTLE_PAUSE_SECONDS = 2.0
MAIL_JOB_SECONDS = 1.0
# Threads running the mail jobs: a burst's signups and confirmations wait mostly on
# database round trips, which two threads overlap (their claims never collide).
MAIL_THREADS = 2
# After a signup wakes the mail threads, they wait this long for the signups arriving
# meanwhile, so a burst is taken and confirmed in rounds of dozens: each round costs a
# dozen statements whatever its size, the price of a few signups each.
GATHER_SECONDS = 0.05
THROTTLE_CODES = frozenset({421, 454})

MailJob = Callable[[Flask, Mailer], int]


def send_transactional(app: Flask, mailer: Mailer) -> int:
    """Act on waiting signups and send the confirmation, welcome and "already subscribed"
    emails that are due."""
    return deliver_transactional(app.extensions["digest.db"], mailer, app.config)


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
    doublings: int = 2 ** max(attempts - 1, 0)
    return min(MAX_RETRY_DELAY, base * doublings) * random.uniform(0.5, 1.5)


@dataclass(frozen=True)
class Recipient:
    """A reader as the sender needs them: what to render and what to check."""

    reader: Reader
    email_hash: str


def load_readers(
    executor: Connection | Session,
    newsletter_id: int,
    subscriber_ids: Iterable[int | None],
    config: Mapping[str, Any],
) -> dict[int, Recipient]:
    """Return the readers of a batch by subscriber id, with their chosen section ids,
    in two Core queries."""
    ids = [i for i in subscriber_ids if i is not None]
    if not ids:
        return {}
    rows = executor.execute(
        select(
            Subscriber.id, Subscriber.email, Subscriber.name, Subscription.id, Subscription.uid,
            Subscription.no_tracking,
        )
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
            Reader(sid, uid, email, name, frozenset(chosen.get(subscription_id, ())), not no_tracking),
            hash_of(email),
        )
        for sid, email, name, subscription_id, uid, no_tracking in rows
    }


# Messages rendered and signed together before they go out one by one: each stage then
# runs on warm caches (one at a time per message, render, RSA, SQLite and the socket
# evicted each other's; measured +0.1 ms a message), at 16 × ~40 KB of memory a sender.
PREBUILT = 16
# The longest a sender waits, before each message, for this process to finish answering
# web requests (digest.core.foreground): under a burst that never pauses, each sender
# thread still sends about 20 messages a second.
STEP_ASIDE_SECONDS = 0.05

# Issues whose rendering an app keeps: more than are ever sending at once, and the bound
# that matters under Celery, where no sender pool tells the cache which issues ended.
ISSUES_KEPT = 8


class PreparedIssues:
    """One app's issues, each rendered once (the shared parts) for every sender thread.

    Every batch asks whether its issue changed (its `updated_at`, one lookup by key: a
    pause, resume or resend bumps it, and an issue is edited only while paused) and only
    then loads its content again (digest.domain.issue_mail.load_issue, a few queries) and
    renders again if that changed: an issue edited while paused (a post, the newsletter's
    settings) goes out as it reads when it resumes. The ISSUES_KEPT issues used last are
    kept. Each app has its own (`prepared_issues`): its database and its settings (links,
    secret) are its own.
    """

    def __init__(self, database: Database, config: Mapping[str, Any]) -> None:
        self._database = database
        self._config = config
        self._settings = render_settings(config)
        # issue id → (its rendering, the issue's updated_at when it was checked); used last at the end
        self._items: OrderedDict[int, tuple[PreparedIssue, dt.datetime | None]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, issue_id: int) -> PreparedIssue:
        """Return the issue rendered from its current content; raise NotSendable if its
        readers must not get it (no postal address, HTML that Gmail would clip)."""
        # Read without the write lock: a thread holding it while it waits for self._lock
        # deadlocks with the thread below that holds self._lock while it saves links.
        with self._database.reader() as session:
            stamp = session.scalar(select(Issue.updated_at).where(Issue.id == issue_id))
            with self._lock:
                kept = self._items.get(issue_id)
                if kept is not None and kept[1] == stamp:
                    self._items.move_to_end(issue_id)
                    return kept[0]
            content = load_issue(session, issue_id, self._config)
        with self._lock:
            found = self._items.pop(issue_id, None)
            prepared = found[0] if found is not None else None
            if prepared is None or prepared.content != content:
                prepared = PreparedIssue(content, self._settings)
                check_sendable(prepared)
                if prepared.link_table.links:
                    with self._database.session() as session:
                        engagement.save_links(session, issue_id, prepared.link_table)
            self._items[issue_id] = (prepared, stamp)
            while len(self._items) > ISSUES_KEPT:
                self._items.popitem(last=False)
            return prepared

    def forget(self, keep: Iterable[int]) -> None:
        """Drop every issue not in keep (those no longer sending)."""
        keep = set(keep)
        with self._lock:
            for issue_id in [i for i in self._items if i not in keep]:
                del self._items[issue_id]


def prepared_issues(app: Flask) -> PreparedIssues:
    """Return the app's rendered issues, made on first use."""
    found: PreparedIssues | None = app.extensions.get("digest.prepared")
    if found is None:
        found = app.extensions.setdefault(
            "digest.prepared", PreparedIssues(app.extensions["digest.db"], app.config)
        )
    return found


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


@dataclass(frozen=True)
class _Unsettled:
    """What a sender knows about its rows that a failed step (a database outage) kept it
    from recording: a 250 whose `sent` did not commit, and a message the server took
    nothing of (its final dot never written, or refused) whose row may read `sending`."""

    accepted: deliveries.Accepted | None = None
    withdrawn: int | None = None


# Owners whose rows a failed step left in flight, with what they know of them; settled
# before the owner's next claim, so they wait neither for a lease nor a takeover, and what
# the sender knows is recorded instead of "unknown".
_UNSETTLED: dict[str, _Unsettled] = {}


def settle_unsettled(database: Database, owner: str, ambiguous: str) -> None:
    """Record what owner knows of the rows a failed step left in flight, and put the rest
    back (claims to pending, a `sending` whose end went out to unknown); a no-op unless a
    step of owner failed."""
    if owner in _UNSETTLED:
        with _claims_connection(database) as conn:
            _settle_owner(conn, owner, ambiguous)


def _settle_owner(conn: Connection, owner: str, ambiguous: str) -> None:
    unsettled = _UNSETTLED.get(owner)
    if unsettled is None:
        return
    if unsettled.accepted is not None:
        deliveries.recover_sent(conn, owner, unsettled.accepted)
    if unsettled.withdrawn is not None:
        deliveries.withdraw(conn, unsettled.withdrawn, owner)
    deliveries.abandon(conn, owner, ambiguous)
    conn.commit()
    del _UNSETTLED[owner]


def send_batch(
    app: Flask,
    mailer: Mailer,
    issue_id: int,
    *,
    owner: str,
    rate: Throttle | None = None,
    stop: threading.Event | None = None,
) -> BatchOutcome:
    """Claim up to DIGEST_BATCH_SIZE deliveries of a sending issue and send them."""
    database: Database = app.extensions["digest.db"]
    outcome = BatchOutcome(issue_id)
    lease = app.config["LEASE_SECONDS"]
    liveness: Liveness | None = app.extensions.get("digest.liveness")
    with _claims_connection(database) as conn:
        _settle_owner(conn, owner, app.config["AMBIGUOUS"])
        claimed = deliveries.claim(
            conn, issue_id, owner, app.config["BATCH_SIZE"], lease,
            sender_id=liveness.sender_id if liveness is not None else None,
        )
        conn.commit()
        outcome.claimed = len(claimed)
        if not claimed:
            return outcome
        _UNSETTLED[owner] = _Unsettled()
        batch: _Batch | None = None
        try:
            # Opened only for a batch with work: an idle sender's look costs one connection.
            with _outcomes_connection(database, conn) as settle:
                context = _BatchContext(
                    app=app, database=database, conn=conn, settle=settle, mailer=mailer,
                    issue_id=issue_id, owner=owner, lease_seconds=lease, rate=rate, stop=stop,
                )
                batch = _Batch(context, outcome)
                batch.run(claimed, prepared_issues(app))
        finally:
            if batch is not None:
                _UNSETTLED[owner] = _Unsettled(batch.accepted, batch.withdrawn)
            conn.rollback()
            outcome.released = deliveries.release(conn, owner, [c.id for c in claimed])
            conn.commit()
        del _UNSETTLED[owner]
    return outcome


@contextmanager
def _claims_connection(database: Database) -> Iterator[Connection]:
    """Yield the connection for claims and `sending`: on PostgreSQL it autocommits (every
    ledger write is one statement: one round trip, not two; a `sent` riding with the next
    `sending` is a data-modifying CTE of it); on SQLite every transaction is BEGIN IMMEDIATE."""
    with database.engine.connect() as conn:
        if database.dialect == "postgresql":
            conn = conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


@contextmanager
def _outcomes_connection(database: Database, claims: Connection) -> Iterator[Connection]:
    """Yield the connection for final outcomes (failures, and a `sent` with no next message).

    On PostgreSQL it is a second autocommit connection that does not wait for the WAL
    flush (synchronous_commit off): `sending` is durable before the end of the message,
    while a database crash that loses an outcome commit can only leave that row `sending`,
    which the takeover or the reaper turns into `unknown`, never into a second message. On
    SQLite it is the claims connection.
    """
    if database.dialect != "postgresql":
        yield claims
        return
    with database.engine.connect() as settle:
        settle = settle.execution_options(isolation_level="AUTOCOMMIT")
        settle.exec_driver_sql("SET synchronous_commit TO off")
        try:
            yield settle
        finally:
            settle.exec_driver_sql("RESET synchronous_commit")


@contextmanager
def _ledger_connections(database: Database) -> Iterator[tuple[Connection, Connection]]:
    """Yield the claims connection and the outcomes connection of a batch."""
    with _claims_connection(database) as conn, _outcomes_connection(database, conn) as settle:
        yield conn, settle


@dataclass(frozen=True, kw_only=True)
class _BatchContext:
    """What a batch works with, fixed from its claim to its release."""

    app: Flask
    database: Database
    conn: Connection  # claims, `sending` (with the previous `sent`), skips, the lease
    settle: Connection  # the other outcomes, and a `sent` that has no next `sending`
    mailer: Mailer
    issue_id: int
    owner: str
    lease_seconds: float
    rate: Throttle | None
    stop: threading.Event | None


class _BatchEnds(Exception):
    """Raised by a step that ends the batch, once the outcome says why (a stop was asked
    for, the issue paused or stopped sending, the SMTP server is out of reach)."""


@dataclass
class _Batch:
    """One claimed batch on its way out; every step commits right away, but a `sent`,
    which commits with the next message's `sending` (or on its own: before a wait for the
    send rate, at the batch's end)."""

    context: _BatchContext
    outcome: BatchOutcome
    # The last 250 whose `sent` rides in the transaction of the next `sending`.
    accepted: deliveries.Accepted | None = None
    # A message the server took nothing of whose row may read `sending` all the same: its
    # `sending` commit failed (the dot never went out; the commit may have gone through,
    # the answer lost in a database outage), or recording its refusal failed.
    withdrawn: int | None = None
    # From the claim: a slow first render must not let the lease lapse unrenewed.
    lease_renewed_at: float = field(default_factory=time.monotonic)

    def run(self, claimed: Sequence[deliveries.Claimed], prepared_issues: PreparedIssues) -> None:
        """Send the claimed deliveries until done or a step ends the batch; the last `sent`
        is committed either way."""
        try:
            self._run(claimed, prepared_issues)
        except _BatchEnds:
            pass
        finally:
            self.context.conn.rollback()  # only a step that failed leaves anything uncommitted
            self._settle()

    def _run(self, claimed: Sequence[deliveries.Claimed], prepared_issues: PreparedIssues) -> None:
        """Take each claimed delivery through the steps; any step may end the batch."""
        prepared = self._prepared(prepared_issues)
        newsletter_id = prepared.newsletter.id
        readers = self._readers(newsletter_id, claimed)
        for start in range(0, len(claimed), PREBUILT):
            group = claimed[start:start + PREBUILT]
            foreground.step_aside(STEP_ASIDE_SECONDS)
            present = {
                item.id: readers[sid]
                for item in group
                if (sid := item.subscriber_id) is not None and sid in readers
            }
            no_post = {i for i, r in present.items() if not _gets_mail(prepared, r.reader)}
            built = {
                i: self._message(prepared, r, i) for i, r in present.items() if i not in no_post
            }
            self._send_group(group, built, no_post, readers, newsletter_id)

    def _send_group(
        self,
        group: Sequence[deliveries.Claimed],
        built: Mapping[int, Outgoing],
        no_post: Set[int],
        readers: Mapping[int, Recipient],
        newsletter_id: int,
    ) -> None:
        for item in group:
            self._stop_if_asked()
            # Short enough to hold the last 250 unrecorded (a rate wait records it first).
            foreground.step_aside(STEP_ASIDE_SECONDS)
            self._keep_lease()
            recipient = readers.get(item.subscriber_id) if item.subscriber_id else None
            if recipient is None:
                self._skip(item.id, Blocked.ERASED)
                continue
            if item.id in no_post:
                self._skip(item.id, Blocked.NO_POST)
                continue
            message = built[item.id]
            self._connect()
            self._take_token()
            marked: list[bool] = []

            def before_end(item: deliveries.Claimed = item, recipient: Recipient = recipient) -> bool:
                try:
                    marked.append(self._mark_sending(item.id, newsletter_id, recipient))
                except Exception:
                    self.withdrawn = item.id  # the transport drops the message without its dot
                    raise
                return marked[-1]

            reply = self._send(message, before_end)
            if isinstance(reply, Withdrawn):
                self._blocked(item.id, newsletter_id, recipient)
            else:
                source = DeliveryState.SENDING if marked and marked[-1] else DeliveryState.CLAIMED
                try:
                    self._record(item.id, item.attempts + 1, source, recipient, reply)
                except DBAPIError:
                    if not isinstance(reply, SendResult | UnclearOutcome):
                        self.withdrawn = item.id  # refused or cut off: the server took nothing
                    raise

    def _prepared(self, prepared_issues: PreparedIssues) -> PreparedIssue:
        """Return the issue as rendered for this app; pause it if its readers must not get it."""
        context = self.context
        try:
            return prepared_issues.get(context.issue_id)
        except NotSendable as exc:
            self._pause(f"The issue cannot be sent: {exc}")
        except Exception as exc:  # noqa: BLE001  (any failure here is the issue's, not a reader's)
            log.exception("issue %s: cannot render", context.issue_id)
            self._pause(f"The issue could not be rendered: {exc}")

    def _readers(
        self, newsletter_id: int, claimed: Sequence[deliveries.Claimed]
    ) -> dict[int, Recipient]:
        """Return the batch's readers by subscriber id."""
        context = self.context
        readers = load_readers(
            context.conn, newsletter_id, (c.subscriber_id for c in claimed), context.app.config
        )
        context.conn.commit()
        return readers

    def _stop_if_asked(self) -> None:
        """End the batch if a stop was requested."""
        stop = self.context.stop
        if stop is not None and stop.is_set():
            self._stop()

    def _keep_lease(self) -> None:
        """Renew the lease on the batch's rows once a third of it has passed."""
        context = self.context
        if time.monotonic() - self.lease_renewed_at > context.lease_seconds / 3:
            deliveries.renew_lease(context.conn, context.owner, context.lease_seconds)
            context.conn.commit()
            self.lease_renewed_at = time.monotonic()

    def _message(self, prepared: PreparedIssue, recipient: Recipient, delivery_id: int) -> Outgoing:
        """Return the reader's message, signed; pause the issue if it cannot be built."""
        try:
            outgoing = prepared.message_for(recipient.reader, delivery_id)
            data = self.context.mailer.sign(outgoing.data, outgoing.body_hash)
        except Exception as exc:  # noqa: BLE001  (a template or signing fault stops the issue)
            log.exception("issue %s: cannot build delivery %s", self.context.issue_id, delivery_id)
            self._pause(f"The message for delivery {delivery_id} could not be built: {exc}")
        return Outgoing(outgoing.envelope_from, outgoing.recipient, data)

    def _connect(self) -> None:
        """Make sure the SMTP connection works; end the batch if it does not."""
        try:
            self.context.mailer.connect()
        except TemporaryFailure as exc:
            self.outcome.smtp_unavailable = str(exc)
            raise _BatchEnds
        except SenderProblem as exc:
            self._pause(f"Sending stopped: {exc}")

    def _take_token(self) -> None:
        """Wait for a token of the shared send rate; end the batch if a stop came meanwhile."""
        rate, stop = self.context.rate, self.context.stop
        if rate is None:
            return
        wait = rate.acquire()
        if wait > 0:
            self._settle()  # nobody waits on the rate with a 250 not yet recorded
        if _sleep(stop, wait):
            self._stop()

    def _mark_sending(self, delivery_id: int, newsletter_id: int, recipient: Recipient) -> bool:
        """Commit claimed → sending, fenced, with the previous message's `sent` (the message
        is written up to its final dot); return whether the fence let it through."""
        context = self.context
        conn = context.conn
        attempt = deliveries.mark_sending(
            conn, delivery_id, context.owner, newsletter_id, recipient.email_hash,
            context.lease_seconds, accepted=self.accepted,
        )
        conn.commit()
        self.accepted = None
        return attempt is not None

    def _blocked(self, delivery_id: int, newsletter_id: int, recipient: Recipient) -> None:
        """The fence held a message back: skip the reader, leave the row to the owner that
        took it over, or end the batch if the issue stopped sending."""
        context = self.context
        conn = context.conn
        why = deliveries.blocked_reason(
            conn, delivery_id, context.owner, newsletter_id, recipient.email_hash
        )
        if why == Blocked.ISSUE_STOPPED:
            conn.commit()
            self._stop()
        elif why == Blocked.LEASE_LOST:
            conn.commit()
        else:
            self._skip(delivery_id, why)

    def _send(self, message: Outgoing, before_end: Callable[[], bool]) -> SendResult | SendError:
        """Hand the message to the SMTP server; return its reply, a refusal included."""
        mailer = self.context.mailer
        try:
            return mailer.send_signed(message.envelope_from, message.recipient, message.data, before_end)
        except (RecipientRejected, TemporaryFailure, SenderProblem, UnclearOutcome, Withdrawn) as exc:
            return exc

    def _record(
        self,
        delivery_id: int,
        attempt: int,
        source: DeliveryState,
        recipient: Recipient,
        reply: SendResult | SendError,
    ) -> None:
        """Record the server's reply as the delivery's outcome: the one place where each
        kind of reply becomes its ledger state (see the module docstring). source says
        whether the message reached its end (`sending`) or was refused before (`claimed`)."""
        context, outcome = self.context, self.outcome
        config, settle, owner = context.app.config, context.settle, context.owner
        match reply:
            case SendResult():
                self.accepted = deliveries.Accepted(
                    delivery_id, reply.code, reply.response, reply.queue_id, utcnow()
                )
                outcome.sent += 1
            case RecipientRejected():
                # Suppression first: should the process die in between, the address is never
                # mailed again and the delivery ends up unknown, not the other way round.
                if reply.suppress:
                    with context.database.session() as session:
                        email = recipient.reader.email
                        suppress(session, config, email, SuppressionReason.HARD_BOUNCE, str(reply))
                deliveries.mark_failed_perm(settle, delivery_id, owner, reply.code, str(reply), source)
                settle.commit()
                outcome.failed_perm += 1
            case ServerTimeout():
                # The server hangs: not this reader's fault, and the next message would
                # wait as long. The row goes back untouched; the sender backs off.
                if source == DeliveryState.SENDING:
                    deliveries.unsend(context.conn, delivery_id, owner)
                    context.conn.commit()
                self.outcome.smtp_unavailable = str(reply)
                raise _BatchEnds
            case TemporaryFailure():
                self._retry_later(delivery_id, attempt, reply.code, str(reply), source)
                if reply.code in THROTTLE_CODES:
                    self._slow_down()
            case SenderProblem():
                if source == DeliveryState.SENDING:
                    deliveries.unsend(context.conn, delivery_id, owner)
                    context.conn.commit()
                self._pause(f"Sending stopped: {reply}")
            case UnclearOutcome() if config["AMBIGUOUS"] == "resend":
                self._retry_later(delivery_id, attempt, None, str(reply), source)
            case UnclearOutcome():
                deliveries.mark_unknown(settle, delivery_id, owner, str(reply))
                settle.commit()
                outcome.unknown += 1
                if reply.timed_out:
                    outcome.smtp_unavailable = str(reply)
                    raise _BatchEnds

    def _slow_down(self) -> None:
        """The server asks us to slow down: lower the shared rate, or wait a moment without one."""
        self.outcome.throttled = True
        if self.context.rate is not None:
            self.context.rate.slow_down()
        else:
            _sleep(self.context.stop, THROTTLE_PAUSE_SECONDS)

    def _settle(self) -> None:
        """Commit the accepted delivery's `sent` on its own (no next `sending` to ride with)."""
        if self.accepted is not None:
            deliveries.mark_accepted_sent(self.context.settle, self.context.owner, self.accepted)
            self.context.settle.commit()
            self.accepted = None

    def _retry_later(
        self, delivery_id: int, attempt: int, code: int | None, text: str, source: DeliveryState
    ) -> None:
        context = self.context
        config = context.app.config
        retry_at = None
        if attempt < config["MAX_ATTEMPTS"]:
            delay = retry_delay(attempt, config["RETRY_SECONDS"])
            retry_at = utcnow() + dt.timedelta(seconds=delay)
        deliveries.mark_failed_temp(
            context.settle, delivery_id, context.owner, code, text, retry_at, source
        )
        context.settle.commit()
        self.outcome.failed_temp += 1

    def _skip(self, delivery_id: int, why: str) -> None:
        if deliveries.skip(self.context.conn, delivery_id, self.context.owner, why):
            self.outcome.skipped += 1
        self.context.conn.commit()

    def _pause(self, reason: str) -> NoReturn:
        """Pause the issue with a reason for the editor, and end the batch."""
        self.outcome.paused = reason
        with self.context.database.session() as session:
            try:
                issues.pause_issue(session, self.context.issue_id, reason)
            except issues.IssueError:
                pass  # already paused or cancelled by someone else: their word stands
        raise _BatchEnds

    def _stop(self) -> NoReturn:
        """End the batch: a stop was asked for, or the issue stopped sending."""
        self.outcome.stopped = True
        raise _BatchEnds


def _gets_mail(prepared: PreparedIssue, reader: Reader) -> bool:
    """Return whether a reader gets a message: a post in their sections, or the newsletter's
    note that nothing is new in them."""
    return prepared.newsletter.note_when_no_post or bool(prepared.sections_for(reader))


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
    sending issue (or only issue_ids), plus MAIL_THREADS threads running the mail jobs.

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
        self.liveness = liveness_for(app)
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._mail_due = threading.Event()
        self._threads: list[threading.Thread] = []

    def start(self) -> SenderPool:
        """Start the heartbeat (once per process) and the threads; return self."""
        self.liveness.start()
        targets: list[tuple[str, Callable[[], None]]] = [
            (f"digest-sender-{i}", self._sender) for i in range(self.threads)
        ]
        if self.mail_jobs:
            targets.extend(
                (f"digest-mail-jobs-{i}", self._run_mail_jobs) for i in range(MAIL_THREADS)
            )
            # A signup answered by this process wakes the mail thread (digest.web.signup).
            self.app.extensions[WAKE] = self._mail_due
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
        self._mail_due.set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self.liveness.stop()

    @property
    def stopping(self) -> bool:
        """Return whether stop() was called."""
        return self._stop.is_set()

    def _sending_ids(self) -> list[int]:
        if self.issue_ids is not None:
            return self.issue_ids
        database: Database = self.app.extensions["digest.db"]
        with database.reader() as session:
            ids = issues.sending_issue_ids(session)
        prepared_issues(self.app).forget(ids)
        return ids

    def _sender(self) -> None:
        mailer = self.mailer_factory(self.app.config)
        owner = new_owner(threading.current_thread().name.rsplit("-", 1)[-1])
        failures = 0
        had_work = False
        try:
            while not self._stop.is_set():
                worked, trouble = False, None
                try:
                    # Before the sending issues are read: one may be sent but for what this owner knows.
                    settle_unsettled(self.app.extensions["digest.db"], owner, self.app.config["AMBIGUOUS"])
                    for issue_id in self._sending_ids():
                        outcome = send_batch(
                            self.app, mailer, issue_id, owner=owner, rate=self.rate, stop=self._stop
                        )
                        worked = worked or outcome.claimed > 0
                        if outcome.smtp_unavailable:
                            trouble = outcome.smtp_unavailable
                            break
                except DBAPIError as exc:
                    log.exception("sender %s: database error", owner)
                    why = (str(exc.orig).strip().splitlines() or [type(exc.orig).__name__])[0]
                    trouble = f"{DATABASE_TROUBLE} ({why})"
                except Exception as exc:  # noqa: BLE001  (no fault may kill the sender)
                    log.exception("sender %s: unexpected error", owner)
                    trouble = f"unexpected error: {exc}"
                if trouble:
                    failures += 1
                    delay = min(self.BACKOFF_MAX, 2.0 ** (failures - 1)) * random.uniform(0.5, 1.0)
                    log.warning("sender %s: %s; next try in %.0f s", owner, trouble, delay)
                    self.liveness.report(owner, trouble, delay)
                    self._stop.wait(delay)
                    continue
                failures = 0
                self.liveness.clear(owner)
                if not worked:
                    clock = self.app.extensions.get("digest.wake")
                    if had_work and clock is not None:
                        # The sending issues ran dry: the clock in this process marks them sent
                        # now, not at its next tick (a small issue would read "sending" for 30 s).
                        clock()
                    self._wake.wait(self.idle_seconds)
                    self._wake.clear()
                had_work = worked
        finally:
            mailer.close()

    def _run_mail_jobs(self) -> None:
        mailer = self.mailer_factory(self.app.config)
        try:
            while not self._stop.is_set():
                self._mail_due.clear()
                run_mail_jobs(self.app, mailer, self.mail_jobs)
                if self._mail_due.wait(MAIL_JOB_SECONDS):
                    self._stop.wait(GATHER_SECONDS)
        finally:
            mailer.close()
