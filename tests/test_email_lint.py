"""The email lint: caniemail's support data and the layout's rules, over every template and issue."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from digest.core.resources import resource_dir
from digest.domain.email_check import check_issue, check_templates, email_names, sample_html
from digest.domain.issue_mail import prepare_issue
from digest.mail.lint import lint_html, support_data
from tests.support.issues import demo_issue, pictured_demo_issue

GHOST = (
    '<!--[if mso]><table role="presentation" align="center" width="600"><tr><td><![endif]-->'
    "{}<!--[if mso]></td></tr></table><![endif]-->"
)
WRAPPER = '<div role="article" aria-label="Subject" lang="en" dir="ltr">{}</div>'


def _email(body: str) -> str:
    """Return a whole email around body that keeps every document-level rule."""
    return f"<!doctype html><html><head></head><body>{WRAPPER.format(GHOST.format(body))}</body></html>"


def _messages(html: str) -> list[str]:
    return [problem.message for problem in lint_html(html)]


@pytest.mark.one_backend
def test_every_email_template_passes_the_lint(app) -> None:  # type: ignore[no-untyped-def]
    """Each email, rendered as a reader gets it, uses nothing a targeted client drops."""
    names = email_names(resource_dir("templates"))
    assert {"digest", "confirm", "confirm_already", "welcome"} <= set(names)
    assert [str(p) for p in check_templates(app.config)] == []


@pytest.mark.one_backend
def test_demo_issue_with_its_image_heavy_post_passes_the_lint(app, db) -> None:  # type: ignore[no-untyped-def]
    """The demo issue, pictures and all, lints clean; every picture carries its width: the
    post's pictures the column's, the lead images the thumbnail's."""
    issue = pictured_demo_issue(app, db)
    html = prepare_issue(db, issue.id, app.config).largest_html()
    images = re.findall(r"<img\b[^>]*>", html)
    assert all(re.search(r'width="\d+"', image) for image in images)
    assert len([image for image in images if 'width="518"' in image]) == 4
    assert len([image for image in images if 'class="thumb-img"' in image]) == 5
    assert check_issue(db, issue.id, app.config) == []


def test_caniemail_data_is_shipped_with_its_version() -> None:
    """The packaged data names its source and date and holds the features the lint reads."""
    data = support_data()
    assert data["source"].startswith("github.com/hteumeuleu/caniemail@")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["last_update_date"])
    for slug in ("css-overflow-wrap", "css-padding", "css-line-height", "html-style"):
        assert data["features"][slug]["support"], slug
    assert data["features"]["css-overflow-wrap"]["support"]["gmail/desktop-webmail"] == "n"


def test_css_a_targeted_client_ignores_is_reported_with_the_clients() -> None:
    """overflow-wrap (Gmail, Outlook, Yahoo), word-break (Yahoo), white-space with Gmail's
    other accounts, em letter-spacing and bare line heights in Outlook are each named."""
    found = _messages(
        _email(
            '<table role="presentation"><tr><td style="padding: 8px">'
            '<p style="overflow-wrap: anywhere">a</p>'
            '<p style="word-break: break-all">b</p>'
            '<pre style="white-space: pre-wrap">c</pre>'
            '<p style="letter-spacing: 0.1em">d</p>'
            '<p style="line-height: 1.5">e</p>'
            '<p style="mso-line-height-rule: exactly; line-height: 24px; letter-spacing: 1px">ok</p>'
            "</td></tr></table>"
        )
    )
    assert len(found) == 5, found
    assert re.match(r"overflow-wrap: anywhere on <p> is not supported by Gmail .*Outlook", found[0])
    assert "word-break: break-all on <p>" in found[1] and "Yahoo! Mail" in found[1]
    assert "white-space: pre-wrap on <pre>" in found[2] and "Gmail (iOS, Android)" in found[2]
    assert "letter-spacing: 0.1em" in found[3] and "Outlook (Windows)" in found[3]
    assert "line-height: 1.5" in found[4] and "Outlook (Windows, Windows Mail)" in found[4]


def test_padding_and_borders_belong_on_table_cells() -> None:
    """Outlook pads and borders only table cells; its mso- alternative excuses a link's padding."""
    found = _messages(
        _email(
            '<div style="padding: 10px">x</div><h2 style="padding: 0 0 8px 0">y</h2>'
            '<p style="border-top: 1px solid #000">z</p>'
            '<table role="presentation"><tr><td style="padding: 10px; border: 1px solid #000" '
            'bgcolor="#2c5cc5"><a href="#" style="padding: 12px; mso-padding-alt: 0">Go</a>'
            "</td></tr></table>"
        )
    )
    assert [m.split(" is not")[0] for m in found] == [
        "padding: 10px on <div>",
        "padding: 0 0 8px 0 on <h2>",
        "border-top: 1px solid #000 on <p>",
    ]


def test_structural_rules() -> None:
    """An image needs a width, a button its painted cell, the column its ghost table, the
    body its wrapper with lang, dir and the subject."""
    found = _messages(
        "<!doctype html><html lang='en'><body><table role='presentation'><tr><td>"
        '<img src="https://example.org/a.png" alt="A chart">'
        '<p><a class="button" href="#" style="background-color: #2c5cc5; padding: 12px">Go</a></p>'
        "</td></tr></table></body></html>"
    )
    assert sorted(m.split(":")[0] for m in found) == [
        "<a.button> is styled as a button but is not the link inside a table cell with a bgcolor",
        "<img> has no width attribute",
        "no <!--[if mso]> table 600 px wide around the column",
        "padding",  # on a link, which Outlook does not pad (and no mso-padding-alt)
        "the body does not start with a wrapper carrying role=\"article\", lang, dir and aria-label (the subject)",
    ], found
    assert _messages(_email('<img src="https://example.org/a.png" alt="" width="518">')) == []


def test_elements_a_client_does_not_support_are_reported() -> None:
    """An element caniemail marks unsupported (a form, say) is named with the clients."""
    found = _messages(_email('<form action="https://example.org"><input type="text"></form>'))
    assert found and found[0].startswith("<form> is not supported by Outlook (Windows, Windows Mail)")


def test_check_command_prints_template_and_line_and_fails(app, runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`digest templates check` on templates as they were before issue 18 prints each problem
    at its template line and exits 1; on today's templates it exits 0."""
    folder = tmp_path / "templates"
    shutil.copytree(resource_dir("templates"), folder)
    confirm = folder / "emails" / "confirm.html"
    source = confirm.read_text(encoding="utf-8")
    source = source.replace(
        ".content .fallback {", ".content .fallback { overflow-wrap: anywhere; word-break: break-all;"
    )
    source = source.replace(
        '{{ button(confirm_url, _("Confirm my subscription")) }}',
        '<p><a class="button" style="background-color: #2c5cc5; padding: 12px 22px" '
        'href="{{ confirm_url }}">Confirm my subscription</a></p>',
    )
    confirm.write_text(source, encoding="utf-8")
    layout = folder / "emails" / "layout.html"
    layout.write_text(
        re.sub(r"<!--\[if mso\]><table.*?<!\[endif\]-->", "", layout.read_text(encoding="utf-8")),
        encoding="utf-8",
    )
    result = runner.invoke(args=["templates", "check", "--folder", str(folder)])
    assert result.exit_code == 1, result.output
    lines = result.output.splitlines()
    fallback_line = next(i for i, line in enumerate(source.splitlines(), 1) if ".content .fallback" in line)
    assert any(
        line.startswith(f"emails/confirm.html:{fallback_line}: overflow-wrap: anywhere on <p.fallback>")
        and "Gmail" in line
        for line in lines
    ), lines
    assert any(line.startswith(f"emails/confirm.html:{fallback_line}: word-break: break-all") for line in lines)
    assert any(re.match(r"emails/confirm\.html:\d+: <a\.button> is styled as a button", line) for line in lines)
    assert any(line.startswith("emails/confirm.html:1: no <!--[if mso]> table") for line in lines)
    assert "problem(s)." in lines[-1]
    clean = runner.invoke(args=["templates", "check"])
    assert clean.exit_code == 0 and "Every email holds" in clean.output


def test_check_command_names_a_template_that_does_not_render(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A broken template is reported at its line, like any other problem, not as a traceback."""
    folder = tmp_path / "templates"
    shutil.copytree(resource_dir("templates"), folder)
    welcome = folder / "emails" / "welcome.html"
    lines = welcome.read_text(encoding="utf-8").splitlines()
    broken_at = next(i for i, line in enumerate(lines, 1) if "<h1 class=\"subject\">" in line)
    lines[broken_at - 1] = "{% if %}"
    welcome.write_text("\n".join(lines) + "\n", encoding="utf-8")
    result = runner.invoke(args=["templates", "check", "--folder", str(folder)])
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    assert f"\nemails/welcome.html:{broken_at}: the template does not render:" in "\n" + result.output


def test_update_caniemail_trims_published_data(runner, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The refresh reads caniemail's data.json, keeps the latest result per targeted client
    with the notes it cites, and records where the data came from; bad input changes nothing."""
    published = {
        "api_version": "1.0.4",
        "last_update_date": "2026-11-30 10:00:00 +0000",
        "nicenames": {"family": {"gmail": "Gmail"}, "platform": {"ios": "iOS"}},
        "data": [
            {
                "slug": "css-hyphens",
                "title": "hyphens",
                "stats": {
                    "gmail": {"ios": {"2019-01": "y", "2026-10": "a #2"}},
                    "hey": {"desktop-webmail": {"2020": "n"}},
                },
                "notes_by_num": {"1": "Old.", "2": "Not supported with non Google accounts."},
            },
            {"slug": "image-avif", "title": "AVIF", "stats": {}},
        ],
    }
    source = tmp_path / "data.json"
    source.write_text(json.dumps(published), encoding="utf-8")
    output = tmp_path / "caniemail.json"
    result = runner.invoke(
        args=["templates", "update-caniemail", str(source), "--output", str(output)]
    )
    assert result.exit_code == 0, result.output
    data = json.loads(output.read_text(encoding="utf-8"))
    assert data["source"] == str(source) and data["api_version"] == "1.0.4"
    assert data["last_update_date"] == "2026-11-30 10:00:00 +0000"
    assert data["features"] == {
        "css-hyphens": {
            "title": "hyphens",
            "support": {"gmail/ios": "a #2"},
            "notes": {"2": "Not supported with non Google accounts."},
        }
    }
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    failed = runner.invoke(
        args=["templates", "update-caniemail", str(broken), "--output", str(output)]
    )
    assert failed.exit_code == 1 and "Could not read caniemail's data" in failed.output
    assert json.loads(output.read_text(encoding="utf-8")) == data


@pytest.mark.one_backend
def test_text_parts_keep_lines_short(app) -> None:  # type: ignore[no-untyped-def]
    """Every email's text part keeps prose within 72 characters and each link on its own line,
    in every shipped language."""
    from digest.domain.transactional import Schedule
    from digest.mail.language import PACKAGED, languages
    from digest.mail.stencil import email_templates, render_email

    folder = resource_dir("templates")
    for name, code in ((name, code) for name in email_names(folder) for code in languages(PACKAGED)):
        assert sample_html(app.config, folder, name)
        if name == "digest":
            continue
        context = {
            "newsletter": {"name": "The Weekly Model", "postal_address": "12 Example Street"},
            "site_url": "https://news.example.org", "name": "Ada Lovelace", "first_name": "Ada",
            "email": "ada@example.com",
            "confirm_url": "https://news.example.org/confirm/" + "t" * 60,
            "preferences_url": "https://news.example.org/preferences/" + "t" * 60,
            "unsubscribe_url": "https://news.example.org/unsubscribe/" + "t" * 60,
            "expires_days": 7, "sections": ("News",), "all_sections": ("News", "Tools"),
            "schedule": Schedule(1, "08:00", "Europe/Berlin"), "status": "paused",
            "latest_issue_subject": "A subject long enough to wrap once it follows its label",
            "latest_issue_url": "https://news.example.org/archive/weekly-model/" + "s" * 40,
        }
        html, text = render_email(email_templates(folder, language=code), name, context)
        for line in text.splitlines():
            bare_link = re.fullmatch(r"https?://\S+", line.strip())
            assert bare_link or (len(line) <= 72 and not re.search(r": https?://", line)), (name, code, line)
        paragraphs = re.findall(r"<p[^>]*>\s*([^<\s])", html)
        assert all(not first.islower() for first in paragraphs), (name, code, paragraphs)


def test_check_command_lints_an_issue_and_names_a_missing_one(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """`digest templates check --issue ID` lints that issue too; an unknown id is named."""
    issue_id = demo_issue(db).id
    db.rollback()  # every SQLite transaction takes the write lock: end the read
    result = runner.invoke(args=["templates", "check", "--issue", str(issue_id)])
    assert result.exit_code == 0 and "Every email holds" in result.output, result.output
    missing = runner.invoke(args=["templates", "check", "--issue", "999999"])
    assert missing.exit_code == 1 and "There is no issue 999999" in missing.output
