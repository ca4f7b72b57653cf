"""The editor's outbox viewer: list, open, sandboxed HTML, and no way out of the folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from digest.core.models import EditorRole
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import submit
from tests.support.readers import (
    deliver,
    load_newsletter,
)
from tests.support.workspace import outbox_message


def _outbox(app: Flask) -> Path:
    return Path(app.config["OUTBOX_PATH"])


def _log_in(app: Flask, client: FlaskClient, role: EditorRole = EditorRole.ADMIN) -> None:
    with get_db_of(app).session() as session:
        make_editor(session, "writer@example.com", role)
    log_in(client, "writer@example.com")


def test_outbox_shows_the_confirmation_a_signup_wrote(app, client) -> None:  # type: ignore[no-untyped-def]
    """Without SMTP a confirmation lands in the outbox; the editor lists it and opens its parts and link."""
    load_newsletter(app)
    _log_in(app, client)
    submit(client, "/editor/subscribers/new", email="nia@example.org", consent="confirm",
           sections=["news"])
    assert deliver(app) == 1
    listing = client.get("/editor/outbox").get_data(as_text=True)
    assert "No SMTP server is configured" in listing and "1 message, newest first" in listing
    assert "Please confirm your subscription to The Weekly Model" in listing
    assert "nia@example.org" in listing
    [name] = os.listdir(_outbox(app))
    page = client.get(f"/editor/outbox/{name}").get_data(as_text=True)
    assert "<dt>List-Unsubscribe</dt>" not in page  # a confirmation carries no list headers
    assert "<dt>Auto-Submitted</dt><dd>auto-generated</dd>" in page
    assert f'src="/editor/outbox/{name}/html"' in page and "<iframe class=\"mail-html\" sandbox " in page
    assert '<a href="https://news.example.org/confirm/' in page  # the text part's link is clickable
    html = client.get(f"/editor/outbox/{name}/html")
    assert html.status_code == 200 and "Confirm" in html.get_data(as_text=True)
    raw = client.get(f"/editor/outbox/{name}/raw")
    assert raw.mimetype == "text/plain" and raw.data == (_outbox(app) / name).read_bytes()


def test_text_view_keeps_punctuation_out_of_links(app, client) -> None:  # type: ignore[no-untyped-def]
    """A full stop or comma right after a URL in the text part stays text, so the link opens the right page."""
    _log_in(app, client)
    name = outbox_message(app, text="Read it at https://news.example.org/archive/w/one. Or https://news.example.org/p/two, then reply!")
    page = client.get(f"/editor/outbox/{name}").get_data(as_text=True)
    assert '<a href="https://news.example.org/archive/w/one" rel="noopener noreferrer" target="_blank">https://news.example.org/archive/w/one</a>. Or' in page
    assert '<a href="https://news.example.org/p/two" rel="noopener noreferrer" target="_blank">https://news.example.org/p/two</a>, then' in page


def test_html_part_runs_no_script_and_loads_only_its_images(app, client) -> None:  # type: ignore[no-untyped-def]
    """The HTML route's CSP allows the email's inline styles and image hosts, and no script or other request."""
    _log_in(app, client)
    name = outbox_message(app)
    response = client.get(f"/editor/outbox/{name}/html")
    assert response.status_code == 200
    policy = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) if " " in d.strip() else (d.strip(), "")
                      for d in policy.split(";"))
    assert directives["default-src"] == "'none'"
    assert "script-src" not in directives  # falls back to 'none'
    assert directives["style-src"] == "'unsafe-inline'"
    assert directives["img-src"].split() == ["data:", "https://cdn.example.net", "http://tracker.example.org:8080"]
    assert directives["frame-ancestors"] == "'self'" and "sandbox" in directives
    assert directives["form-action"] == "'none'"
    assert response.headers["X-Frame-Options"] == "SAMEORIGIN"
    # The workspace page itself keeps the site's strict policy (no inline style at all).
    page = client.get(f"/editor/outbox/{name}")
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]


@pytest.mark.parametrize("attempt", [
    "..%2F..%2Fsecret_key", "%2E%2E", "secret_key", "..", ".%2Fnotes.eml", "notes.eml",
    "20261126T081500123456Z-0123456789ab.eml",  # well formed, but not in the folder
    "20261126T081500123456Z-0123456789AB.eml",
])
def test_names_outside_the_listing_are_refused(app, client, attempt: str) -> None:  # type: ignore[no-untyped-def]
    """Only messages the folder lists open: traversal, other files and unknown names all answer 404."""
    _log_in(app, client)
    outbox_message(app)
    (_outbox(app) / "notes.eml").write_text("Subject: private notes\n\nnot a message of ours\n")
    for suffix in ("", "/html", "/raw"):
        response = client.get(f"/editor/outbox/{attempt}{suffix}")
        assert response.status_code == 404, suffix
        assert b"test-secret" not in response.data and b"private notes" not in response.data
    assert "private notes" not in client.get("/editor/outbox").get_data(as_text=True)


def test_a_link_named_like_a_message_is_not_followed(app, client) -> None:  # type: ignore[no-untyped-def]
    """A symlink in the outbox with a message's name is not followed out of the folder."""
    _log_in(app, client)
    secret = Path(app.instance_path) / "secret.txt"
    secret.write_text("Subject: the instance secret\n\ntop secret\n")
    _outbox(app).mkdir(parents=True, exist_ok=True)
    name = "20261126T081500123456Z-0123456789ab.eml"
    (_outbox(app) / name).symlink_to(secret)
    for suffix in ("", "/html", "/raw"):
        response = client.get(f"/editor/outbox/{name}{suffix}")
        assert response.status_code == 404 and b"top secret" not in response.data


def test_outbox_pages_and_roles(app, client) -> None:  # type: ignore[no-untyped-def]
    """Anonymous visitors are sent to log in; an admin pages through many messages, newest first."""
    assert client.get("/editor/outbox").status_code == 302
    _log_in(app, client)
    names = [outbox_message(app, subject=f"Message {n:02d}") for n in range(55)]
    first = client.get("/editor/outbox").get_data(as_text=True)
    assert "55 messages" in first
    assert "Message 54" in first and "Message 05" in first and "Message 04" not in first
    assert first.index("Message 54") < first.index("Message 53")
    older = client.get(f"/editor/outbox?before={names[5]}").get_data(as_text=True)
    assert "Message 04" in older and "Message 00" in older and "Message 05" not in older
    assert client.get("/editor/outbox?before=../../etc").status_code == 200


def test_an_empty_outbox_and_a_configured_smtp_server(app_overrides) -> None:  # type: ignore[no-untyped-def]
    """With SMTP configured the page says nothing new arrives; with no folder yet it is simply empty."""
    from digest import create_app

    app = create_app({**app_overrides, "SMTP_URL": "smtp://127.0.0.1:2525"})
    client = app.test_client()
    _log_in(app, client)
    html = client.get("/editor/outbox").get_data(as_text=True)
    assert "nothing new" in html and "The outbox is empty." in html
    get_db_of(app).dispose()


def test_editors_cannot_open_the_outbox(app, client) -> None:  # type: ignore[no-untyped-def]
    """The outbox holds every reader's live unsubscribe and preference links, so an editor
    (who may not erase readers) can neither list nor open it, nor see it in the menu."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        make_editor(session, "writer@example.com", EditorRole.EDITOR)
    log_in(client, "writer@example.com")
    name = outbox_message(app, subject="Welcome")
    for path in ("/editor/outbox", f"/editor/outbox/{name}", f"/editor/outbox/{name}/html",
                 f"/editor/outbox/{name}/raw"):
        response = client.get(path)
        assert response.status_code == 403 and b"Welcome" not in response.data, path
    assert 'href="/editor/outbox"' not in client.get("/editor/posts").get_data(as_text=True)
