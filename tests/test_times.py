"""Times in the workspace: in the newsletter's time zone, 24-hour ISO, UTC on hover, all
through one filter."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

from digest.domain import posts
from digest.domain.senders import Obstacle
from tests.support.editor import log_in, make_editor
from tests.support.workspace import demo_newsletter, sent_issue

TEMPLATES = Path(__file__).resolve().parent.parent / "templates" / "editor"


def test_workspace_pages_show_local_times_with_utc_on_hover(app, db) -> None:  # type: ignore[no-untyped-def]
    """A send at 07:00 UTC in a Europe/Berlin newsletter reads 08:00 CET on the issue list and
    the sending page (and its live figures), with the UTC instant in the element's title."""
    newsletter = demo_newsletter(db)
    assert newsletter.time_zone == "Europe/Berlin"
    chosen = posts.list_posts(db, newsletter, status="published").posts[:2]
    issue = sent_issue(db, newsletter, "a-winter-issue", chosen, subject="A winter issue",
                       sent_at=dt.datetime(2026, 11, 16, 7, 0, tzinfo=dt.UTC))
    summer = sent_issue(db, newsletter, "a-summer-issue", [], subject="A summer issue",
                        sent_at=dt.datetime(2026, 7, 6, 6, 30, tzinfo=dt.UTC))
    make_editor(db, "admin@example.com")
    client = app.test_client()
    assert log_in(client, "admin@example.com").status_code == 302

    listing = client.get("/editor/issues").get_data(as_text=True)
    assert ('<time datetime="2026-11-16T07:00:00Z" title="2026-11-16 07:00:00 UTC">2026-11-16 08:00 CET</time>'
            in listing)
    assert ('<time datetime="2026-07-06T06:30:00Z" title="2026-07-06 06:30:00 UTC">2026-07-06 08:30 CEST</time>'
            in listing)

    sending = client.get(f"/editor/issues/{issue.id}/sending").get_data(as_text=True)
    started = re.search(r'<time data-field="started_text"[^>]*>([^<]*)</time>', sending)
    assert started and started.group(1) == "2026-11-16 08:00:00 CET"
    assert 'title="2026-11-16 07:00:00 UTC"' in started.group(0)
    assert " UTC</" not in sending  # no time printed in UTC as its text
    hours = re.search(r'<h3 id="clicks-timeline">.*?</h3>', sending)
    assert hours and ">2026-11-16 08:00 CET</time>" in hours.group(0)  # the clicks chart's hour 0
    live = client.get(f"/editor/issues/{issue.id}/progress.json").get_json()
    assert live["started_text"] == "2026-11-16 08:00:00 CET"
    assert summer.id  # listed above, in summer time


def test_no_editor_template_formats_a_time_itself() -> None:
    """Every time in the workspace goes through the `when` filter: no template formats one."""
    offenders = [f"{path.name}:{number}" for path in sorted(TEMPLATES.glob("*.html"))
                 for number, line in enumerate(path.read_text().splitlines(), 1)
                 if "strftime" in line or re.search(r'"[^"]*%H:%M[^"]*UTC', line)]
    assert not offenders, offenders


def test_what_holds_a_send_up_reads_in_local_time_on_the_sending_page() -> None:
    """The obstacle's "since" is the newsletter's local time on the sending page, UTC in the
    CLI (which serves every newsletter at once)."""
    held = Obstacle("cannot reach SMTP server", dt.datetime(2026, 11, 16, 7, 0, 5, tzinfo=dt.UTC), None, 1)
    assert held.describe() == "cannot reach SMTP server — since 07:00:05 UTC"
    assert held.describe(zone=ZoneInfo("Europe/Berlin")) == "cannot reach SMTP server — since 08:00:05 CET"
