"""`digest doctor`: check the installation and print what to fix (exit 1 if anything must be)."""

from __future__ import annotations

from collections.abc import Callable

import click
from flask import Flask

from digest.core.config import ConfigError

MARKS = {"ok": "ok  ", "warn": "warn", "FAIL": "FAIL"}


def doctor_command(create_app: Callable[[], Flask]) -> click.Command:
    """Return the doctor command, which builds its app itself (so it reports bad settings)."""

    @click.command("doctor")
    @click.option("--nameserver", metavar="IP[:PORT]",
                  help="Ask this DNS server for the DKIM record (default: the system's resolver).")
    def doctor(nameserver: str | None) -> None:
        """Check settings, permissions, database, migrations, SMTP login, DKIM record, base URL."""
        _doctor(create_app, nameserver)

    return doctor


def _doctor(create_app: Callable[[], Flask], nameserver: str | None) -> None:
    from digest.core.extensions import get_db
    from digest.engine.doctor import FAIL, checks

    try:
        app = create_app()
    except ConfigError as exc:
        click.echo(f"FAIL settings: {exc}")
        click.echo("     fix: correct it in the environment file (config/example.env documents every variable)")
        raise SystemExit(1) from None
    with app.app_context():
        database = get_db()
        try:
            findings = checks(app.config, database, nameserver)
        finally:
            database.dispose()
    for finding in findings:
        click.echo(f"{MARKS[finding.level]} {finding.check}: {finding.detail}")
        if finding.fix:
            click.echo(f"     fix: {finding.fix}")
    failed = sum(1 for f in findings if f.level == FAIL)
    if failed:
        click.echo(f"{failed} problem{'s' if failed > 1 else ''} to fix.")
        raise SystemExit(1)
    click.echo("Nothing needs fixing.")
