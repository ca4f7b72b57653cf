"""Subscribers in and out as CSV, streaming both ways.

Contract:
- `export_rows` yields one row per subscription, fetched in batches, so memory stays
  flat however many readers there are. Columns: EXPORT_COLUMNS.
- Every CSV we write goes through `CsvText`, which turns a cell a spreadsheet would run
  as a formula (one starting with = + - @, tab or CR) into text with a leading
  apostrophe, as OWASP advises; import takes that apostrophe off again, so an export
  imports back unchanged.
- Import reads the same columns (only `email` is required) in two passes: `check_rows`
  validates every row and reports each problem with its line number; `import_batch`
  then writes in batches. The caller decides what a bad row means (the CLI imports
  nothing unless told to skip bad rows), so bad input changes nothing by default.
- Import never changes an existing subscription (a reader's own choices win), never
  imports a suppressed address, and records a Consent with the given source for every
  subscription it creates. Pending rows are asked to confirm (double opt-in).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.orm import Session, joinedload, selectinload

from digest.core.db import utcnow
from digest.core.models import (
    Consent,
    ConsentSource,
    Newsletter,
    Section,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    TransactionalKind,
)
from digest.core.validation import Invalid
from digest.domain import webhooks
from digest.domain.subscribers.signup import clean_name, normalize_email
from digest.domain.suppression import email_hash, suppressed_hashes
from digest.domain.transactional import asked_recently, request_mail

EXPORT_COLUMNS = [
    "email",
    "name",
    "newsletter",
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "sections",
    "suppressed",
]
SECTION_SEPARATOR = ";"
BATCH = 500
# Spreadsheets read a cell starting with one of these as a formula (OWASP, CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralised(value: str) -> str:
    """Return value as a spreadsheet shows it as text: an apostrophe before a formula start."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def _restored(value: str) -> str:
    return value[1:] if value.startswith("'") and value[1:].startswith(FORMULA_STARTS) else value


class CsvText:
    """Rows to CSV text, every cell neutralised: the one way digest writes CSV."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer)

    def rows(self, rows: Iterable[Iterable[str]]) -> str:
        """Return rows as CSV text (only what was written since the last call)."""
        self.writer.writerows([neutralised(cell) for cell in row] for row in rows)
        text = self.buffer.getvalue()
        self.buffer.seek(0)
        self.buffer.truncate()
        return text


def _iso(value: dt.datetime | None) -> str:
    return value.isoformat(timespec="seconds") if value else ""


def _export_query(newsletter: Newsletter | None) -> Select[Subscription]:
    query = (
        select(Subscription)
        .options(
            joinedload(Subscription.subscriber),
            joinedload(Subscription.newsletter),
            selectinload(Subscription.sections),
        )
        .order_by(Subscription.id)
    )
    if newsletter is not None:
        query = query.where(Subscription.newsletter_id == newsletter.id)
    return query


def export_batches(
    session: Session,
    config: Mapping[str, Any],
    newsletter: Newsletter | None = None,
    batch: int = BATCH,
) -> Iterator[list[list[str]]]:
    """Yield the rows (no header) one batch at a time, each batch fetched by its own query.

    Batches are found by keyset (the subscription id), so the caller may end the read
    transaction between two batches: a long export then never holds SQLite's lock.
    """
    last_id = 0
    while True:
        query = _export_query(newsletter).where(Subscription.id > last_id).limit(batch)
        chunk = list(session.scalars(query))
        if not chunk:
            return
        hashes = {s.id: email_hash(config, s.subscriber.email, canonical=True) for s in chunk}
        suppressed = suppressed_hashes(session, hashes.values())
        rows = []
        for subscription in chunk:
            reason = suppressed.get(hashes[subscription.id])
            rows.append([
                subscription.subscriber.email,
                subscription.subscriber.name,
                subscription.newsletter.slug,
                subscription.status.value,
                _iso(subscription.created_at),
                _iso(subscription.confirmed_at),
                _iso(subscription.unsubscribed_at),
                SECTION_SEPARATOR.join(s.slug for s in subscription.sections),
                reason.value if reason else "",
            ])
        last_id = chunk[-1].id
        yield rows


def export_rows(
    session: Session,
    config: Mapping[str, Any],
    newsletter: Newsletter | None = None,
    batch: int = BATCH,
) -> Iterator[list[str]]:
    """Yield the header, then one row per subscription (of one newsletter, or all)."""
    yield EXPORT_COLUMNS
    for rows in export_batches(session, config, newsletter, batch):
        yield from rows


@dataclass(frozen=True)
class ImportRow:
    """One valid CSV row, normalized."""

    line: int
    email: str
    name: str
    newsletter_id: int
    status: SubscriptionStatus
    created_at: dt.datetime | None
    confirmed_at: dt.datetime | None
    unsubscribed_at: dt.datetime | None
    sections: tuple[int, ...]


@dataclass(frozen=True)
class RowError:
    """A row that cannot be imported, and why."""

    line: int
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.message}"


class BadFile(ValueError):
    """The file as a whole is unusable (no header, no email column, not UTF-8)."""


def _date(value: str, column: str) -> dt.datetime | None:
    value = value.strip()
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{column} {value!r} is not a date such as 2026-11-26 or 2026-11-26T08:00:00+00:00"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _statuses() -> dict[str, SubscriptionStatus]:
    return {status.value: status for status in SubscriptionStatus}


@dataclass
class Checker:
    """Validates rows against the newsletters; remembers addresses to catch duplicates."""

    newsletters: dict[str, Newsletter]
    forced: Newsletter | None
    seen: dict[tuple[str, int], int] = field(default_factory=dict)

    def _newsletter(self, slug: str) -> Newsletter:
        if self.forced is not None:
            return self.forced
        if slug:
            if slug not in self.newsletters:
                raise ValueError(f"there is no newsletter {slug!r}")
            return self.newsletters[slug]
        if len(self.newsletters) == 1:
            return next(iter(self.newsletters.values()))
        raise ValueError("the newsletter column is empty; pass --newsletter SLUG")

    def check(self, line: int, record: Mapping[str, str]) -> ImportRow | RowError:
        """Return the row normalized, or what is wrong with it."""
        try:
            email = normalize_email(record.get("email") or "")
            name = clean_name(record.get("name") or "")
            newsletter = self._newsletter((record.get("newsletter") or "").strip())
            status_text = (record.get("status") or "confirmed").strip().lower()
            status = _statuses().get(status_text)
            if status is None:
                raise ValueError(f"status {status_text!r} is not one of {', '.join(_statuses())}")
            slugs = [s for s in re.split(r"[;,\s]+", record.get("sections") or "") if s]
            by_slug = {s.slug: s.id for s in newsletter.sections}
            unknown = [s for s in slugs if s not in by_slug]
            if unknown:
                raise ValueError(f"{newsletter.slug} has no section {unknown[0]!r}")
            sections = tuple(by_slug[s] for s in dict.fromkeys(slugs))
            if len(sections) == len(by_slug):
                sections = ()
            dates = {
                column: _date(record.get(column) or "", column)
                for column in ("created_at", "confirmed_at", "unsubscribed_at")
            }
        except Invalid as exc:
            problem = "; ".join(exc.errors.values())
            if "email" in exc.errors:
                problem = f"{(record.get('email') or '').strip()!r}: {problem}"
            return RowError(line, problem)
        except ValueError as exc:
            return RowError(line, str(exc))
        key = (email, newsletter.id)
        if key in self.seen:
            return RowError(line, f"{email} appears already on line {self.seen[key]}")
        self.seen[key] = line
        return ImportRow(line, email, name, newsletter.id, status, sections=sections, **dates)


def read_records(lines: Iterable[str]) -> Iterator[tuple[int, dict[str, str]]]:
    """Yield (line number, record) for each data row of a CSV with a header.

    Raises BadFile for a file the csv module cannot read, naming the line.
    """
    reader = csv.DictReader(lines)
    try:
        fieldnames = reader.fieldnames
        if fieldnames is None:
            raise BadFile(
                "the file is empty; the first line must be a header such as email,name,status"
            )
        fields = [f.strip().lower() for f in fieldnames]
        if "email" not in fields:
            raise BadFile(
                f"the header has no email column (found: {', '.join(fieldnames)}); "
                "the first line must name the columns, such as email,name,status"
            )
        reader.fieldnames = fields
        for record in reader:
            if not any(
                (value or "").strip() for value in record.values() if isinstance(value, str)
            ):
                continue
            yield (
                reader.line_num,
                {
                    k: _restored(v)
                    for k, v in record.items()
                    if isinstance(k, str) and isinstance(v, str)
                },
            )
    except csv.Error as exc:
        if "new-line character" in str(exc):
            raise BadFile(
                f"line {reader.line_num + 1} ends with a carriage return alone (the old Mac "
                "format), which is not CSV; save the file as CSV UTF-8 and try again"
            ) from None
        raise BadFile(f"line {reader.line_num}: {exc}") from None


def decode_lines(
    stream: Iterable[bytes], advance: Callable[[int], Any] = lambda _n: None
) -> Iterator[str]:
    """Yield a byte stream's lines as text, refusing anything but UTF-8 without NUL (BOM dropped).

    advance(n) is called with each line's size in bytes, for progress.
    """
    for number, raw in enumerate(stream, 1):
        advance(len(raw))
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadFile(
                f"line {number} is not UTF-8 text; save the file as CSV UTF-8 and try again"
            ) from None
        if "\x00" in text:
            raise BadFile(
                f"line {number} contains a NUL character, which cannot be stored; "
                "save the file as CSV UTF-8 and try again"
            )
        yield text.removeprefix("\ufeff") if number == 1 else text


def load_checker(session: Session, forced_newsletter: Newsletter | None) -> Checker:
    """Return a Checker knowing every newsletter and its sections; raise BadFile if there is none.

    It needs the session no further, so a long check holds no transaction.
    """
    newsletters = {
        n.slug: n
        for n in session.scalars(select(Newsletter).options(selectinload(Newsletter.sections)))
    }
    if not newsletters:
        raise BadFile("there is no newsletter to import into; create one first")
    return Checker(newsletters, forced_newsletter)


def check_rows(
    session: Session,
    lines: Iterable[str],
    forced_newsletter: Newsletter | None,
    on_row: Callable[[ImportRow | RowError], None],
) -> None:
    """Validate every row of a CSV, handing each result to on_row; raise BadFile for the file."""
    checker = load_checker(session, forced_newsletter)
    for line, record in read_records(lines):
        on_row(checker.check(line, record))


@dataclass
class ImportReport:
    """What an import did."""

    imported: int = 0
    existing: int = 0
    suppressed: int = 0


def _subscription_for(
    row: ImportRow, subscriber: Subscriber, source: ConsentSource, now: dt.datetime
) -> Subscription:
    given = row.created_at or row.confirmed_at or now
    subscription = Subscription(
        subscriber=subscriber,
        newsletter_id=row.newsletter_id,
        status=row.status,
        created_at=given,
    )
    consent = Consent(source=source, created_at=given, consent_text="", consent_version="")
    if row.status in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.PAUSED):
        subscription.confirmed_at = consent.confirmed_at = row.confirmed_at or given
        if row.status is SubscriptionStatus.PAUSED:
            subscription.paused_at = now
    elif row.status is SubscriptionStatus.UNSUBSCRIBED:
        subscription.confirmed_at = row.confirmed_at
        consent.confirmed_at = row.confirmed_at
        subscription.unsubscribed_at = consent.withdrawn_at = row.unsubscribed_at or now
        consent.withdrawal_channel = "import"
    subscription.consents.append(consent)
    return subscription


def import_batch(
    session: Session,
    config: Mapping[str, Any],
    rows: list[ImportRow],
    source: ConsentSource,
    report: ImportReport,
    now: dt.datetime | None = None,
) -> None:
    """Import a batch of checked rows (a few queries for the whole batch); flush, no commit."""
    now = now or utcnow()
    hashes = {row.email: email_hash(config, row.email, canonical=True) for row in rows}
    blocked = suppressed_hashes(session, hashes.values())
    emails = list(hashes)
    subscribers = {
        s.email: s for s in session.scalars(select(Subscriber).where(Subscriber.email.in_(emails)))
    }
    sections = {
        section.id: section
        for section in session.scalars(
            select(Section).where(Section.newsletter_id.in_({row.newsletter_id for row in rows}))
        )
    }
    existing = {
        (email, newsletter_id)
        for email, newsletter_id in session.execute(
            select(Subscriber.email, Subscription.newsletter_id)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .where(Subscriber.email.in_(emails))
        )
    }
    for row in rows:
        if hashes[row.email] in blocked:
            report.suppressed += 1
            continue
        if (row.email, row.newsletter_id) in existing:
            report.existing += 1
            continue
        subscriber = subscribers.get(row.email)
        if subscriber is None:
            subscriber = Subscriber(
                email=row.email, name=row.name, created_at=row.created_at or now
            )
            subscribers[row.email] = subscriber
            session.add(subscriber)
        elif row.name and not subscriber.name:
            subscriber.name = row.name
        subscription = _subscription_for(row, subscriber, source, now)
        session.add(subscription)
        subscription.sections = [sections[section_id] for section_id in row.sections]
        webhooks.subscriber_event(session, "subscriber.created", subscription, now)
        if row.status is SubscriptionStatus.PENDING:
            session.flush()
            if not asked_recently(session, subscriber.id, now):
                request_mail(session, subscription, TransactionalKind.CONFIRM, now)
        existing.add((row.email, row.newsletter_id))
        report.imported += 1
    session.flush()
