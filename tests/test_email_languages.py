"""The emails speak their newsletter's language: every word a reader sees in them is marked
for translation (the pseudo-language "eo" shows any that is not), each shipped language
renders the digest within the size guard with its own date, lang and dir, and the
right-to-left one mirrors in Chromium."""

from __future__ import annotations

import datetime as dt
import re
from email.header import decode_header, make_header
from html.parser import HTMLParser
from pathlib import Path

import pytest
from babel.dates import format_date
from flask import Flask
from markupsafe import escape
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest.core.models import Issue, Newsletter, Section
from digest.domain.issue_mail import prepare_issue
from digest.mail.language import PACKAGED, languages, translations
from digest.mail.render import REFUSE_BYTES, PreparedIssue, Reader, size_report
from tests.support.apps import get_db_of
from tests.support.browser import chromium, screenshot_path
from tests.support.delivery import make_newsletter
from tests.support.forms import submit
from tests.support.pseudo import PSEUDO, install_pseudo, unmarked
from tests.support.readers import (
    confirm_by_email,
    deliver,
    html_part,
    link,
    load_newsletter,
    signup,
    text_part,
)
from tests.support.smtp import Received

SHIPPED = ("de", "fr", "es", "pt_BR", "he")
ISSUE_DATE = dt.datetime(2026, 12, 5, 8, tzinfo=dt.UTC)  # a Saturday
# How each language writes the issue's date (Babel's "full" format, the dateline's).
DATELINES = {
    "en": "Saturday, December 5, 2026",
    "de": "Samstag, 5. Dezember 2026",
    "fr": "samedi 5 décembre 2026",
    "es": "sábado, 5 de diciembre de 2026",
    "pt_BR": "sábado, 5 de dezembro de 2026",
    "he": "יום שבת, 5 בדצמבר 2026",
}


class _Visible(HTMLParser):
    """The text a reader's client shows of an HTML part, and the attributes read aloud."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skipping = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "head"):
            self._skipping += 1
        self.parts.extend(value or "" for name, value in attrs if name in ("alt", "aria-label", "title"))

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "head"):
            self._skipping -= 1

    def handle_data(self, data: str) -> None:
        if not self._skipping:
            self.parts.append(data)


def visible(html: str) -> str:
    """Return what a reader sees and hears of html (its <title> and styles aside)."""
    parser = _Visible()
    parser.feed(html)
    return " ".join(parser.parts)


def _speak(session: Session, newsletter_id: int, code: str) -> None:
    session.execute(update(Newsletter).where(Newsletter.id == newsletter_id).values(language=code))
    session.commit()


def _issue(app: Flask, session: Session, code: str) -> tuple[PreparedIssue, list[int], Section]:
    """Return the test issue (dated ISSUE_DATE) in language code, its sections' ids and a
    section without posts."""
    setup = make_newsletter(session, readers=1)
    empty = Section(newsletter_id=setup.newsletter_id, slug="events", name="Events", position=2)
    session.add(empty)
    session.execute(update(Issue).where(Issue.id == setup.issue_id).values(sent_at=ISSUE_DATE))
    _speak(session, setup.newsletter_id, code)
    return prepare_issue(session, setup.issue_id, app.config), setup.section_ids, empty


# -- every word is marked ------------------------------------------------------------------


def test_the_digest_has_no_unmarked_word_besides_the_newsletters_own(app, db) -> None:  # type: ignore[no-untyped-def]
    """Rendered in the pseudo-language, the digest's HTML and text parts (a reader with a
    name and sections, one without either, one whose sections have no post) hold no word
    outside ⟦ ⟧ but the newsletter's content, the reader's name and address and the date."""
    install_pseudo(Path(app.config["INSTANCE_PATH"]))
    prepared, section_ids, empty = _issue(app, db, PSEUDO)
    content = [
        "The Test Weekly", "1 Test Street, Berlin", "Our first issue", "First news", "A tool",
        "Something happened.", "We tried it.", "News", "Tools", "Events", "NEWS", "TOOLS",
        "Ada Lovelace", "Ada", "ada@example.org", format_date(ISSUE_DATE, "full", locale=PSEUDO),
    ]
    readers = [
        Reader(1, "x" * 22, "ada@example.org", "Ada Lovelace", frozenset(section_ids[:1])),
        Reader(2, "y" * 22, "ada@example.org"),
        Reader(3, "z" * 22, "ada@example.org", "Ada Lovelace", frozenset({empty.id})),
    ]
    for reader in readers:
        html, text = prepared.parts_for(reader)
        assert "⟦" in html and "⟦" in text  # the pseudo-language is spoken
        for part, shown in (("html", visible(html)), ("text", text)):
            assert unmarked(shown, content) == [], (reader.name, part, shown)
        preheader = prepared.preheader_for(reader)
        assert unmarked(preheader, content) == [] and "⟦" in preheader, preheader


def _received_in(smtp_app: Flask, smtp_server, code: str) -> dict[str, Received]:  # type: ignore[no-untyped-def]
    """Return a confirmation, two welcomes (with and without a name) and an "already
    subscribed" note of the demo newsletter speaking code."""
    newsletter = load_newsletter(smtp_app)
    with get_db_of(smtp_app).session() as session:
        _speak(session, newsletter.id, code)
    emails = {"confirm": confirm_by_email(smtp_app, smtp_server, "nina@example.org", name="Nina Quinn")}
    assert deliver(smtp_app) == 1
    emails["welcome"] = smtp_server.to("nina@example.org")[-1]
    confirm_by_email(smtp_app, smtp_server, "otto@example.org")
    assert deliver(smtp_app) == 1
    emails["welcome, no name"] = smtp_server.to("otto@example.org")[-1]
    assert signup(smtp_app.test_client(), "ada@example.com").status_code == 200
    assert deliver(smtp_app) == 1
    emails["already"] = smtp_server.to("ada@example.com")[-1]
    return emails


def _subject(received: Received) -> str:
    return str(make_header(decode_header(received.raw_header("Subject")[0])))


@pytest.mark.one_backend
def test_each_reader_email_has_no_unmarked_word(app_overrides, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Confirmation, welcome (with a name and without) and the "already subscribed" note,
    sent in the pseudo-language, hold no unmarked word in subject, HTML or text."""
    from digest import create_app

    install_pseudo(Path(app_overrides["INSTANCE_PATH"]))
    smtp_app = create_app({**app_overrides, "SMTP_URL": smtp_server.url})
    try:
        emails = _received_in(smtp_app, smtp_server, PSEUDO)
        with get_db_of(smtp_app).session() as session:
            sections = list(session.scalars(select(Section.name)))
            latest = session.scalar(select(Issue.subject).where(Issue.sent_at.is_not(None)))
    finally:
        get_db_of(smtp_app).dispose()
    content = [
        "The Weekly Model", "The Weekly Model, 12 Example Street, 10115 Berlin, Germany",
        "Nina Quinn", "Nina", "nina@example.org", "otto@example.org", "ada@example.com",
        "Europe/Berlin", *(latest and [latest] or []), *sections,
    ]
    for kind, received in emails.items():
        subject, html, text = _subject(received), html_part(received), text_part(received)
        assert subject.startswith("⟦") and "⟦" in html and "⟦" in text, kind
        for part, shown in (("subject", subject), ("html", visible(html)), ("text", text)):
            assert unmarked(shown, content) == [], (kind, part, shown)


# -- each shipped language --------------------------------------------------------------------


@pytest.mark.parametrize("code", ["en", *SHIPPED])
def test_a_digest_in_each_language_renders_within_the_guard_with_its_date(app, db, code: str) -> None:  # type: ignore[no-untyped-def]
    """The digest in each shipped language: lang and dir on <html>, the date as the language
    writes it, the language's own words in both parts, and the HTML within the size guard."""
    prepared, _, _ = _issue(app, db, code)
    speaks = languages(PACKAGED)[code]
    html, text = prepared.parts_for(Reader(1, "x" * 22, "ada@example.org", "Ada Lovelace"))
    assert re.search(rf'<html lang="{speaks.tag}" dir="{speaks.direction}"', html)
    assert DATELINES[code] in visible(html) and DATELINES[code] in text
    words = translations(code, "emails", PACKAGED)
    for english in ("Manage preferences", "View in browser", "Unsubscribe"):
        assert str(escape(words.gettext(english))) in html, english
        assert (english in html) is (code == "en"), english
    assert words.gettext("Manage preferences:") in text
    report = size_report(prepared)
    assert not report.refuse and report.bytes < REFUSE_BYTES


def test_the_german_digest_speaks_german_to_a_german_reader(app, db) -> None:  # type: ignore[no-untyped-def]
    """A German reader gets du-form German chrome, plural forms and the German preheader."""
    prepared, _, _ = _issue(app, db, "de")
    reader = Reader(1, "x" * 22, "ada@example.org", "Ada Lovelace")
    html, text = prepared.parts_for(reader)
    assert "Hallo Ada," in text and "In dieser Ausgabe (2 Beiträge):" in text
    assert "Weiterlesen:" in text and "Abmelden:" in text
    assert "Du erhältst The Test Weekly, weil du dich als" in visible(html)
    assert prepared.preheader_for(reader) == "2 Beiträge diese Woche: First news · A tool"


@pytest.mark.one_backend
def test_german_reader_emails_arrive_in_german(app_overrides, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Confirmation, welcome and note of a German newsletter arrive in German, subject and
    both parts, with lang="de" and the schedule said the German way."""
    from digest import create_app

    smtp_app = create_app({**app_overrides, "SMTP_URL": smtp_server.url})
    try:
        emails = _received_in(smtp_app, smtp_server, "de")
    finally:
        get_db_of(smtp_app).dispose()
    assert _subject(emails["confirm"]) == "Bitte bestätige deine Anmeldung zu The Weekly Model"
    assert _subject(emails["welcome"]) == "Willkommen bei The Weekly Model"
    assert _subject(emails["already"]) == "Du erhältst The Weekly Model bereits"
    assert "Der Link ist 7 Tage gültig." in text_part(emails["confirm"])
    assert "Hallo Nina," in text_part(emails["welcome"]) and "Hallo" not in text_part(emails["welcome, no name"])
    assert "Er kommt jeden Montag um 08:00 Uhr (Europe/Berlin)." in text_part(emails["welcome"])
    for received in emails.values():
        assert '<html lang="de" dir="ltr"' in html_part(received)
        assert "Einstellungen verwalten" in html_part(received) or "Anmeldung bestätigen" in html_part(received)


# -- right to left --------------------------------------------------------------------------

_ALIGNMENT = """() => {
  const style = (selector) => getComputedStyle(document.querySelector(selector));
  const greeting = document.querySelector('.greeting').getBoundingClientRect();
  const content = document.querySelector('td.content').getBoundingClientRect();
  const preview = document.querySelector('td.preview').getBoundingClientRect();
  const topright = document.querySelector('td.topright').getBoundingClientRect();
  return {
    dir: document.documentElement.dir,
    content: style('td.content').textAlign, direction: style('.greeting').direction,
    greetingRight: content.right - greeting.right, greetingLeft: greeting.left - content.left,
    textRight: (() => { const r = document.createRange(); r.selectNodeContents(document.querySelector('.greeting'));
                        const box = r.getBoundingClientRect(); return [box.left - greeting.left, greeting.right - box.right]; })(),
    previewRightOfLink: preview.left > topright.left,
  };
}"""


@pytest.mark.one_backend
def test_the_hebrew_digest_mirrors_in_chromium(app, db) -> None:  # type: ignore[no-untyped-def]
    """In Hebrew the digest is dir="rtl": its text sits against the right edge, the preview
    line on the right and "view in browser" on the left (a screenshot is kept)."""
    prepared, _, _ = _issue(app, db, "he")
    html, text = prepared.parts_for(Reader(1, "x" * 22, "ada@example.org", "Ada Lovelace"))
    assert '<html lang="he" dir="rtl"' in html
    assert re.search(r'<div class="wrapper" role="article"[^>]* lang="he" dir="rtl"', html)
    assert "שלום Ada," in text
    with chromium(viewport={"width": 600, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        page.set_content(html, wait_until="load")
        facts = page.evaluate(_ALIGNMENT)
        page.screenshot(path=str(screenshot_path("email-digest-he-600")), full_page=True)
    assert facts["dir"] == "rtl" and facts["direction"] == "rtl", facts
    assert facts["content"] == "right", facts
    text_left, text_right = facts["textRight"]
    assert text_right < 2 and text_left > 100, facts  # the greeting's words hug the right edge
    assert facts["previewRightOfLink"], facts


@pytest.mark.one_backend
def test_the_german_digest_reads_left_to_right_in_chromium(app, db) -> None:  # type: ignore[no-untyped-def]
    """The German digest stays left to right: text against the left edge, the preview line
    on the left (a screenshot is kept beside the Hebrew one)."""
    prepared, _, _ = _issue(app, db, "de")
    html, _ = prepared.parts_for(Reader(1, "x" * 22, "ada@example.org", "Ada Lovelace"))
    with chromium(viewport={"width": 600, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        page.set_content(html, wait_until="load")
        facts = page.evaluate(_ALIGNMENT)
        page.screenshot(path=str(screenshot_path("email-digest-de-600")), full_page=True)
    assert facts["dir"] == "ltr" and facts["content"] == "left", facts
    text_left, text_right = facts["textRight"]
    assert text_left < 2 and text_right > 100 and not facts["previewRightOfLink"], facts


# -- the whole journey ------------------------------------------------------------------------


def test_a_german_reader_journey_through_smtp(app_overrides, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A German newsletter's reader signs up on its German page, gets the confirmation in
    German over SMTP, confirms on a German page, gets the German welcome, and unsubscribes
    with its RFC 8058 one-click link: every step speaks German, in the bytes received."""
    from digest import create_app
    from digest.core.models import Subscriber, Subscription, SubscriptionStatus

    smtp_app = create_app({**app_overrides, "SMTP_URL": smtp_server.url})
    base = smtp_app.config["BASE_URL"]
    try:
        newsletter = load_newsletter(smtp_app)
        with get_db_of(smtp_app).session() as session:
            _speak(session, newsletter.id, "de")
        client = smtp_app.test_client()
        front = client.get("/").get_data(as_text=True)
        assert '<html lang="de" dir="ltr"' in front and ">Abonnieren<" in front

        answer = signup(client, "lena@example.org", name="Lena Berg").get_data(as_text=True)
        assert "Schau in dein Postfach" in answer
        assert deliver(smtp_app) == 1
        [confirmation] = smtp_server.to("lena@example.org")
        assert _subject(confirmation) == "Bitte bestätige deine Anmeldung zu The Weekly Model"
        assert b"Subject: =?utf-8?" in confirmation.data  # encoded on the wire, as RFC 2047 asks
        assert "Der Link ist 7 Tage gültig." in text_part(confirmation)
        assert "Öffne den Link und klicke auf „Bestätigen“" in text_part(confirmation)
        assert '<html lang="de" dir="ltr"' in html_part(confirmation)

        page = client.get(link(confirmation, "confirm", base)).get_data(as_text=True)
        assert "Bestätige dein Abonnement" in page and "Abonnement bestätigen" in page
        confirmed = submit(client, link(confirmation, "confirm", base)).get_data(as_text=True)
        assert "Du bist angemeldet" in confirmed
        assert deliver(smtp_app) == 1
        welcome = smtp_server.to("lena@example.org")[-1]
        assert _subject(welcome) == "Willkommen bei The Weekly Model"
        assert "Hallo Lena," in text_part(welcome) and "Einstellungen verwalten" in html_part(welcome)

        one_click = re.findall(r"<(https://[^>]+)>", welcome.raw_header("List-Unsubscribe")[0])[0]
        assert welcome.raw_header("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
        path = one_click.removeprefix(base)
        done = client.post(path, data="List-Unsubscribe=One-Click",
                           content_type="application/x-www-form-urlencoded")
        assert done.status_code == 200 and "Du bist abgemeldet" in done.get_data(as_text=True)
        again = client.get(path).get_data(as_text=True)
        assert '<html lang="de"' in again and "Von The Weekly Model abmelden?" not in again
        with get_db_of(smtp_app).session() as session:
            status = session.scalars(
                select(Subscription.status).join(Subscriber).where(Subscriber.email == "lena@example.org")
            ).one()
        assert status is SubscriptionStatus.UNSUBSCRIBED
    finally:
        get_db_of(smtp_app).dispose()
