"""Subscribers in bulk: CSV export (streamed) and CSV import jobs with live progress.

An upload becomes an import job (digest.domain.subscribers.imports) that a background
runner (digest.engine.imports) checks and imports; the job's page polls its JSON status
(digest/static/editor.js) and reloads when the job needs the editor or is finished.
Opening either one restarts a runner whose process died.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from flask import (
    abort,
    current_app,
    jsonify,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Response

from digest.core.db import utcnow
from digest.core.extensions import db_session, get_db
from digest.core.models import ConsentSource, ImportJob, ImportState, Newsletter
from digest.domain.subscribers import imports
from digest.domain.subscribers.csv_io import EXPORT_COLUMNS, CsvText, export_batches
from digest.engine.imports import resume_in_thread
from digest.web.editor import bp, commit_change, get_or_404, newsletter_or_409

SHOWN_PROBLEMS = 1000
SOURCES = {
    ConsentSource.IMPORT: "On another list or service where they opted in (a previous newsletter tool, say)",
    ConsentSource.FORM: "On this newsletter's own signup form (restoring an export, say)",
    ConsentSource.API: "Through a form on another site that uses our signup API",
    ConsentSource.EDITOR: "In person or on paper, collected by an editor",
}


def _download(chunks: Iterator[str], filename: str) -> Response:
    response = current_app.response_class(stream_with_context(chunks), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


@bp.get("/subscribers/export.csv")
def subscriber_export() -> Response:
    """Download every subscription of the newsletter as CSV (the CLI export's columns), streamed."""
    newsletter_id, slug = newsletter_or_409().id, newsletter_or_409().slug

    def generate() -> Iterator[str]:
        """Yield the header, then one batch of rows at a time."""
        # The request's session is closed once the view returns: stream with one of our own,
        # which closes when the stream ends.
        session = db_session()
        newsletter = session.get(Newsletter, newsletter_id)
        out = CsvText()
        yield out.rows([EXPORT_COLUMNS])
        for rows in export_batches(session, current_app.config, newsletter):
            session.rollback()  # end the read between batches: signups go on meanwhile
            yield out.rows(rows)

    return _download(generate(), f"{slug}-subscribers-{utcnow():%Y-%m-%d}.csv")


def _import_page(errors: dict[str, str], form: dict[str, str], status: int = 200) -> tuple[str, int]:
    return render_template(
        "editor/subscriber_import.html",
        errors=errors,
        form=form,
        sources=SOURCES,
        jobs=imports.recent_jobs(db_session(), newsletter_or_409()),
        max_mb=imports.MAX_UPLOAD_BYTES // 2**20,
    ), status


@bp.route("/subscribers/import", methods=["GET", "POST"])
def subscriber_import() -> Response | tuple[str, int]:
    """Show the upload form and recent imports; take an upload and start checking it."""
    newsletter = newsletter_or_409()
    if request.method == "GET":
        return _import_page({}, {"source": ConsentSource.IMPORT.value, "statuses": "confirm"})
    upload = request.files.get("file")
    form = {"source": request.form.get("source", ""), "statuses": request.form.get("statuses", "")}
    keep = form["statuses"] == "keep"
    if keep and not current_user.is_admin:
        abort(403, "Only an admin can import readers as confirmed without a confirmation email.")
    errors = {}
    try:
        source = ConsentSource(form["source"])
    except ValueError:
        errors["source"] = "Choose where these readers agreed to receive the newsletter."
    if upload is None or not upload.filename:
        errors["file"] = "Choose a CSV file to upload."
    if errors:
        return _import_page(errors, form, 400)
    assert upload is not None
    dbs = db_session()
    try:
        job = imports.create_job(dbs, newsletter, current_user, upload.filename or "", upload.read(),
                                 source, ask_to_confirm=not keep)
    except imports.ImportRefused as exc:
        dbs.rollback()
        return _import_page({"file": str(exc)}, form, 400)
    dbs.commit()
    resume_in_thread(get_db(), current_app.config, job.id)
    return redirect(url_for("editor.subscriber_import_job", job_id=job.id))


@bp.errorhandler(RequestEntityTooLarge)
def _too_large(_error: RequestEntityTooLarge) -> tuple[str, int]:
    # Raised while the CSRF check reads the body, before login is checked: say no more.
    if request.endpoint != "editor.subscriber_import":
        limit_kb = (request.max_content_length or 0) // 1024
        return render_template("error.html", title="Too much data",
                               message=f"This page accepts at most {limit_kb:,} KB."), 413
    limit = imports.MAX_UPLOAD_BYTES // 2**20
    return render_template("error.html", title="This file is too large",
                           message=f"Uploads are limited to {limit} MB: split the file into smaller ones."), 413


def _job(job_id: int) -> ImportJob:
    job = get_or_404(ImportJob, job_id)
    if job.newsletter_id != newsletter_or_409().id:
        abort(404)
    if imports.needs_runner(job):
        resume_in_thread(get_db(), current_app.config, job.id)
    return job


def progress_text(job: ImportJob) -> str:
    """Return one line saying where the job is, for the page and its live updates."""
    if job.state is ImportState.CHECKING:
        checked = job.valid_rows + job.invalid_rows
        return f"Checking every row: {checked:,} checked so far, {job.invalid_rows:,} with problems."
    if job.state is ImportState.IMPORTING:
        return f"Importing: {job.done_rows:,} of {job.valid_rows:,} rows written."
    return job.state.value


@bp.get("/subscribers/import/<int:job_id>")
def subscriber_import_job(job_id: int) -> str:
    """Show an import: live progress, its problems and the choice they call for, or its result."""
    job = _job(job_id)
    every = imports.problems(job)
    return render_template("editor/subscriber_import_job.html", job=job, problems=every[:SHOWN_PROBLEMS],
                           more=max(len(every) - SHOWN_PROBLEMS, 0), percent=imports.percent(job),
                           progress=progress_text(job), sources=SOURCES)


@bp.get("/subscribers/import/<int:job_id>/status")
def subscriber_import_status(job_id: int) -> Response:
    """Return an import's state and progress as JSON (polled by the job's page)."""
    job = _job(job_id)
    return jsonify(state=job.state.value, percent=round(imports.percent(job), 1), text=progress_text(job),
                   valid=job.valid_rows, invalid=job.invalid_rows, written=job.done_rows)


@bp.get("/subscribers/import/<int:job_id>/problems.csv")
def subscriber_import_problems(job_id: int) -> Response:
    """Download every problem the check found, as CSV (line, problem)."""
    job = _job(job_id)
    rows = [["line", "problem"]]
    for problem in imports.problems(job):
        line, _, message = problem.partition(": ")
        rows.append([line.removeprefix("line "), message])
    return _download(iter([CsvText().rows(rows)]), f"import-{job.id}-problems.csv")


@bp.post("/subscribers/import/<int:job_id>/import-valid")
def subscriber_import_valid(job_id: int) -> Response:
    """Import the rows without problems, skipping the broken ones."""
    return _decide(job_id, imports.import_valid_rows, "Importing the valid rows; the broken ones are skipped.")


@bp.post("/subscribers/import/<int:job_id>/cancel")
def subscriber_import_cancel(job_id: int) -> Response:
    """Import nothing from the file."""
    return _decide(job_id, imports.cancel, "The import is cancelled: nothing was imported.")


def _decide(job_id: int, decision: Callable[[Session, ImportJob], None], done: str) -> Response:
    job = _job(job_id)
    if commit_change(lambda dbs: decision(dbs, job), done, (imports.ImportRefused,)) and imports.needs_runner(job):
        resume_in_thread(get_db(), current_app.config, job.id)
    return redirect(url_for("editor.subscriber_import_job", job_id=job.id))
