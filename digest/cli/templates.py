"""`digest templates`: the email lint over every template, and its support data refreshed.

`check` renders each email of the templates folder with sample content (and an issue,
with --issue) and prints every problem as TEMPLATE:LINE: MESSAGE, exiting 1 when there is
one; by default it also checks the operator's overrides in INSTANCE/templates (every one
compiles, and each email keeps its unsubscribe link, postal address, the text part's
essentials and the size guard). `update-caniemail SOURCE` rewrites the packaged support data (digest/mail/caniemail.json)
from caniemail's published data.json (a URL or a file) or from a checkout of
github.com/hteumeuleu/caniemail (its _features/*.md; needs PyYAML, in the dev extra).
"""

from __future__ import annotations

import json
import re
import urllib.request
from pathlib import Path
from typing import Any

import click
from flask import current_app
from flask.cli import AppGroup
from sqlalchemy.exc import NoResultFound

from digest.core.extensions import db_session
from digest.domain.email_check import check_issue, check_overrides, check_templates
from digest.mail.lint import DATA, trim_caniemail

group = AppGroup("templates", help="The email templates: lint them, refresh the lint's data.")
PUBLISHED = "https://www.caniemail.com/api/data.json"


@group.command("check")
@click.option(
    "--folder",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="A templates folder holding emails/ (default: the packaged templates under the "
    "operator's overrides in INSTANCE/templates, which must also keep every email's essentials).",
)
@click.option("--issue", "issue_id", type=int, metavar="ID", help="Lint this issue's email too.")
def check_command(folder: Path | None, issue_id: int | None) -> None:
    """Lint every email template (and an issue) against caniemail's data and the layout rules."""
    found = [str(located) for located in check_templates(current_app.config, folder)]
    if folder is None:
        found.extend(str(located) for located in check_overrides(current_app.config))
    if issue_id is not None:
        try:
            problems = check_issue(db_session(), issue_id, current_app.config)
        except NoResultFound:
            raise click.ClickException(f"There is no issue {issue_id}; see `digest issue list`.")
        found.extend(f"issue {issue_id}:{p.line}: {p.message}" for p in problems)
    for line in found:
        click.echo(line)
    if found:
        click.echo(f"{len(found)} problem(s).", err=True)
        click.get_current_context().exit(1)
    click.echo("Every email holds in the targeted clients.", err=True)


@group.command("update-caniemail")
@click.argument("source", default=PUBLISHED, metavar="[URL|FILE|CHECKOUT]")
@click.option(
    "--label", help="What to record as the data's source (default: SOURCE), e.g. a commit."
)
@click.option(
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DATA,
    show_default=True,
    help="Where to write the trimmed data.",
)
def update_command(source: str, label: str | None, output: Path) -> None:
    """Rewrite the lint's support data from caniemail (default: its published data.json)."""
    try:
        published = _published(source)
        trimmed = trim_caniemail(published, label or source)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise click.ClickException(f"Could not read caniemail's data from {source}: {exc}")
    output.write_text(_one_feature_a_line(trimmed), encoding="utf-8")
    click.echo(
        f"{len(trimmed['features'])} features, caniemail data of "
        f"{trimmed['last_update_date']}, written to {output}."
    )


def _one_feature_a_line(data: dict[str, Any]) -> str:
    # Compact, yet a refresh shows in a diff as the features that changed.
    head = {key: value for key, value in data.items() if key != "features"}
    lines = [f" {json.dumps(key)}: {json.dumps(value)}," for key, value in head.items()]
    features = [f"  {json.dumps(slug)}: {json.dumps(f)}" for slug, f in data["features"].items()]
    return "{\n" + "\n".join(lines) + '\n "features": {\n' + ",\n".join(features) + "\n }\n}\n"


def _published(source: str) -> dict[str, Any]:
    if re.match(r"https?://", source):
        with urllib.request.urlopen(source, timeout=30) as response:  # noqa: S310 (http/https only)
            data: dict[str, Any] = json.load(response)
            return data
    path = Path(source)
    if path.is_dir():
        return _from_checkout(path)
    data = json.loads(path.read_text(encoding="utf-8"))
    return data


def _from_checkout(folder: Path) -> dict[str, Any]:
    # The site builds data.json from each feature's front matter (YAML with tabs, which
    # Jekyll's parser accepts and PyYAML does not).
    import yaml  # only this path needs it

    features = []
    for path in sorted((folder / "_features").glob("*.md")):
        if path.stem.startswith("_"):
            continue
        front = re.split(r"^---[ \t]*$", path.read_text(encoding="utf-8"), maxsplit=2, flags=re.M)
        feature = yaml.safe_load(front[1].replace("\t", "  "))
        feature["slug"] = path.stem
        features.append(feature)
    nicenames = yaml.safe_load((folder / "_data" / "nicenames.yml").read_text(encoding="utf-8"))
    dates = [str(f.get("last_test_date", "")) for f in features]
    return {
        "api_version": "checkout",
        "last_update_date": max(dates),
        "nicenames": nicenames,
        "data": features,
    }


COMMANDS = (group,)
