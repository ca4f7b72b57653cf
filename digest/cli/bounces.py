"""`digest bounces ingest`: one returned email (bounce, complaint, mailto unsubscribe) in.

The mail server pipes each message sent to bounces+…@ or unsubscribe+…@ the mail
domain into this command (see the README). Exit codes follow sysexits.h, which MTAs
read: 0 when the message was handled or deliberately ignored (a forged or unrelated
message is consumed, never retried), 75 (EX_TEMPFAIL) when the database could not
record it, so the mail server keeps the message and tries again later.
"""

from __future__ import annotations

from typing import BinaryIO

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import DBAPIError

from digest.core.extensions import db_session
from digest.domain.bounces import MAX_MESSAGE_BYTES, ingest
from digest.domain.subscribers.actions import ReaderActions

group = AppGroup("bounces", help="Mail that comes back: bounces, complaints, mailto unsubscribes.")
EX_TEMPFAIL = 75


@group.command("ingest")
@click.argument("source", type=click.File("rb"), default="-", metavar="[FILE|-]")
@click.option(
    "--recipient",
    metavar="ADDRESS",
    help="The envelope recipient the mail server delivered the message to (Postfix: "
    "${original_recipient} in pipe(8), $ORIGINAL_RECIPIENT in an alias). Without it the "
    "Delivered-To, X-Original-To and To headers are read.",
)
def ingest_command(source: BinaryIO, recipient: str | None) -> None:
    """Read one bounce, complaint or unsubscribe email from FILE (default: stdin) and act on it."""
    raw = source.read(MAX_MESSAGE_BYTES + 1)
    if len(raw) > MAX_MESSAGE_BYTES:
        while source.read(1 << 16):  # take the rest, so the mail server sees it consumed
            pass
        click.echo(f"Ignored: the message is larger than {MAX_MESSAGE_BYTES // 1024 // 1024} MB.")
        return
    if not raw.strip():
        click.echo(
            "Ignored: the input is empty (give one email message as a file, or pipe it in with -)."
        )
        return
    config = current_app.config
    session = db_session()
    try:
        outcome = ingest(session, config, raw, ReaderActions(config), recipient or None)
        session.commit()
    except DBAPIError as exc:
        session.rollback()
        click.echo(
            "The database could not record this message, so nothing changed; exiting with 75 "
            f"so the mail server tries again later. ({exc.orig})",
            err=True,
        )
        click.get_current_context().exit(EX_TEMPFAIL)
    click.echo(outcome.message)

COMMANDS = (group,)
