"""Control characters never get in: every input refuses them with a clear message.

They are invisible, and XML 1.0 forbids most of them, so one in a post title made the
Atom feed unreadable (issue 10, finding 12). Multi-line fields keep tabs and line breaks.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from xml.etree import ElementTree

import feedparser
import pytest
from flask import Flask
from sqlalchemy import func, select

from digest.core.models import ApiToken, Editor, Newsletter, Post, Subscription
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import submit
from tests.support.readers import NEWSLETTER, fresh_ip, load_newsletter
from tests.support.workspace import sent_issue

POSTS = f"/api/v1/newsletters/{NEWSLETTER}/posts"
READERS = f"/api/v1/newsletters/{NEWSLETTER}/subscribers"
# Vertical tab (the audit's), escape, bell, DEL, a C1 control and a non-character.
CONTROLS = ["\x0b", "\x1b[31m", "\x07", "\x7f", "\x85", "\ufffe"]


def _count(app: Flask, model: type) -> int:
    with get_db_of(app).session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """An admin's API client on the demo newsletter."""
    load_newsletter(app)
    return ApiClient(app.test_client(), make_token(app))


def _section_id(app: Flask) -> int:
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).first()
        assert newsletter is not None
        return newsletter.sections[0].id


@pytest.mark.parametrize("control", CONTROLS)
def test_the_api_refuses_control_characters_naming_the_field(app, api, control: str) -> None:  # type: ignore[no-untyped-def]
    """Post, reader and suppression fields and searches with a control character are 422."""
    posts = _count(app, Post)
    section = _section_id(app)
    for body in ({"title": f"Tab{control}title", "section_id": section},
                 {"title": "Fine", "section_id": section, "summary": f"a{control}b"},
                 {"title": "Fine", "section_id": section, "body_md": f"**x**{control}"},
                 {"title": "Fine", "section_id": section, "link_url": f"https://x.org/{control}"}):
        response = api.post(POSTS, json=body)
        assert response.status_code == 422, body
        (field,) = response.get_json()["fields"]
        assert "must not contain control characters" in response.get_json()["fields"][field]
        assert "U+" in response.get_json()["fields"][field]
    reader = api.post(READERS, json={"email": "new@example.org", "name": f"N{control}",
                                     "consent": True})
    assert reader.status_code == 422 and "control characters" in reader.get_json()["fields"]["name"]
    search = api.get(f"{READERS}?search=a{control}")
    assert search.status_code == 422 and "control characters" in search.get_json()["fields"]["search"]
    assert _count(app, Post) == posts


def test_a_line_break_is_one_line_too_many_for_a_title(app, api) -> None:  # type: ignore[no-untyped-def]
    """Single-line fields refuse tabs and line breaks; multi-line ones keep them."""
    section = _section_id(app)
    refused = api.post(POSTS, json={"title": "Two\nlines", "section_id": section})
    assert refused.status_code == 422 and "U+000A" in refused.get_json()["fields"]["title"]
    created = api.post(POSTS, json={"title": "One line", "section_id": section,
                                    "summary": "First line\r\nsecond", "body_md": "- a\n\t- b\n"})
    assert created.status_code == 201
    assert created.get_json()["summary"] == "First line\r\nsecond"


def test_the_public_signup_refuses_a_control_character_in_a_name(app, client) -> None:  # type: ignore[no-untyped-def]
    """The JSON signup answers 400 naming the field, and nobody is added."""
    load_newsletter(app)
    before = _count(app, Subscription)
    response = client.post("/api/v1/subscribe", json={
        "email": "ctrl@example.org", "name": "Eve\x1b[2J", "consent": True, "newsletter": NEWSLETTER,
    }, environ_base={"REMOTE_ADDR": fresh_ip()})
    assert response.status_code == 400
    assert "must not contain control characters" in response.get_json()["fields"]["name"]
    assert _count(app, Subscription) == before


def test_workspace_forms_refuse_control_characters(app, client) -> None:  # type: ignore[no-untyped-def]
    """A post title or a newsletter name with one is refused with the reason."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        make_editor(session)
    log_in(client, "admin@example.com")
    posts = _count(app, Post)
    response = submit(client, "/editor/posts/new", title="Vertical\x0btab",
                      section_id=str(_section_id(app)), body_md="Body")
    assert response.status_code == 400
    assert "must not contain control characters" in response.get_data(as_text=True)
    assert _count(app, Post) == posts
    settings = submit(client, "/editor/settings", name="Weekly\x07Model", consent_text="Yes")
    assert settings.status_code == 400
    assert "Name must not contain control characters" in settings.get_data(as_text=True)


def test_the_csv_import_and_the_cli_refuse_control_characters(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An import row, an editor's name or a token name with one is refused; nothing is added."""
    load_newsletter(app)
    before = _count(app, Subscription)
    path = tmp_path / "readers.csv"
    path.write_text("email,name\nok@example.org,Ok\nbad@example.org,Bad\x0bName\n", encoding="utf-8")
    imported = runner.invoke(args=["subscribers", "import", str(path)])
    assert imported.exit_code != 0
    assert "line 3" in imported.output and "must not contain control characters" in imported.output
    assert _count(app, Subscription) == before
    editor = runner.invoke(args=["editor", "create", "ctrl@example.org", "--name", "Bell\x07",
                                 "--password-stdin"], input="long enough pw\n")
    assert editor.exit_code == 1 and "must not contain control characters" in editor.output
    editors = _count(app, Editor)
    runner.invoke(args=["editor", "create", "ok@example.org", "--password-stdin"],
                  input="long enough pw\n")
    token = runner.invoke(args=["api-token", "create", "ok@example.org", "--name", "ci\x1b"])
    assert token.exit_code == 1 and "must not contain control characters" in token.output
    assert _count(app, Editor) == editors + 1 and _count(app, ApiToken) == 0


def test_the_feed_stays_valid_xml(app, api, db) -> None:  # type: ignore[no-untyped-def]
    """After every refused attempt, a sent issue with what got in parses as strict XML and Atom."""
    section = _section_id(app)
    for control in CONTROLS:
        api.post(POSTS, json={"title": f"Title{control}", "section_id": section, "publish": True})
    created = api.post(POSTS, json={"title": "Kept", "section_id": section, "publish": True,
                                    "summary": "Two\r\nlines\tand a tab", "body_md": "*a*\n\tb"})
    assert created.status_code == 201
    newsletter = db.scalars(select(Newsletter)).first()
    published = list(db.scalars(select(Post).where(Post.status == "published")))
    sent_issue(db, newsletter, "with-everything", published,
               sent_at=dt.datetime(2026, 12, 1, 7, 0, tzinfo=dt.UTC), subject="Everything")
    feed = app.test_client().get(f"/archive/{NEWSLETTER}/feed.xml")
    assert feed.status_code == 200
    ElementTree.fromstring(feed.data)  # raises on any character XML 1.0 forbids
    parsed = feedparser.parse(feed.data)
    assert not parsed.bozo and parsed.entries[0].title == "Everything"
    assert "Kept" in parsed.entries[0].content[0].value
