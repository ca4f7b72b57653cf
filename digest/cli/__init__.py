"""The `digest` commands, one module per group; `register` adds them all to an app's CLI.

Every job the service runs is also a command. The entry point that loads the app is
`digest.__main__`; these modules only define commands and run inside its app context.
"""

from __future__ import annotations

from flask import Flask

from digest.cli import (
    api_tokens,
    bounces,
    editors,
    issues,
    processes,
    setup,
    sources,
    subscribers,
    templates,
    webhooks,
)


def register(app: Flask) -> None:
    """Add every command group to app's CLI."""
    for module in (
        processes, setup, issues, editors, subscribers, bounces, api_tokens, templates,
        webhooks, sources,
    ):
        for command in module.COMMANDS:
            app.cli.add_command(command)
