"""The transactional-mail runner: sends the confirmation, welcome and "already subscribed"
emails that digest.domain.transactional recorded.

Contract:
- `send_pending_transactional(database, mailer, config)` sends what is due: it claims
  one row at a time under a lease (two senders never take the same row), renders it
  (`digest.domain.transactional.render`), sends it, and marks it sent right after the
  server accepts it. A temporary failure leaves it due with backoff; a permanent refusal
  marks it failed (and suppresses a nonexistent address). A mail older than its
  confirmation link is given up; one that must no longer go out
  (`digest.domain.transactional.skip_reason`) is skipped. A crash between acceptance and
  marking may send one duplicate, never lose one.
- Claiming, preparing and recording are each one short transaction; none is open while
  talking to the SMTP server.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping
from typing import Any

from sqlalchemy import or_, select, update
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
from digest.domain.suppression import suppress
from digest.domain.transactional import Rendered, render, skip_reason
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
    sent = 0
    for _ in range(limit):
        moment = now or utcnow()
        mail_id = _claim(database, moment, lease)
        if mail_id is None:
            break
        rendered = _prepare(database, config, mail_id, moment)
        if rendered is None:
            continue
        try:
            result = mailer.send(rendered.envelope_from, rendered.recipient, rendered.data)
        except SendError as exc:
            log.warning("transactional mail %s not sent: %s", mail_id, exc)
            _record_failure(database, config, mail_id, moment, exc)
            if _stops_batch(exc):
                break
            continue
        _record_sent(database, mail_id, now or utcnow(), result)
        sent += 1
    return sent


def _claim(database: Database, now: dt.datetime, lease: dt.timedelta) -> int | None:
    with database.session() as session:
        mail_id = session.scalar(
            select(TransactionalMail.id)
            .where(
                TransactionalMail.state == TransactionalState.PENDING,
                TransactionalMail.due_at <= now,
                or_(TransactionalMail.lease_until.is_(None), TransactionalMail.lease_until < now),
            )
            .order_by(TransactionalMail.due_at, TransactionalMail.id)
            .limit(1)
            .with_for_update(skip_locked=True)
        )
        if mail_id is not None:
            session.execute(
                update(TransactionalMail)
                .where(TransactionalMail.id == mail_id)
                .values(lease_until=now + lease)
            )
        return mail_id


def _load(session: Session, mail_id: int) -> TransactionalMail | None:
    return session.scalar(
        select(TransactionalMail)
        .where(TransactionalMail.id == mail_id)
        .options(
            joinedload(TransactionalMail.subscription).joinedload(Subscription.subscriber),
            joinedload(TransactionalMail.subscription).joinedload(Subscription.newsletter),
        )
    )


def _prepare(
    database: Database, config: Mapping[str, Any], mail_id: int, now: dt.datetime
) -> Rendered | None:
    with database.session() as session:
        mail = _load(session, mail_id)
        if mail is None or mail.state is not TransactionalState.PENDING:
            return None
        if mail.created_at < now - GIVE_UP_AFTER:
            mail.state = TransactionalState.FAILED
            mail.last_error = f"gave up after {mail.attempts} attempts: {mail.last_error or ''}"
            mail.lease_until = None
            return None
        reason = skip_reason(session, config, mail)
        if reason is not None:
            mail.state = TransactionalState.SKIPPED
            mail.last_error = reason
            mail.lease_until = None
            return None
        try:
            return render(session, config, mail)
        except Exception as exc:  # noqa: BLE001  (a broken template must not lose the mail)
            log.exception("cannot render transactional mail %s", mail_id)
            _retry_later(mail, f"cannot render: {exc}", now)
            return None


def _backoff(attempts: int) -> dt.timedelta:
    doublings: int = 2 ** max(attempts - 1, 0)
    return min(FIRST_RETRY * doublings, MAX_RETRY)


def _retry_later(mail: TransactionalMail, error: str, now: dt.datetime) -> None:
    mail.attempts += 1
    mail.last_error = error
    mail.due_at = now + _backoff(mail.attempts)
    mail.lease_until = None


def _record_sent(database: Database, mail_id: int, now: dt.datetime, result: SendResult) -> None:
    with database.session() as session:
        mail = _load(session, mail_id)
        if mail is None:  # the reader erased themselves meanwhile
            return
        mail.state = TransactionalState.SENT
        mail.sent_at = now
        mail.attempts += 1
        mail.smtp_code = result.code
        mail.queue_id = result.queue_id
        mail.last_error = None
        mail.lease_until = None
        if mail.kind is TransactionalKind.CONFIRM:
            mail.subscription.confirmation_sent_at = now


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
        mail.smtp_code = error.code
        if not isinstance(error, RecipientRejected):
            _retry_later(mail, str(error), now)
            return
        mail.attempts += 1
        mail.state = TransactionalState.FAILED
        mail.last_error = str(error)
        mail.lease_until = None
        if error.suppress:
            suppress(
                session,
                config,
                mail.subscription.subscriber.email,
                SuppressionReason.HARD_BOUNCE,
                detail=str(error),
            )


def _stops_batch(error: SendError) -> bool:
    # Our side is broken, or the server is unreachable: every next mail would fail too.
    if isinstance(error, SenderProblem):
        return True
    return isinstance(error, TemporaryFailure) and error.code in (None, 421)
