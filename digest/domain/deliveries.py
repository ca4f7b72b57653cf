"""The delivery ledger: one row per (issue, subscriber), the truth about who got what.

Contract:

- Fan-out is set-based and idempotent: `INSERT … SELECT … ON CONFLICT DO NOTHING` per
  chunk of subscriber ids, on UNIQUE(issue_id, subscriber_id). Running it twice, or in
  two processes at once, leaves the same rows. It takes the issue newsletter's confirmed
  subscriptions minus suppressed addresses.
- States: pending → claimed → sending → sent | failed_temp | failed_perm | unknown |
  skipped. failed_temp rows carry next_attempt_at while a retry is due and go back to
  pending then; with next_attempt_at NULL they have used up their attempts.
- Every transition is one conditional UPDATE fenced on the current state (and on
  lease_owner for a sender's rows) and says whether it took effect, so a sender whose
  lease was reaped can never overwrite what another did.
- Claiming is one statement: a CTE picking ids (`FOR UPDATE SKIP LOCKED` on PostgreSQL;
  on SQLite the BEGIN IMMEDIATE of every transaction makes one writer claim at a time)
  and an `UPDATE … RETURNING`.
- A sender commits `sending` just before the message's final dot (after MAIL FROM, RCPT TO and
  the body; see digest.engine.sender); the `sent` after a 250 commits in the same
  transaction as its next `sending` (`mark_sending(..., accepted=)`), or alone when no
  message follows, so a crash leaves at most one row per open SMTP connection in
  `sending`; the reaper turns expired
  `claimed` rows back into `pending` (they provably never reached SMTP) and expired
  `sending` rows into `unknown` (held, never sent twice unless DIGEST_AMBIGUOUS=resend),
  keeping their lease_owner so a sender that outlived a database outage can still record
  what it knows (`recover_sent`, `withdraw`).
- The hot-path functions take a Session or a Connection (senders use a bare connection
  and commit after each step); none of them commits.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Alias,
    Connection,
    Integer,
    Table,
    and_,
    bindparam,
    exists,
    func,
    literal,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from digest.core.db import rowcount, utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    Issue,
    IssueStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
)
from digest.core.tokens import keyed_hasher
from digest.domain.suppression import HASH_PURPOSE

Executor = Session | Connection

DELIVERY = Delivery.__table__
ISSUE = Issue.__table__
SUBSCRIPTION = Subscription.__table__
SUPPRESSION = Suppression.__table__
FAN_OUT_CHUNK = 50_000
# Rows that still need a sender (failed_temp only while a retry is due).
OPEN_STATES = (DeliveryState.PENDING, DeliveryState.CLAIMED, DeliveryState.SENDING)
# The predicates of the partial indexes ix_delivery_lease and ix_delivery_retry, spelled
# as they are there: SQLite uses a partial index only for a literal match.
IN_FLIGHT = text("delivery.state IN ('claimed', 'sending')")
WAITING = text("delivery.state = 'failed_temp'")


def _dialect(executor: Executor) -> str:
    if isinstance(executor, Session):
        return executor.get_bind().dialect.name
    return executor.dialect.name


UpsertInsert = postgresql.Insert | sqlite.Insert


def upsert_insert(executor: Executor) -> Callable[[Table], UpsertInsert]:
    """Return the dialect's insert(), the one that knows ON CONFLICT."""
    return postgresql.insert if _dialect(executor) == "postgresql" else sqlite.insert


# --- fan-out -------------------------------------------------------------------------


@dataclass(frozen=True)
class FanOutStep:
    """Progress of a fan-out after one chunk: subscriber ids covered so far, rows added."""

    covered: int
    span: int
    inserted: int


def _eligible(newsletter_id: int, low: int, high: int) -> Any:
    return and_(
        SUBSCRIPTION.c.newsletter_id == newsletter_id,
        SUBSCRIPTION.c.status == SubscriptionStatus.CONFIRMED,
        SUBSCRIPTION.c.subscriber_id >= low,
        SUBSCRIPTION.c.subscriber_id < high,
    )


def _suppressed_in_range(
    session: Session,
    hash_of: Callable[[str], str],
    hashes: frozenset[str],
    newsletter_id: int,
    low: int,
    high: int,
) -> list[int]:
    subscriber = Subscriber.__table__
    rows = session.connection().execute(
        select(subscriber.c.id, subscriber.c.email)
        .join(SUBSCRIPTION, SUBSCRIPTION.c.subscriber_id == subscriber.c.id)
        .where(_eligible(newsletter_id, low, high))
    )
    return [sid for sid, email in rows if hash_of(email) in hashes]


def fan_out_chunks(
    session: Session, issue_id: int, config: Mapping[str, Any], chunk: int = FAN_OUT_CHUNK
) -> Iterator[FanOutStep]:
    """Create the issue's pending rows chunk by chunk, yielding after each (caller commits).

    Suppressed addresses are left out. The suppression list holds keyed hashes only, so
    when it is not empty each chunk's addresses are hashed here; readers suppressed
    later are still caught at send time.
    """
    newsletter_id = session.scalar(select(Issue.newsletter_id).where(Issue.id == issue_id))
    if newsletter_id is None:
        raise LookupError(f"no issue {issue_id}")
    low, high = session.execute(
        select(func.min(Subscription.subscriber_id), func.max(Subscription.subscriber_id)).where(
            Subscription.newsletter_id == newsletter_id,
            Subscription.status == SubscriptionStatus.CONFIRMED,
        )
    ).one()
    if low is None:
        return
    hashes = frozenset(session.scalars(select(Suppression.email_hash)))
    # Stored addresses are canonical, so this is suppression.email_hash(config, address).
    hash_of = keyed_hasher(config["SECRET_KEY"], HASH_PURPOSE)
    insert = upsert_insert(session)
    now = utcnow()
    span = high - low + 1
    for start in range(low, high + 1, chunk):
        stop = start + chunk
        condition = _eligible(newsletter_id, start, stop)
        if hashes:
            excluded = _suppressed_in_range(session, hash_of, hashes, newsletter_id, start, stop)
            if excluded:
                condition = and_(condition, SUBSCRIPTION.c.subscriber_id.not_in(excluded))
        # SQLite parses INSERT … SELECT … ON CONFLICT only when the SELECT has a WHERE.
        rows = select(
            literal(issue_id),
            SUBSCRIPTION.c.subscriber_id,
            literal(DeliveryState.PENDING.value),
            literal(0),
            literal(now, Delivery.created_at.type),
            literal(now, Delivery.updated_at.type),
        ).where(condition)
        statement = insert(DELIVERY).from_select(
            ["issue_id", "subscriber_id", "state", "attempts", "created_at", "updated_at"], rows
        ).on_conflict_do_nothing(index_elements=["issue_id", "subscriber_id"])
        statement = statement.execution_options(preserve_rowcount=True)
        inserted = rowcount(session.execute(statement))
        yield FanOutStep(covered=min(stop, high + 1) - low, span=span, inserted=max(inserted, 0))


def fan_out(session: Session, issue_id: int, config: Mapping[str, Any]) -> int:
    """Create every pending row of an issue in one transaction; return how many were added."""
    return sum(step.inserted for step in fan_out_chunks(session, issue_id, config))


# --- claiming and the sender's transitions -------------------------------------------


@dataclass(frozen=True)
class Claimed:
    """A delivery a sender holds the lease on."""

    id: int
    subscriber_id: int | None
    attempts: int = 0  # attempts made before this claim


# The per-message statements are built once, with bound parameters, so the hot path
# pays neither expression building nor cache-key computation for every message.
_CLAIMED, _SENDING = DeliveryState.CLAIMED.value, DeliveryState.SENDING.value


@functools.cache
def _claim_statement(dialect: str) -> Any:
    pick = (
        select(DELIVERY.c.id)
        .where(
            DELIVERY.c.issue_id == bindparam("claim_issue"),
            DELIVERY.c.state == DeliveryState.PENDING.value,
            exists().where(ISSUE.c.id == bindparam("claim_issue"), ISSUE.c.status == IssueStatus.SENDING),
        )
        .order_by(DELIVERY.c.id)
        .limit(bindparam("claim_limit", type_=Integer))
    )
    if dialect == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    picked = pick.cte("claim")
    return (
        update(DELIVERY)
        .where(DELIVERY.c.id.in_(select(picked.c.id)))
        .values(
            state=_CLAIMED,
            lease_owner=bindparam("claim_owner"),
            lease_until=bindparam("new_lease"),
            sender_id=bindparam("claim_sender", type_=Integer),
        )
        .returning(DELIVERY.c.id, DELIVERY.c.subscriber_id, DELIVERY.c.attempts)
    )


def claim(
    executor: Executor,
    issue_id: int,
    owner: str,
    limit: int,
    lease_seconds: float,
    now: dt.datetime | None = None,
    sender_id: int | None = None,
) -> list[Claimed]:
    """Claim up to limit pending rows of a sending issue for owner (a thread of the sender
    process sender_id, whose death hands them on), in id order."""
    lease_until = (now or utcnow()) + dt.timedelta(seconds=lease_seconds)
    rows = executor.execute(
        _claim_statement(_dialect(executor)),
        {
            "claim_issue": issue_id, "claim_limit": limit, "claim_owner": owner,
            "new_lease": lease_until, "claim_sender": sender_id,
        },
    ).all()
    return sorted(
        (Claimed(row.id, row.subscriber_id, row.attempts) for row in rows), key=lambda c: c.id
    )


_MARK_SENDING = (
    update(DELIVERY)
    .where(
        DELIVERY.c.id == bindparam("delivery_id"),
        DELIVERY.c.state == _CLAIMED,
        DELIVERY.c.lease_owner == bindparam("owner"),
        exists().where(ISSUE.c.id == DELIVERY.c.issue_id, ISSUE.c.status == IssueStatus.SENDING),
        exists().where(
            SUBSCRIPTION.c.subscriber_id == DELIVERY.c.subscriber_id,
            SUBSCRIPTION.c.newsletter_id == bindparam("newsletter_id"),
            SUBSCRIPTION.c.status == SubscriptionStatus.CONFIRMED,
        ),
        ~exists().where(SUPPRESSION.c.email_hash == bindparam("email_hash")),
    )
    .values(state=_SENDING, attempts=DELIVERY.c.attempts + 1, lease_until=bindparam("new_lease"))
    .returning(DELIVERY.c.attempts)
)


@dataclass(frozen=True)
class Accepted:
    """A delivery the server answered 250 for, whose `sent` is not committed yet."""

    delivery_id: int
    code: int
    response: str
    queue_id: str | None
    at: dt.datetime


def _sent_values(accepted: Accepted) -> dict[str, Any]:
    return {
        "smtp_code": accepted.code,
        "smtp_response": accepted.response[:2000],
        "queue_id": accepted.queue_id,
        "sent_at": accepted.at,
    }


@functools.cache
def _mark_sending_after_sent() -> Any:
    # PostgreSQL runs a data-modifying CTE whether or not the statement reads it.
    row = DELIVERY.alias("settled_delivery")
    assert isinstance(row, Alias)  # what Table.alias() makes; update() takes no wider type
    settled = (
        update(row)
        .where(
            row.c.id == bindparam("sent_id"),
            row.c.state == _SENDING,
            row.c.lease_owner == bindparam("owner"),
        )
        .values(
            state=DeliveryState.SENT.value,
            lease_owner=None,
            lease_until=None,
            updated_at=bindparam("sent_sent_at"),
            **{c: bindparam(f"sent_{c}") for c in ("smtp_code", "smtp_response", "queue_id", "sent_at")},
        )
        .cte("settled")
    )
    # Both updates name updated_at: each gets its own parameter, not the shared default.
    return _MARK_SENDING.values(updated_at=bindparam("sending_at")).add_cte(settled)


def mark_sending(
    executor: Executor,
    delivery_id: int,
    owner: str,
    newsletter_id: int,
    email_hash: str,
    lease_seconds: float,
    accepted: Accepted | None = None,
) -> int | None:
    """claimed → sending (one more attempt), only while the issue is sending and the reader
    is still confirmed and not suppressed; return the attempt number, None if refused.

    With accepted (the previous message of the same owner), its sending → sent goes in
    the same transaction, whatever this returns (one statement on PostgreSQL)."""
    params = {
        "delivery_id": delivery_id,
        "owner": owner,
        "newsletter_id": newsletter_id,
        "email_hash": email_hash,
        "new_lease": utcnow() + dt.timedelta(seconds=lease_seconds),
    }
    statement = _MARK_SENDING
    if accepted is not None:
        if _dialect(executor) == "postgresql":
            statement = _mark_sending_after_sent()
            params["sending_at"] = utcnow()
            params["sent_id"] = accepted.delivery_id
            params.update({f"sent_{k}": v for k, v in _sent_values(accepted).items()})
        else:
            mark_accepted_sent(executor, owner, accepted)
    return executor.execute(statement, params).scalar()


class Blocked:
    """Why mark_sending did not take effect."""

    LEASE_LOST = "lease lost"
    ISSUE_STOPPED = "issue no longer sending"
    UNSUBSCRIBED = "unsubscribed before their turn"
    SUPPRESSED = "address suppressed before their turn"
    ERASED = "reader erased before their turn"
    NO_POST = "no post for their sections"


def blocked_reason(
    executor: Executor, delivery_id: int, owner: str, newsletter_id: int, email_hash: str
) -> str:
    """Return which Blocked reason stopped a claimed row from becoming sending."""
    row = executor.execute(
        select(DELIVERY.c.state, DELIVERY.c.lease_owner, DELIVERY.c.subscriber_id, Issue.status)
        .join(Issue, Issue.id == DELIVERY.c.issue_id)
        .where(DELIVERY.c.id == delivery_id)
    ).first()
    if row is None or row.state != DeliveryState.CLAIMED.value or row.lease_owner != owner:
        return Blocked.LEASE_LOST
    if row.status != IssueStatus.SENDING:
        return Blocked.ISSUE_STOPPED
    if row.subscriber_id is None:
        return Blocked.ERASED
    if executor.scalar(select(Suppression.id).where(Suppression.email_hash == email_hash)):
        return Blocked.SUPPRESSED
    confirmed = executor.scalar(
        select(Subscription.id).where(
            Subscription.subscriber_id == row.subscriber_id,
            Subscription.newsletter_id == newsletter_id,
            Subscription.status == SubscriptionStatus.CONFIRMED,
        )
    )
    return Blocked.LEASE_LOST if confirmed else Blocked.UNSUBSCRIBED


@functools.cache
def _transition_statement(source: DeliveryState, target: DeliveryState, columns: tuple[str, ...]) -> Any:
    values: dict[str, Any] = {c: bindparam(f"new_{c}") for c in columns}
    if source == DeliveryState.SENDING and target == DeliveryState.PENDING:
        values["attempts"] = DELIVERY.c.attempts - 1  # give back the attempt `sending` took
    elif source == DeliveryState.CLAIMED and target != DeliveryState.PENDING:
        values["attempts"] = DELIVERY.c.attempts + 1  # refused before its end: still an attempt
    return (
        update(DELIVERY)
        .where(
            DELIVERY.c.id == bindparam("delivery_id"),
            DELIVERY.c.state == source.value,
            DELIVERY.c.lease_owner == bindparam("owner"),
        )
        .values(state=target.value, lease_owner=None, lease_until=None, **values)
    )


def _transition(
    executor: Executor,
    delivery_id: int,
    owner: str,
    source: DeliveryState,
    target: DeliveryState,
    **values: Any,
) -> bool:
    statement = _transition_statement(source, target, tuple(sorted(values)))
    params = {"delivery_id": delivery_id, "owner": owner}
    params.update({f"new_{k}": v for k, v in values.items()})
    return rowcount(executor.execute(statement, params)) == 1


def skip(executor: Executor, delivery_id: int, owner: str, reason: str) -> bool:
    """claimed → skipped, with the reason kept on the row."""
    return _transition(
        executor, delivery_id, owner, DeliveryState.CLAIMED, DeliveryState.SKIPPED,
        smtp_response=reason,
    )


def mark_accepted_sent(executor: Executor, owner: str, accepted: Accepted) -> bool:
    """sending → sent for a delivery the server accepted (its 250 kept in accepted)."""
    a = accepted
    return mark_sent(executor, a.delivery_id, owner, a.code, a.response, a.queue_id, a.at)


def mark_sent(
    executor: Executor,
    delivery_id: int,
    owner: str,
    code: int,
    response: str,
    queue_id: str | None,
    at: dt.datetime | None = None,
) -> bool:
    """sending → sent, keeping the server's final reply and queue id (received at `at`)."""
    return _transition(
        executor, delivery_id, owner, DeliveryState.SENDING, DeliveryState.SENT,
        **_sent_values(Accepted(delivery_id, code, response, queue_id, at or utcnow())),
    )


def mark_failed_temp(
    executor: Executor,
    delivery_id: int,
    owner: str,
    code: int | None,
    response: str,
    retry_at: dt.datetime | None,
    source: DeliveryState = DeliveryState.SENDING,
) -> bool:
    """sending (or claimed: refused before the end of DATA) → failed_temp, due again at
    retry_at (None: no attempts left)."""
    return _transition(
        executor, delivery_id, owner, source, DeliveryState.FAILED_TEMP,
        smtp_code=code, smtp_response=response[:2000], next_attempt_at=retry_at,
    )


def mark_failed_perm(
    executor: Executor,
    delivery_id: int,
    owner: str,
    code: int | None,
    response: str,
    source: DeliveryState = DeliveryState.SENDING,
) -> bool:
    """sending (or claimed: refused before the end of DATA) → failed_perm: the address is
    refused for good."""
    return _transition(
        executor, delivery_id, owner, source, DeliveryState.FAILED_PERM,
        smtp_code=code, smtp_response=response[:2000], next_attempt_at=None,
    )


def mark_unknown(executor: Executor, delivery_id: int, owner: str, response: str) -> bool:
    """sending → unknown: the server may have accepted the message."""
    return _transition(
        executor, delivery_id, owner, DeliveryState.SENDING, DeliveryState.UNKNOWN,
        smtp_response=response[:2000],
    )


def unsend(executor: Executor, delivery_id: int, owner: str) -> bool:
    """sending → pending without using an attempt: the server provably took nothing and
    the reader is not at fault (a sender-side problem paused the issue)."""
    return _transition(executor, delivery_id, owner, DeliveryState.SENDING, DeliveryState.PENDING)


def release(executor: Executor, owner: str, ids: Iterable[int] | None = None) -> int:
    """claimed → pending for owner's rows (all of them, or those in ids); return how many."""
    condition = and_(
        DELIVERY.c.state == DeliveryState.CLAIMED.value, DELIVERY.c.lease_owner == owner
    )
    if ids is not None:
        ids = list(ids)
        if not ids:
            return 0
        condition = and_(condition, DELIVERY.c.id.in_(ids))
    statement = (
        update(DELIVERY)
        .where(condition)
        .values(state=DeliveryState.PENDING.value, lease_owner=None, lease_until=None)
    )
    return rowcount(executor.execute(statement))


# Rows a living sender's word settles after a database outage: its own `sending`, or the
# unknown the reaper or a takeover made of it meanwhile (those keep the lease_owner).
_OWNED_UNSETTLED = (DeliveryState.SENDING.value, DeliveryState.UNKNOWN.value)


def recover_sent(executor: Executor, owner: str, accepted: Accepted) -> bool:
    """sending (or unknown since) → sent for a 250 whose `sent` a database outage kept from
    the ledger: owner heard the server accept the message."""
    return rowcount(executor.execute(
        update(DELIVERY)
        .where(
            DELIVERY.c.id == accepted.delivery_id,
            DELIVERY.c.lease_owner == owner,
            DELIVERY.c.state.in_(_OWNED_UNSETTLED),
        )
        .values(
            state=DeliveryState.SENT.value, lease_owner=None, lease_until=None,
            **_sent_values(accepted),
        )
    )) == 1


WITHDRAWN_NOTE = "the end of this message never went out (database outage): safe to resend"


def withdraw(executor: Executor, delivery_id: int, owner: str) -> bool:
    """sending (or unknown since) → pending, giving the attempt back: the server took
    nothing of the message (owner never wrote its final dot, or the server refused it), but
    a database outage kept owner from recording so.

    An unknown row of an issue already marked sent stays unknown, with a note saying that
    resending it is safe; return whether the row went back to the queue."""
    row = DELIVERY.c
    back = rowcount(executor.execute(
        update(DELIVERY)
        .where(
            row.id == delivery_id,
            row.lease_owner == owner,
            or_(
                row.state == DeliveryState.SENDING.value,
                and_(
                    row.state == DeliveryState.UNKNOWN.value,
                    exists().where(
                        ISSUE.c.id == row.issue_id,
                        ISSUE.c.status.in_([IssueStatus.SENDING, IssueStatus.PAUSED]),
                    ),
                ),
            ),
        )
        .values(
            state=DeliveryState.PENDING.value, attempts=row.attempts - 1, lease_owner=None,
            lease_until=None, smtp_response=None,
        )
    )) == 1
    if not back:
        executor.execute(
            update(DELIVERY)
            .where(row.id == delivery_id, row.lease_owner == owner, row.state == DeliveryState.UNKNOWN.value)
            .values(lease_owner=None, smtp_response=WITHDRAWN_NOTE)
        )
    return back


def abandon(executor: Executor, owner: str, ambiguous: str = "hold") -> Reaped:
    """Settle what owner still holds after a failure between two of its steps (a database
    outage): claims back to pending, a `sending` whose outcome went unrecorded to unknown."""
    return _take_back(executor, DELIVERY.c.lease_owner == owner, ambiguous)


def take_over(executor: Executor, sender_ids: Sequence[int], ambiguous: str = "hold") -> Reaped:
    """Settle the rows in flight of dead sender processes at once, not at lease expiry:
    claims back to pending, sends whose end may have gone out to unknown."""
    if not sender_ids:
        return Reaped(0, 0)
    return _take_back(executor, DELIVERY.c.sender_id.in_(list(sender_ids)), ambiguous)


def _take_back(executor: Executor, whose: Any, ambiguous: str) -> Reaped:
    returned = rowcount(executor.execute(
        update(DELIVERY)
        .where(IN_FLIGHT, DELIVERY.c.state == DeliveryState.CLAIMED.value, whose)
        .values(state=DeliveryState.PENDING.value, lease_owner=None, lease_until=None)
    ))
    unclear = rowcount(executor.execute(
        update(DELIVERY)
        .where(IN_FLIGHT, DELIVERY.c.state == DeliveryState.SENDING.value, whose)
        .values(**_unclear_values(ambiguous))
    ))
    return Reaped(returned, unclear)


def _unclear_values(ambiguous: str) -> dict[str, Any]:
    """Return what a `sending` row whose sender is gone or late becomes. An unknown row keeps
    its lease_owner: should that sender still be alive (a database outage, not a crash), it
    knows better and says so once the database answers (`recover_sent`, `withdraw`)."""
    if ambiguous == "resend":
        note = "outcome unclear after a crash; sent again (DIGEST_AMBIGUOUS=resend)"
        return {"state": DeliveryState.PENDING.value, "lease_owner": None, "lease_until": None,
                "smtp_response": note}
    note = "sender stopped after the end of this message went out, before the reply"
    return {"state": DeliveryState.UNKNOWN.value, "lease_until": None, "smtp_response": note}


def renew_lease(executor: Executor, owner: str, lease_seconds: float) -> int:
    """Heartbeat: extend the lease of every row owner holds; return how many it still holds."""
    statement = (
        update(DELIVERY)
        .where(
            DELIVERY.c.lease_owner == owner,
            DELIVERY.c.state.in_([DeliveryState.CLAIMED.value, DeliveryState.SENDING.value]),
        )
        .values(lease_until=utcnow() + dt.timedelta(seconds=lease_seconds))
    )
    return rowcount(executor.execute(statement))


# --- maintenance (the scheduler's tick) ----------------------------------------------


@dataclass(frozen=True)
class Reaped:
    """What the reaper did: claims returned to the queue, and unclear sends."""

    returned: int
    unclear: int


def reap_expired(
    executor: Executor, ambiguous: str = "hold", now: dt.datetime | None = None
) -> Reaped:
    """Return expired claims to pending; mark expired sends unknown (or pending under
    DIGEST_AMBIGUOUS=resend)."""
    now = now or utcnow()
    returned = rowcount(executor.execute(
        update(DELIVERY)
        .where(IN_FLIGHT, DELIVERY.c.state == DeliveryState.CLAIMED.value, DELIVERY.c.lease_until < now)
        .values(state=DeliveryState.PENDING.value, lease_owner=None, lease_until=None)
    ))
    unclear = rowcount(executor.execute(
        update(DELIVERY)
        .where(IN_FLIGHT, DELIVERY.c.state == DeliveryState.SENDING.value, DELIVERY.c.lease_until < now)
        .values(**_unclear_values(ambiguous))
    ))
    return Reaped(returned, unclear)


def requeue_due_retries(executor: Executor, now: dt.datetime | None = None) -> int:
    """failed_temp → pending for rows whose retry is due; return how many."""
    now = now or utcnow()
    return rowcount(executor.execute(
        update(DELIVERY)
        .where(WAITING, DELIVERY.c.next_attempt_at <= now)
        .values(state=DeliveryState.PENDING.value, next_attempt_at=None)
    ))


def resend(executor: Executor, issue_id: int, states: Sequence[DeliveryState]) -> int:
    """Put an issue's rows in states back to pending with fresh attempts; return how many."""
    return rowcount(executor.execute(
        update(DELIVERY)
        .where(DELIVERY.c.issue_id == issue_id, DELIVERY.c.state.in_([s.value for s in states]))
        .values(state=DeliveryState.PENDING.value, attempts=0, next_attempt_at=None)
    ))


def has_open_work(executor: Executor, issue_id: int) -> bool:
    """Return whether any row still needs a sender: pending, claimed, sending or a due retry."""
    return executor.scalar(
        select(
            exists().where(
                DELIVERY.c.issue_id == issue_id,
                or_(
                    DELIVERY.c.state.in_([s.value for s in OPEN_STATES]),
                    and_(
                        DELIVERY.c.state == DeliveryState.FAILED_TEMP.value,
                        DELIVERY.c.next_attempt_at.is_not(None),
                    ),
                ),
            )
        )
    ) is True


def has_pending(executor: Executor, issue_id: int) -> bool:
    """Return whether the issue has rows waiting to be claimed."""
    return executor.scalar(
        select(
            exists().where(
                DELIVERY.c.issue_id == issue_id, DELIVERY.c.state == DeliveryState.PENDING.value
            )
        )
    ) is True


def has_in_flight(executor: Executor, issue_id: int) -> bool:
    """Return whether some sender holds rows of the issue right now."""
    return executor.scalar(
        select(
            exists().where(
                DELIVERY.c.issue_id == issue_id,
                DELIVERY.c.state.in_([DeliveryState.CLAIMED.value, DeliveryState.SENDING.value]),
            )
        )
    ) is True


# --- figures -------------------------------------------------------------------------


@dataclass(frozen=True)
class Counts:
    """Rows of one issue per state; retrying are failed_temp rows with a retry due, no_post
    the skipped rows of readers none of whose sections had a post."""

    by_state: dict[DeliveryState, int]
    retrying: int
    no_post: int = 0

    @property
    def total(self) -> int:
        """Return the number of rows."""
        return sum(self.by_state.values())

    @property
    def open(self) -> int:
        """Return rows a sender still has to handle."""
        return sum(self.by_state[s] for s in OPEN_STATES) + self.retrying

    @property
    def done(self) -> int:
        """Return rows that reached an end state."""
        return self.total - self.open

    def __getitem__(self, state: DeliveryState) -> int:
        return self.by_state[state]


def counts(executor: Executor, issue_id: int) -> Counts:
    """Return an issue's rows per state: an index-only count per state, plus the few
    failed_temp rows with a retry due and the skipped rows that had no post."""
    rows = executor.execute(
        select(DELIVERY.c.state, func.count())
        .where(DELIVERY.c.issue_id == issue_id)
        .group_by(DELIVERY.c.state)
    )
    by_state = {state: 0 for state in DeliveryState}
    for state, number in rows:
        by_state[DeliveryState(state)] = number
    retrying = 0
    if by_state[DeliveryState.FAILED_TEMP]:
        retrying = executor.scalar(
            select(func.count()).where(
                DELIVERY.c.issue_id == issue_id,
                DELIVERY.c.state == DeliveryState.FAILED_TEMP.value,
                DELIVERY.c.next_attempt_at.is_not(None),
            )
        ) or 0
    no_post = 0
    if by_state[DeliveryState.SKIPPED]:
        no_post = executor.scalar(
            select(func.count()).where(
                DELIVERY.c.issue_id == issue_id,
                DELIVERY.c.state == DeliveryState.SKIPPED.value,
                DELIVERY.c.smtp_response == Blocked.NO_POST,
            )
        ) or 0
    return Counts(by_state, retrying, no_post)


def sent_of_total(executor: Executor, issue_ids: Sequence[int]) -> dict[int, tuple[int, int]]:
    """Return, per issue that has deliveries, how many were sent and how many there are."""
    if not issue_ids:
        return {}
    sent = DeliveryState.SENT.value
    rows = executor.execute(
        select(DELIVERY.c.issue_id, DELIVERY.c.state, func.count())
        .where(DELIVERY.c.issue_id.in_(issue_ids))
        .group_by(DELIVERY.c.issue_id, DELIVERY.c.state)
    )
    result: dict[int, tuple[int, int]] = {}
    for issue_id, state, number in rows:
        done, total = result.get(issue_id, (0, 0))
        result[issue_id] = (done + (number if state == sent else 0), total + number)
    return result


def unclear_counts(executor: Executor, issue_ids: Sequence[int]) -> dict[int, int]:
    """Return, per issue that has any, how many deliveries are unknown."""
    if not issue_ids:
        return {}
    rows = executor.execute(
        select(DELIVERY.c.issue_id, func.count())
        .where(DELIVERY.c.issue_id.in_(list(issue_ids)), DELIVERY.c.state == DeliveryState.UNKNOWN.value)
        .group_by(DELIVERY.c.issue_id)
    )
    return {issue_id: number for issue_id, number in rows}


@dataclass(frozen=True)
class Unclear:
    """A delivery whose outcome nobody knows: the reader may or may not have it."""

    delivery_id: int
    email: str | None
    response: str | None
    updated_at: dt.datetime


def unclear_deliveries(executor: Executor, issue_id: int, limit: int = 100) -> list[Unclear]:
    """Return the issue's unknown deliveries with the reader's address, oldest first."""
    rows = executor.execute(
        select(DELIVERY.c.id, Subscriber.email, DELIVERY.c.smtp_response, DELIVERY.c.updated_at)
        .outerjoin(Subscriber, Subscriber.id == DELIVERY.c.subscriber_id)
        .where(DELIVERY.c.issue_id == issue_id, DELIVERY.c.state == DeliveryState.UNKNOWN.value)
        .order_by(DELIVERY.c.id)
        .limit(limit)
    )
    return [Unclear(row.id, row.email, row.smtp_response, row.updated_at) for row in rows]
