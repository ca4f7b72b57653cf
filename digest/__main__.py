"""Entry point of the `digest` command: the Flask CLI of this app (`python -m digest` too)."""

from __future__ import annotations

import sqlite3
from typing import Any

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo, routes_command, shell_command
from sqlalchemy.exc import OperationalError

from digest import create_app
from digest.cli.doctor import doctor_command
from digest.core.config import ConfigError
from digest.core.db import describe_failure
from digest.engine.liveness import read_outage


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


class _Commands(FlaskGroup):
    """The app's commands; a database that cannot be used (read-only, full, unreachable)
    ends any of them with one line naming it, not a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (OperationalError, sqlite3.OperationalError) as exc:
            app = ctx.ensure_object(ScriptInfo).load_app()
            line = describe_failure(app.config["DATABASE_URL"], exc)
            outage = read_outage(app.instance_path)
            if outage is not None:
                line += f"; {outage.describe()}"
            raise click.ClickException(line) from None


@click.group(cls=_Commands, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """digest: a self-hosted newsletter for a weekly digest."""


main.add_command(shell_command)
main.add_command(routes_command)
# Not an app command: it must run, and report, when the settings do not load.
main.add_command(doctor_command(create_app))

if __name__ == "__main__":
    main()
