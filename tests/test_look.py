"""A newsletter's look (accent colours, fonts, footer text) and an operator's template overrides."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import select

from digest.core.models import EditorRole, Issue, IssueStatus, Newsletter
from digest.core.resources import resource_dir
from digest.core.validation import Invalid
from digest.domain import look
from digest.domain.issue_mail import prepare_issue
from digest.mail.look import DEFAULT_LOOK
from digest.mail.render import NotSendable, check_sendable
from tests.support.apps import get_db_of
from tests.support.delivery import make_newsletter
from tests.support.editor import log_in, make_editor
from tests.support.forms import submit

RED = {"accent": "#b3261e", "accent_dark": "#ff9e8a", "heading_font": "palatino",
       "body_font": "verdana", "footer_text": "Written in Berlin by two people and a cat."}


def _admin(app, db):  # type: ignore[no-untyped-def]
    make_editor(db, "admin@example.com")
    client = app.test_client()
    assert log_in(client, "admin@example.com").status_code == 302
    return client


def test_the_default_look_meets_wcag_aa_in_both_modes() -> None:
    """The accents every newsletter starts with pass the check they are held to."""
    assert look.check_look(look.LookInput()) == DEFAULT_LOOK


def test_contrast_ratios_are_wcag_s() -> None:
    """Black on white is 21:1, a colour on itself 1:1, and #767676 on white just passes 4.5:1."""
    assert look.contrast("#000000", "#ffffff") == pytest.approx(21)
    assert look.contrast("#2c5cc5", "#2c5cc5") == pytest.approx(1)
    assert look.contrast("#767676", "#ffffff") == pytest.approx(4.54, abs=0.01)


def test_an_accent_too_light_for_light_mode_is_refused_with_the_measured_ratios() -> None:
    """A pale blue on white fails AA: the message says so, names the background and gives each ratio."""
    with pytest.raises(Invalid) as raised:
        look.check_look(look.LookInput(accent="#8fb0ff"))
    message = raised.value.errors["accent"]
    assert "light mode" in message and "4.5:1" in message and "darker" in message
    ratios = {bg: ratio for ratio, bg in re.findall(r"(\d+\.\d):1 on (#[0-9a-f]{6})", message)}
    assert set(ratios) == {"#ffffff", "#fbfaf7"}
    assert all(float(r) < 4.5 for r in ratios.values())
    assert "accent_dark" not in raised.value.errors


def test_an_accent_too_dark_for_dark_mode_is_refused() -> None:
    """The light-mode blue is unreadable on the dark card: refused for dark mode, asking a lighter one."""
    with pytest.raises(Invalid) as raised:
        look.check_look(look.LookInput(accent_dark="#2c5cc5"))
    message = raised.value.errors["accent_dark"]
    assert "dark mode" in message and "lighter" in message and "#1e1f25" in message


@pytest.mark.parametrize("field, value", [("accent", "blue"), ("accent", "#12345"),
                                          ("heading_font", "Comic Sans"), ("body_font", "")])
def test_what_is_not_a_colour_or_a_listed_font_is_refused(field: str, value: str) -> None:
    """Only #rgb/#rrggbb colours and the email-safe stacks are accepted."""
    with pytest.raises(Invalid) as raised:
        look.check_look(look.LookInput(**{field: value}))
    assert field in raised.value.errors


def test_the_accent_reaches_the_email_aiosmtpd_receives_and_the_pages(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """An admin saves a red accent, other fonts and a footer line: the test email and the archive's stylesheet carry them."""
    with get_db_of(smtp_app).session() as session:
        setup = make_newsletter(session, readers=1)
        client = _admin(smtp_app, session)

    saved = submit(client, "/editor/settings", "/editor/settings/look", **RED)
    assert saved.status_code == 302

    preview = f"/editor/issues/{setup.issue_id}/preview"
    submit(client, preview, f"/editor/issues/{setup.issue_id}/test")
    message = smtp_server.to("admin@example.com")[0].message
    html = message.get_body(("html",)).get_content()
    text = message.get_body(("plain",)).get_content()
    assert "#b3261e" in html and "#2c5cc5" not in html
    assert "#ff9e8a" in html and "#93b2ff" not in html  # the dark-mode accent
    assert '"Palatino Linotype"' in html and "Verdana" in html
    assert RED["footer_text"] in html and RED["footer_text"] in text

    page = client.get("/archive/weekly/").get_data(as_text=True)
    stylesheet = re.search(r'href="(/archive/weekly/look\.css\?v=[0-9a-f]+)"', page)
    assert stylesheet and RED["footer_text"] in page
    css = client.get(stylesheet[1]).get_data(as_text=True)
    assert "--accent: #b3261e" in css and "--accent: #ff9e8a" in css


def test_a_refused_accent_is_explained_and_nothing_is_saved(app, db) -> None:  # type: ignore[no-untyped-def]
    """Saving a pale accent answers 400 with the reason and the ratios; the newsletter keeps its look."""
    make_newsletter(db)
    client = _admin(app, db)
    refused = submit(client, "/editor/settings", "/editor/settings/look", **{**RED, "accent": "#ffcc00"})
    page = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert "#ffcc00 is too hard to read in light mode" in page and ":1 on #ffffff" in page
    db.expire_all()
    assert db.query(Newsletter).one().accent_color == DEFAULT_LOOK.accent


def test_the_previews_show_the_form_s_look_without_saving(app, db) -> None:  # type: ignore[no-untyped-def]
    """Both previews render the unsaved colour, framed only by this site; the newsletter is unchanged."""
    make_newsletter(db)
    client = _admin(app, db)
    email = submit(client, "/editor/settings", "/editor/settings/look/preview-email", **RED)
    page = submit(client, "/editor/settings", "/editor/settings/look/preview-page", **RED)
    assert email.status_code == page.status_code == 200
    assert "#b3261e" in email.get_data(as_text=True) and "Unsubscribe" in email.get_data(as_text=True)
    assert "--accent: #b3261e" in page.get_data(as_text=True)
    assert page.headers["X-Frame-Options"] == "SAMEORIGIN"
    assert "'sha256-" in page.headers["Content-Security-Policy"]
    refused = submit(client, "/editor/settings", "/editor/settings/look/preview-email", **{**RED, "accent": "#eeeeee"})
    assert refused.status_code == 400 and "too hard to read" in refused.get_data(as_text=True)
    db.expire_all()
    assert db.query(Newsletter).one().accent_color == DEFAULT_LOOK.accent


def _override(app, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    """Write INSTANCE/templates/emails/NAME as the packaged one changed by change(text)."""
    path = Path(app.config["INSTANCE_PATH"]) / "templates" / "emails" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    packaged = (resource_dir("templates") / "emails" / name).read_text(encoding="utf-8")
    changed = change(packaged)
    assert changed != packaged
    path.write_text(changed, encoding="utf-8")
    return path


def _without_unsubscribe(text: str) -> str:
    return text.replace(' &middot; <a href="{{ unsubscribe_url }}">{{ _("Unsubscribe") }}</a>', "")


def test_an_override_that_drops_unsubscribe_is_refused_with_its_line(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """`digest templates check` names the override's file and footer line; the issue cannot be sent."""
    setup = make_newsletter(db)
    path = _override(app, "digest.html", _without_unsubscribe)
    line = next(i for i, text in enumerate(path.read_text().splitlines(), 1) if "block footer" in text)

    result = runner.invoke(args=["templates", "check"])
    assert result.exit_code == 1
    assert f"{path}:{line}: the HTML part has no unsubscribe link" in result.output

    with pytest.raises(NotSendable) as raised:
        check_sendable(prepare_issue(db, setup.issue_id, app.config))
    assert "no unsubscribe link" in str(raised.value) and "digest templates check" in str(raised.value)
    client = _admin(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    answer = client.get(submit(client, page, f"{page}/send-now").headers["Location"])
    assert "cannot be sent" in answer.get_data(as_text=True)
    db.expire_all()
    assert db.get(Issue, setup.issue_id).status == IssueStatus.DRAFT


def test_a_text_override_that_drops_the_links_is_refused(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """A text part without "Read more" links loses the issue's links: refused at the footer line."""
    make_newsletter(db)
    path = _override(app, "digest.txt", lambda t: t.replace('  {{ _("Read more:") }}\n  {{ post.url }}\n', ""))
    result = runner.invoke(args=["templates", "check"])
    assert result.exit_code == 1
    assert f"{path}:" in result.output and "the text part drops" in result.output


def test_reader_email_overrides_keep_their_link_and_text_part(app, runner) -> None:  # type: ignore[no-untyped-def]
    """A welcome override whose text part drops the preferences link, and a confirmation
    override with an empty text part, are refused at the override's footer or first line."""
    welcome = _override(app, "welcome.txt", lambda t: t.replace("{{ preferences_url }}", "{{ site_url }}"))
    confirm = _override(app, "confirm.txt", lambda t: "{# nothing for plain-text readers #}\n")
    result = runner.invoke(args=["templates", "check"])
    assert result.exit_code == 1
    assert f"{welcome}:" in result.output and "the text part drops the preferences link" in result.output
    assert f"{confirm}:1: the text part is empty" in result.output


def test_an_override_that_does_not_compile_is_refused_with_its_line(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """A page override with an unclosed block is named with its line, before anything renders."""
    folder = Path(app.config["INSTANCE_PATH"]) / "templates" / "archive"
    folder.mkdir(parents=True)
    (folder / "index.html").write_text('{% extends "base.html" %}\n{% block content %}\n<p>Hi\n')
    result = runner.invoke(args=["templates", "check"])
    assert result.exit_code == 1
    assert f"{folder / 'index.html'}:" in result.output and "does not compile" in result.output


def test_a_fine_override_is_used_by_the_digest(smtp_app, smtp_server, runner) -> None:  # type: ignore[no-untyped-def]
    """An override that keeps the essentials passes the check and is what readers receive."""
    with get_db_of(smtp_app).session() as session:
        setup = make_newsletter(session, readers=1)
        client = _admin(smtp_app, session)
    _override(smtp_app, "digest.html", lambda t: t.replace(
        '<h1 class="subject" dir="auto">', '<p class="greeting">A word from our sponsor, the override.</p>\n<h1 class="subject" dir="auto">'))
    result = smtp_app.test_cli_runner().invoke(args=["templates", "check"])
    assert result.exit_code == 0, result.output

    preview = f"/editor/issues/{setup.issue_id}/preview"
    submit(client, preview, f"/editor/issues/{setup.issue_id}/test")
    html = smtp_server.to("admin@example.com")[0].message.get_body(("html",)).get_content()
    assert "A word from our sponsor, the override." in html


def test_a_page_override_is_served(client, app, db) -> None:  # type: ignore[no-untyped-def]
    """The archive page comes from INSTANCE/templates when the operator put one there."""
    make_newsletter(db)
    folder = Path(app.config["INSTANCE_PATH"]) / "templates" / "archive"
    folder.mkdir(parents=True)
    packaged = (resource_dir("templates") / "archive" / "index.html").read_text()
    (folder / "index.html").write_text(packaged.replace(": the archive", ": every issue so far"))
    assert "every issue so far" in client.get("/archive/weekly/").get_data(as_text=True)


def _page_override(app, name: str, change) -> Path:  # type: ignore[no-untyped-def]
    """Write INSTANCE/templates/NAME as the packaged page template changed by change(text)."""
    path = Path(app.config["INSTANCE_PATH"]) / "templates" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    packaged = (resource_dir("templates") / name).read_text(encoding="utf-8")
    assert change(packaged) != packaged
    path.write_text(change(packaged), encoding="utf-8")
    return path


def test_page_overrides_are_rendered_from_the_demo_and_refused_with_their_line(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """`digest templates check` renders each reader and archive page from the demo data on a
    scratch database: an override that fails to render is named at its line, one that drops
    the preferences form's CSRF field at its form; a faithful override passes, and the real
    database is left as it was."""
    make_newsletter(db)
    db.commit()
    fine = _page_override(app, "archive/index.html", lambda t: t.replace(": the archive", ": every issue so far"))
    result = runner.invoke(args=["templates", "check"])
    assert result.exit_code == 0, result.output
    broken = _page_override(app, "archive/issue.html",
                            lambda t: t.replace("{% block content %}", "{% block content %}\n{{ issue.no_such.field }}", 1))
    broken_at = next(i for i, line in enumerate(broken.read_text().splitlines(), 1) if "no_such" in line)
    stripped = _page_override(app, "public/preferences.html",
                              lambda t: t.replace('<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">', ""))
    form_at = next(i for i, line in enumerate(stripped.read_text().splitlines(), 1) if "<form" in line)
    buttonless = _page_override(app, "public/confirm.html", lambda t: t.replace(
        '<button type="submit">{{ _("Confirm subscription") }}</button>', '<a href="/">{{ _("Confirm subscription") }}</a>'))
    result = runner.invoke(args=["templates", "check"])
    assert result.exit_code == 1
    assert f"{broken}:{broken_at}: the page /archive/weekly-model/benchmarks-saturate does not render" in result.output
    assert re.search(rf"{re.escape(str(stripped))}:{form_at}: the page /preferences/\S+ drops the CSRF "
                     r"field of the form posting to /preferences/\S+ \(action save\)", result.output)
    confirm_form_at = next(i for i, line in enumerate(buttonless.read_text().splitlines(), 1) if "<form" in line)
    assert re.search(rf"{re.escape(str(buttonless))}:{confirm_form_at}: the page /confirm/\S+ drops the "
                     r"submit button of the form posting to /confirm/", result.output)
    assert result.output.count("drops the CSRF field of the form posting to /preferences/") == len(
        set(re.findall(r"drops the CSRF field of the form posting to (\S+ \(action \S+\))", result.output)))
    assert str(fine) not in result.output
    assert db.scalars(select(Newsletter.slug)).all() == ["weekly"]  # nothing of the demo here
    db.rollback()
    assert app.test_client().get("/archive/weekly/").status_code == 200


def test_pages_shown_after_a_form_are_rendered_too(app, runner) -> None:  # type: ignore[no-untyped-def]
    """Pages a reader sees only after a POST are rendered with their view's context: an error
    in one branch of the confirmation page (a suppressed address) and in the "check your
    inbox" page are named at their line; a preferences page whose Pause form became a second
    Resume form (as many forms as before) and an expired-link page without its button are
    refused per form."""
    confirmed = _page_override(app, "public/confirmed.html", lambda t: t.replace(
        '{% elif result == "suppressed" %}', '{% elif result == "suppressed" %}\n{{ newsletter.no_such.field }}'))
    confirmed_at = next(i for i, line in enumerate(confirmed.read_text().splitlines(), 1) if "no_such" in line)
    inbox = _page_override(app, "public/check_inbox.html", lambda t: t.replace(
        "{% block content %}", "{% block content %}\n{{ subscriber.email.upper() }}", 1))
    inbox_at = next(i for i, line in enumerate(inbox.read_text().splitlines(), 1) if "upper()" in line)
    preferences = _page_override(app, "public/preferences.html", lambda t: t.replace(
        'action_form("pause", _("Pause delivery"))', 'action_form("resume", _("Pause delivery"))'))
    expired = _page_override(app, "public/confirm_expired.html", lambda t: t.replace(
        '<button type="submit">{{ _("Send me a new link") }}</button>', ""))
    fine = _page_override(app, "public/deleted.html", lambda t: t.replace("is gone", "is deleted"))

    result = runner.invoke(args=["templates", "check"])
    assert result.exit_code == 1
    assert (f"{confirmed}:{confirmed_at}: the page shown after POST /confirm/" in result.output
            and "(suppressed) does not render: UndefinedError" in result.output)
    assert f"{inbox}:{inbox_at}: the page shown after POST /subscribe does not render" in result.output
    assert re.search(rf"{re.escape(str(preferences))}:\d+: the page /preferences/\S+ drops the form "
                     r"posting to /preferences/\S+ \(action pause\)", result.output)
    assert re.search(rf"{re.escape(str(expired))}:\d+: the page shown after POST /confirm/\S+ with an "
                     r"expired link drops the submit button of the form posting to /confirm/\S+/renew",
                     result.output)
    assert str(fine) not in result.output

    for path in (confirmed, inbox, preferences, expired):
        path.unlink()
    assert runner.invoke(args=["templates", "check"]).exit_code == 0


def test_editors_cannot_change_the_look(app, db) -> None:  # type: ignore[no-untyped-def]
    """The look is an admin's setting: an editor's save is refused and changes nothing."""
    make_newsletter(db)
    make_editor(db, "editor@example.com", EditorRole.EDITOR)
    client = app.test_client()
    assert log_in(client, "editor@example.com").status_code == 302
    answer = submit(client, "/editor/", "/editor/settings/look", **RED)
    assert answer.status_code == 403
    db.expire_all()
    assert db.query(Newsletter).one().accent_color == DEFAULT_LOOK.accent


def test_footer_text_is_printed_as_text(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Markup in the footer text reaches neither the email's HTML nor the pages as markup."""
    with get_db_of(smtp_app).session() as session:
        setup = make_newsletter(session, readers=1)
        client = _admin(smtp_app, session)
    hostile = '<script>alert(1)</script><a href="https://evil.example">x</a>'
    assert submit(client, "/editor/settings", "/editor/settings/look", **{**RED, "footer_text": hostile}).status_code == 302
    submit(client, f"/editor/issues/{setup.issue_id}/preview", f"/editor/issues/{setup.issue_id}/test")
    html = smtp_server.to("admin@example.com")[0].message.get_body(("html",)).get_content()
    page = client.get("/archive/weekly/").get_data(as_text=True)
    for shown in (html, page):
        assert "<script>" not in shown and '<a href="https://evil.example"' not in shown
        assert "&lt;script&gt;" in shown
