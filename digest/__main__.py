"""Entry point of the `digest` command: the Flask CLI of this app (`python -m digest` too)."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, routes_command, shell_command

from digest import create_app
from digest.cli.doctor import doctor_command
from digest.core.config import ConfigError


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """digest: a self-hosted newsletter for a weekly digest."""


main.add_command(shell_command)
main.add_command(routes_command)
# Not an app command: it must run, and report, when the settings do not load.
main.add_command(doctor_command(create_app))

if __name__ == "__main__":
    main()
