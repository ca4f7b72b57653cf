"""Every email as a real SMTP server received it, in Debian's headless Chromium, four ways.

As sent; without <style> (Gmail with other accounts); with the CSS Word's engine ignores
removed and the [if mso] blocks opened (an approximation of Outlook for Windows); in dark
mode. Each at 600 and 375 px, a screenshot of each kept in test-artifacts/. The digest is
the demo issue with its pictures drawn and served by the app: lead images as thumbnails,
and an image-heavy post whose widest picture was uploaded at four times the column's width.
"""

from __future__ import annotations

import re
import smtplib

import pytest

from digest.core.storage import media_storage
from digest.domain.demo import load_demo_images
from digest.domain.issue_mail import prepare_issue
from digest.mail.render import Reader
from tests.support.apps import BASE_URL, get_db_of
from tests.support.browser import chromium, screenshot_path
from tests.support.email_views import VIEWS
from tests.support.issues import demo_issue
from tests.support.readers import confirm_by_email, deliver, html_part, load_newsletter, signup
from tests.support.smtp import Received, SMTPServer

pytestmark = pytest.mark.browser

WIDTHS = (600, 375)
FACTS = """() => {
    const box = (el) => el.getBoundingClientRect();
    const card = document.querySelector('.card');
    const content = document.querySelector('td.content');
    const pad = getComputedStyle(content);
    const left = box(content).left + parseFloat(pad.paddingLeft);
    const right = box(content).right - parseFloat(pad.paddingRight);
    const clickable = (a, x, y) => {
        const hit = document.elementFromPoint(x, y);
        return !!hit && hit.closest('a') === a;
    };
    const buttons = [...document.querySelectorAll('a.button-link')].map((a) => {
        const cell = box(a.closest('td'));
        const y = cell.top + cell.height / 2;
        return {
            cellWidth: cell.width,
            columnWidth: right - left,
            middle: clickable(a, cell.left + cell.width / 2, y),
            edges: clickable(a, cell.left + 3, y) && clickable(a, cell.right - 3, y),
            height: box(a).height,
            painted: getComputedStyle(a.closest('td')).backgroundColor,
        };
    });
    const images = [...document.querySelectorAll('img')].map((img) => ({
        width: box(img).width, left: box(img).left, right: box(img).right,
        natural: img.naturalWidth,
    }));
    const postal = document.querySelector('.postal');
    const footerLinks = [...document.querySelectorAll('.links a')].map((a) => box(a).height);
    return {
        postal: getComputedStyle(postal).color,
        footerBackground: getComputedStyle(document.querySelector('.canvas')).backgroundColor,
        footerLinks,
        column: box(card).width,
        left, right,
        viewport: window.innerWidth,
        scrollWidth: document.documentElement.scrollWidth,
        cardColour: getComputedStyle(card).backgroundColor,
        textColour: getComputedStyle(content).color,
        buttons, images,
    };
}"""


def _contrast(foreground: str, background: str) -> float:
    """Return the WCAG contrast ratio of two computed rgb() colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
        linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]

    light, dark = sorted((luminance(foreground), luminance(background)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _served_by(app):  # type: ignore[no-untyped-def]
    """Answer the page's requests for this instance's media as the app does; nothing else loads."""
    client = app.test_client()

    def serve(route) -> None:  # type: ignore[no-untyped-def]
        url = route.request.url
        if not url.startswith(BASE_URL + "/media/"):
            route.abort()
            return
        answer = client.get(url.removeprefix(BASE_URL))
        route.fulfill(status=answer.status_code, content_type=answer.mimetype, body=answer.data)

    return serve


def _received_digest(app, db, smtp_server: SMTPServer) -> Received:  # type: ignore[no-untyped-def]
    """Send the demo issue to Ada through the real SMTP server and return what it received."""
    prepared = prepare_issue(db, demo_issue(db).id, app.config)
    outgoing = prepared.message_for(Reader(1, "uidAdaAdaAdaAdaAdaAdaA", "ada@example.com", "Ada"), 1)
    with smtplib.SMTP("127.0.0.1", smtp_server.port) as client:
        client.sendmail(outgoing.envelope_from, [outgoing.recipient], outgoing.data)
    return smtp_server.to("ada@example.com")[-1]


@pytest.mark.one_backend
def test_every_email_four_ways_at_600_and_375(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Each email keeps a column of at most 600 px, readable gutters, buttons clickable across
    their whole width and pictures inside the column, as sent, without <style>, like Outlook
    and in dark mode; dark mode changes the colours."""
    newsletter = load_newsletter(smtp_app)
    with get_db_of(smtp_app).session() as session:
        load_demo_images(session, smtp_app.config, media_storage(smtp_app.config),
                         session.merge(newsletter))
    emails = {"confirm": confirm_by_email(smtp_app, smtp_server, "nina@example.org", name="Nina")}
    assert deliver(smtp_app) == 1
    emails["welcome"] = smtp_server.to("nina@example.org")[-1]
    signup(smtp_app.test_client(), "grace@example.com")  # a demo reader, already subscribed
    assert deliver(smtp_app) == 1
    emails["already"] = smtp_server.to("grace@example.com")[-1]
    with smtp_app.app_context():
        from digest.core.extensions import db_session

        emails["digest"] = _received_digest(smtp_app, db_session(), smtp_server)
    html = {name: html_part(received) for name, received in emails.items()}
    seen: dict[tuple[str, str, int], dict] = {}  # type: ignore[type-arg]
    for width in WIDTHS:
        for scheme in ("light", "dark"):
            with chromium(color_scheme=scheme, viewport={"width": width, "height": 900}) as context:
                page = context.new_page()  # type: ignore[attr-defined]
                page.route("**/*", _served_by(smtp_app))
                for view, transform in VIEWS.items():
                    if (view == "dark") != (scheme == "dark"):
                        continue
                    for name, source in html.items():
                        page.set_content(transform(source), wait_until="load")
                        seen[(name, view, width)] = page.evaluate(FACTS)
                        page.screenshot(
                            path=str(screenshot_path(f"email-{name}-{view}-{width}")),
                            full_page=True,
                        )
    for (name, view, width), facts in seen.items():
        where = (name, view, width)
        assert facts["column"] <= 600, where
        if view == "outlook":
            # Word has no narrow layout: the ghost table holds the column at 600 px.
            assert facts["column"] == 600 and facts["right"] - facts["left"] == 518, where
        else:
            assert facts["scrollWidth"] <= width, where  # nothing runs off a phone
            assert 16 <= facts["left"] <= 48 and width - facts["right"] >= 16, where
            assert facts["right"] - facts["left"] >= (300 if width == 375 else 500), where
        for button in facts["buttons"]:
            assert button["middle"] and button["painted"] != "rgba(0, 0, 0, 0)", where
            assert button["cellWidth"] >= button["columnWidth"] - 1, where  # full width
            if view != "outlook":  # Word pads no link: its [if mso] spacers widen it instead
                assert button["edges"] and button["height"] >= 44, where
        for image in facts["images"]:
            assert image["natural"] > 0, where  # loaded, not a broken icon
            if image["width"]:  # the logo's other variant is hidden in this scheme
                assert image["left"] >= facts["left"] - 1 and image["right"] <= facts["right"] + 1, where
        assert facts["buttons"] or name == "digest", where
        # The postal line reads at WCAG AA contrast; footer links are finger-sized on phones.
        assert _contrast(facts["postal"], facts["footerBackground"]) >= 4.5, where
        if view != "outlook":
            assert all(height >= 44 for height in facts["footerLinks"]), where
        assert facts["footerLinks"] or name == "confirm", where
    pictures = seen[("digest", "as-is", 600)]["images"]
    shown = sorted(round(p["width"]) for p in pictures)
    # The light logo (its dark variant hidden), five thumbnails, and the post's pictures:
    # those uploaded wider than the column fill it, sharp at 2x; the small panel keeps its size.
    assert shown[:7] == [0, 120, 120, 120, 120, 120, 234], shown
    assert shown[7] == 320 and shown[8:] == [shown[8]] * 3 and shown[8] >= 500, shown
    assert sorted(p["natural"] for p in pictures if p["width"] > 500) == [1036] * 3
    for name in html:
        for width in WIDTHS:
            light, dark = seen[(name, "as-is", width)], seen[(name, "dark", width)]
            assert light["cardColour"] == "rgb(255, 255, 255)" != dark["cardColour"], name
            assert dark["textColour"] != light["textColour"], name


CODE_POST = """Set the chunk size with `--chunk 384` and keep the overlap small.

> Measure the noise first.

```
python -m retrieval.bench --chunk 384 --overlap 64 --embedding small --reranker base --runs 5
```

| Chunk | Accuracy |
|:------|---------:|
| 128   | 61 %     |
| 384   | 70 %     |
"""


@pytest.mark.one_backend
def test_code_quotes_and_tables_in_a_post_hold_on_a_phone_in_both_schemes(app, db) -> None:  # type: ignore[no-untyped-def]
    """A post's code block wraps inside the column, and in dark mode inline code, table borders
    and the quote's rule take dark colours instead of the light ones."""
    from tests.support.issues import PostSpec, make_issue

    issue = make_issue(db, [PostSpec("Tools", "Chunk sizes", body=CODE_POST)], subject="Code")
    html, _ = prepare_issue(db, issue.id, app.config).parts_for(Reader(1, "u1", "a@example.com"))
    seen = {}
    for scheme in ("light", "dark"):
        with chromium(color_scheme=scheme, viewport={"width": 375, "height": 900}) as context:
            page = context.new_page()  # type: ignore[attr-defined]
            page.route("**/*", lambda route: route.abort())
            page.set_content(html)
            seen[scheme] = page.evaluate(
                """() => {
                    const style = (s) => getComputedStyle(document.querySelector(s));
                    const pre = document.querySelector('pre').getBoundingClientRect();
                    const cell = document.querySelector('td.content').getBoundingClientRect();
                    return {
                        scrollWidth: document.documentElement.scrollWidth,
                        preInside: pre.right <= cell.right,
                        inlineCode: style('p code').backgroundColor,
                        codeText: style('p code').color,
                        tableBorder: style('.post-body td[align="right"]').borderTopColor,
                        quoteRule: style('td.quote-cell').borderLeftColor,
                        codeBlock: style('td.code-cell').backgroundColor,
                    };
                }"""
            )
            page.screenshot(path=str(screenshot_path(f"email-code-post-{scheme}-375")), full_page=True)
    light, dark = seen["light"], seen["dark"]
    for facts in (light, dark):
        assert facts["scrollWidth"] <= 375 and facts["preInside"], facts
    for key in ("inlineCode", "codeText", "tableBorder", "quoteRule", "codeBlock"):
        assert light[key] != dark[key], key
    assert dark["inlineCode"] == "rgb(38, 39, 46)" and dark["tableBorder"] == "rgb(58, 59, 68)"
