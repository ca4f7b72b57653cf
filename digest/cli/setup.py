"""`digest db`, `digest demo`, `digest dkim`: setting an installation up."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext

from digest.core.extensions import get_db

db_group = AppGroup("db", help="Database schema.")


@db_group.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations (to the latest revision by default)."""
    from digest.core.db import upgrade

    database = get_db()
    upgrade(database, revision)
    click.echo(f"Database at {database.engine.url.render_as_string(hide_password=True)} is up to date.")


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Load the demo newsletter, its posts, a draft issue and a few readers."""
    from digest.core.extensions import db_session
    from digest.domain.demo import ensure_demo_admin, load_demo, load_demo_history

    session = db_session()
    newsletter = load_demo(session)
    if newsletter is None:
        click.echo("The demo newsletter is already loaded.")
    else:
        load_demo_history(session, newsletter)
        click.echo(f"Loaded the demo newsletter {newsletter.name!r}.")
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
