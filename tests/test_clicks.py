"""Click tracking end to end: an issue sent through a real SMTP server, its links followed
from the received bytes with a real HTTP client, as a human and as machines."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import threading

import pytest
import requests
from flask import Flask
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    ClickEvent,
    ClickSeen,
    Delivery,
    IssueStatus,
    Newsletter,
    ReaderClick,
    Subscriber,
    Subscription,
    SubscriptionSection,
)
from digest.core.tokens import BadToken, ClickSigner
from digest.domain import engagement, issues, links
from digest.domain.subscribers import privacy
from digest.engine.clicks import recorder
from digest.engine.scheduler import maintain
from digest.engine.sender import new_owner, send_batch
from digest.mail.mailer import mailer_for
from digest.mail.tracking import LinkTable, TrackedLink
from tests.support.api import ApiClient, make_token
from tests.support.apps import BASE_URL, SECRET, get_db_of
from tests.support.browser import live_server
from tests.support.delivery import CONFIG, Setup, make_newsletter, reader_email
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token
from tests.support.smtp import SMTPServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
SCANNER = "Mozilla/5.0 (compatible; Barracuda Sentinel link protection)"
CLICK = re.compile(re.escape(BASE_URL) + r"/c/[A-Za-z0-9_-]{22}/[0-9]+\.[A-Za-z0-9_-]{4}")


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
    assert report.readers is None and report.opens is None
    db.commit()
    # The same figures on the issue's page, in the CSV, the API and `digest issue report`.
    make_editor(db)
    client = smtp_app.test_client()
    log_in(client, "admin@example.com")
    page = client.get(f"/editor/issues/{setup.issue_id}/sending").get_data(as_text=True)
    assert "What readers did" in page and "25.0%" in page and "A tool" in page
    assert "HEAD request" in page  # how the line is drawn, in words
    rows = list(csv.reader(io.StringIO(
        client.get(f"/editor/issues/{setup.issue_id}/engagement.csv").get_data(as_text=True))))
    assert rows[0][:2] == ["link", "url"]
    assert rows[1] == ["all", "", "", "", "1", str(report.human_clicks), str(report.machine_clicks)]
    assert rows[2][1:6] == [tool_url, "A tool", "Tools", "1", "2"]
    api = ApiClient(smtp_app.test_client(), make_token(smtp_app))
    data = api.get(f"/api/v1/issues/{setup.issue_id}/engagement").get_json()
    assert data["readers_clicked"] == 1 and data["click_rate"] == 0.25
    assert data["machine_by_rule"] == report.machine_by_rule
    assert data["links"][0]["url"] == tool_url and data["links"][0]["unique_human"] == 1
    result = smtp_app.test_cli_runner().invoke(args=["issue", "report", str(setup.issue_id), "--json"])
    assert result.exit_code == 0 and json.loads(result.output) == data
    result = smtp_app.test_cli_runner().invoke(args=["issue", "report", str(setup.issue_id)])
    assert "1 readers clicked (25.0%)" in result.output and tool_url in result.output


def test_opens_per_reader_records_opt_out_and_erasure(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """With opens and per-reader engagement on, the pixel counts opens but Apple's proxy's
    fetches apart, the report says who clicked, a reader who turns tracking off in the
    preference centre gets plain links and no pixel (and leaves no record), and erasing
    a reader erases their engagement."""
    setup = make_newsletter(db, readers=2)
    db.execute(update(Newsletter).values(track_opens=True, keep_reader_engagement=True))
    db.commit()
    reader1 = db.scalar(select(Subscription).join(Subscriber).where(Subscriber.email == reader_email(1)))
    assert reader1 is not None
    db.commit()  # on SQLite an open transaction would hold the write lock
    client = smtp_app.test_client()
    preferences = links.preferences_url(smtp_app.config, reader1.uid).removeprefix(BASE_URL)
    page = client.get(preferences).get_data(as_text=True)
    assert "We keep which links each reader clicked" in page
    answer = client.post(preferences, data={"csrf_token": csrf_token(page), "action": "no-track"})
    assert answer.status_code == 200 and "no longer counted" in answer.get_data(as_text=True)
    db.refresh(reader1)
    assert reader1.no_tracking
    db.commit()
    _send(smtp_app, db, setup)
    db.execute(update(Delivery).values(sent_at=utcnow() - dt.timedelta(minutes=10)))
    db.commit()
    html0, _ = _received(smtp_server, 0)
    html1, text1 = _received(smtp_server, 1)
    assert not CLICK.search(html1) and not CLICK.search(text1)  # no pixel either
    pixel = re.search(r'<img src="(' + CLICK.pattern + r')" width="1"', html0)
    assert pixel is not None
    with live_server(smtp_app) as base:
        opened = _follow(base, pixel.group(1), BROWSER)
        assert opened.status_code == 200 and opened.headers["Content-Type"] == "image/gif"
        assert _follow(base, pixel.group(1), "Mozilla/5.0").status_code == 200  # Apple's proxy
        tool = re.search(r'href="(' + CLICK.pattern + r')"[^>]*>A tool</a>', html0)
        assert tool is not None
        assert _follow(base, tool.group(1), BROWSER).headers["Location"].endswith("/second")
    _settle(smtp_app)
    report = engagement.issue_report(db, issues.get_issue(db, setup.issue_id))
    assert report.opens == 1 and report.machine_by_rule["apple"] == 0  # opens are not clicks
    assert [r.email for r in report.readers or []] == [reader_email(0)]
    assert db.scalar(select(func.count()).select_from(ReaderClick)) > 0
    erased = db.scalar(select(Subscriber).where(Subscriber.email == reader_email(0)))
    seen_before = db.scalar(select(func.count()).select_from(ClickSeen))
    assert erased is not None and seen_before
    privacy.erase(db, smtp_app.config, erased)
    db.commit()
    assert db.scalar(select(func.count()).select_from(ReaderClick)) == 0
    assert db.scalar(select(func.count()).select_from(ClickSeen)) == 0
    report = engagement.issue_report(db, issues.get_issue(db, setup.issue_id))
    assert report.readers == [] and report.readers_clicked == 1  # the anonymous total stays


def test_section_reach_stays_what_readers_got_when_it_was_sent(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """"Readers who got a section" counts the sections each message had when the issue
    was sent: readers who change their sections afterwards move none of its figures."""
    setup = make_newsletter(db, readers=3)
    news, tools = setup.section_ids
    subscription = {n: db.scalar(select(Subscription.id).join(Subscriber).where(
        Subscriber.email == reader_email(n))) for n in range(3)}
    db.add(SubscriptionSection(subscription_id=subscription[0], section_id=tools))
    db.commit()
    _send(smtp_app, db, setup)
    issue = issues.get_issue(db, setup.issue_id)
    assert issue.status == IssueStatus.SENT
    before = [(s.name, s.readers_got) for s in engagement.issue_report(db, issue).sections]
    assert before == [("News", 2), ("Tools", 3)]
    db.execute(delete(SubscriptionSection))
    db.add_all([SubscriptionSection(subscription_id=subscription[0], section_id=news),
                SubscriptionSection(subscription_id=subscription[1], section_id=news),
                SubscriptionSection(subscription_id=subscription[2], section_id=news)])
    db.commit()
    after = [(s.name, s.readers_got) for s in engagement.issue_report(db, issue).sections]
    assert after == before
    db.commit()
    api = ApiClient(smtp_app.test_client(), make_token(smtp_app))
    data = api.get(f"/api/v1/issues/{setup.issue_id}/engagement").get_json()
    assert [(s["name"], s["readers_got"]) for s in data["sections"]] == before


def test_tampered_and_unknown_links_stay_on_the_site(app: Flask) -> None:
    """A click link altered by one character (in the message's token, the link's index or
    its tag), another link's tag, garbage, or an address after /c/ all end at this site's
    front page (after at most a redirect within the site), never at another site, and
    record nothing (a path with more slashes is no click link at all: a 404 here)."""
    refs = ClickSigner(SECRET).refs(1, 1, [0, 1, 2])
    token, _, ref = refs[1].partition("/")
    index, _, tag = ref.partition(".")

    def changed(text: str, at: int) -> str:
        return text[:at] + ("A" if text[at] != "A" else "B") + text[at + 1 :]

    with live_server(app) as base:
        for path in (f"/c/{changed(token, 5)}/{ref}", f"/c/{token}/{changed(ref, 3)}",
                     f"/c/{token}/2.{tag}", f"/c/{token}/0{index}0.{tag}",
                     f"/c/{token}/{refs[2].partition('/')[2].replace('2.', '1.')}",
                     f"/c/{token}", f"/c/{token}/{index}", "/c/%2F%2Fevil.example",
                     "/c/https:%2F%2Fevil.example", "/c/aHR0cHM6Ly9ldmlsLmV4YW1wbGU=",
                     "/c/" + "A" * 22 + "/1.AAAA", f"/c/{token}/1.{tag}%2F..", f"/c/{token}/{'9' * 5000}.{tag}",
                     f"/c/{token}/1.{tag}é", f"/c/{refs[1]}"):
            answer = requests.get(base + path, allow_redirects=False, timeout=10)
            while answer.status_code == 308:  # Werkzeug merging "//", on this same server
                assert answer.headers["Location"].startswith(base + "/c/")
                answer = requests.get(answer.headers["Location"], allow_redirects=False, timeout=10)
            if answer.status_code == 404:  # a path with more slashes is no click link: a 404
                assert "Location" not in answer.headers
                continue
            assert answer.status_code == 302, path
            assert answer.headers["Location"] == BASE_URL + "/", path
    assert recorder(app).flush() == 0


def test_a_message_is_signed_once_and_each_link_is_bound_to_it() -> None:
    """Every link of one message shares its token (signed once), each carries its own
    tag, and a tag read back under another index, message or secret fails."""
    signer = ClickSigner(SECRET)
    refs = signer.refs(7, 42, [0, 3, 0xFFFF])
    tokens = {ref.partition("/")[0] for ref in refs.values()}
    assert len(tokens) == 1 and len(set(refs.values())) == 3
    for link, ref in refs.items():
        assert signer.read(*ref.split("/")) == (7, 42, link)
    token, ref = refs[3].split("/")
    other = signer.refs(7, 43, [3])[3].split("/")
    for bad in ((token, ref.replace("3.", "0.")), (other[0], ref), (token, other[1])):
        with pytest.raises(BadToken):
            signer.read(*bad)
    with pytest.raises(BadToken):
        ClickSigner("another secret").read(token, ref)


def test_two_senders_storing_an_issues_links_at_once_both_go_on(app: Flask, db: Session) -> None:
    """Two sender processes render a new issue at the same moment and both store its links:
    the second waits for the first and stores nothing twice, instead of failing (which
    paused the issue as "could not be rendered" on PostgreSQL)."""
    setup = make_newsletter(db, readers=1)
    db.commit()
    table = LinkTable(
        (TrackedLink(0, "https://example.org/a", None, None), TrackedLink(1, "https://example.org/b", None, None)),
        {"https://example.org/a": 0, "https://example.org/b": 1},
    )
    database = get_db_of(app)
    first = database.sessionmaker()
    engagement.save_links(first, setup.issue_id, table)  # written, not yet committed
    failures: list[BaseException] = []

    def second() -> None:
        try:
            with database.session() as session:
                engagement.save_links(session, setup.issue_id, table)
        except BaseException as exc:  # noqa: BLE001  (the test reports it)
            failures.append(exc)

    other = threading.Thread(target=second)
    other.start()
    other.join(0.5)  # on PostgreSQL it now waits on the first's rows; on SQLite for the write lock
    first.commit()
    first.close()
    other.join(30)
    assert not other.is_alive() and failures == []
    assert engagement.link_targets(db, setup.issue_id) == {0: "https://example.org/a", 1: "https://example.org/b"}
