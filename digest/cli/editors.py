"""`digest editor …`: editor accounts."""

from __future__ import annotations

import sys
from collections.abc import Callable

import click
from flask import current_app
from flask.cli import AppGroup, with_appcontext
from sqlalchemy.orm import Session

from digest.core.models import Editor

group = AppGroup("editor", help="Editor accounts.")


def _read_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "editor"]), default="editor", show_default=True)
@click.option("--name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@with_appcontext
def editor_create(email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create an editor who can log in at /editor/login."""
    from digest.core.extensions import db_session
    from digest.core.models import EditorRole
    from digest.domain.editors import EditorError, create_editor

    session = db_session()
    try:
        editor = create_editor(session, email, _read_password(password_stdin), EditorRole(role), name=name)
    except EditorError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(f"Created {editor.role.value} {editor.email}; log in at {current_app.config['BASE_URL']}/editor/login")


@group.command("list")
@with_appcontext
def editor_list() -> None:
    """List editors: address, role, status, last login, two-factor sign-in."""
    from digest.core.extensions import db_session
    from digest.domain.editors import list_editors

    for editor in list_editors(db_session()):
        last = editor.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if editor.last_login_at else "never"
        status = "active" if editor.active else "deactivated"
        second = "on" if editor.totp_enabled_at else "off"
        click.echo(f"{editor.email}\t{editor.role.value}\t{status}\tlast login {last}\t2fa {second}")


def _change_editor(email: str, change: Callable[[Session, Editor], Editor], done: str) -> None:
    from digest.core.extensions import db_session
    from digest.domain.editors import EditorError, find_editor

    session = db_session()
    editor = find_editor(session, email)
    if editor is None:
        raise click.ClickException(f"no editor has the address {email}")
    try:
        change(session, editor)
    except EditorError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(f"{editor.email} {done}")


@group.command("deactivate")
@click.argument("email")
@with_appcontext
def editor_deactivate(email: str) -> None:
    """Stop an editor from logging in (ends their sessions); never the last admin."""
    from digest.domain.editors import set_active

    _change_editor(email, lambda s, e: set_active(s, e, False), "is deactivated.")


@group.command("activate")
@click.argument("email")
@with_appcontext
def editor_activate(email: str) -> None:
    """Let a deactivated editor log in again."""
    from digest.domain.editors import set_active

    _change_editor(email, lambda s, e: set_active(s, e, True), "is active.")


@group.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@with_appcontext
def editor_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for an editor."""
    from digest.domain.editors import set_password

    password = _read_password(password_stdin)
    _change_editor(email, lambda s, e: set_password(s, e, password), "has a new password.")



@group.command("reset-2fa")
@click.argument("email")
@with_appcontext
def editor_reset_two_factor(email: str) -> None:
    """Turn off an editor's second factor (a lost device) and end their sessions."""
    from digest.domain.editors import end_sessions
    from digest.domain.two_factor import turn_off

    _change_editor(email, lambda s, e: end_sessions(s, turn_off(s, e)),
                   "has no second factor now and is logged out everywhere; they set it up again "
                   "under their account (at once if the workspace requires it).")


COMMANDS = (group,)
