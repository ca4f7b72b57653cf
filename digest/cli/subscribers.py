"""`digest subscribers`: CSV export and import, due confirmation emails, stale signups."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup

from digest.core.extensions import db_session, get_db
from digest.core.models import ConsentSource, Newsletter
from digest.domain.newsletters import find_newsletter
from digest.domain.subscribers.csv_io import (
    BATCH,
    EXPORT_COLUMNS,
    BadFile,
    CsvText,
    ImportReport,
    ImportRow,
    RowError,
    check_rows,
    decode_lines,
    export_batches,
    import_batch,
)
from digest.domain.subscribers.privacy import purge_unconfirmed

group = AppGroup("subscribers", help="Readers in bulk: CSV export and import, pending emails.")
SHOWN_ERRORS = 50


def _newsletter(slug: str | None) -> Newsletter | None:
    if slug is None:
        return None
    newsletter = find_newsletter(db_session(), slug)
    if newsletter is None:
        raise click.ClickException(f"There is no newsletter {slug!r}.")
    return newsletter


@group.command("export")
@click.option("--newsletter", "slug", help="Only this newsletter's readers (default: all).")
def export_command(slug: str | None) -> None:
    """Write every subscription as CSV to stdout, streaming."""
    out = CsvText()
    sys.stdout.write(out.rows([EXPORT_COLUMNS]))
    session = db_session()
    for rows in export_batches(session, current_app.config, _newsletter(slug)):
        sys.stdout.write(out.rows(rows))
        session.rollback()  # end the read between batches: a running server keeps writing


def _lines(path: Path, advance: Callable[[int], Any] = lambda _n: None) -> Iterator[str]:
    with path.open("rb") as stream:
        yield from decode_lines(stream, advance)


def _check(path: Path, newsletter: Newsletter | None) -> tuple[int, list[RowError], int]:
    errors: list[RowError] = []
    counts = {"valid": 0, "invalid": 0}

    def collect(result: ImportRow | RowError) -> None:
        """Count a checked row; keep the first problems to show."""
        if isinstance(result, RowError):
            counts["invalid"] += 1
            if len(errors) < SHOWN_ERRORS:
                errors.append(result)
        else:
            counts["valid"] += 1

    with click.progressbar(
        length=path.stat().st_size, label="Checking ", file=sys.stderr
    ) as progress:
        check_rows(db_session(), _lines(path, progress.update), newsletter, collect)
    return counts["valid"], errors, counts["invalid"]


@group.command("import")
@click.argument(
    "path", metavar="FILE.csv", type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--newsletter",
    "slug",
    help="Import every row into this newsletter "
    "(default: the file's newsletter column, or the only newsletter).",
)
@click.option(
    "--source",
    type=click.Choice([s.value for s in ConsentSource]),
    default=ConsentSource.IMPORT.value,
    show_default=True,
    help="How these readers gave consent; kept in each consent record.",
)
@click.option("--skip-invalid", is_flag=True, help="Import the valid rows even if some are broken.")
def import_command(path: Path, slug: str | None, source: str, skip_invalid: bool) -> None:
    """Import readers from a CSV with a header: email, and optionally name, newsletter,
    status, created_at, confirmed_at, unsubscribed_at, sections (as `export` writes)."""
    newsletter = _newsletter(slug)
    try:
        valid, errors, invalid = _check(path, newsletter)
    except BadFile as exc:
        raise click.ClickException(f"{path}: {exc}. Nothing was imported.") from None
    stderr = sys.stderr
    for error in errors:
        click.echo(f"{path}: {error}", file=stderr)
    if invalid > len(errors):
        click.echo(f"… and {invalid - len(errors)} more rows with problems.", file=stderr)
    if invalid and not skip_invalid:
        raise click.ClickException(
            f"{invalid} row(s) have problems, so nothing was imported. Fix them, or pass "
            f"--skip-invalid to import the other {valid} row(s)."
        )
    session = db_session()
    report = ImportReport()
    batch: list[ImportRow] = []
    now = dt.datetime.now(dt.UTC)

    def flush_batch() -> None:
        """Write the rows gathered so far and commit them."""
        import_batch(session, current_app.config, batch, ConsentSource(source), report, now)
        session.commit()
        session.expunge_all()
        batch.clear()

    with click.progressbar(length=valid, label="Importing", file=stderr) as progress:

        def take(result: ImportRow | RowError) -> None:
            """Gather a valid row, writing a batch whenever one is full."""
            if isinstance(result, ImportRow):
                batch.append(result)
                progress.update(1)
                if len(batch) >= BATCH:
                    flush_batch()

        check_rows(session, _lines(path), newsletter, take)
        if batch:
            flush_batch()
    click.echo(
        f"Imported {report.imported} subscription(s); {report.existing} already there "
        f"(left unchanged); {report.suppressed} on the suppression list (skipped); "
        f"{invalid} invalid (skipped)."
    )


@group.command("send-pending")
def send_pending_command() -> None:
    """Act on waiting signups and send the confirmation and welcome emails due, now; say
    how many remain."""
    from digest.engine.transactional import deliver_transactional, still_waiting
    from digest.mail.mailer import mailer_for

    with mailer_for(current_app.config) as mailer:
        sent = deliver_transactional(get_db(), mailer, current_app.config)
    signups, mails = still_waiting(get_db())
    click.echo(f"Sent {sent} confirmation/welcome email(s).")
    click.echo(
        f"Remaining: {signups} signup(s) not yet taken, {mails} email(s) not yet sent"
        + (" (due later: retried after a failure)." if mails and not signups else ".")
    )


@group.command("purge-unconfirmed")
@click.option(
    "--days",
    default=30,
    show_default=True,
    type=click.IntRange(min=8),
    help="Age of the signups to delete.",
)
def purge_command(days: int) -> None:
    """Delete signups nobody confirmed within DAYS days (data minimisation)."""
    session = db_session()
    purged = purge_unconfirmed(session, dt.timedelta(days=days))
    session.commit()
    click.echo(f"Deleted {purged} unconfirmed signup(s) older than {days} days.")

COMMANDS = (group,)
