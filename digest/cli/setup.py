"""`digest db`, `digest demo`, `digest dkim`: setting an installation up."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from digest.core.extensions import get_db

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from digest.core.db import Database

db_group = AppGroup("db", help="Database schema.")


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations (to the latest revision by default)."""
    from digest.core.db import SchemaTooNew, current_revisions, upgrade

    database = get_db()
    before = current_revisions(database)
    try:
        upgrade(database, revision)
    except SchemaTooNew as exc:
        raise click.ClickException(str(exc)) from None
    after = current_revisions(database)
    where = _where(database)
    if not before and after:
        click.echo(f"Created the schema in the new database at {where} (revision {', '.join(sorted(after))}).")
    elif before != after:
        click.echo(
            f"Upgraded the database at {where} from revision {', '.join(sorted(before))} "
            f"to {', '.join(sorted(after)) or 'none'}; it is up to date."
        )
    else:
        click.echo(f"Database at {where} is already up to date.")


@db_group.command("backup")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
def db_backup(file: Path) -> None:
    """Write a consistent backup of the database to FILE, also while the service sends."""
    from digest.core.backup import BackupError, backup

    database = get_db()
    with click.progressbar(length=1, label="Backing up", show_percent=True, file=sys.stderr) as bar:
        try:
            backup(database, file, progress=_advance(bar))
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Backed up {_where(database)} to {file} ({file.stat().st_size:,} bytes).")


@db_group.command("restore")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--replace", is_flag=True, help="Replace a database that already holds data.")
def db_restore(file: Path, replace: bool) -> None:
    """Load the backup FILE into the configured database (stop the service first)."""
    from digest.core.backup import BackupError, restore

    database = get_db()
    with click.progressbar(length=1, label="Restoring", show_percent=True, file=sys.stderr) as bar:
        try:
            restore(database, file, replace=replace, progress=_advance(bar))
        except BackupError as exc:
            raise click.ClickException(str(exc)) from None
    click.echo(f"Restored {file} into {_where(database)}; run `digest db upgrade` if this "
               "version of digest is newer than the backup.")


def _where(database: Database) -> str:
    return database.engine.url.render_as_string(hide_password=True)


def _advance(bar: ProgressBar[int]) -> Callable[[int, int], None]:
    def advance(done: int, total: int) -> None:
        bar.length = total
        bar.update(done - bar.pos)

    return advance


@click.command("demo")
@click.option("--language", default=None, metavar="CODE",
              help="The language readers of the demo read (de, fr, …; default: English).")
@with_appcontext
def demo(language: str | None) -> None:
    """Load the demo newsletter, its posts and pictures, a draft issue and a few readers."""
    from digest.core.extensions import db_session
    from digest.core.storage import app_storage
    from digest.domain.demo import (
        DEMO_SLUG,
        ensure_demo_admin,
        load_demo,
        load_demo_history,
        load_demo_images,
    )
    from digest.domain.newsletters import (
        available_languages,
        check_language,
        find_newsletter,
        set_language,
    )
    from digest.mail.language import SOURCE_LANGUAGE

    known = available_languages(current_app.config)
    problem = check_language(language, known) if language is not None else None
    if problem:
        raise click.ClickException(problem)  # one line: "Error: xx is not a language …"
    session = db_session()
    newsletter = load_demo(session, language=language or SOURCE_LANGUAGE)
    if newsletter is None:
        click.echo("The demo newsletter is already loaded.")
        existing = find_newsletter(session, DEMO_SLUG)
        if language is not None and existing is not None and existing.language != language:
            set_language(session, existing, language, known)
            click.echo(f"Its readers now read {known[language].english_name}.")
    else:
        load_demo_history(session, current_app.config, newsletter)
        pictures = load_demo_images(session, current_app.config, app_storage(), newsletter)
        click.echo(f"Loaded the demo newsletter {newsletter.name!r} with {len(pictures)} pictures.")
    admin, password = ensure_demo_admin(session)
    session.commit()
    login = f"{current_app.config['BASE_URL']}/editor/login"
    if password:
        click.echo(f"Editor login: {login} as {admin.email} with the password {password}")
        click.echo("(shown once; change it under your account, or run `digest editor reset-password`)")
    else:
        click.echo(f"Editor login: {login} as {admin.email} (password shown when it was created)")


dkim_group = AppGroup("dkim", help="DKIM signing.")


@dkim_group.command("record")
@with_appcontext
def dkim_record() -> None:
    """Print the DNS TXT record to publish for the configured DKIM key."""
    from digest.mail.dkim import signer_from_config

    signer = signer_from_config(current_app.config)
    if signer is None:
        raise click.ClickException(
            "DKIM is not configured: set DIGEST_DKIM_DOMAIN, DIGEST_DKIM_SELECTOR and "
            "DIGEST_DKIM_KEY_FILE."
        )
    click.echo(f"{signer.record_name}. IN TXT {signer.dns_record_quoted()}")


COMMANDS = (db_group, demo, dkim_group)
