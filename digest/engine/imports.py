"""The CSV import runner: carries an import job (digest.domain.subscribers.imports) through.

Contract:
- `run_job` does a job's work outside the request: it checks every row of the upload
  (progress written as it goes), then imports when the file has no problems or an editor
  chose to import the valid rows, with the rules of digest.domain.subscribers.csv_io.
- One runner at a time: `run_job` claims the job with a lease and renews it while it
  works; a job whose runner died (restart, crash) is picked up again by the next
  `resume_in_thread`. Each batch of rows is committed together with the job's checkpoint
  (the CSV line it reached), and only by the runner that read that checkpoint, so a row
  is never imported twice and none is skipped.
- The check holds no transaction while it reads the file; each step commits on its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from sqlalchemy import or_, update

from digest.core.db import Database, rowcount, utcnow
from digest.core.models import ConsentSource, ImportJob, ImportState, SubscriptionStatus
from digest.domain.subscribers.csv_io import (
    BATCH,
    BadFile,
    Checker,
    ImportReport,
    ImportRow,
    RowError,
    decode_lines,
    import_batch,
    load_checker,
    read_records,
)
from digest.domain.subscribers.imports import ACTIVE, finish, load_job

log = logging.getLogger(__name__)

LEASE = dt.timedelta(seconds=60)
PROGRESS_EVERY = 0.5  # seconds between progress writes while checking


def _claim(database: Database, job_id: int) -> bool:
    now = utcnow()
    statement = (
        update(ImportJob)
        .where(
            ImportJob.id == job_id,
            ImportJob.state.in_(ACTIVE),
            or_(ImportJob.lease_until.is_(None), ImportJob.lease_until < now),
        )
        .values(lease_until=now + LEASE)
        .execution_options(synchronize_session=False)
    )
    with database.session() as session:
        return rowcount(session.execute(statement)) == 1


@dataclasses.dataclass
class _Work:
    """What a runner read from the job before working without a transaction."""

    data: bytes
    checker: Checker
    source: ConsentSource
    ask_to_confirm: bool
    last_line: int
    report: ImportReport


def _start(database: Database, job_id: int) -> tuple[ImportState, _Work | None]:
    with database.session() as session:
        job = load_job(session, job_id)
        if job.state not in ACTIVE or job.data is None:
            return job.state, None
        try:
            checker = load_checker(session, job.newsletter)
        except BadFile as exc:
            finish(job, ImportState.FAILED, str(exc))
            return job.state, None
        report = ImportReport(job.imported, job.existing, job.suppressed)
        work = _Work(job.data, checker, job.source, job.ask_to_confirm, job.last_line, report)
        return job.state, work


def _records(
    work: _Work, advance: Callable[[int], object] = lambda _n: None
) -> Iterator[tuple[int, dict[str, str]]]:
    return read_records(decode_lines(io.BytesIO(work.data), advance))


def _check(database: Database, job_id: int, work: _Work) -> None:
    valid = invalid = 0
    found: list[str] = []
    seen = {"bytes": 0}
    last_write = time.monotonic()

    def advance(size: int) -> None:
        seen["bytes"] += size

    def report_progress() -> None:
        with database.session() as session:
            session.execute(
                update(ImportJob)
                .where(ImportJob.id == job_id, ImportJob.state == ImportState.CHECKING)
                .values(checked_bytes=seen["bytes"], valid_rows=valid, invalid_rows=invalid,
                        lease_until=utcnow() + LEASE)
                .execution_options(synchronize_session=False)
            )

    error = None
    try:
        for line, record in _records(work, advance):
            result = work.checker.check(line, record)
            if isinstance(result, RowError):
                invalid += 1
                found.append(str(result))
            else:
                valid += 1
            if time.monotonic() - last_write > PROGRESS_EVERY:
                report_progress()
                last_write = time.monotonic()
    except BadFile as exc:
        error = str(exc)
    with database.session() as session:
        job = load_job(session, job_id, for_update=True)
        if job.state is not ImportState.CHECKING:
            return  # cancelled meanwhile, or another runner got here first
        job.checked_bytes, job.valid_rows, job.invalid_rows = job.size, valid, invalid
        job.problems = "\n".join(found)
        if error is not None:
            finish(job, ImportState.FAILED, f"{error[0].upper()}{error[1:]}. Nothing was imported.")
        elif not valid and not invalid:
            finish(job, ImportState.FAILED,
                   "The file has a header but no rows. Nothing was imported.")
        elif invalid:
            job.state = ImportState.CHECKED
            job.lease_until = None
        else:
            job.state = ImportState.IMPORTING
            job.lease_until = utcnow() + LEASE


def _as_pending(row: ImportRow) -> ImportRow:
    if row.status in (SubscriptionStatus.CONFIRMED, SubscriptionStatus.PAUSED):
        return dataclasses.replace(row, status=SubscriptionStatus.PENDING, confirmed_at=None)
    return row


def _write(
    database: Database, config: Mapping[str, Any], job_id: int, work: _Work, rows: list[ImportRow]
) -> bool:
    """Import one batch with the job's checkpoint; False if another runner moved the job on."""
    with database.session() as session:
        job = load_job(session, job_id, for_update=True)
        if job.state is not ImportState.IMPORTING or job.last_line != work.last_line:
            return False
        if rows:
            import_batch(session, config, rows, work.source, work.report)
            job.last_line = rows[-1].line
            job.done_rows += len(rows)
        job.imported = work.report.imported
        job.existing = work.report.existing
        job.suppressed = work.report.suppressed
        job.lease_until = utcnow() + LEASE
    work.last_line = rows[-1].line if rows else work.last_line
    return True


def _import(database: Database, config: Mapping[str, Any], job_id: int, work: _Work) -> None:
    batch: list[ImportRow] = []
    for line, record in _records(work):
        result = work.checker.check(line, record)  # every row, so duplicates are seen alike
        if line <= work.last_line or not isinstance(result, ImportRow):
            continue
        batch.append(_as_pending(result) if work.ask_to_confirm else result)
        if len(batch) >= BATCH:
            if not _write(database, config, job_id, work, batch):
                return
            batch = []
    if not _write(database, config, job_id, work, batch):
        return
    with database.session() as session:
        job = load_job(session, job_id, for_update=True)
        if job.state is ImportState.IMPORTING and job.last_line == work.last_line:
            finish(job, ImportState.DONE)


def run_job(database: Database, config: Mapping[str, Any], job_id: int) -> None:
    """Carry a job as far as it goes (check, then import) if no other runner holds it."""
    if not _claim(database, job_id):
        return
    try:
        while True:
            state, work = _start(database, job_id)
            if work is None:
                return
            if state is ImportState.CHECKING:
                _check(database, job_id, work)
            else:
                _import(database, config, job_id, work)
                return
    except Exception:
        log.exception("import job %s stopped; it resumes when its page is opened again", job_id)
        raise


def resume_in_thread(
    database: Database, config: Mapping[str, Any], job_id: int
) -> threading.Thread:
    """Start run_job in a background thread of this process (a no-op if a runner holds the job)."""
    thread = threading.Thread(
        target=run_job, args=(database, config, job_id), name=f"import-{job_id}", daemon=True
    )
    thread.start()
    return thread
