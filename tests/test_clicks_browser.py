"""The engagement report in a real browser: an issue sent, links followed, the figures shown."""

from __future__ import annotations

import datetime as dt

from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import Delivery
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.delivery import make_newsletter
from tests.support.editor import PASSWORD, make_editor
from tests.support.smtp import SMTPServer
from tests.test_clicks import BROWSER, SCANNER, _follow, _links, _received, _send, _settle


def test_the_report_shows_human_and_machine_clicks(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """After a human click and a scanner's, the sending page shows the readers who clicked,
    the machine share, the top link with its post, the timeline and how the line is drawn,
    at desktop and phone widths, light and dark."""
    setup = make_newsletter(db, readers=3)
    make_editor(db)
    _send(smtp_app, db, setup)
    db.execute(update(Delivery).values(sent_at=utcnow() - dt.timedelta(minutes=10)))
    db.commit()
    html0, _ = _received(smtp_server, 0)
    html1, _ = _received(smtp_server, 1)
    with live_server(smtp_app) as base:
        _follow(base, _links(html0)[1], BROWSER)
        for link in _links(html1):
            _follow(base, link, SCANNER)
        _settle(smtp_app)
        for width, height, scheme in [(1280, 900, "light"), (1280, 900, "dark"), (390, 844, "light"), (390, 844, "dark")]:
            with chromium(viewport={"width": width, "height": height}, color_scheme=scheme) as context:
                page = context.new_page()  # type: ignore[attr-defined]
                log_in_editor(page, base, "admin@example.com", PASSWORD)
                page.goto(f"{base}/editor/issues/{setup.issue_id}/sending#engagement")
                report = page.locator("#engagement")
                assert "1 readers clicked" in " ".join(report.inner_text().split())
                assert page.locator("#engagement-links tbody tr").count() >= 1
                assert page.locator("#clicks-chart-title").count() == 1
                assert "user agent of a known link scanner" in report.inner_text()
                report.screenshot(path=str(screenshot_path(f"clicks/report-{width}-{scheme}")))
