"""Click tracking end to end: an issue sent through a real SMTP server, its links followed
from the received bytes with a real HTTP client, as a human and as machines."""

from __future__ import annotations

import datetime as dt
import re

import requests
from flask import Flask
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    ClickEvent,
    Delivery,
    ReaderClick,
    Subscriber,
    Subscription,
    SubscriptionSection,
)
from digest.core.tokens import ClickSigner
from digest.domain import engagement, issues
from digest.engine.clicks import recorder
from digest.engine.scheduler import maintain
from digest.engine.sender import new_owner, send_batch
from digest.mail.mailer import mailer_for
from tests.support.apps import BASE_URL, SECRET
from tests.support.browser import live_server
from tests.support.delivery import CONFIG, Setup, make_newsletter, reader_email
from tests.support.smtp import SMTPServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link protection)"
CLICK = re.compile(re.escape(BASE_URL) + r"/c/[A-Za-z0-9_-]{24}")


def _send(app: Flask, db: Session, setup: Setup) -> None:
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    with mailer_for(app.config) as mailer:
        while send_batch(app, mailer, setup.issue_id, owner=new_owner("test")).claimed:
            maintain(app)
    maintain(app)


def _received(server: SMTPServer, n: int) -> tuple[str, str]:
    """Return (HTML, text) of what reader n's mailbox received."""
    message = server.to(reader_email(n))[0].message
    html, text = message.get_body(("html",)), message.get_body(("plain",))
    assert html is not None and text is not None
    return html.get_content(), text.get_content()


def _links(html: str) -> list[str]:
    return list(dict.fromkeys(CLICK.findall(html)))


def _follow(base: str, link: str, agent: str, method: str = "GET") -> requests.Response:
    return requests.request(method, base + link.removeprefix(BASE_URL), allow_redirects=False,
                            headers={"User-Agent": agent}, timeout=10)


def _settle(app: Flask) -> None:
    recorder(app).flush()
    recorder(app).settle(utcnow() + dt.timedelta(minutes=1))


def _opt_out(db: Session, n: int) -> None:
    db.execute(update(Subscription).where(Subscription.subscriber_id == db.scalar(
        select(Subscriber.id).where(Subscriber.email == reader_email(n)))).values(no_tracking=True))


def test_clicks_are_counted_human_and_machine_apart(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """A reader's clicks count as human (once per link for uniques); a scanner's HEAD and
    user agent, and one message's links all clicked at once, count as machine; the
    figures say so per link, per section and in total."""
    setup = make_newsletter(db, readers=4)
    tools_only = db.scalar(select(Subscription.id).join(Subscriber).where(Subscriber.email == reader_email(0)))
    db.add(SubscriptionSection(subscription_id=tools_only, section_id=setup.section_ids[1]))
    _opt_out(db, 3)
    db.commit()
    _send(smtp_app, db, setup)
    # Scanners click within seconds of delivery; the readers here click ten minutes later.
    db.execute(update(Delivery).values(sent_at=utcnow() - dt.timedelta(minutes=10)))
    db.commit()
    html0, text0 = _received(smtp_server, 0)
    links0 = _links(html0)
    assert links0 and set(CLICK.findall(text0)) <= set(links0)
    assert "/unsubscribe/" in html0 and "/preferences/" in html0  # never rewritten
    tool_url = f"{BASE_URL}/posts/weekly/second"
    with live_server(smtp_app) as base:
        # Reader 0 opens the tool's link twice: one reader, two human clicks.
        answers = [_follow(base, link, BROWSER) for link in links0]
        assert all(a.status_code == 302 for a in answers)
        tool_link = links0[[a.headers["Location"] for a in answers].index(tool_url)]
        _settle(smtp_app)  # the first round went to every link of reader 0's message
        engaged = engagement.issue_report(db, issues.get_issue(db, setup.issue_id))
        db.commit()  # on SQLite an open transaction would hold the write lock
        assert engaged.human_clicks == len(links0) and engaged.readers_clicked == 1
        assert _follow(base, tool_link, BROWSER).headers["Location"] == tool_url
        # A link scanner at reader 1's mail server: HEAD, then GET with its user agent.
        html1, _ = _received(smtp_server, 1)
        for link in _links(html1):
            assert _follow(base, link, BROWSER, "HEAD").status_code == 302
            assert _follow(base, link, SCANNER).status_code == 302
        # Reader 2's message: every link clicked within a second, browser agent or not.
        html2, _ = _received(smtp_server, 2)
        links2 = _links(html2)
        assert len(links2) >= engagement.BURST_LINKS
        targets = {_follow(base, link, BROWSER).headers["Location"] for link in links2}
        assert tool_url in targets and all(t.startswith(BASE_URL) and "/c/" not in t for t in targets)
        # Reader 3 turned tracking off: their links go straight to the posts.
        html3, text3 = _received(smtp_server, 3)
        assert not CLICK.search(html3) and not CLICK.search(text3) and tool_url in html3
    _settle(smtp_app)
    issue = issues.get_issue(db, setup.issue_id)
    report = engagement.issue_report(db, issue)
    assert report.delivered == 4
    assert report.readers_clicked == 1 and report.human_clicks == len(links0) + 1
    assert report.click_rate == 0.25
    tool = next(f for f in report.links if f.url == tool_url)
    assert (tool.unique_human, tool.human, tool.post_title, tool.section) == (1, 2, "A tool", "Tools")
    assert report.links[0] == tool  # the top link first
    links1 = len(_links(html1))
    assert report.machine_by_rule["burst"] == len(links2)
    assert report.machine_by_rule["head"] == links1 and report.machine_by_rule["scanner"] == links1
    assert report.machine_clicks == len(links2) + 2 * links1
    sections = {s.name: (s.readers_clicked, s.readers_got) for s in report.sections}
    assert sections == {"News": (0, 3), "Tools": (1, 4)}
    assert sum(h.human for h in report.timeline) == report.human_clicks
    assert db.scalar(select(func.count()).select_from(ClickEvent)) == 0
    assert db.scalar(select(func.count()).select_from(ReaderClick)) == 0  # not kept by default


def test_tampered_and_unknown_links_stay_on_the_site(app: Flask) -> None:
    """A token altered by one character, garbage, or an address after /c/ all end at this
    site's front page (after at most a redirect within the site), never at another site,
    and record nothing (a path that holds a slash is no token at all: a 404 here)."""
    genuine = ClickSigner(SECRET).token(1, 1, 0)
    tampered = genuine[:5] + ("A" if genuine[5] != "A" else "B") + genuine[6:]
    with live_server(app) as base:
        for path in (f"/c/{tampered}", "/c/%2F%2Fevil.example", "/c/https:%2F%2Fevil.example",
                     "/c/aHR0cHM6Ly9ldmlsLmV4YW1wbGU=", "/c/" + "A" * 24, f"/c/{genuine}"):
            answer = requests.get(base + path, allow_redirects=False, timeout=10)
            while answer.status_code == 308:  # Werkzeug merging "//", on this same server
                assert answer.headers["Location"].startswith(base + "/c/")
                answer = requests.get(answer.headers["Location"], allow_redirects=False, timeout=10)
            if answer.status_code == 404:  # a path with a slash is no token: this site's 404
                assert "Location" not in answer.headers
                continue
            assert answer.status_code == 302, path
            assert answer.headers["Location"] == BASE_URL + "/", path
    assert recorder(app).flush() == 0
