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
    from digest.demo import ensure_demo_admin, load_demo, load_demo_history
    from digest.extensions import db_session

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


def init_app(app: Flask) -> None:
    """Add every command to the app's CLI."""
    from digest import cli_api_tokens, cli_bounces, cli_subscribers

    for command in (db, run, demo, issue, dkim, cli_subscribers.group):
        app.cli.add_command(command)
    app.cli.add_command(editor_group)
    app.cli.add_command(cli_bounces.group)
    app.cli.add_command(cli_api_tokens.group)


editor_group = AppGroup("editor", help="Editor accounts.")


def _read_password(password_stdin: bool) -> str:
    import sys

    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@editor_group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "editor"]), default="editor", show_default=True)
@click.option("--name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@with_appcontext
def editor_create(email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create an editor who can log in at /editor/login."""
    from digest.editors import EditorError, create_editor
    from digest.extensions import db_session
    from digest.models import EditorRole

    session = db_session()
    try:
        editor = create_editor(session, email, _read_password(password_stdin), EditorRole(role), name=name)
    except EditorError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(f"Created {editor.role.value} {editor.email}; log in at {current_app.config['BASE_URL']}/editor/login")


@editor_group.command("list")
@with_appcontext
def editor_list() -> None:
    """List editors: address, role, status, last login."""
    from digest.editors import list_editors
    from digest.extensions import db_session

    for editor in list_editors(db_session()):
        last = editor.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if editor.last_login_at else "never"
        status = "active" if editor.active else "deactivated"
        click.echo(f"{editor.email}\t{editor.role.value}\t{status}\tlast login {last}")


def _change_editor(email: str, change) -> None:  # type: ignore[no-untyped-def]
    from digest.editors import EditorError, find_editor
    from digest.extensions import db_session

    session = db_session()
    editor = find_editor(session, email)
    if editor is None:
        raise click.ClickException(f"no editor has the address {email}")
    try:
        message = change(session, editor)
    except EditorError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(message)


@editor_group.command("deactivate")
@click.argument("email")
@with_appcontext
def editor_deactivate(email: str) -> None:
    """Stop an editor from logging in (ends their sessions); never the last admin."""
    from digest.editors import set_active

    _change_editor(email, lambda s, e: set_active(s, e, False) and f"{e.email} is deactivated.")


@editor_group.command("activate")
@click.argument("email")
@with_appcontext
def editor_activate(email: str) -> None:
    """Let a deactivated editor log in again."""
    from digest.editors import set_active

    _change_editor(email, lambda s, e: set_active(s, e, True) and f"{e.email} is active.")


@editor_group.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@with_appcontext
def editor_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for an editor."""
    from digest.editors import set_password

    password = _read_password(password_stdin)
    _change_editor(email, lambda s, e: set_password(s, e, password) and f"{e.email} has a new password.")


issue = AppGroup("issue", help="Issues: render, send and watch.")


@issue.command("render")
@click.argument("issue_id", type=int)
@click.option("--to", "address", required=True, help="The reader (or any address) to render for.")
def issue_render(issue_id: int, address: str) -> None:
    """Write the exact bytes ADDRESS would receive for issue ISSUE_ID to stdout."""
    from digest.extensions import db_session
    from digest.mail.render import preview_for_address

    try:
        preview = preview_for_address(
            db_session(), issue_id, address, current_app._get_current_object()  # type: ignore[attr-defined]
        )
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    outgoing = preview.outgoing
    click.echo(f"MAIL FROM:<{outgoing.envelope_from}> RCPT TO:<{outgoing.recipient}>", err=True)
    for note in preview.notes:
        click.echo(note, err=True)
    click.echo(outgoing.data, nl=False)  # bytes go to the binary stream untouched


dkim = AppGroup("dkim", help="DKIM signing.")


@dkim.command("record")
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
