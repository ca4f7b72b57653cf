"""Confirmation and welcome emails: recorded by the request, sent by the sender, never lost."""

from __future__ import annotations

import datetime as dt
import re
import threading
from pathlib import Path
from typing import Any

import dkim
import pytest
from sqlalchemy import select, text

from digest import create_app
from digest.core.db import utcnow
from digest.core.models import (
    Subscription,
    SubscriptionStatus,
    TransactionalKind,
    TransactionalState,
)
from digest.domain.identity import parse_verp
from digest.domain.suppression import is_suppressed
from digest.mail.dkim import signer_from_config
from tests.support.api import make_token
from tests.support.apps import BASE_URL, get_db_of
from tests.support.dkim_keys import DOMAIN, dkim_settings, dkim_tags, dns_stub
from tests.support.readers import (
    confirm_by_email,
    deliver,
    html_part,
    load_newsletter,
    mails,
    signup,
    subscription,
    text_part,
)
from tests.support.smtp import Received, SMTPServer
from tests.support.waiting import wait_until


def test_the_request_only_records_the_email(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Signing up sends nothing by itself: the confirmation waits in the table until the sender runs."""
    load_newsletter(smtp_app)
    signup(smtp_app.test_client(), "nina@example.org")
    assert smtp_server.received == []
    assert [m.state for m in mails(smtp_app)] == [TransactionalState.PENDING]
    assert deliver(smtp_app) == 1
    assert deliver(smtp_app) == 0  # sent once, never again
    assert len(smtp_server.received) == 1


def test_confirmation_email_carries_nothing_the_form_supplied(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The confirmation has the link and the postal address, but not the name typed into the form."""
    load_newsletter(smtp_app)
    signup(smtp_app.test_client(), "nina@example.org", name="Cheap pills http://spam.example")
    assert deliver(smtp_app) == 1
    [received] = smtp_server.received
    message = received.message
    assert message.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
    assert received.raw_header("To") == ["nina@example.org"]
    assert received.raw_header("List-Unsubscribe") == []
    for body in (text_part(received), html_part(received)):
        assert "Cheap pills" not in body and "spam.example" not in body
        assert "12 Example Street, 10115 Berlin" in body
        assert f"{BASE_URL}/confirm/" in body
    assert "Cheap pills" not in received.data.decode("ascii")
    assert message["Subject"] == "Please confirm your subscription to The Weekly Model"
    [mail] = mails(smtp_app)
    assert received.mail_from.startswith("bounces+")
    assert parse_verp(smtp_app.config, received.mail_from, "nina@example.org") == f"t{mail.ref}"
    assert mail.state is TransactionalState.SENT and mail.queue_id == "Q000001"
    assert subscription(smtp_app, "nina@example.org").confirmation_sent_at is not None  # type: ignore[union-attr]


def test_welcome_email_carries_real_unsubscribe_headers_and_links(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """After confirming, the welcome has one HTTPS and one mailto List-Unsubscribe (never encoded), the one-click header, and the same links in its body."""
    load_newsletter(smtp_app)
    confirm_by_email(smtp_app, smtp_server, "nina@example.org", name="Nina", sections=["news", "tools"])
    assert deliver(smtp_app) == 1
    welcome = smtp_server.to("nina@example.org")[-1]
    raw_head = welcome.data.split(b"\r\n\r\n", 1)[0]
    block = re.search(rb"(?ims)^List-Unsubscribe:.*?(?=^\S)", raw_head + b"\r\nX: y")
    assert block and b"=?" not in block.group(0)
    message = welcome.message
    assert len(message.get_all("List-Unsubscribe")) == 1
    assert len(message.get_all("List-Unsubscribe-Post")) == 1
    assert welcome.raw_header("List-Unsubscribe-Post") == ["List-Unsubscribe=One-Click"]
    uris = re.findall(r"<([^>]+)>", welcome.raw_header("List-Unsubscribe")[0])
    assert len(uris) == 2
    assert sum(u.startswith("https://") for u in uris) == 1
    assert uris[1].startswith("mailto:unsubscribe+")
    assert "nina" not in uris[0]
    https_path = uris[0].removeprefix(BASE_URL)
    text, html = text_part(welcome), html_part(welcome)
    for body in (text, html):
        assert uris[0] in body
        assert f"{BASE_URL}/preferences/" in body
        assert "12 Example Street, 10115 Berlin" in body
    assert "Hi Nina," in text.splitlines() and ">Hi Nina,</p>" in html
    assert "Your sections: News, Tools." in text
    assert "every Monday at 08:00 (Europe/Berlin)" in text
    assert welcome.message["Subject"] == "Welcome to The Weekly Model"
    assert welcome.raw_header("To") == ["Nina <nina@example.org>"]
    assert parse_verp(smtp_app.config, welcome.mail_from, "nina@example.org") is not None
    client = smtp_app.test_client()
    assert "Unsubscribe from The Weekly Model?" in client.get(https_path).get_data(as_text=True)


def test_an_smtp_outage_loses_no_confirmation(app) -> None:  # type: ignore[no-untyped-def]
    """With the server down the confirmation stays due and backs off; once it is back, it goes out."""
    load_newsletter(app)
    server = SMTPServer()  # a free port, nobody listening yet
    app.config["SMTP_URL"] = server.url
    signup(app.test_client(), "nina@example.org")
    assert deliver(app) == 0
    [mail] = mails(app)
    assert mail.state is TransactionalState.PENDING and mail.attempts == 1
    assert "cannot reach SMTP server" in (mail.last_error or "")
    assert mail.due_at > utcnow()
    server.start()
    try:
        assert deliver(app) == 0  # not due yet: backing off
        assert deliver(app, now=utcnow() + dt.timedelta(minutes=5)) == 1
        assert [r.rcpt_tos for r in server.received] == [("nina@example.org",)]
    finally:
        server.stop()


def test_a_temporary_refusal_is_retried(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A 451 at RCPT leaves the mail due; the next attempt after the backoff delivers it."""
    load_newsletter(smtp_app)
    signup(smtp_app.test_client(), "nina@example.org")
    smtp_server.script = lambda stage, address: "451 4.3.0 try again later" if stage == "rcpt" else None
    assert deliver(smtp_app) == 0
    assert mails(smtp_app)[0].state is TransactionalState.PENDING
    smtp_server.script = None
    assert deliver(smtp_app, now=utcnow() + dt.timedelta(minutes=5)) == 1


def test_a_nonexistent_mailbox_is_suppressed(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A 550 5.1.1 marks the confirmation failed and suppresses the address, so no later signup mails it."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    signup(client, "ghost@example.org")
    smtp_server.script = lambda stage, address: "550 5.1.1 no such user" if stage == "rcpt" else None
    assert deliver(smtp_app) == 0
    [mail] = mails(smtp_app)
    assert mail.state is TransactionalState.FAILED and mail.smtp_code == 550
    with get_db_of(smtp_app).session() as session:
        assert is_suppressed(session, smtp_app.config, "Ghost@Example.org")
    smtp_server.script = None
    signup(client, "ghost@example.org")
    assert deliver(smtp_app, now=utcnow() + dt.timedelta(days=2)) == 0
    assert smtp_server.received == []


def test_a_sender_problem_stops_the_batch_without_blaming_readers(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A 5.7.x refusal of our sender stops sending, keeps every mail due and suppresses nobody."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    signup(client, "one@example.org")
    signup(client, "two@example.org")
    smtp_server.script = lambda stage, address: "550 5.7.1 sender blocked" if stage == "mail" else None
    assert deliver(smtp_app) == 0
    states = [(m.state, m.attempts) for m in mails(smtp_app)]
    assert states == [(TransactionalState.PENDING, 1), (TransactionalState.PENDING, 0)]
    with get_db_of(smtp_app).session() as session:
        assert not is_suppressed(session, smtp_app.config, "one@example.org")


def test_two_senders_never_send_the_same_mail_twice(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Two sender threads draining the same queue deliver every confirmation exactly once."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    for number in range(12):
        signup(client, f"reader{number}@example.org")
    counts: list[int] = []
    start = threading.Barrier(2)

    def drain() -> None:
        start.wait()
        counts.append(deliver(smtp_app))

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    recipients = sorted(r for m in smtp_server.received for r in m.rcpt_tos)
    assert recipients == sorted(f"reader{n}@example.org" for n in range(12))
    assert sum(counts) == 12


def test_no_welcome_after_an_unsubscribe(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A reader who unsubscribes before the welcome goes out does not get it."""
    load_newsletter(smtp_app)
    confirm_by_email(smtp_app, smtp_server, "nina@example.org")
    found = subscription(smtp_app, "nina@example.org")
    assert found is not None and found.status is SubscriptionStatus.CONFIRMED
    from digest.domain.links import unsubscribe_url

    path = unsubscribe_url(smtp_app.config, found.uid).removeprefix(BASE_URL)
    smtp_app.test_client().post(path, data={"List-Unsubscribe": "One-Click"})
    assert deliver(smtp_app) == 0
    welcome = [m for m in mails(smtp_app) if m.kind is TransactionalKind.WELCOME]
    assert [m.state for m in welcome] == [TransactionalState.SKIPPED]


def test_a_mail_undeliverable_for_a_week_is_given_up(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A confirmation still not sent when its link would have expired is marked failed, not sent late."""
    load_newsletter(smtp_app)
    signup(smtp_app.test_client(), "nina@example.org")
    assert deliver(smtp_app, now=utcnow() + dt.timedelta(days=8)) == 0
    assert mails(smtp_app)[0].state is TransactionalState.FAILED
    assert smtp_server.received == []


def test_already_subscribed_note_points_to_preferences(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A confirmed reader signed up again gets one note with a preferences link and none of the form's text."""
    load_newsletter(smtp_app)
    signup(smtp_app.test_client(), "ada@example.com", name="Impostor")
    assert deliver(smtp_app) == 1
    [note] = smtp_server.received
    text = text_part(note)
    assert "already subscribed" in text
    assert f"{BASE_URL}/preferences/" in text
    assert "Impostor" not in note.data.decode("ascii")


def test_send_pending_command(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """`digest subscribers send-pending` takes waiting signups, sends what is due, and says
    how many it sent and how many remain."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    signup(client, "nina@example.org", engine=False)
    signup(client, "owen@example.org", engine=False)
    smtp_server.script = lambda stage, to: "451 4.3.0 try later" if to == "owen@example.org" else None
    result = smtp_app.test_cli_runner().invoke(args=["subscribers", "send-pending"])
    assert result.exit_code == 0
    assert "Sent 1 confirmation/welcome email(s)." in result.output
    assert "Remaining: 0 signup(s) not yet taken, 1 email(s) not yet sent (due later" in result.output
    assert [m.rcpt_tos for m in smtp_server.received] == [("nina@example.org",)]


def _journey(app, smtp_server, email: str, name: str = "") -> dict[str, Received]:  # type: ignore[no-untyped-def]
    """Sign email up and confirm: return the confirmation and the welcome it received."""
    confirmation = confirm_by_email(app, smtp_server, email, name=name)
    assert deliver(app) == 1
    return {"confirm": confirmation, "welcome": smtp_server.to(email)[-1]}


def test_reader_emails_wear_the_digest_layout(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Confirmation, welcome and note share the digest's layout: 600 px tables, dark mode, phone rules, inlined CSS, footer with the postal address and why the reader gets it."""
    load_newsletter(smtp_app)
    emails = _journey(smtp_app, smtp_server, "nina@example.org", name="Nina")
    signup(smtp_app.test_client(), "ada@example.com")  # a demo reader, already subscribed
    assert deliver(smtp_app) == 1
    emails["already"] = smtp_server.to("ada@example.com")[-1]
    for kind, received in emails.items():
        html, text = html_part(received), text_part(received)
        assert '<html lang="en"' in html and 'role="presentation"' in html, kind
        assert re.search(r'<table[^>]*class="card"[^>]*width="600"', html), kind
        assert "@media (prefers-color-scheme: dark)" in html and "@media (max-width: 620px)" in html
        assert '<meta name="color-scheme" content="light dark">' in html
        assert "<link" not in html and re.search(r'class="content"[^>]*style="[^"]*font-size', html)
        assert re.search(r'class="brand"[^>]*>The Weekly Model</p>', html), kind
        assert re.search(r'class="postal"[^>]*>[^<]*12 Example Street, 10115 Berlin', html), kind
        footer = html[html.index('class="footer-cell"') :]
        assert "because" in footer and ("signup form" in footer or "subscribed as" in footer)
        assert "\r\n-- \r\n" in text and text.rstrip().endswith("10115 Berlin, Germany"), kind
        assert all(len(line) <= 78 or "https://" in line for line in text.splitlines()), kind
        assert re.fullmatch(
            r"[a-z_]+:weekly-model:reader:newsexampleorg", received.raw_header("Feedback-ID")[0]
        ), kind
        assert len(received.message.get_all("Subject")) == 1
    confirm_html = html_part(emails["confirm"])
    assert re.search(r'<a class="button-link" href="https://news\.example\.org/confirm/', confirm_html)
    assert emails["confirm"].raw_header("Auto-Submitted") == ["auto-generated"]
    for kind in ("welcome", "already"):
        received = emails[kind]
        assert received.raw_header("List-Id") == ["The Weekly Model <weekly-model.news.example.org>"]
        unsubscribe = re.findall(r"<([^>]+)>", received.raw_header("List-Unsubscribe")[0])
        assert unsubscribe[0] in html_part(received) and unsubscribe[0] in text_part(received)


def test_welcome_emails_never_mix_up_readers(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Two readers' welcomes, filled in from one rendering, each carry only their own name, address and links; a name with markup stays text."""
    load_newsletter(smtp_app)
    nina = _journey(smtp_app, smtp_server, "nina@example.org", name="<b>Nina</b> Quinn")["welcome"]
    otto = _journey(smtp_app, smtp_server, "otto@example.org")["welcome"]

    def tokens(received: Received) -> set[str]:
        found = re.findall(r"/(?:unsubscribe|preferences)/([A-Za-z0-9._-]+)", text_part(received))
        return set(found)

    assert len(tokens(nina)) == len(tokens(otto)) == 2 and not tokens(nina) & tokens(otto)
    for token in tokens(nina):
        assert token in html_part(nina) and token not in otto.data.decode("ascii")
    assert "Hi <b>Nina</b>," in text_part(nina).splitlines()  # the first name only
    assert ">Hi &lt;b&gt;Nina&lt;/b&gt;,</p>" in html_part(nina)
    assert "<b>Nina</b>" not in html_part(nina)
    assert "Quinn" in str(nina.message["To"])  # the address line keeps the whole name
    assert not [line for line in text_part(otto).splitlines() if line.startswith(("Hi", "Hello"))]
    assert "Nina" not in otto.data.decode("ascii")
    assert "otto@example.org" in html_part(otto) and "nina@example.org" not in html_part(otto)


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_confirmation_arrives_dkim_signed_and_verifies(
    app_overrides: dict[str, Any], smtp_server: SMTPServer, tmp_path: Path, kind: str
) -> None:
    """A confirmation received by the SMTP server carries a DKIM signature dkimpy verifies; touching a signed header or the body breaks it."""
    app = create_app(
        {**app_overrides, "SMTP_URL": smtp_server.url, **dkim_settings(tmp_path, kind)}
    )
    try:
        load_newsletter(app)
        signup(app.test_client(), "nina@example.org")
        assert deliver(app) == 1
    finally:
        get_db_of(app).dispose()
    [received] = smtp_server.received
    dns = dns_stub(signer_from_config(app.config).dns_record())  # type: ignore[union-attr]
    assert received.data.count(b"DKIM-Signature:") == 1
    assert dkim.verify(received.data, dnsfunc=dns)
    tags = dkim_tags(received.data)
    assert tags["c"] == "relaxed/relaxed" and tags["d"] == DOMAIN
    assert tags["a"] == ("rsa-sha256" if kind == "rsa" else "ed25519-sha256")
    signed = tags["h"].lower().split(":")
    assert {"from", "to", "subject", "date", "message-id", "feedback-id"} <= set(signed)
    assert signed.count("from") == 2  # over-signed: a second From breaks the signature
    link_line = re.search(rb"/confirm/[A-Za-z0-9._=\r\n-]+", received.data)
    assert link_line
    for forged in (
        received.data.replace(b"Subject: Please", b"Subject: Kindly", 1),
        received.data.replace(b"From: ", b"From: Mallory <m@evil.example>\r\nFrom: ", 1),
        received.data.replace(b"confirm your subscription", b"confirm your subscriptiom", 1),
    ):
        assert forged != received.data and not dkim.verify(forged, dnsfunc=dns)


def test_a_stored_name_with_line_breaks_never_becomes_a_header(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Even a newsletter and From name saved with CRLF before input checks existed reach the
    reader as one header line each: no Bcc or other header can be injected."""
    from digest.core.models import Newsletter

    load_newsletter(smtp_app)
    with get_db_of(smtp_app).session() as session:
        newsletter = session.query(Newsletter).one()
        newsletter.name = "The Weekly Model\r\nBcc: everyone@example.org"
        newsletter.from_name = "Weekly\r\nX-Injected: yes\r\nReply-To: thief@example.org"
        session.commit()
    confirm_by_email(smtp_app, smtp_server, "nina@example.org")
    assert deliver(smtp_app) == 1  # the welcome, which carries List-Id too
    for received in smtp_server.received:
        assert list(received.rcpt_tos) == ["nina@example.org"]
        head = received.data.split(b"\r\n\r\n", 1)[0]
        names = [line.split(b":", 1)[0].lower() for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]
        assert not {b"bcc", b"x-injected"} & set(names), head
        assert all("thief" not in value for value in received.raw_header("Reply-To"))
        assert received.raw_header("From") == [
            '"Weekly X-Injected: yes Reply-To: thief@example.org" <news@news.example.org>'
        ]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_an_api_unsubscribe_racing_the_confirmation_runner_never_deadlocks(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """An admin's API unsubscribe and the runner recording a confirmation as sent, meeting on
    the same subscription in two PostgreSQL connections, both complete: the API answers 200
    (not 503 for a deadlock) and the sent confirmation is recorded as sent, never sent again."""
    load_newsletter(smtp_app)
    signup(smtp_app.test_client(), "nina@example.org")
    found = subscription(smtp_app, "nina@example.org")
    assert found is not None
    token = make_token(smtp_app)
    database = get_db_of(smtp_app)
    answers: list[int] = []
    sent: list[int] = []
    failures: list[BaseException] = []

    def unsubscribe() -> None:
        response = smtp_app.test_client().post(
            f"/api/v1/newsletters/weekly-model/subscribers/{found.subscriber_id}/unsubscribe",
            headers={"Authorization": f"Bearer {token}"})
        answers.append(response.status_code)

    def run_engine() -> None:
        try:
            sent.append(deliver(smtp_app))
        except BaseException as exc:  # noqa: BLE001  (the test reports it)
            failures.append(exc)

    def waiting(count: int) -> bool:
        with database.session() as probe:
            return probe.scalar(text(
                "SELECT count(*) FROM pg_stat_activity"
                " WHERE datname = current_database() AND wait_event_type = 'Lock'")) == count

    # A third transaction holds the subscription so both sides queue up on it, then lets go:
    # the API request first, then the runner once the server accepted the confirmation.
    with database.session() as holder:
        holder.execute(select(Subscription).where(Subscription.id == found.id).with_for_update())
        api = threading.Thread(target=unsubscribe)
        api.start()
        wait_until(lambda: waiting(1), timeout=10, what="the API request waiting")
        engine = threading.Thread(target=run_engine)
        engine.start()
        wait_until(lambda: waiting(2), timeout=10, what="the runner waiting")
    api.join(timeout=30)
    engine.join(timeout=30)
    assert failures == [] and answers == [200] and sent == [1]
    assert len(smtp_server.received) == 1
    [mail] = mails(smtp_app)
    assert mail.state is TransactionalState.SENT
    after = subscription(smtp_app, "nina@example.org")
    assert after is not None and after.status is SubscriptionStatus.UNSUBSCRIBED
    assert after.confirmation_sent_at is not None
    assert deliver(smtp_app) == 0


def test_a_broken_override_falls_back_to_the_packaged_email(smtp_app, smtp_server, caplog) -> None:  # type: ignore[no-untyped-def]
    """An operator's confirmation override that fails to render, and a welcome override
    whose text part drops the preferences link, are sent from the packaged templates, and
    the log says why: the reader still gets a working link."""
    emails = Path(smtp_app.config["INSTANCE_PATH"]) / "templates" / "emails"
    emails.mkdir(parents=True)
    (emails / "confirm.html").write_text('{% extends "emails/layout.html" %}\n'
                                         "{% block content %}{{ no_such_value.attribute }}{% endblock %}\n")
    (emails / "welcome.txt").write_text("Welcome aboard! See you on Monday.\n")
    load_newsletter(smtp_app)
    with caplog.at_level("WARNING", logger="digest.domain.transactional"):
        confirmation = confirm_by_email(smtp_app, smtp_server, "nina@example.org")
        assert deliver(smtp_app) == 1
    assert f"{BASE_URL}/confirm/" in text_part(confirmation) and f"{BASE_URL}/confirm/" in html_part(confirmation)
    welcome = smtp_server.to("nina@example.org")[-1]
    assert f"{BASE_URL}/preferences/" in text_part(welcome)
    assert "See you on Monday" not in text_part(welcome)
    logged = [r.getMessage() for r in caplog.records]
    assert any("confirm email's template override fails to render (UndefinedError" in m for m in logged), logged
    assert any("welcome email's template override drops the preferences link from its text part" in m
               for m in logged), logged
