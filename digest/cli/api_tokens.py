"""`digest api-token`: create, list and revoke the bearer tokens of /api/v1."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup

from digest.core.extensions import db_session
from digest.core.validation import Invalid
from digest.domain import api_tokens
from digest.domain.editors import find_editor

group = AppGroup("api-token", help="Bearer tokens for the JSON API under /api/v1.")


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


@group.command("create")
@click.argument("email")
@click.option("--name", required=True, help="What the token is for, e.g. the integration using it.")
def create_command(email: str, name: str) -> None:
    """Create a token acting as the editor EMAIL; print it once."""
    session = db_session()
    editor = find_editor(session, email)
    if editor is None:
        raise click.ClickException(f"no editor has the address {email}")
    try:
        token, secret = api_tokens.create_token(session, editor, name)
    except Invalid as exc:
        raise click.ClickException(" ".join(exc.errors.values())) from None
    session.commit()
    click.echo(secret)
    click.echo(
        f"Token {token.id} ({token.name!r}) acts as {editor.email} ({editor.role.value}). "
        "It is shown once: store it now. Send it as `Authorization: Bearer TOKEN`.",
        err=True,
    )


@group.command("list")
def list_command() -> None:
    """List tokens: id, editor, name, created, last used (never the secret)."""
    for token in api_tokens.list_tokens(db_session()):
        status = "" if token.editor.active else "\t(editor deactivated: refused)"
        click.echo(
            f"{token.id}\t{token.editor.email}\t{token.name}\tcreated {_when(token.created_at)}"
            f"\tlast used {_when(token.last_used_at)}{status}"
        )


@group.command("revoke")
@click.argument("token_id", type=int)
def revoke_command(token_id: int) -> None:
    """Revoke the token TOKEN_ID at once."""
    session = db_session()
    token = api_tokens.get_token(session, token_id)
    if token is None:
        raise click.ClickException(f"there is no token {token_id} (see `digest api-token list`)")
    api_tokens.revoke(session, token)
    session.commit()
    click.echo(f"Token {token_id} ({token.name!r}) is revoked.")

COMMANDS = (group,)
