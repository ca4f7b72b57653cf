"""The editor's sending view: live progress, pause/resume/cancel/resend, the issue's record.

Every test sends for real (aiosmtpd) and drives the workspace through the HTTP client.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from digest import create_app
from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    IssueStatus,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.domain import issues, reports
from digest.domain.bounces import ingest
from digest.domain.identity import verp_address
from digest.domain.subscribers.actions import ReaderActions
from digest.engine.scheduler import maintain
from digest.engine.sender import new_owner, send_batch
from digest.mail.mailer import mailer_for
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.delivery import (
    CONFIG,
    Setup,
    make_newsletter,
    per_recipient,
    reader_email,
    states,
)
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token
from tests.support.inbound import arf, dsn
from tests.support.rawsmtp import RawSMTPServer
from tests.support.smtp import SMTPServer
from tests.support.workspace import demo_newsletter, sent_issue

SUBJECT = "Our first issue"  # make_newsletter's issue

ADMIN = "admin@example.com"


def _workspace(app: Flask, db: Session, readers: int = 6) -> tuple[Setup, FlaskClient]:
    """A newsletter with readers and a draft issue, and a logged-in editor's client."""
    setup = make_newsletter(db, readers=readers)
    make_editor(db, ADMIN)
    client = app.test_client()
    log_in(client, ADMIN)
    return setup, client


def _start(db: Session, issue_id: int) -> None:
    issues.send_now(db, issue_id)
    issues.start_issue(db, issue_id, CONFIG)
    db.commit()


def _batch(app: Flask, issue_id: int) -> int:
    """Send one batch the way a sender thread does; return how many rows it claimed."""
    with mailer_for(app.config) as mailer:
        return send_batch(app, mailer, issue_id, owner=new_owner("test")).claimed


def _drain(app: Flask, db: Session, issue_id: int) -> None:
    """Send batches until nothing is left, with the tick's maintenance in between."""
    db.commit()  # on SQLite the test session's open transaction would hold the write lock
    for _ in range(50):
        maintain(app)
        if not _batch(app, issue_id):
            break
    maintain(app)


def _page(client: FlaskClient, issue_id: int) -> str:
    response = client.get(f"/editor/issues/{issue_id}/sending")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _progress(client: FlaskClient, issue_id: int) -> dict[str, Any]:
    response = client.get(f"/editor/issues/{issue_id}/progress.json")
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    return response.get_json()


def _act(client: FlaskClient, issue_id: int, action: str) -> str:
    """Press an action's button on the sending page (CSRF token included); return the page after."""
    page = _page(client, issue_id)
    response = client.post(f"/editor/issues/{issue_id}/sending/{action}",
                           data={"csrf_token": csrf_token(page)}, follow_redirects=True)
    assert response.status_code == 200
    return response.get_data(as_text=True)


def _flash(html: str) -> list[str]:
    return re.findall(r'<p class="flash flash-(\w+)" role="status">([^<]*)</p>', html)


def _shown_actions(html: str) -> set[str]:
    """Return the actions whose forms the page shows (without JavaScript: not hidden)."""
    return set(re.findall(r'data-action="(\w+)"(?![^>]*\bhidden\b)', html)) - {"none"}


def _bar(html: str) -> tuple[int, int]:
    match = re.search(r'<progress id="sending-bar" max="(\d+)" value="(\d+)"', html)
    assert match, "no progress bar"
    return int(match.group(2)), int(match.group(1))


def _status(db: Session, issue_id: int) -> IssueStatus:
    status = issues.get_issue(db, issue_id).status
    db.commit()
    return status


def test_anonymous_visitors_are_sent_to_log_in(smtp_app: Flask, db: Session) -> None:
    """Neither the page nor its JSON is shown to someone who is not logged in."""
    setup = make_newsletter(db, readers=2)
    client = smtp_app.test_client()
    for path in (f"/editor/issues/{setup.issue_id}/sending", f"/editor/issues/{setup.issue_id}/progress.json"):
        response = client.get(path)
        assert response.status_code == 302 and "/editor/login?next=" in response.headers["Location"], path


def test_unknown_issue_is_not_found(smtp_app: Flask, db: Session) -> None:
    """An issue that does not exist answers 404, page and JSON alike."""
    _setup, client = _workspace(smtp_app, db)
    assert client.get("/editor/issues/999/sending").status_code == 404
    assert client.get("/editor/issues/999/progress.json").status_code == 404


def test_page_shows_the_counts_and_record_after_a_real_send(smtp_app: Flask, smtp_server: SMTPServer,
                                                            db: Session) -> None:
    """After a send with one refused address, the page shows the bar full, the counts per state,
    the record, and the refused reader with the server's reply and a link to their page."""
    setup, client = _workspace(smtp_app, db)
    smtp_server.script = lambda stage, a: "550 5.1.1 no such user" if stage == "rcpt" and a == reader_email(2) else None
    _start(db, setup.issue_id)
    _drain(smtp_app, db, setup.issue_id)
    assert states(db, setup.issue_id) == {"sent": 5, "failed_perm": 1}

    html = _page(client, setup.issue_id)
    assert "Sent: 5 of 6 readers got it." in html
    assert _bar(html) == (6, 6)
    assert re.search(r'<td data-count="sent">5</td>', html)
    assert re.search(r'<td data-count="failed_perm">1</td>', html)
    assert re.search(r'<td data-count="pending">0</td>', html)
    assert 'id="issue-record"' in html and "<strong>5</strong>delivered" in html
    refused = db.scalar(select(Subscriber.id).where(Subscriber.email == reader_email(2)))
    db.commit()
    row = re.search(r"<tr>\s*<th scope=\"row\"><a href=\"/editor/subscribers/(\d+)\">([^<]+)</a></th>(.*?)</tr>",
                    html, re.S)
    assert row and int(row.group(1)) == refused and row.group(2) == reader_email(2)
    assert "refused for good" in row.group(3) and "550" in row.group(3) and "no such user" in row.group(3)
    assert _shown_actions(html) == {"resend_failed"}
    assert "Started" in html and "Finished" in html and "UTC" in html
    data = _progress(client, setup.issue_id)
    assert data["status"] == "sent" and data["live"] is False
    assert (data["done"], data["total"], data["percent"]) == (6, 6, 100.0)
    assert data["counts"]["sent"] == 5 and data["counts"]["failed"] == 1
    assert data["finished_at"] and data["started_at"]


def test_progress_json_follows_the_issue(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """progress.json moves from draft to starting, sending (batch by batch) and sent."""
    setup, client = _workspace(smtp_app, db)
    smtp_app.config["BATCH_SIZE"] = 2
    draft = _progress(client, setup.issue_id)
    assert (draft["status"], draft["live"], draft["total"], draft["actions"]) == ("draft", False, 0, [])

    issues.send_now(db, setup.issue_id)
    db.commit()
    due = _progress(client, setup.issue_id)
    assert due["status"] == "scheduled" and due["live"] is True and due["status_text"].startswith("Starting")

    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    started = _progress(client, setup.issue_id)
    assert (started["status"], started["total"], started["done"]) == ("sending", 6, 0)
    assert started["counts"]["pending"] == 6 and started["actions"] == ["pause", "cancel"]

    assert _batch(smtp_app, setup.issue_id) == 2
    middle = _progress(client, setup.issue_id)
    assert (middle["done"], middle["counts"]["sent"], middle["counts"]["pending"]) == (2, 2, 4)
    assert middle["percent"] == pytest.approx(33.3) and middle["rate"] and middle["rate"] > 0
    assert "messages a second" in middle["rate_text"] and middle["eta_text"].startswith("about")
    assert middle["status_text"] == "Sending: 2 of 6 deliveries done."

    _drain(smtp_app, db, setup.issue_id)
    done = _progress(client, setup.issue_id)
    assert (done["status"], done["live"], done["done"], done["actions"]) == ("sent", False, 6, [])
    assert done["rate"] is None and done["eta_seconds"] is None


def test_pause_stops_the_send_and_resume_carries_on(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """Pausing from the page stops senders (nothing more goes out); resuming sends the rest, once each."""
    setup, client = _workspace(smtp_app, db)
    smtp_app.config["BATCH_SIZE"] = 2
    _start(db, setup.issue_id)
    _batch(smtp_app, setup.issue_id)

    html = _act(client, setup.issue_id, "pause")
    assert ("success", "Paused: senders stop before their next message. Resume whenever you are ready.") in _flash(html)
    assert _status(db, setup.issue_id) is IssueStatus.PAUSED
    assert _shown_actions(html) == {"resume", "cancel"}
    assert "An editor paused this issue." in html and f"Paused by {ADMIN}." in html
    assert _progress(client, setup.issue_id)["status"] == "paused"
    assert _batch(smtp_app, setup.issue_id) == 0
    maintain(smtp_app)
    assert len(smtp_server.received) == 2

    html = _act(client, setup.issue_id, "resume")
    assert ("success", "Sending again: the issue carries on where it stopped.") in _flash(html)
    assert _shown_actions(html) == {"pause", "cancel"}
    _drain(smtp_app, db, setup.issue_id)
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}
    assert _progress(client, setup.issue_id)["status"] == "sent"


def test_cancel_leaves_the_rest_unsent(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """Cancelling mid-send: no more messages; the record says how many got it and how many will not."""
    setup, client = _workspace(smtp_app, db)
    smtp_app.config["BATCH_SIZE"] = 2
    _start(db, setup.issue_id)
    _batch(smtp_app, setup.issue_id)
    assert "Cancel this issue" in _page(client, setup.issue_id)

    html = _act(client, setup.issue_id, "cancel")
    assert ("success", "Cancelled: readers who have not got the issue yet will not get it.") in _flash(html)
    assert _status(db, setup.issue_id) is IssueStatus.CANCELLED
    _drain(smtp_app, db, setup.issue_id)
    assert len(smtp_server.received) == 2
    assert "Cancelled: 2 readers got it before it was cancelled; 4 will not." in html
    assert "<strong>4</strong>not sent (cancelled)" in html
    assert _shown_actions(html) == set()
    assert _progress(client, setup.issue_id)["live"] is False


def test_resend_failed_requeues_failed_deliveries(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """Resend to failed queues temporary and permanent failures again: the reader whose server
    recovered gets the issue; the address refused for good stays suppressed and is skipped."""
    setup, client = _workspace(smtp_app, db)
    smtp_app.config.update(MAX_ATTEMPTS=1)

    def script(stage: str, address: str) -> str | None:
        if stage == "rcpt" and address == reader_email(1):
            return "452 4.2.2 mailbox full"
        if stage == "rcpt" and address == reader_email(4):
            return "550 5.1.1 no such user"
        return None

    smtp_server.script = script
    _start(db, setup.issue_id)
    _drain(smtp_app, db, setup.issue_id)
    assert states(db, setup.issue_id) == {"sent": 4, "failed_temp": 1, "failed_perm": 1}
    html = _page(client, setup.issue_id)
    assert _shown_actions(html) == {"resend_failed"}
    assert '<span data-count="failed">2</span> failed' in html
    assert re.search(r'<td data-count="gave_up">1</td>', html)
    assert "452" in html and "mailbox full" in html

    smtp_server.script = None
    html = _act(client, setup.issue_id, "resend-failed")
    assert ("success", "Queued 2 failed deliveries again. Addresses suppressed since (hard bounces) are skipped.") in _flash(html)
    assert _status(db, setup.issue_id) is IssueStatus.SENDING
    _drain(smtp_app, db, setup.issue_id)
    assert states(db, setup.issue_id) == {"sent": 5, "skipped": 1}
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails if e != reader_email(4)}
    assert _progress(client, setup.issue_id)["status"] == "sent"


def test_resend_unknown_sends_again_to_unclear_deliveries(smtp_app: Flask, smtp_server: SMTPServer,
                                                          db: Session) -> None:
    """An unclear delivery is listed; "resend unclear" sends it again (the reader may get two)."""
    setup, client = _workspace(smtp_app, db, readers=3)
    _start(db, setup.issue_id)
    _drain(smtp_app, db, setup.issue_id)
    db.execute(update(Delivery).where(Delivery.subscriber_id == 2).values(
        state=DeliveryState.UNKNOWN, smtp_response="sender stopped while this message was in flight"))
    db.commit()
    html = _page(client, setup.issue_id)
    assert _shown_actions(html) == {"resend_unknown"}
    assert "sender stopped while this message was in flight" in html and ">unclear</span>" in html

    html = _act(client, setup.issue_id, "resend-unknown")
    assert ("success", "Queued 1 unclear delivery again. Some of these readers may get the issue twice.") in _flash(html)
    _drain(smtp_app, db, setup.issue_id)
    assert per_recipient(smtp_server)[reader_email(1)] == 2
    assert states(db, setup.issue_id) == {"sent": 3}


def test_an_issue_with_unclear_deliveries_reads_sent_with_n_unclear_everywhere(
    app_overrides: dict[str, Any], db: Session
) -> None:
    """A server that vanishes after the end of two messages: the issue is not plainly
    "sent" but "sent — 2 unclear" with what to do, on the sending page, in progress.json,
    in `digest issue status` and `issue list`, and in the API (as its document says)."""
    server = RawSMTPServer(hang_up_after_data=True)
    app = create_app({**app_overrides, "SMTP_URL": server.url})
    try:
        setup, client = _workspace(app, db, readers=2)
        _start(db, setup.issue_id)
        _drain(app, db, setup.issue_id)
        assert _status(db, setup.issue_id) == IssueStatus.SENT
        html = _page(client, setup.issue_id)
        assert '<span id="sending-badge" class="badge badge-sent">sent — 2 unclear</span>' in html
        assert "Sent — 2 unclear: 0 of 2 readers got it" in html
        assert _shown_actions(html) == {"resend_unknown"}
        progress = _progress(client, setup.issue_id)
        assert (progress["status"], progress["status_label"]) == ("sent", "sent — 2 unclear")

        runner = app.test_cli_runner()
        status = runner.invoke(args=["issue", "status", str(setup.issue_id), "--once"])
        assert status.exit_code == 0, status.output
        assert f"Issue {setup.issue_id}: sent — 2 unclear, 2 deliveries" in status.output
        assert f"`digest issue resend {setup.issue_id} --unknown`" in status.output
        listed = runner.invoke(args=["issue", "list"]).output
        assert f"{setup.issue_id}\tsent — 2 unclear\t" in listed

        api = ApiClient(app.test_client(), make_token(app, "api@example.com"))
        issue = api.get(f"/api/v1/issues/{setup.issue_id}").get_json()
        assert (issue["status_label"], issue["unclear"]) == ("sent — 2 unclear", 2)
        assert f"digest issue resend {setup.issue_id} --unknown" in issue["unclear_action"]
        (summary,) = api.get("/api/v1/newsletters/weekly/issues").get_json()["issues"]
        assert summary["status_label"] == "sent — 2 unclear"
        fields = api.doc["components"]["schemas"]["IssueSummary"]["properties"]
        assert "sent — N unclear" in fields["status_label"]["description"]
    finally:
        server.close()
        get_db_of(app).dispose()


@pytest.mark.parametrize("action", ["resume", "pause", "cancel"])
def test_refused_actions_flash_why_and_change_nothing(smtp_app: Flask, smtp_server: SMTPServer, db: Session,
                                                      action: str) -> None:
    """On a sent issue, pause, resume and cancel are refused with the domain's reason."""
    setup, client = _workspace(smtp_app, db, readers=2)
    _start(db, setup.issue_id)
    _drain(smtp_app, db, setup.issue_id)
    verb = {"resume": "resumed", "pause": "paused", "cancel": "cancelled"}[action]
    html = _act(client, setup.issue_id, action)
    assert ("error", f"“{SUBJECT}” is sent: it cannot be {verb}.") in _flash(html)
    assert _status(db, setup.issue_id) is IssueStatus.SENT
    assert states(db, setup.issue_id) == {"sent": 2}


def test_resend_with_nothing_to_resend_says_so(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """Resend on an issue where every delivery went out changes nothing and says so."""
    setup, client = _workspace(smtp_app, db, readers=2)
    _start(db, setup.issue_id)
    _drain(smtp_app, db, setup.issue_id)
    html = _act(client, setup.issue_id, "resend-failed")
    assert ("warning", "There are no failed deliveries to send again: nothing changed.") in _flash(html)
    assert _status(db, setup.issue_id) is IssueStatus.SENT


def test_resend_on_a_draft_is_refused(smtp_app: Flask, db: Session) -> None:
    """An issue that never started cannot be resent: the refusal is flashed."""
    setup, client = _workspace(smtp_app, db, readers=2)
    html = _act(client, setup.issue_id, "resend-unknown")
    assert ("error", f"“{SUBJECT}” is draft: it cannot be resent to unknown.") in _flash(html)
    assert _status(db, setup.issue_id) is IssueStatus.DRAFT


@pytest.mark.parametrize("action", ["pause", "resume", "cancel", "resend-failed", "resend-unknown"])
def test_every_action_needs_a_csrf_token(smtp_app: Flask, db: Session, action: str) -> None:
    """A forged post without the token is refused and the send is left alone."""
    setup, client = _workspace(smtp_app, db, readers=2)
    _start(db, setup.issue_id)
    response = client.post(f"/editor/issues/{setup.issue_id}/sending/{action}", data={})
    assert response.status_code == 400 and "This form has expired" in response.get_data(as_text=True)
    assert _status(db, setup.issue_id) is IssueStatus.SENDING
    assert states(db, setup.issue_id) == {"pending": 2}


def test_smtp_login_failure_is_explained(app_overrides: dict[str, Any], db: Session) -> None:
    """A wrong SMTP password pauses the issue; the page says so in a sentence, shows the server's
    reply, offers resume, and nobody is marked failed."""
    server = SMTPServer(auth=("digest", "right")).start()
    try:
        wrong = create_app({**app_overrides, "SMTP_URL": f"smtp://digest:wrong@127.0.0.1:{server.port}"})
        setup, client = _workspace(wrong, db, readers=3)
        _start(db, setup.issue_id)
        _drain(wrong, db, setup.issue_id)
        assert _status(db, setup.issue_id) is IssueStatus.PAUSED
        html = _page(client, setup.issue_id)
        assert "The mail server refused our login" in html and "No reader was marked failed" in html
        assert re.search(r"Reason recorded: <q data-field=\"pause_reason\">Sending stopped: SMTP login to 127.0.0.1 failed: 535", html)
        assert _shown_actions(html) == {"resume", "cancel"}
        assert re.search(r'<td data-count="pending">3</td>', html)
        data = _progress(client, setup.issue_id)
        assert data["status"] == "paused" and data["live"] is True
        assert "535" in data["pause_reason"] and "refused our login" in data["pause_explanation"]
        assert server.received == []
        get_db_of(wrong).dispose()
    finally:
        server.stop()


def test_dashboard_links_each_issue_to_its_sending_page(smtp_app: Flask, smtp_server: SMTPServer,
                                                        db: Session) -> None:
    """The dashboard's issue rows lead to the sending page, with a bar for an issue still sending."""
    setup, client = _workspace(smtp_app, db, readers=4)
    smtp_app.config["BATCH_SIZE"] = 1
    _start(db, setup.issue_id)
    _batch(smtp_app, setup.issue_id)
    html = client.get("/editor/").get_data(as_text=True)
    assert f'href="/editor/issues/{setup.issue_id}/sending"' in html
    assert re.search(r'<progress max="4" value="1"', html)


def test_record_counts_bounces_complaints_and_unsubscribes_that_came_back(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """Reports received after the send are attributed to the issue: a hard bounce and a
    complaint are counted and listed with the report, and the complaint's unsubscribe counts."""
    setup, client = _workspace(smtp_app, db, readers=4)
    _start(db, setup.issue_id)
    _drain(smtp_app, db, setup.issue_id)
    rows = {d.subscriber_id: d for d in db.scalars(select(Delivery).where(Delivery.issue_id == setup.issue_id))}
    bounced, complained = rows[1], rows[2]
    actions = ReaderActions(smtp_app.config)
    def verp(row: Delivery) -> str:
        return verp_address(smtp_app.config, f"d{row.id}", db.get(Subscriber, row.subscriber_id).email)

    ingest(db, smtp_app.config, dsn(verp(bounced), "5.1.1",
                                    "550 5.1.1 <reader@example.com>: User unknown"), actions)
    ingest(db, smtp_app.config, arf("fbl@news.example.org",
                                    original_mail_from=verp(complained)), actions)
    db.commit()

    html = _page(client, setup.issue_id)
    assert "<strong>4</strong>delivered" in html and "<strong>1</strong>unsubscribed since" in html
    assert "Hard bounce (address does not exist): 1" in html and "Spam complaint: 1" in html
    table = html.split('id="problem-deliveries"', 1)[1]
    assert reader_email(0) in table and reader_email(1) in table and reader_email(2) not in table
    assert "hard bounce (address does not exist)" in table and "User unknown" in table
    assert _shown_actions(html) == set()  # nothing failed at send time: nothing to resend


def test_record_counts_unsubscribes_until_the_next_issue_started(db: Session) -> None:
    """An issue's record counts the readers who left after it started and before the next
    issue started; a later departure belongs to the next issue."""
    newsletter = demo_newsletter(db)
    now = utcnow()
    first = sent_issue(db, newsletter, "one", [], sent_at=now - dt.timedelta(days=14))
    second = sent_issue(db, newsletter, "two", [], sent_at=now - dt.timedelta(days=7))
    for n, left in enumerate((now - dt.timedelta(days=10), now - dt.timedelta(days=9), now - dt.timedelta(days=1))):
        db.add(Subscription(subscriber=Subscriber(email=f"left{n}@example.net"), newsletter=newsletter,
                            status=SubscriptionStatus.UNSUBSCRIBED, confirmed_at=now - dt.timedelta(days=30),
                            unsubscribed_at=left))
    db.add_all([Delivery(issue_id=first.id, state=DeliveryState.SENT),
                Delivery(issue_id=first.id, state=DeliveryState.FAILED_PERM, smtp_code=550)])
    db.commit()
    one, two = reports.issue_record(db, first), reports.issue_record(db, second)
    assert (one.figures.unsubscribed, two.figures.unsubscribed) == (2, 1)
    assert (one.figures.delivered, one.figures.bounced, one.problem_total) == (1, 1, 1)
    assert one.duration == dt.timedelta(0) and one.average_rate is None
