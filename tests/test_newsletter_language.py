"""A newsletter's language as a setting: the workspace's settings page, the API (its shape,
its input, the OpenAPI document's allowed codes) and `digest demo --language`; an unknown
code is refused with a clear message and changes nothing."""

from __future__ import annotations

import pytest
from flask import Flask
from sqlalchemy import select

from digest.core.models import EditorRole, Issue, Newsletter
from digest.core.validation import Invalid
from digest.domain import newsletters
from digest.domain.issue_mail import prepare_issue
from digest.mail.render import Reader
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import submit
from tests.support.readers import load_newsletter
from tests.support.workspace import demo_newsletter

SHIPPED = ["de", "en", "es", "fr", "he", "pt_BR"]
NEWSLETTER = "/api/v1/newsletters/weekly-model"
SETTINGS = {
    "name": "The Weekly Model", "description": "About models.", "from_name": "Weekly Model",
    "from_address": "news@example.org", "reply_to": "", "postal_address": "1 Example Street, Berlin",
    "time_zone": "Europe/Berlin", "send_weekday": "1", "send_time": "08:00", "review_hours": "24",
    "consent_text": "Yes, send me the newsletter.",
}


def _language(app: Flask) -> str:
    with get_db_of(app).session() as session:
        return session.scalars(select(Newsletter.language)).one()


def _saved(db) -> str:  # type: ignore[no-untyped-def]
    """Return the newsletter's stored language, the read ended (SQLite's lock released)."""
    db.rollback()
    language = db.scalars(select(Newsletter.language)).one()
    db.rollback()
    return str(language)


def test_the_domain_refuses_an_unknown_language_and_changes_nothing(app, db) -> None:  # type: ignore[no-untyped-def]
    """set_language and the settings form name the codes there are; nothing changes."""
    newsletter = demo_newsletter(db)
    known = newsletters.available_languages(app.config)
    assert sorted(known) == SHIPPED and known["de"].name == "Deutsch"
    with pytest.raises(Invalid) as refused:
        newsletters.set_language(db, newsletter, "xx", known)
    assert refused.value.errors["language"].startswith("xx is not a language this server has catalogues for")
    assert "de, en, es, fr, he, pt_BR" in refused.value.errors["language"]
    with pytest.raises(Invalid):
        newsletters.update_settings(db, newsletter, newsletters.SettingsInput(**SETTINGS, language="klingon"),
                                    available=known)
    db.rollback()
    assert db.scalars(select(Newsletter.language)).one() == "en"


def test_the_settings_page_offers_the_languages_and_saves_one(client, db) -> None:  # type: ignore[no-untyped-def]
    """The settings page lists each language by its own name; choosing German saves it and
    the page shows it chosen; an unknown code is refused next to the field, nothing saved."""
    demo_newsletter(db)
    make_editor(db)
    log_in(client, "admin@example.com")
    page = client.get("/editor/settings").get_data(as_text=True)
    for native in ("Deutsch (German)", "français (French)", "español (Spanish)", "עברית (Hebrew)",
                   "português (Brasil) (Portuguese (Brazil))"):
        assert native in page, native
    assert '<option value="en" lang="en" selected>English</option>' in page
    refused = submit(client, "/editor/settings", **{**SETTINGS, "language": "xx"})
    assert refused.status_code == 400 and "xx is not a language" in refused.get_data(as_text=True)
    assert _saved(db) == "en"
    assert submit(client, "/editor/settings", **{**SETTINGS, "language": "de"}).status_code == 302
    assert _saved(db) == "de"
    assert '<option value="de" lang="de" selected>' in client.get("/editor/settings").get_data(as_text=True)
    # A form without the field (an older page) keeps the language.
    assert submit(client, "/editor/settings", **SETTINGS).status_code == 302
    assert _saved(db) == "de"


def test_the_api_shows_and_changes_the_language(app) -> None:  # type: ignore[no-untyped-def]
    """`language` is on the newsletter; an admin changes it with PATCH (the document lists the
    allowed codes); an unknown one is 422 naming them, an editor's token 403, nothing changed."""
    load_newsletter(app)
    api = ApiClient(app.test_client(), make_token(app))
    field = api.doc["components"]["schemas"]["NewsletterChanges"]["properties"]["language"]
    assert field["enum"] == SHIPPED
    assert api.get(NEWSLETTER).get_json()["language"] == "en"
    changed = api.patch(NEWSLETTER, json={"language": "pt_BR"})
    assert changed.status_code == 200 and changed.get_json()["language"] == "pt_BR"
    assert _language(app) == "pt_BR"
    unknown = api.patch(NEWSLETTER, json={"language": "xx"})
    assert unknown.status_code == 422
    assert unknown.get_json()["fields"]["language"] == "language must be one of de, en, es, fr, he, pt_BR."
    editor = make_token(app, "pen@example.com", EditorRole.EDITOR)
    assert api.patch(NEWSLETTER, json={"language": "de"}, token=editor).status_code == 403
    assert _language(app) == "pt_BR"


def test_demo_speaks_the_language_asked_for(app, runner, db) -> None:  # type: ignore[no-untyped-def]
    """`digest demo --language de` loads a German demo whose digest is in German; an unknown
    code is refused in one line listing the languages, and loads nothing."""
    refused = runner.invoke(args=["demo", "--language", "xx"])
    assert refused.exit_code == 1
    assert refused.output == ("Error: xx is not a language this server has catalogues for; "
                              "choose one of de, en, es, fr, he, pt_BR.\n")
    assert db.scalar(select(Newsletter)) is None
    db.rollback()  # every SQLite transaction takes the write lock: end the read
    loaded = runner.invoke(args=["demo", "--language", "de"])
    assert loaded.exit_code == 0, loaded.output
    assert db.scalars(select(Newsletter.language)).one() == "de"
    with app.app_context():
        draft = db.scalars(select(Issue.id).where(Issue.slug == "open-weights-catch-up")).one()
        prepared = prepare_issue(db, draft, app.config)
    html, text = prepared.parts_for(Reader(None, "x" * 22, "ada@example.com", "Ada"))
    assert '<html lang="de"' in html and "Hallo Ada," in text and "Weiterlesen" in html
    db.rollback()
    again = runner.invoke(args=["demo", "--language", "fr"])
    assert again.exit_code == 0 and "already loaded" in again.output
    assert _saved(db) == "fr"
