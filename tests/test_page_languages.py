"""Every page a reader sees speaks the newsletter's language: a pseudo-language finds any
word not marked for translation on every public, archive and error page and in the feed;
German pages read German; Hebrew pages mirror (dir="rtl", the form on the right)."""

from __future__ import annotations

import html as htmlib
import re
import time
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from xml.etree import ElementTree

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from digest import create_app
from digest.core.models import Issue, Newsletter, Post, Section, Subscriber
from digest.domain import demo, links
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, screenshot_path
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token, submit
from tests.support.pseudo import install_pseudo, unmarked
from tests.support.readers import (
    fresh_ip,
    load_newsletter,
    signed_path,
    signup,
    take_signups_now,
    tamper,
)

pytestmark = pytest.mark.one_backend
NEW_READER = "lena@example.org"
_SKIPPED = {"script", "style", "time"}  # times are Babel's words, not ours
_SHOWN_ATTRIBUTES = ("alt", "title", "aria-label", "placeholder")


class _Visible(HTMLParser):
    """The text of a page a reader sees or hears: text outside the newsletter's own prose,
    and the attributes a screen reader speaks."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        classes = (dict(attrs).get("class") or "").split()
        if self._skipping or tag in _SKIPPED or "prose" in classes:
            if tag not in ("br", "img", "input", "meta", "link", "source", "hr"):
                self._skipping.append(tag)
            return
        self.parts.extend(value for name, value in attrs if name in _SHOWN_ATTRIBUTES and value)
        if tag == "meta" and dict(attrs).get("name") == "description":
            self.parts.append(dict(attrs).get("content") or "")

    def handle_endtag(self, tag: str) -> None:
        if self._skipping and self._skipping[-1] == tag:
            self._skipping.pop()

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def visible(page: str) -> str:
    """Return what a reader sees or hears of an HTML page."""
    parser = _Visible()
    parser.feed(page)
    return "\n".join(parser.parts)


def _content(app: Flask) -> list[str]:
    """Return what the newsletter's people wrote (and readers typed): no catalogue has it."""
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        values = [newsletter.name, newsletter.description, newsletter.postal_address,
                  newsletter.footer_text, newsletter.from_name, newsletter.consent_text, "digest"]
        values += [v for s in session.scalars(select(Section)) for v in (s.name, s.description)]
        values += [v for p in session.scalars(select(Post))
                   for v in (p.title, p.summary, p.lead_image.alt if p.lead_image else "")]
        for issue in session.scalars(select(Issue)):
            # The summary's own words are the editor's preheader around its placeholders.
            values += [issue.subject, *re.split(r"\{\w+\}", issue.preheader)]
        values += [v for r in session.scalars(select(Subscriber)) for v in (r.email, r.name)]
    return [value for value in values if value]


def _words(response: Any, content: list[str]) -> list[str]:
    return unmarked(visible(response.get_data(as_text=True)), content)


def _speaking(app: Flask, code: str, *, default_consent: bool = False) -> None:
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        newsletter.language = code
        if default_consent:
            newsletter.consent_text = ""  # the editor wrote none
        demo.load_demo_history(session, app.config, newsletter)
        session.commit()


@pytest.fixture
def pseudo_app(app_overrides: dict[str, Any]) -> Iterator[Flask]:
    """An app whose instance holds the pseudo-language, its newsletter written in it."""
    code = install_pseudo(Path(app_overrides["INSTANCE_PATH"]))
    app = create_app(app_overrides)
    load_newsletter(app)
    _speaking(app, code)
    yield app
    get_db_of(app).dispose()


def _sign_up(client: FlaskClient, **fields: Any) -> Any:
    page = client.get("/").get_data(as_text=True)
    data = {"csrf_token": csrf_token(page), "newsletter": "weekly-model", "website": "",
            "consent_version": re.search(r'name="consent_version" value="([^"]*)"', page).group(1),  # type: ignore[union-attr]
            **fields}
    return client.post("/subscribe", data=data, environ_base={"REMOTE_ADDR": fresh_ip()})


def _reader_pages(app: Flask, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Any]]:
    """Yield (what, response) for every page and answer a reader can be shown."""
    client = app.test_client()
    yield "front page", client.get("/")
    yield "signup refused (empty)", _sign_up(client, email="", name="Bad\x07name", sections=["nope"])
    yield "signup refused (address, name, sections)", _sign_up(
        client, email="not-an-address", name="x" * 101, sections=[], consent="yes")
    for address in ("two@@example.org", "a@[192.0.2.1]", "jörg@example.org", "a" * 65 + "@example.org"):
        yield f"signup refused ({address})", _sign_up(client, email=address, consent="yes",
                                                      consent_version="old")
    yield "check your inbox", signup(client, NEW_READER, name="Lena")
    take_signups_now(app)
    confirm = signed_path(app, NEW_READER, links.confirm_url)
    yield "confirm page", client.get(confirm)
    yield "confirmed", submit(client, confirm)
    token = csrf_token(client.get("/").get_data(as_text=True))
    yield "already confirmed", client.post(confirm, data={"csrf_token": token})
    preferences = signed_path(app, NEW_READER, links.preferences_url)
    yield "preferences", client.get(preferences)
    yield "preferences refused", submit(client, preferences, action="save", name="x" * 101, sections=[])
    for action in ("save", "pause", "resume", "no-track", "track", "unsubscribe", "resubscribe"):
        yield f"preferences after {action}", submit(client, preferences, action=action, name="Lena")
    yield "preferences paused", submit(client, preferences, action="pause")
    yield "preferences paused, shown again", client.get(preferences)
    unsubscribe = signed_path(app, NEW_READER, links.unsubscribe_url)
    yield "unsubscribe page", client.get(unsubscribe)
    yield "one-click answer (RFC 8058)", client.post(unsubscribe, data={"List-Unsubscribe": "One-Click"})
    yield "unsubscribe refused", client.post(unsubscribe, data={})
    yield "unsubscribed page", client.get(unsubscribe)
    yield "nothing to confirm", client.get(confirm)
    yield "preferences unsubscribed", client.get(preferences)
    yield "resubscribed", submit(client, unsubscribe, unsubscribe + "/resubscribe")
    client.environ_base["REMOTE_ADDR"] = fresh_ip()  # a reader's budget of signed links
    yield "delete page", client.get(preferences + "/delete")
    yield "deleted", submit(client, preferences + "/delete")
    yield "gone link", client.get(preferences)
    yield "bad link", client.get(tamper(preferences))
    yield "no such page", client.get("/no-such-page")
    yield "no such archive", client.get("/archive/no-such-newsletter/")
    yield "expired form", client.post("/subscribe", data={"newsletter": "weekly-model"})
    yield "invisible character", client.post("/subscribe", data={"email": "a\x00b@example.org"})
    yield "too large", client.post("/subscribe", data={"email": "x" * 2**21})
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        post = session.scalars(select(Post).where(Post.status == "published")).first()
        issue = session.scalars(select(Issue).where(Issue.sent_at.is_not(None))).first()
        assert post is not None and issue is not None
        paths = [f"/archive/{newsletter.slug}/", f"/archive/{newsletter.slug}/{issue.slug}",
                 links.post_url(app.config, newsletter.slug, post.slug).removeprefix(app.config["BASE_URL"])]
    for path in paths:
        yield f"archive {path}", client.get(path)
    yield "expired confirmation", _expired(app, client, monkeypatch)
    yield "preferences not confirmed", client.get(signed_path(app, "late@example.org", links.preferences_url))
    yield "database unavailable (form)", _unavailable_signup(client, monkeypatch)
    yield "database unavailable (page)", _unavailable_page(client, monkeypatch)
    yield "server error", _server_error(app, client, monkeypatch)
    yield "too many requests", _too_many(client, preferences)


def _expired(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    signup(client, "late@example.org")
    take_signups_now(app)
    path = signed_path(app, "late@example.org", links.confirm_url)
    later = time.time() + 8 * 24 * 3600
    with monkeypatch.context() as patch:
        patch.setattr(time, "time", lambda: later)
        return client.get(path)


def _failing(*_args: Any, **_kwargs: Any) -> Any:
    raise OperationalError("INSERT", {}, Exception("database or disk is full"))


def _unavailable_signup(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr("digest.web.public.run_signup", _failing)
        return signup(client, "full@example.org", engine=False)


def _unavailable_page(client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as patch:
        patch.setattr("digest.web.public.find_newsletter", _failing)
        return client.get("/")


def _server_error(app: Flask, client: FlaskClient, monkeypatch: pytest.MonkeyPatch) -> Any:
    def broken(*_args: Any, **_kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    with monkeypatch.context() as patch:
        patch.setattr("digest.web.public.find_newsletter", broken)
        patch.setitem(app.config, "PROPAGATE_EXCEPTIONS", False)
        return client.get("/")


def _too_many(client: FlaskClient, path: str) -> Any:
    for _ in range(100):
        response = client.get(path, environ_base={"REMOTE_ADDR": "198.51.100.7"})
        if response.status_code == 429:
            return response
    raise AssertionError("the link limit never answered 429")


def _feed_text(feed: str) -> str:
    root = ElementTree.fromstring(feed)
    texts = []
    for element in root.iter():
        tag = element.tag.rpartition("}")[2]
        if tag in ("content", "summary", "title", "subtitle", "name", "generator") and element.text:
            texts.append(visible(htmlib.unescape(element.text)) if tag == "content" else element.text)
    return "\n".join(texts)


def test_every_reader_page_is_marked_for_translation(pseudo_app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rendered in a pseudo-language, no page a reader can be shown (forms, their refusals,
    every answer, the archive, the error pages) holds a word outside the catalogue besides
    what the newsletter's people wrote; a word left unmarked fails this test."""
    content = _content(pseudo_app)
    found: dict[str, list[str]] = {}
    statuses: dict[str, int] = {}
    for what, response in _reader_pages(pseudo_app, monkeypatch):
        if response is None:
            continue
        statuses[what] = response.status_code
        assert 'lang="eo"' in response.get_data(as_text=True), what
        words = _words(response, content)
        if words:
            found[what] = words
    assert not found, f"words not marked for translation: {found}"
    assert statuses["too many requests"] == 429 and statuses["server error"] == 500
    assert statuses["database unavailable (form)"] == statuses["database unavailable (page)"] == 503
    assert statuses["bad link"] == 400 and statuses["gone link"] == 404 and statuses["no such page"] == 404
    assert statuses["expired confirmation"] == 410 and statuses["expired form"] == 400
    assert statuses["invisible character"] == 400 and statuses["too large"] == 413
    assert [what for what, status in statuses.items() if status == 429] == ["too many requests"]
    assert statuses["nothing to confirm"] == statuses["preferences not confirmed"] == 200
    feed = pseudo_app.test_client().get("/archive/weekly-model/feed.xml").get_data(as_text=True)
    assert 'xml:lang="eo"' in feed
    assert "<entry>" in feed and not unmarked(_feed_text(feed), content)


def test_a_refused_signup_is_explained_in_the_newsletters_language_and_the_api_stays_english(
    pseudo_app: Flask,
) -> None:
    """The domain's reasons for refusing a signup reach the page translated, every one of
    them (the address library's own English never shows), while the JSON API keeps English."""
    client = pseudo_app.test_client()
    page = _sign_up(client, email="", name="x" * 101, sections=[]).get_data(as_text=True)
    for message in ("⟦Please enter your email address.⟧", "⟦Please keep your name under 100 characters.⟧",
                    "⟦Please choose at least one section.⟧",
                    "⟦Please tick the box to say you want to receive the newsletter.⟧"):
        assert htmlib.escape(message, quote=False) in page, message
    api = client.post("/api/v1/subscribe", json={"email": "not-an-address", "consent": True},
                      environ_base={"REMOTE_ADDR": fresh_ip()})
    assert api.status_code == 400
    assert api.get_json()["fields"]["email"] == (
        "An email address has a name, an @ and a domain, such as name@example.com.")


@pytest.fixture
def german_app(app: Flask) -> Flask:
    """The demo newsletter, written in German."""
    load_newsletter(app)
    _speaking(app, "de", default_consent=True)
    return app


def test_german_pages_are_german(german_app: Flask) -> None:
    """A German newsletter's signup page, its refusals, the confirm page, the preference
    center and the one-click unsubscribe answer are German, with lang="de"."""
    app, client = german_app, german_app.test_client()
    front = client.get("/").get_data(as_text=True)
    assert '<html lang="de" dir="ltr">' in front
    assert "E-Mail-Adresse" in front and "Abonnieren" in front
    assert "Ja, schick mir The Weekly Model per E-Mail." in front  # the default consent
    refused = _sign_up(client, email="", sections=[]).get_data(as_text=True)
    assert "Bitte gib deine E-Mail-Adresse ein." in refused
    assert "Bitte wähle mindestens eine Rubrik." in refused
    assert "Bitte setze das Häkchen" in refused
    assert "Please" not in refused
    signup(client, NEW_READER)
    take_signups_now(app)
    confirm = client.get(signed_path(app, NEW_READER, links.confirm_url)).get_data(as_text=True)
    assert '<html lang="de"' in confirm and "Bestätige dein Abonnement" in confirm
    submit(client, signed_path(app, NEW_READER, links.confirm_url))
    preferences = client.get(signed_path(app, NEW_READER, links.preferences_url)).get_data(as_text=True)
    assert "Deine Einstellungen" in preferences and "Zustellung pausieren" in preferences
    answer = client.post(signed_path(app, NEW_READER, links.unsubscribe_url),
                         data={"List-Unsubscribe": "One-Click"})
    text = answer.get_data(as_text=True)
    assert answer.status_code == 200 and '<html lang="de"' in text
    assert "Du bist abgemeldet" in text and "ab sofort" in text


_TEXT_BOX = """selector => {
    const range = document.createRange();
    range.selectNodeContents(document.querySelector(selector));
    const box = range.getBoundingClientRect();
    return {x: box.x, y: box.y, width: box.width, height: box.height};
}"""


def test_hebrew_pages_mirror(app: Flask) -> None:
    """A Hebrew newsletter's pages read right to left: dir="rtl", and in Chromium the form's
    labels and fields start at the right edge, on a desktop and on a phone."""
    load_newsletter(app)
    _speaking(app, "he")
    with live_server(app) as base, chromium() as context:
        page = context.new_page()  # type: ignore[attr-defined]
        for name, width, height in (("desktop", 1280, 900), ("phone", 390, 844)):
            page.set_viewport_size({"width": width, "height": height})
            page.goto(base + "/")
            assert page.get_attribute("html", "dir") == "rtl" and page.get_attribute("html", "lang") == "he"
            form = page.locator("form.signup").bounding_box()
            label = page.evaluate(_TEXT_BOX, "label[for=email]")  # the words, not the block
            field = page.locator("#email").bounding_box()
            consent = page.locator(".consent .check input").bounding_box()
            right = form["x"] + form["width"]
            assert abs(label["x"] + label["width"] - right) < 2, (name, label, form)
            assert label["x"] > form["x"] + form["width"] / 3, (name, label, form)  # short, on the right
            assert abs(field["x"] + field["width"] - right) < 2, (name, field, form)
            assert consent["x"] + consent["width"] > right - 40, (name, consent, form)  # box at the start
            page.locator("#signup-heading").scroll_into_view_if_needed()
            page.screenshot(path=str(screenshot_path(f"pages-he-signup-{name}")), full_page=True)
            page.goto(base + "/archive/weekly-model/")
            assert page.get_attribute("html", "dir") == "rtl"
            page.screenshot(path=str(screenshot_path(f"pages-he-archive-{name}")), full_page=True)


def test_the_workspace_stays_english(german_app: Flask, db: Any) -> None:
    """The editor's pages of a German newsletter are English (lang="en"), its error pages
    too, while the reader's pages beside them speak German."""
    make_editor(db)
    client = german_app.test_client()
    log_in(client, "admin@example.com")
    dashboard = client.get("/editor/").get_data(as_text=True)
    assert '<html lang="en" dir="ltr">' in dashboard and "Skip to content" in dashboard
    missing = client.get("/editor/no-such-page")
    assert missing.status_code == 404 and '<html lang="en"' in missing.get_data(as_text=True)
    reader_missing = client.get("/no-such-page").get_data(as_text=True)
    assert '<html lang="de"' in reader_missing and "Seite nicht gefunden" in reader_missing


@pytest.mark.parametrize("code", ["de", "he"])
def test_confirmation_page_in_chromium(app: Flask, code: str) -> None:
    """The page a confirmation link opens, in German and in Hebrew, as Chromium shows it
    (screenshots kept); in Hebrew its button sits at the right."""
    load_newsletter(app)
    _speaking(app, code)
    signup(app.test_client(), NEW_READER)
    take_signups_now(app)
    path = signed_path(app, NEW_READER, links.confirm_url)
    with live_server(app) as base, chromium(viewport={"width": 390, "height": 844}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        page.goto(base + path)
        assert page.get_attribute("html", "lang") == code
        card = page.locator("section.card").bounding_box()
        button = page.locator("button[type=submit]").bounding_box()
        if code == "he":
            assert card["x"] + card["width"] - (button["x"] + button["width"]) < 60, (button, card)
        else:
            assert button["x"] - card["x"] < 60, (button, card)
        page.screenshot(path=str(screenshot_path(f"pages-{code}-confirm-phone")), full_page=True)
