"""CSV imports from the editor workspace: a job per upload, checked and imported in the background.

Contract:
- `create_job` records the upload (its bytes kept in the job row, so any process can carry
  it on) and nothing else; `run_job` then does the work outside the request, with the
  same rules as `digest subscribers import` (digest.domain.subscriber_csv): every row is checked
  first and every problem kept with its line number; a file without problems is imported
  at once; with problems nothing is imported until an editor chooses `import_valid_rows`
  (or `cancel`).
- Progress is written to the job as it goes (bytes checked, rows imported), for the
  editor's live progress bar.
- One runner at a time: `run_job` claims the job with a lease and renews it while it
  works; a job whose runner died (restart, crash) is picked up again by the next
  `resume_in_thread`. Each batch of rows is committed together with the job's checkpoint
  (the CSV line it reached), and only by the runner that read that checkpoint, so a row
  is never imported twice and none is skipped.
- When a job ends (done, failed, cancelled) the uploaded bytes are deleted.
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

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session, selectinload

from digest.core.db import Database, utcnow
from digest.core.models import (
    ConsentSource,
    Editor,
    ImportJob,
    ImportState,
    Newsletter,
    SubscriptionStatus,
)
from digest.domain.subscriber_csv import (
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

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
LEASE = dt.timedelta(seconds=60)
PROGRESS_EVERY = 0.5  # seconds between progress writes while checking
ACTIVE = (ImportState.CHECKING, ImportState.IMPORTING)
FINISHED = (ImportState.DONE, ImportState.FAILED, ImportState.CANCELLED)


class ImportRefused(ValueError):
    """An upload or a choice that cannot be accepted; the message says why, for the editor."""


def create_job(
    session: Session,
    newsletter: Newsletter,
    editor: Editor | None,
    filename: str,
    data: bytes,
    source: ConsentSource,
    ask_to_confirm: bool,
) -> ImportJob:
    """Record an uploaded CSV as a job waiting to be checked; raise ImportRefused if unusable."""
    if not data.strip():
        raise ImportRefused("The file is empty. Choose a CSV file with a header line such as email,name.")
    if len(data) > MAX_UPLOAD_BYTES:
        raise ImportRefused(
            f"The file is larger than {MAX_UPLOAD_BYTES // 2**20} MB: split it into smaller files."
        )
    job = ImportJob(
        newsletter=newsletter,
        editor_id=editor.id if editor else None,
        filename=(filename or "upload.csv")[-255:],
        source=source,
        ask_to_confirm=ask_to_confirm,
        data=data,
        size=len(data),
        state=ImportState.CHECKING,
    )
    session.add(job)
    session.flush()
    return job


def recent_jobs(session: Session, newsletter: Newsletter, limit: int = 10) -> list[ImportJob]:
    """Return the newsletter's latest import jobs, newest first."""
    return list(
        session.scalars(
            select(ImportJob)
            .where(ImportJob.newsletter_id == newsletter.id)
            .order_by(ImportJob.id.desc())
            .limit(limit)
        )
    )


def problems(job: ImportJob) -> list[str]:
    """Return every problem the check found, "line N: what is wrong", in file order."""
    return [line for line in (job.problems or "").split("\n") if line]


def import_valid_rows(session: Session, job: ImportJob) -> None:
    """Import the rows that passed the check, skipping the broken ones (the editor's choice)."""
    if job.state is not ImportState.CHECKED:
        raise ImportRefused("This import is not waiting for a decision any more.")
    if not job.valid_rows:
        raise ImportRefused("No row of this file can be imported: fix it and upload it again.")
    job.skip_invalid = True
    job.state = ImportState.IMPORTING
    job.lease_until = None
    session.flush()


def cancel(session: Session, job: ImportJob) -> None:
    """Import nothing from this file (while it is checked or waits for a decision)."""
    if job.state not in (ImportState.CHECKING, ImportState.CHECKED):
        raise ImportRefused("Only an import that has not started writing can be cancelled.")
    _finish(job, ImportState.CANCELLED)
    session.flush()


def percent(job: ImportJob) -> float:
    """Return how far the current phase is, 0 to 100."""
    if job.state is ImportState.CHECKING:
        return 100.0 * job.checked_bytes / job.size if job.size else 0.0
    if job.state is ImportState.IMPORTING:
        return 100.0 * job.done_rows / job.valid_rows if job.valid_rows else 100.0
    return 100.0


def needs_runner(job: ImportJob, now: dt.datetime | None = None) -> bool:
    """Return whether the job has work left and nobody is doing it (no runner, or a dead one)."""
    now = now or utcnow()
    return job.state in ACTIVE and (job.lease_until is None or job.lease_until < now)


def _finish(job: ImportJob, state: ImportState, error: str | None = None) -> None:
    job.state = state
    job.error = error
    job.data = None
    job.lease_until = None
    job.finished_at = utcnow()


def _claim(database: Database, job_id: int) -> bool:
    now = utcnow()
    with database.session() as session:
        claimed = session.execute(
            update(ImportJob)
            .where(
                ImportJob.id == job_id,
                ImportJob.state.in_(ACTIVE),
                or_(ImportJob.lease_until.is_(None), ImportJob.lease_until < now),
            )
            .values(lease_until=now + LEASE)
            .execution_options(synchronize_session=False)
        )
        return claimed.rowcount == 1


def _load(session: Session, job_id: int, *, for_update: bool = False) -> ImportJob:
    query = (
        select(ImportJob)
        .where(ImportJob.id == job_id)
        .options(selectinload(ImportJob.newsletter).selectinload(Newsletter.sections))
    )
    return session.scalars(query.with_for_update() if for_update else query).one()


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
        job = _load(session, job_id)
        if job.state not in ACTIVE or job.data is None:
            return job.state, None
        try:
            checker = load_checker(session, job.newsletter)
        except BadFile as exc:
            _finish(job, ImportState.FAILED, str(exc))
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
        job = _load(session, job_id, for_update=True)
        if job.state is not ImportState.CHECKING:
            return  # cancelled meanwhile, or another runner got here first
        job.checked_bytes, job.valid_rows, job.invalid_rows = job.size, valid, invalid
        job.problems = "\n".join(found)
        if error is not None:
            _finish(job, ImportState.FAILED, f"{error[0].upper()}{error[1:]}. Nothing was imported.")
        elif not valid and not invalid:
            _finish(job, ImportState.FAILED,
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
        job = _load(session, job_id, for_update=True)
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
        job = _load(session, job_id, for_update=True)
        if job.state is ImportState.IMPORTING and job.last_line == work.last_line:
            _finish(job, ImportState.DONE)


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


def resume_in_thread(database: Database, config: Mapping[str, Any], job_id: int) -> threading.Thread:
    """Start run_job in a background thread of this process (a no-op if a runner holds the job)."""
    thread = threading.Thread(
        target=run_job, args=(database, config, job_id), name=f"import-{job_id}", daemon=True
    )
    thread.start()
    return thread
