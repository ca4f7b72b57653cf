"""The `digest` command: the Flask CLI of this app, and every job as a command."""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, routes_command, shell_command, with_appcontext

from digest.extensions import get_db


def _create_app() -> Flask:
    from digest import create_app
    from digest.config import ConfigError

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """digest: a self-hosted newsletter for a weekly digest."""


main.add_command(shell_command)
main.add_command(routes_command)

db = AppGroup("db", help="Database schema.")


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations (to the latest revision by default)."""
    from digest.db import upgrade

    database = get_db()
    upgrade(database, revision)
    click.echo(f"Database at {database.engine.url.render_as_string(hide_password=True)} is up to date.")


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run(host: str, port: int) -> None:
    """Run the web app, the scheduler and the sender in one process."""
    from waitress import serve

    from digest.db import pending_migrations

    if pending_migrations(get_db()):
        raise click.ClickException("The database is not up to date: run `digest db upgrade` first.")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    click.echo(f"digest is serving on http://{host}:{port} (Ctrl+C to stop)")
    serve(app, host=host, port=port, threads=8, ident="digest")


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Load the demo newsletter, its posts, a draft issue and a few readers."""
    from digest.demo import load_demo
    from digest.extensions import db_session

    session = db_session()
    newsletter = load_demo(session)
    if newsletter is None:
        click.echo("The demo newsletter is already loaded.")
        return
    session.commit()
    click.echo(f"Loaded the demo newsletter {newsletter.name!r}.")


def init_app(app: Flask) -> None:
    """Add every command to the app's CLI."""
    from digest import cli_subscribers

    for command in (db, run, demo, cli_subscribers.group):
        app.cli.add_command(command)
