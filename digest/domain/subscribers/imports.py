"""CSV imports from the editor workspace: a job per upload, checked and imported in the background.

Contract:
- `create_job` records the upload (its bytes kept in the job row, so any process can carry
  it on) and nothing else; a runner (digest.engine.imports) then does the work outside
  the request, with the same rules as `digest subscribers import`
  (digest.domain.subscribers.csv_io): every row is checked first and every problem kept
  with its line number; a file without problems is imported at once; with problems
  nothing is imported until an editor chooses `import_valid_rows` (or `cancel`).
- Progress is written to the job as it goes (bytes checked, rows imported), for the
  editor's live progress bar (`percent`).
- A job holds a lease while a runner works on it; `needs_runner` says when it has work
  left and no live runner (none yet, or one that died).
- When a job ends (done, failed, cancelled) the uploaded bytes are deleted (`finish`).
- Functions take a Session and flush; the view or the runner commits.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from digest.core.db import utcnow
from digest.core.models import ConsentSource, Editor, ImportJob, ImportState, Newsletter

MAX_UPLOAD_BYTES = 50 * 1024 * 1024
ACTIVE = (ImportState.CHECKING, ImportState.IMPORTING)


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
        raise ImportRefused(
            "The file is empty. Choose a CSV file with a header line such as email,name."
        )
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
    finish(job, ImportState.CANCELLED)
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


def finish(job: ImportJob, state: ImportState, error: str | None = None) -> None:
    """End a job in state (done, failed, cancelled), dropping the uploaded bytes."""
    job.state = state
    job.error = error
    job.data = None
    job.lease_until = None
    job.finished_at = utcnow()


def load_job(session: Session, job_id: int, *, for_update: bool = False) -> ImportJob:
    """Return the job with its newsletter and sections loaded (locked when for_update)."""
    query = (
        select(ImportJob)
        .where(ImportJob.id == job_id)
        .options(selectinload(ImportJob.newsletter).selectinload(Newsletter.sections))
    )
    return session.scalars(query.with_for_update() if for_update else query).one()
