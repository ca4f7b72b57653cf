"""`digest sources`: the feeds a newsletter reads into its inbox (add, list, remove, fetch)."""

from __future__ import annotations

import datetime as dt

import click
from flask.cli import AppGroup

from digest.core.extensions import current_app_object, db_session
from digest.core.models import Newsletter
from digest.core.validation import Invalid
from digest.domain import sources
from digest.domain.newsletters import find_newsletter
from digest.engine import feeds

group = AppGroup("sources", help="Feeds (RSS, Atom, JSON Feed) read into the inbox.")
NEWSLETTER = click.option("--newsletter", default=None,
                          help="Slug of the newsletter (default: the only one).")


def _newsletter(slug: str | None) -> Newsletter:
    found = find_newsletter(db_session(), slug)
    if found is None:
        raise click.ClickException(
            f"there is no newsletter {slug!r}" if slug else "there is no newsletter yet")
    return found


def _when(moment: dt.datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "never"


@group.command("add")
@click.argument("url")
@click.option("--section", "section", required=True, help="Slug of the section it feeds.")
@NEWSLETTER
def add_command(url: str, section: str, newsletter: str | None) -> None:
    """Add the feed at URL as a source for a section; the clock reads it at once."""
    session = db_session()
    try:
        source = sources.add_source(session, _newsletter(newsletter), url, section)
    except Invalid as exc:
        raise click.ClickException(" ".join(exc.errors.values())) from None
    session.commit()
    click.echo(f"Source {source.id}: {source.url} → section {source.section.slug}.")


@group.command("list")
@NEWSLETTER
def list_command(newsletter: str | None) -> None:
    """List sources: id, section, URL, last fetch, next try and the last error."""
    for source in sources.list_sources(db_session(), _newsletter(newsletter)):
        health = f"error: {source.last_error}" if source.last_error else "ok"
        click.echo(f"{source.id}\t{source.section.slug}\t{source.url}\tlast fetch "
                   f"{_when(source.last_fetch_at)}\tnext {_when(source.next_fetch_at)}\t{health}")


@group.command("remove")
@click.argument("source_id", type=int)
def remove_command(source_id: int) -> None:
    """Remove source SOURCE_ID (the items it brought stay in the inbox)."""
    session = db_session()
    source = sources.get_source(session, source_id)
    if source is None:
        raise click.ClickException(f"there is no source {source_id} (see `digest sources list`)")
    url = source.url
    sources.remove_source(session, source)
    session.commit()
    click.echo(f"Source {source_id} ({url}) is removed.")


@group.command("fetch")
def fetch_command() -> None:
    """Fetch every source now, whether due or not, and say what each gave."""
    db_session().commit()
    report = feeds.fetch_sources(current_app_object(), every=True)
    for source_id, count in report.added.items():
        click.echo(f"Source {source_id}: {count} new {'item' if count == 1 else 'items'}.")
    for source_id in report.unchanged:
        click.echo(f"Source {source_id}: not changed since the last fetch.")
    for source_id, error in report.failed.items():
        click.echo(f"Source {source_id}: {error}", err=True)
    if report.failed:
        raise SystemExit(1)


COMMANDS = (group,)
