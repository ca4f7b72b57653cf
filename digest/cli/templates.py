"""`digest templates`: the email lint over every template, and its support data refreshed.

`check` renders each email of the templates folder with sample content (and an issue,
with --issue) and prints every problem as TEMPLATE:LINE: MESSAGE, exiting 1 when there is
one; by default it also checks the operator's overrides in INSTANCE/templates (every one
compiles, each email keeps its unsubscribe link, postal address, the text part's
essentials and the size guard, each reader email its confirmation or preferences link and
its text part, and each reader or archive page renders from the demo data, on a scratch
database, those shown after a form with their view's context, keeping each packaged form
with its CSRF field, hidden fields and submit button). `update-caniemail SOURCE` rewrites the packaged support data (digest/mail/caniemail.json)
from caniemail's published data.json (a URL or a file) or from a checkout of
github.com/hteumeuleu/caniemail (its _features/*.md; needs PyYAML, in the dev extra).
"""

from __future__ import annotations

import html
import json
import re
import tempfile
import traceback
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app, render_template
from flask.cli import AppGroup
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import NoResultFound
from sqlalchemy.orm import Session

from digest.core.db import Base, Database, utcnow
from digest.core.extensions import current_app_object, db_session
from digest.core.models import Newsletter, Post, Subscription, SubscriptionStatus
from digest.core.resources import overrides_dir, resource_dir
from digest.core.tokens import CONFIRM_MAX_AGE
from digest.domain import demo, links
from digest.domain.email_check import check_issue, check_overrides, check_templates
from digest.domain.subscribers import signup
from digest.domain.subscribers.signup import ConfirmResult
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
        found.extend(_page_problems())
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


# The reader pages and the archive, each rendered from the demo data by one request.
_PAGES = ("public/index.html", "archive/index.html", "archive/issue.html", "archive/post.html",
          "public/preferences.html", "public/unsubscribe.html", "public/delete.html",
          "public/confirm.html", "public/link_error.html", "error.html")
_FORM = re.compile(r"<form\b[^>]*>.*?</form>", re.IGNORECASE | re.DOTALL)
_POST = re.compile(r"""method\s*=\s*["']?post""", re.IGNORECASE)
_ACTION = re.compile(r"""<form\b[^>]*\baction\s*=\s*["']([^"']*)""", re.IGNORECASE)
_HIDDEN = re.compile(r"""<input\b(?=[^>]*\btype\s*=\s*["']?hidden)[^>]*\bname\s*=\s*["']([^"']+)["'][^>]*>""",
                     re.IGNORECASE)
_VALUE = re.compile(r"""\bvalue\s*=\s*["']([^"']*)""", re.IGNORECASE)
_SUBMIT = re.compile(r"""<button\b(?![^>]*\btype\s*=\s*["']?(?:button|reset)\b)|<input\b[^>]*\btype\s*=\s*["']?submit""",
                     re.IGNORECASE)


@dataclass(frozen=True)
class _Shown:
    """One way a reader sees a page template: how to get it and what to call it."""

    template: str
    label: str  # "the page PATH", or what the reader did to be shown it
    html: Callable[[], str]


def _page_problems() -> list[str]:
    """Render each reader page and archive page from the demo data, with the operator's page
    overrides and without; return `FILE:LINE: problem` for an override that fails to render
    or loses a form of the packaged page, its CSRF field, hidden fields or submit button."""
    overrides = overrides_dir(current_app.config)
    if not any((overrides / folder).is_dir() for folder in ("public", "archive")) and not (
            overrides / "base.html").is_file():
        return []
    found: list[str] = []
    told: set[tuple[Path, str]] = set()  # a form lost is told once, at the first page showing it
    with _on_demo_data() as shown:
        app = current_app_object()
        for one in shown:
            app.jinja_loader = _loader(resource_dir("templates"))
            app.jinja_env.cache.clear()  # type: ignore[union-attr]
            packaged = _forms(one.html())
            app.jinja_loader = _loader(overrides, resource_dir("templates"))
            app.jinja_env.cache.clear()  # type: ignore[union-attr]
            try:
                page = one.html()
            except Exception as exc:  # any error in an operator's template is reported, not raised
                where, line = _template_frame(exc, overrides) or (str(overrides / one.template), 1)
                found.append(f"{where}:{line}: {one.label} does not render: {type(exc).__name__}: {exc}")
                continue
            source = overrides / one.template
            for problem in _lost(packaged, _forms(page)) if source.is_file() else []:
                if (source, problem) not in told:
                    told.add((source, problem))
                    found.append(f"{source}:{_form_line(source)}: {one.label} {problem}")
    return found


def _loader(*folders: Path) -> Any:
    from jinja2 import FileSystemLoader

    return FileSystemLoader([str(folder) for folder in folders])


# A form's purpose: where it posts and the hidden "action" naming what it does there.
_Purpose = tuple[str, str]


@dataclass(frozen=True)
class _Form:
    """What a POST form of a page carries."""

    hidden: frozenset[str]  # names of its hidden fields, the CSRF field among them
    submit: bool


def _forms(page: str) -> dict[_Purpose, _Form]:
    """Return each POST form of a page by its purpose."""
    forms = {}
    for form in _FORM.findall(page):
        if not _POST.search(form):
            continue
        action = _ACTION.search(form)
        hidden = {match[1]: _VALUE.search(match[0]) for match in _HIDDEN.finditer(form)}
        named = hidden.get("action")
        purpose = (html.unescape(action[1]) if action else "", named[1] if named else "")
        forms[purpose] = _Form(frozenset(hidden), bool(_SUBMIT.search(form)))
    return forms


def _lost(packaged: dict[_Purpose, _Form], override: dict[_Purpose, _Form]) -> list[str]:
    """Say what each packaged form lacks in the override's page."""
    problems = []
    for (action, named), form in packaged.items():
        what = f"the form posting to {action}" + (f" (action {named})" if named else "")
        mine = override.get((action, named))
        if mine is None:
            problems.append(f"drops {what}")
            continue
        if "csrf_token" in form.hidden and "csrf_token" not in mine.hidden:
            problems.append(f"drops the CSRF field of {what}")
        missing = sorted(form.hidden - mine.hidden - {"csrf_token"})
        if missing:
            problems.append(f"drops the hidden field(s) {', '.join(missing)} of {what}")
        if form.submit and not mine.submit:
            problems.append(f"drops the submit button of {what}")
    return problems


def _form_line(source: Path) -> int:
    lines = source.read_text(encoding="utf-8").splitlines()
    return next((n for n, text in enumerate(lines, 1) if "<form" in text), 1)


def _template_frame(exc: BaseException, overrides: Path) -> tuple[str, int] | None:
    # Jinja rewrites tracebacks so a template's frame names its file and line.
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.startswith(str(overrides)) and frame.lineno:
            return frame.filename, frame.lineno
    return None


@contextmanager
def _on_demo_data() -> Iterator[list[_Shown]]:
    """Point this app at a scratch SQLite database holding the demo (never the real data)
    for as long as the block runs; yield every way a reader sees a page template."""
    app = current_app_object()
    saved = app.extensions["digest.db"], app.config["PROPAGATE_EXCEPTIONS"], app.jinja_loader
    with tempfile.TemporaryDirectory() as scratch:
        database = Database(f"sqlite:///{scratch}/pages.sqlite3")
        app.extensions["digest.db"] = database
        app.config["PROPAGATE_EXCEPTIONS"] = True  # an error names its template and line
        try:
            with app.app_context():  # the pages' requests share it: their own g, this database
                Base.metadata.create_all(database.engine)
                with database.session() as session:
                    paths = _demo_paths(session, app.config)
                yield [*_requested(app, paths), *_posted(app)]
        finally:
            app.extensions["digest.db"], app.config["PROPAGATE_EXCEPTIONS"], app.jinja_loader = saved
            app.jinja_env.cache.clear()  # type: ignore[union-attr]
            database.dispose()


def _demo_paths(session: Session, config: Mapping[str, Any]) -> dict[str, str]:
    newsletter = demo.load_demo(session)
    assert newsletter is not None  # the scratch database is empty
    sent = demo.load_demo_history(session, config, newsletter)
    post = session.scalars(select(Post).where(Post.newsletter_id == newsletter.id)).first()
    readers = list(session.scalars(select(Subscription).order_by(Subscription.id)))
    uid, pending = readers[0].uid, readers[-1]
    # One reader has signed up and not confirmed yet: the Confirm page shows its button.
    pending.status, pending.confirmed_at = SubscriptionStatus.PENDING, None
    pending.consents[-1].confirmed_at = None
    session.flush()
    assert sent is not None and post is not None
    base = config["BASE_URL"]
    preferences = links.preferences_url(config, uid).removeprefix(base)
    return dict(zip(_PAGES, (
        "/", f"/archive/{newsletter.slug}/", f"/archive/{newsletter.slug}/{sent.slug}",
        links.post_url(config, newsletter.slug, post.slug).removeprefix(base), preferences,
        links.unsubscribe_url(config, uid).removeprefix(base), preferences + "/delete",
        links.confirm_url(config, pending.uid, pending.consents[-1].id).removeprefix(base),
        "/preferences/not-a-link-we-sent", "/archive/no-such-newsletter/",
    ), strict=True))


def _requested(app: Flask, paths: dict[str, str]) -> list[_Shown]:
    client = app.test_client()
    return [_Shown(template, f"the page {path}", partial(_get, client, path))
            for template, path in paths.items()]


def _get(client: FlaskClient, path: str) -> str:
    return client.get(path).get_data(as_text=True)


def _posted(app: Flask) -> list[_Shown]:
    """Return the pages a reader sees only after sending a form (or being refused), each
    rendered with the context its view in digest/web/public.py gives it."""
    session = db_session()
    newsletter = session.scalars(select(Newsletter).order_by(Newsletter.id)).one()
    readers = list(session.scalars(select(Subscription).order_by(Subscription.id)
                                   .where(Subscription.newsletter_id == newsletter.id)))
    config, reader, gone, paused = app.config, readers[0], readers[1], readers[2]
    # One reader has just unsubscribed (the unsubscribe page then offers to resubscribe) and
    # one paused, each as the preferences page shows them after that button.
    gone.status = SubscriptionStatus.UNSUBSCRIBED
    paused.status, paused.paused_at = SubscriptionStatus.PAUSED, utcnow()
    session.commit()  # the scratch database: no write stays open while the pages are read
    after = {"pause": paused, "unsubscribe": gone}
    uid = reader.uid
    unsubscribe = links.unsubscribe_url(config, gone.uid).removeprefix(config["BASE_URL"])
    preferences = links.preferences_url(config, uid).removeprefix(config["BASE_URL"])
    confirm = links.confirm_url(config, uid, reader.consents[-1].id).removeprefix(config["BASE_URL"])
    token = confirm.rsplit("/", 1)[-1]
    common = {"newsletter": newsletter, "preferences_url": links.preferences_url(config, uid)}
    shown: list[tuple[str, str, str, dict[str, Any]]] = [
        ("public/check_inbox.html", "/subscribe", "", {"newsletter": newsletter}),
        ("public/too_many.html", preferences, "refused for too many requests", {}),
        ("public/unsubscribe_bad_request.html", unsubscribe, "without List-Unsubscribe=One-Click", {}),
        ("public/confirm_expired.html", confirm, "with an expired link",
         {"token": token, "expires_days": CONFIRM_MAX_AGE // 86400}),
        ("public/deleted.html", preferences + "/delete", "", {"newsletter_name": newsletter.name}),
        ("public/unsubscribe.html", unsubscribe, "", {
            "subscription": gone, "token": unsubscribe.rsplit("/", 1)[-1], "newsletter": newsletter,
            "consent_text": signup.consent_text(config, newsletter), "just_now": True, "offer_resubscribe": True,
            "preferences_url": links.preferences_url(config, gone.uid)}),
        ("public/link_error.html", preferences, "with the link of an erased reader", {"gone": True}),
    ]
    shown += [("public/confirmed.html", confirm, f"({result})", {**common, "result": result.value})
              for result in ConfirmResult]
    shown += [("public/resubscribed.html", unsubscribe + "/resubscribe", f"({result})",
               {**common, "result": result.value}) for result in ConfirmResult]
    for notice in ("save", "pause", "resume", "unsubscribe", "resubscribe", "suppressed", "track"):
        one = after.get(notice, reader)
        path = links.preferences_url(config, one.uid).removeprefix(config["BASE_URL"])
        shown.append(("public/preferences.html", path, f"(action {notice})", {
            "subscription": one, "subscriber": one.subscriber, "newsletter": newsletter,
            "token": path.rsplit("/", 1)[-1], "notice": notice, "errors": {},
            "form": {"name": one.subscriber.name, "sections": [s.slug for s in one.sections]},
            "consent_text": signup.consent_text(config, newsletter),
            "unsubscribe_url": links.unsubscribe_url(config, one.uid)}))
    return [_Shown(template, f"the page shown after POST {path}" + (f" {how}" if how else ""),
                   partial(_render, app, path, template, context))
            for template, path, how, context in shown]


def _render(app: Flask, path: str, template: str, context: dict[str, Any]) -> str:
    with app.test_request_context(path, method="POST"):
        return render_template(template, **context)


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
