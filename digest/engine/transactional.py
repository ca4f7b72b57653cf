"""The transactional-mail runner: sends the confirmation, welcome and "already subscribed"
emails that digest.domain.transactional recorded.

Contract:
- `send_pending_transactional(database, mailer, config)` sends what is due: it claims a
  few rows at a time under a lease (two senders never take the same row; what it does
  not get to is released at once), renders each (`digest.domain.transactional.render`),
  sends it, and marks it sent right after the server accepts it
  (on PostgreSQL without waiting for the WAL flush: a database crash may resend the last
  few, never lose one). A temporary failure leaves it due with backoff; a permanent refusal
  marks it failed (and suppresses a nonexistent address). A mail older than its
  confirmation link is given up; one that must no longer go out
  (`digest.domain.transactional.skip_reason`) is skipped. A crash between acceptance and
  marking may send one duplicate, never lose one.
- Claiming, preparing and recording are each one short transaction; none is open while
  talking to the SMTP server.
- LOCK ORDER, the same in every transaction that writes them, so two never wait on each
  other (a deadlock PostgreSQL would break by failing one): a suppression entry, then a
  subscription, then its transactional mails. An unsubscribe or suppress (API, editor,
  link) locks the subscription and then skips its pending mails; recording a sent
  confirmation touches the subscription before the mail's row.
- `deliver_transactional` is the fast path a signup burst takes: it alternates between
  acting on waiting signups (digest.engine.signups) and sending their due mail until
  neither is left, so a confirmation leaves within seconds of its signup however many
  came before it. The mail thread of `digest run` / `digest worker` runs it whenever a
  signup in this process wakes it (`wake`), and every MAIL_JOB_SECONDS otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from flask import Flask
from sqlalchemy import bindparam, func, or_, select, update
from sqlalchemy.orm import Session, joinedload

from digest.core.db import Database, utcnow
from digest.core.models import (
    Subscription,
    SuppressionReason,
    TransactionalKind,
    TransactionalMail,
    TransactionalState,
)
from digest.core.tokens import CONFIRM_MAX_AGE
from digest.domain.suppression import email_hash, suppress, suppressed_hashes
from digest.domain.transactional import Rendered, render, skip_reason
from digest.engine.signups import take_signups, waiting_signups
from digest.mail.mailer import Mailer
from digest.mail.transport import (
    RecipientRejected,
    SenderProblem,
    SendError,
    SendResult,
    TemporaryFailure,
)

log = logging.getLogger(__name__)

# Past this age a mail is pointless (its confirmation link would have expired).
GIVE_UP_AFTER = dt.timedelta(seconds=CONFIRM_MAX_AGE)
FIRST_RETRY = dt.timedelta(seconds=30)
MAX_RETRY = dt.timedelta(hours=1)
# Signups taken and mails sent between two looks at the other queue: one engine chunk of
# signups (digest.engine.signups.CHUNK), whose confirmations go out next.
ROUND = 50
# Mails claimed in one transaction, then read and rendered together.
CLAIM = 25
WAKE = "digest.transactional.wake"


def wake(app: Flask) -> None:
    """Tell this process's mail thread, if it runs one, that a signup or a mail is waiting."""
    event = app.extensions.get(WAKE)
    if event is not None:
        event.set()


def deliver_transactional(
    database: Database, mailer: Mailer, config: Mapping[str, Any], *, now: dt.datetime | None = None
) -> int:
    """Act on waiting signups and send due mail until neither is left; return how many were sent."""
    sent = 0
    while True:
        taken = take_signups(database, config, limit=ROUND, now=now)
        went = send_pending_transactional(database, mailer, config, limit=ROUND, now=now)
        sent += went
        if taken < ROUND and went < ROUND:
            return sent


def still_waiting(database: Database) -> tuple[int, int]:
    """Return (signups waiting for the engine, mails not sent yet: due now or retrying later)."""
    with database.session() as session:
        mails = session.scalar(
            select(func.count())
            .select_from(TransactionalMail)
            .where(TransactionalMail.state == TransactionalState.PENDING)
        ) or 0
    return waiting_signups(database), mails


def send_pending_transactional(
    database: Database,
    mailer: Mailer,
    config: Mapping[str, Any],
    *,
    limit: int = 100,
    now: dt.datetime | None = None,
) -> int:
    """Send up to limit due transactional emails; return how many the server accepted."""
    lease = dt.timedelta(seconds=3 * int(config["SMTP_TIMEOUT"]) + 60)
    sent = claimed = 0
    while claimed < limit:
        moment = now or utcnow()
        size = min(CLAIM, limit - claimed)
        mail_ids = _claim(database, moment, lease, size)
        if not mail_ids:
            break
        claimed += len(mail_ids)
        went, stopped = _send_claimed(database, mailer, config, mail_ids, moment, now)
        sent += went
        if stopped or len(mail_ids) < size:
            # A short claim took all that was due: another would be an empty transaction.
            break
    return sent


def _send_claimed(
    database: Database,
    mailer: Mailer,
    config: Mapping[str, Any],
    mail_ids: list[int],
    moment: dt.datetime,
    now: dt.datetime | None,
) -> tuple[int, bool]:
    """Send claimed mails; return how many went out and whether the SMTP side stopped us."""
    sent = 0
    untried = list(mail_ids)
    try:
        for mail_id, rendered in _prepare(database, config, mail_ids, moment):
            untried.remove(mail_id)
            try:
                result = mailer.send(rendered.envelope_from, rendered.recipient, rendered.data)
            except SendError as exc:
                log.warning("transactional mail %s not sent: %s", mail_id, exc)
                _record_failure(database, config, mail_id, moment, exc)
                if _stops_batch(exc):
                    return sent, True
                continue
            _record_sent(database, mail_id, now or utcnow(), result)
            sent += 1
        return sent, False
    finally:
        # What this run claimed but did not try is due again at once, not at lease expiry.
        _release(database, untried)


def _claim(database: Database, now: dt.datetime, lease: dt.timedelta, size: int) -> list[int]:
    with database.session() as session:
        mail_ids = list(session.scalars(
            select(TransactionalMail.id)
            .where(
                TransactionalMail.state == TransactionalState.PENDING,
                TransactionalMail.due_at <= now,
                or_(TransactionalMail.lease_until.is_(None), TransactionalMail.lease_until < now),
            )
            .order_by(TransactionalMail.due_at, TransactionalMail.id)
            .limit(size)
            .with_for_update(skip_locked=True)
        ))
        if mail_ids:
            session.execute(
                update(TransactionalMail)
                .where(TransactionalMail.id.in_(mail_ids))
                .values(lease_until=now + lease)
            )
        return mail_ids


def _release(database: Database, mail_ids: list[int]) -> None:
    if not mail_ids:
        return
    with database.session() as session:
        session.execute(
            update(TransactionalMail)
            .where(
                TransactionalMail.id.in_(mail_ids),
                TransactionalMail.state == TransactionalState.PENDING,
            )
            .values(lease_until=None)
        )


def _load(session: Session, mail_id: int) -> TransactionalMail | None:
    return session.scalar(
        select(TransactionalMail)
        .where(TransactionalMail.id == mail_id)
        .options(
            joinedload(TransactionalMail.subscription).joinedload(Subscription.subscriber),
            joinedload(TransactionalMail.subscription).joinedload(Subscription.newsletter),
        )
    )


def _load_claimed(session: Session, mail_ids: list[int]) -> list[TransactionalMail]:
    """Return the claimed mails still waiting, in claim order, with what rendering reads."""
    subscription = joinedload(TransactionalMail.subscription)
    mails = session.scalars(
        select(TransactionalMail)
        .where(
            TransactionalMail.id.in_(mail_ids),
            TransactionalMail.state == TransactionalState.PENDING,
        )
        .options(
            subscription.joinedload(Subscription.subscriber),
            subscription.joinedload(Subscription.newsletter),
            subscription.selectinload(Subscription.consents),
        )
    ).unique().all()
    order = {mail_id: n for n, mail_id in enumerate(mail_ids)}
    return sorted(mails, key=lambda mail: order[mail.id])


# A claimed mail that is not sent: (id, failed or skipped, why), or (id, None, why) to retry later.
Settled = tuple[int, TransactionalState | None, str]


def _prepare(
    database: Database, config: Mapping[str, Any], mail_ids: list[int], now: dt.datetime
) -> list[tuple[int, Rendered]]:
    """Render each claimed mail that must still go out; settle the others.

    Read and rendered in one read-only transaction (on SQLite it neither waits for the
    writer nor blocks the signups being answered); what is settled is written after, in
    one short transaction.
    """
    ready: list[tuple[int, Rendered]] = []
    settled: list[Settled] = []
    with database.reader() as session:
        mails = _load_claimed(session, mail_ids)
        listed = suppressed_hashes(session, [
            email_hash(config, mail.subscription.subscriber.email, canonical=True) for mail in mails
        ])
        for mail in mails:
            rendered = _prepare_one(session, config, mail, listed, now, settled)
            if rendered is not None:
                ready.append((mail.id, rendered))
    if settled:
        _settle(database, settled, now)
    return ready


def _prepare_one(
    session: Session,
    config: Mapping[str, Any],
    mail: TransactionalMail,
    listed: Mapping[str, SuppressionReason],
    now: dt.datetime,
    settled: list[Settled],
) -> Rendered | None:
    if mail.created_at < now - GIVE_UP_AFTER:
        settled.append((mail.id, TransactionalState.FAILED,
                        f"gave up after {mail.attempts} attempts: {mail.last_error or ''}"))
        return None
    # Stored addresses are canonical.
    hashed = email_hash(config, mail.subscription.subscriber.email, canonical=True)
    reason = skip_reason(mail, listed.get(hashed))
    if reason is not None:
        settled.append((mail.id, TransactionalState.SKIPPED, reason))
        return None
    try:
        return render(session, config, mail)
    except Exception as exc:  # noqa: BLE001  (a broken template must not lose the mail)
        log.exception("cannot render transactional mail %s", mail.id)
        settled.append((mail.id, None, f"cannot render: {exc}"))
        return None


def _settle(database: Database, settled: list[Settled], now: dt.datetime) -> None:
    with database.session() as session:
        for mail_id, state, error in settled:
            mail = session.get(TransactionalMail, mail_id)
            if mail is None or mail.state is not TransactionalState.PENDING:
                continue
            if state is None:
                _retry_later(mail, error, now)
                continue
            mail.state = state
            mail.last_error = error
            mail.lease_until = None


def _backoff(attempts: int) -> dt.timedelta:
    doublings: int = 2 ** max(attempts - 1, 0)
    return min(FIRST_RETRY * doublings, MAX_RETRY)


def _retry_later(mail: TransactionalMail, error: str, now: dt.datetime) -> None:
    mail.attempts += 1
    mail.last_error = error
    mail.due_at = now + _backoff(mail.attempts)
    mail.lease_until = None


# Built once: this runs once per message of a burst. The subscription first: an
# unsubscribe locks it before its mails (LOCK ORDER above).
_NOTE_CONFIRMATION_SENT = (
    update(Subscription)
    .where(Subscription.id == select(TransactionalMail.subscription_id).where(
        TransactionalMail.id == bindparam("mail_id"),
        TransactionalMail.kind == TransactionalKind.CONFIRM,
    ).scalar_subquery())
    .values(confirmation_sent_at=bindparam("now"))
)
_MARK_SENT = (
    update(TransactionalMail)
    .where(TransactionalMail.id == bindparam("mail_id"))
    .values(
        state=TransactionalState.SENT, sent_at=bindparam("now"),
        attempts=TransactionalMail.attempts + 1, smtp_code=bindparam("code"),
        queue_id=bindparam("queue_id"), last_error=None, lease_until=None,
    )
)


def _record_sent(database: Database, mail_id: int, now: dt.datetime, result: SendResult) -> None:
    # Two guarded statements on a plain connection, no session and no load.
    with database.engine.begin() as connection:
        if database.dialect == "postgresql":
            # No wait for the WAL flush: a database crash that loses this record can only
            # send this one confirmation again (its lease runs out), never lose it.
            connection.exec_driver_sql("SET LOCAL synchronous_commit TO off")
        connection.execute(_NOTE_CONFIRMATION_SENT, {"mail_id": mail_id, "now": now})
        connection.execute(_MARK_SENT, {"mail_id": mail_id, "now": now, "code": result.code,
                                        "queue_id": result.queue_id})


def _record_failure(
    database: Database,
    config: Mapping[str, Any],
    mail_id: int,
    now: dt.datetime,
    error: SendError,
) -> None:
    with database.session() as session:
        mail = _load(session, mail_id)
        if mail is None:  # the reader erased themselves meanwhile
            return
        if isinstance(error, RecipientRejected) and error.suppress:
            # The list entry before the mail's row, as an admin's suppress (LOCK ORDER above).
            suppress(
                session,
                config,
                mail.subscription.subscriber.email,
                SuppressionReason.HARD_BOUNCE,
                detail=str(error),
            )
        mail.smtp_code = error.code
        if not isinstance(error, RecipientRejected):
            _retry_later(mail, str(error), now)
            return
        mail.attempts += 1
        mail.state = TransactionalState.FAILED
        mail.last_error = str(error)
        mail.lease_until = None


def _stops_batch(error: SendError) -> bool:
    # Our side is broken, or the server is unreachable: every next mail would fail too.
    if isinstance(error, SenderProblem):
        return True
    return isinstance(error, TemporaryFailure) and error.code in (None, 421)
