"""CSV import and export in the editor workspace: upload, check, progress, decide, download."""

from __future__ import annotations

import csv
import io
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select, update
from werkzeug.test import TestResponse

from digest.core.models import (
    ConsentSource,
    EditorRole,
    ImportJob,
    ImportState,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalKind,
)
from digest.domain.newsletters import find_newsletter
from digest.domain.subscribers import imports
from digest.domain.subscribers.privacy import erase
from digest.domain.suppression import suppress
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token
from tests.support.readers import (
    load_newsletter,
    mails,
    subscription,
)
from tests.support.waiting import wait_until

ADMIN, WRITER = "admin@example.com", "writer@example.com"
WAITING = {"checking", "importing"}
BROKEN = (
    "email,name,status,sections\n"
    "fine@example.org,Fine,,\n"                  # line 2
    "not-an-address,,,\n"                        # line 3: malformed
    "blocked@example.org,,confirmed,\n"          # line 4: valid, but suppressed
    "ok@example.org,,maybe,\n"                   # line 5: unknown status
    "fine@example.org,Twice,,\n"                 # line 6: duplicate of line 2
    "ok2@example.org,,,poetry\n"                 # line 7: unknown section
    "later@example.org,Later,pending,tools\n"    # line 8
)


def _workspace(app: Flask, client: FlaskClient, who: str = ADMIN) -> None:
    load_newsletter(app)
    with get_db_of(app).session() as session:
        make_editor(session, ADMIN, EditorRole.ADMIN)
        make_editor(session, WRITER, EditorRole.EDITOR)
    log_in(client, who)


def _upload(client: FlaskClient, data: bytes | str, *, source: str = "import", statuses: str = "keep",
            filename: str = "readers.csv") -> TestResponse:
    """Fill in and send the upload form the way a browser does."""
    page = client.get("/editor/subscribers/import").get_data(as_text=True)
    body = data.encode() if isinstance(data, str) else data
    return client.post("/editor/subscribers/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(page), "source": source, "statuses": statuses,
        "file": (io.BytesIO(body), filename),
    })


def _wait(client: FlaskClient, job_page: str, timeout: float = 120) -> dict[str, Any]:
    """Poll the job's status like its page does until it stops working; return the last status."""
    statuses: list[dict[str, Any]] = []

    def finished() -> bool:
        statuses.append(client.get(f"{job_page}/status").get_json())
        return statuses[-1]["state"] not in WAITING

    wait_until(finished, timeout, what=lambda: f"the import, still {statuses[-1]['state']}", every=0.05)
    return statuses[-1]


def _job(app: Flask, job_id: int) -> ImportJob:
    with get_db_of(app).session() as session:
        job = session.get(ImportJob, job_id)
        assert job is not None
        session.refresh(job, ["data", "problems"])
        return job


def _count(app: Flask) -> int:
    with get_db_of(app).session() as session:
        return session.scalar(select(func.count()).select_from(Subscription)) or 0


def _post(client: FlaskClient, page: str, action: str) -> TestResponse:
    return client.post(action, data={"csrf_token": csrf_token(client.get(page).get_data(as_text=True))})


def test_a_clean_file_is_imported_at_once(app, client) -> None:  # type: ignore[no-untyped-def]
    """A file without problems is checked and imported in the background, with the chosen consent source."""
    _workspace(app, client)
    response = _upload(client, "email,name,status\nnew@example.org,New,confirmed\nold@example.org,,unsubscribed\n",
                       source="form")
    assert response.status_code == 302
    job_page = response.headers["Location"]
    assert _wait(client, job_page)["state"] == "done"
    html = client.get(job_page).get_data(as_text=True)
    assert "Import finished" in html and "<strong>2</strong>imported" in html
    new = subscription(app, "new@example.org")
    assert new.status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]
    assert new.consents[0].source is ConsentSource.FORM  # type: ignore[union-attr]
    assert subscription(app, "old@example.org").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    job = _job(app, int(job_page.rsplit("/", 1)[1]))
    assert job.data is None  # the uploaded personal data is gone once the job ends
    assert "readers.csv" in client.get("/editor/subscribers/import").get_data(as_text=True)


def test_broken_rows_import_nothing_until_the_editor_chooses(app, client) -> None:  # type: ignore[no-untyped-def]
    """Every broken row is listed by line and nothing is imported; "import the valid rows" then skips them."""
    _workspace(app, client)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "blocked@example.org", SuppressionReason.HARD_BOUNCE)
    before = _count(app)
    job_page = _upload(client, BROKEN).headers["Location"]
    status = _wait(client, job_page)
    assert status["state"] == "checked" and status["valid"] == 3 and status["invalid"] == 4
    html = client.get(job_page).get_data(as_text=True)
    assert "4 rows have problems, so nothing was imported" in html
    for expected in ("line 3: &#39;not-an-address&#39;", "line 5: status &#39;maybe&#39; is not one of",
                     "line 6: fine@example.org appears already on line 2",
                     "line 7: weekly-model has no section &#39;poetry&#39;"):
        assert expected in html
    assert "Import the 3 valid rows, skip the broken ones" in html
    assert _count(app) == before
    problems = list(csv.reader(io.StringIO(client.get(f"{job_page}/problems.csv").get_data(as_text=True))))
    assert [row[0] for row in problems] == ["line", "3", "5", "6", "7"]
    assert _post(client, job_page, f"{job_page}/import-valid").status_code == 302
    assert _wait(client, job_page)["state"] == "done"
    job = _job(app, int(job_page.rsplit("/", 1)[1]))
    assert (job.imported, job.suppressed, job.existing, job.invalid_rows) == (2, 1, 0, 4)
    assert _count(app) == before + 2
    assert subscription(app, "blocked@example.org") is None
    assert subscription(app, "fine@example.org").subscriber.name == "Fine"  # type: ignore[union-attr]
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM]  # the pending row is asked
    again = _post(client, job_page, f"{job_page}/import-valid")
    assert "not waiting for a decision any more" in client.get(again.headers["Location"]).get_data(as_text=True)
    # Erasing a reader also removes their address from the import's list of problems.
    with get_db_of(app).session() as session:
        erase(session, app.config, subscription(app, "fine@example.org").subscriber)  # type: ignore[union-attr]
    assert "line 6: [erased] appears already on line 2" in client.get(job_page).get_data(as_text=True)


def test_cancelling_imports_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """Cancelling a checked file imports nothing and drops the upload."""
    _workspace(app, client)
    before = _count(app)
    job_page = _upload(client, BROKEN).headers["Location"]
    assert _wait(client, job_page)["state"] == "checked"
    _post(client, job_page, f"{job_page}/cancel")
    assert "Nothing was imported from this file." in client.get(job_page).get_data(as_text=True)
    assert _job(app, int(job_page.rsplit("/", 1)[1])).data is None
    assert _count(app) == before


def test_editors_import_with_double_opt_in_only(app, client) -> None:  # type: ignore[no-untyped-def]
    """An editor who is not an admin cannot import confirmed readers; their readers confirm by email."""
    _workspace(app, client, WRITER)
    assert 'value="keep" disabled' in client.get("/editor/subscribers/import").get_data(as_text=True)
    data = "email,status\na@example.org,confirmed\nb@example.org,\nc@example.org,unsubscribed\n"
    assert _upload(client, data, statuses="keep").status_code == 403
    job_page = _upload(client, data, statuses="confirm").headers["Location"]
    assert _wait(client, job_page)["state"] == "done"
    assert subscription(app, "a@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
    assert subscription(app, "b@example.org").status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
    assert subscription(app, "c@example.org").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert subscription(app, "a@example.org").confirmed_at is None  # type: ignore[union-attr]
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM] * 2
    assert "New readers receive a confirmation email" in client.get(job_page).get_data(as_text=True)


@pytest.mark.parametrize(("data", "message"), [
    ("name,status\nAda,confirmed\n", "The header has no email column"),
    ("email,name\nj@example.org,J\u00f6rg\n".encode("latin-1"), "Line 2 is not UTF-8 text"),
    ("email,name\n", "The file has a header but no rows."),
    ("email,name\nj@example.org,A\x00B\n", "Line 2 contains a NUL character"),
])
def test_unusable_files_fail_with_a_clear_message(app, client, data, message: str) -> None:  # type: ignore[no-untyped-def]
    """A file that is not a usable CSV fails as a whole, saying why, and imports nothing."""
    _workspace(app, client)
    before = _count(app)
    job_page = _upload(client, data).headers["Location"]
    assert _wait(client, job_page)["state"] == "failed"
    html = client.get(job_page).get_data(as_text=True)
    assert "This file cannot be imported" in html and message in html and "Nothing was imported." in html
    assert _count(app) == before


def test_the_upload_form_refuses_missing_and_oversized_files(app, client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """No file, an empty file, no consent source or a file over the limit get a message on the form."""
    _workspace(app, client)
    empty = _upload(client, b"")
    assert empty.status_code == 400 and "The file is empty." in empty.get_data(as_text=True)
    page = client.get("/editor/subscribers/import").get_data(as_text=True)
    missing = client.post("/editor/subscribers/import", data={"csrf_token": csrf_token(page), "statuses": "keep"})
    assert missing.status_code == 400
    assert "Choose a CSV file to upload." in missing.get_data(as_text=True)
    assert "Choose where these readers agreed" in missing.get_data(as_text=True)
    monkeypatch.setattr(imports, "MAX_UPLOAD_BYTES", 1000)
    big = _upload(client, "email\n" + "reader@example.org\n" * 100)
    assert big.status_code == 400 and "The file is larger than" in big.get_data(as_text=True)
    app.config["MAX_CONTENT_LENGTH"] = 2**20
    huge = _upload(client, "email\n" + "reader@example.org\n" * 60_000)
    assert huge.status_code == 413
    assert "Uploads are limited to 1 MB: split the file" in huge.get_data(as_text=True)
    with get_db_of(app).session() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 0


def test_a_large_file_imports_in_the_background(app, client) -> None:  # type: ignore[no-untyped-def]
    """The upload answers before the work is done; progress only grows; 5,000 rows end up imported once."""
    _workspace(app, client)
    rows = 5000
    data = "email,name\n" + "".join(f"bulk{n:05d}@example.org,Bulk {n}\n" for n in range(rows))
    response = _upload(client, data)
    job_page = response.headers["Location"]
    job_id = int(job_page.rsplit("/", 1)[1])
    assert _job(app, job_id).state in (ImportState.CHECKING, ImportState.IMPORTING)
    seen: list[tuple[str, float]] = []

    def finished() -> bool:
        status = client.get(f"{job_page}/status").get_json()
        seen.append((status["state"], status["percent"]))
        return status["state"] not in WAITING

    wait_until(finished, 120, what=lambda: f"the import, still {seen[-1]}", every=0.02)
    assert seen[-1][0] == "done"
    for phase in WAITING:
        figures = [p for state, p in seen if state == phase]
        assert figures == sorted(figures)
    job = _job(app, job_id)
    assert (job.imported, job.done_rows, job.valid_rows) == (rows, rows, rows)
    assert _count(app) == rows + 4


def _runner_process(app: Flask, job_id: int) -> subprocess.Popen[bytes]:
    """Start `run_job` for a job in a separate Python process on the test's database."""
    env = {**os.environ, "DIGEST_DATABASE_URL": app.config["DATABASE_URL"],
           "DIGEST_SECRET_KEY": app.config["SECRET_KEY"], "DIGEST_INSTANCE_PATH": app.instance_path}
    code = ("import sys; from digest import create_app; from digest.core.extensions import get_db; "
            "from digest.engine.imports import run_job; app = create_app(); ctx = app.app_context(); "
            "ctx.push(); run_job(get_db(), app.config, int(sys.argv[1]))")
    return subprocess.Popen([sys.executable, "-c", code, str(job_id)], env=env,
                            cwd=Path(__file__).resolve().parents[1])


@pytest.mark.slow
def test_a_killed_runner_is_resumed_without_doubles_or_gaps(app, client) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL mid-import, then opening the job's page resumes it: every row imported exactly once."""
    _workspace(app, client)
    rows = 6000
    data = "email\n" + "".join(f"crash{n:05d}@example.org\n" for n in range(rows))
    with get_db_of(app).session() as session:
        newsletter = find_newsletter(session)
        assert newsletter is not None
        job = imports.create_job(session, newsletter, None, "crash.csv", data.encode(),
                                            ConsentSource.IMPORT, ask_to_confirm=False)
        job_id = job.id
    process = _runner_process(app, job_id)

    def under_way() -> bool:
        assert process.poll() is None, "the runner ended too early"
        return _job(app, job_id).done_rows >= 1000

    wait_until(under_way, 120, what="a thousand rows imported", every=0.01)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed = _job(app, job_id)
    assert killed.state is ImportState.IMPORTING and 0 < killed.done_rows < rows
    assert _count(app) == 4 + killed.done_rows  # the checkpoint matches what was written
    with get_db_of(app).session() as session:  # time passes: the dead runner's lease runs out
        session.execute(update(ImportJob).where(ImportJob.id == job_id).values(lease_until=None))
    assert _wait(client, f"/editor/subscribers/import/{job_id}")["state"] == "done"
    done = _job(app, job_id)
    assert (done.imported, done.done_rows) == (rows, rows)
    assert _count(app) == 4 + rows


def test_export_is_the_cli_csv_streamed(app, client, runner) -> None:  # type: ignore[no-untyped-def]
    """Any editor downloads the same CSV as `digest subscribers export --newsletter`, as an attachment."""
    _workspace(app, client, WRITER)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "alan@example.com", SuppressionReason.HARD_BOUNCE)
    _upload(client, "email\n" + "".join(f"x{n:04d}@example.org\n" for n in range(1100)), statuses="confirm")
    _wait(client, "/editor/subscribers/import/1")
    response = client.get("/editor/subscribers/export.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="weekly-model-subscribers-')
    cli = runner.invoke(args=["subscribers", "export", "--newsletter", "weekly-model"])
    downloaded = response.get_data(as_text=True)
    assert list(csv.reader(io.StringIO(downloaded))) == list(csv.reader(io.StringIO(cli.stdout)))
    assert downloaded.endswith("\r\n")  # csv's own line ends, as Excel expects
    assert len(cli.stdout.splitlines()) == 1 + 4 + 1100
    assert ",hard_bounce" in cli.stdout


def test_export_lets_others_write_between_batches(app, client) -> None:  # type: ignore[no-untyped-def]
    """On SQLite a long export holds no lock between batches: a signup can write while it streams."""
    if not app.config["DATABASE_URL"].startswith("sqlite"):
        pytest.skip("PostgreSQL readers never block writers")
    _workspace(app, client)
    _upload(client, "email\n" + "".join(f"y{n:04d}@example.org\n" for n in range(1200)))
    _wait(client, "/editor/subscribers/import/1")
    response = client.get("/editor/subscribers/export.csv", buffered=False)
    chunks = iter(response.response)
    assert next(chunks).startswith(b"email,name,")
    assert next(chunks).count(b"\n") == 500  # the first batch
    other = sqlite3.connect(app.config["DATABASE_URL"].removeprefix("sqlite:///"), timeout=0.2,
                            isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if the export held the lock
    other.execute("ROLLBACK")
    other.close()
    rest = b"".join(chunks)
    response.close()
    assert rest.count(b"\n") == 1204 - 500


@pytest.mark.parametrize("action", ["upload", "import-valid", "cancel"])
def test_import_actions_need_a_csrf_token(app, client, action: str) -> None:  # type: ignore[no-untyped-def]
    """Posts without the form's token are refused and start or change no import."""
    _workspace(app, client)
    job_page = _upload(client, BROKEN).headers["Location"]
    _wait(client, job_page)
    url = {"upload": "/editor/subscribers/import", "import-valid": f"{job_page}/import-valid",
           "cancel": f"{job_page}/cancel"}[action]
    data = {"file": (io.BytesIO(b"email\nz@example.org\n"), "z.csv"), "source": "import", "statuses": "keep"}
    response = client.post(url, data=data, content_type="multipart/form-data")
    assert response.status_code == 400 and "This form has expired" in response.get_data(as_text=True)
    assert _job(app, 1).state is ImportState.CHECKED
    with get_db_of(app).session() as session:
        assert session.scalar(select(func.count()).select_from(ImportJob)) == 1


def test_downloads_neutralise_formulas(app, client) -> None:  # type: ignore[no-untyped-def]
    """The export and the import's problems file never hand a spreadsheet a formula: a cell
    starting with = + - @ (a name, an address, a problem quoting one) starts with ' instead."""
    _workspace(app, client)
    upload = ('email,name\nformula@example.org,"=HYPERLINK(""https://evil.example"",""x"")"\n'
              "-2+3@example.org,@SUM(1+1)\n-2+3@example.org,Twice\n")
    job_page = _upload(client, upload, statuses="confirm").headers["Location"]
    assert _wait(client, job_page)["state"] == "checked"
    problems = list(csv.reader(io.StringIO(client.get(f"{job_page}/problems.csv").get_data(as_text=True))))
    assert problems[1] == ["4", "'-2+3@example.org appears already on line 3"]
    assert _post(client, job_page, f"{job_page}/import-valid").status_code == 302
    assert _wait(client, job_page)["state"] == "done"
    exported = list(csv.reader(io.StringIO(client.get("/editor/subscribers/export.csv").get_data(as_text=True))))
    cells = [cell for row in exported for cell in row]
    assert not [cell for cell in cells if cell.startswith(("=", "+", "-", "@", "\t", "\r"))]
    assert ["formula@example.org", "'=HYPERLINK(\"https://evil.example\",\"x\")"] in [row[:2] for row in exported]
    assert ["'-2+3@example.org", "'@SUM(1+1)"] in [row[:2] for row in exported]
