"""`digest bounces ingest`: mail that came back, piped in the way the mail server does it.

Every message here answers something the app really sent to the test SMTP server: the
bounce of a confirmation, a complaint about a welcome, a bounce of a digest, a mailto
unsubscribe clicked in a welcome email.
"""

from __future__ import annotations

import csv
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from flask import Flask
from sqlalchemy import select

from digest.core.db import utcnow
from digest.core.models import (
    Consent,
    Delivery,
    Issue,
    Subscriber,
    Subscription,
    Suppression,
    TransactionalKind,
    TransactionalMail,
    TransactionalState,
)
from digest.domain import links
from digest.domain.identity import verp_address
from digest.domain.issue_mail import prepare_issue
from digest.mail.mailer import mailer_for
from digest.mail.render import Reader
from tests.support.apps import get_db_of
from tests.support.inbound import arf, dsn, mailto_request, returned_headers
from tests.support.readers import (
    confirm_by_email,
    deliver,
    load_newsletter,
    mails,
    signup,
    subscription,
)
from tests.support.smtp import Received, SMTPServer

UNKNOWN_USER = "550 5.1.1 <{0}>: Recipient address rejected: User unknown in virtual mailbox table"


def _ingest(app: Flask, raw: bytes, *options: str, file: Path | None = None) -> Result:
    """Run `digest bounces ingest` on raw, from a file when given, else from stdin."""
    runner = app.test_cli_runner()
    if file is not None:
        file.write_bytes(raw)
        return runner.invoke(args=["bounces", "ingest", *options, str(file)])
    return runner.invoke(args=["bounces", "ingest", *options, "-"], input=raw)


def _export(app: Flask) -> dict[str, dict[str, str]]:
    """Return `digest subscribers export` as {email: row}: what an operator sees."""
    result = app.test_cli_runner().invoke(args=["subscribers", "export"])
    assert result.exit_code == 0, result.output
    return {row["email"]: row for row in csv.DictReader(io.StringIO(result.output))}


def _state(app: Flask) -> dict[str, Any]:
    """Everything a report may change: subscriptions, consents, suppressions, sent mail."""
    with get_db_of(app).session() as session:
        return {
            "subscriptions": sorted(
                (s.uid, s.status.value, s.unsubscribed_at)
                for s in session.scalars(select(Subscription))
            ),
            "consents": sorted(
                (c.id, c.withdrawn_at, c.withdrawal_channel)
                for c in session.scalars(select(Consent))
            ),
            "suppressions": sorted(session.scalars(select(Suppression.email_hash))),
            "mails": sorted(
                (m.id, m.state.value, m.last_error)
                for m in session.scalars(select(TransactionalMail))
            ),
            "deliveries": sorted(
                (d.id, d.bounce, d.bounce_detail) for d in session.scalars(select(Delivery))
            ),
        }


def _confirmed(app: Flask, smtp_server: SMTPServer, email: str) -> tuple[Received, Received]:
    """Sign email up and confirm it through the emails; return (confirmation, welcome)."""
    confirmation = confirm_by_email(app, smtp_server, email)
    assert deliver(app) == 1
    return confirmation, smtp_server.to(email)[-1]


def _send_digest(app: Flask, smtp_server: SMTPServer, email: str) -> tuple[int, int, Received]:
    """Send the demo issue to a demo reader through the SMTP server, recorded as a sent
    delivery; return (issue id, delivery id, the message as it arrived)."""
    with get_db_of(app).session() as session:
        issue_id = session.scalars(select(Issue.id)).one()
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
        delivery = Delivery(issue_id=issue_id, subscriber_id=subscriber.id, sent_at=utcnow())
        session.add(delivery)
        session.flush()
        delivery_id = delivery.id
        reader = Reader(subscriber.id, subscriber.subscriptions[0].uid, email, subscriber.name)
    with get_db_of(app).sessionmaker() as session:
        outgoing = prepare_issue(session, issue_id, app.config).message_for(reader, delivery_id)
    with mailer_for(app.config) as mailer:
        mailer.send(outgoing.envelope_from, outgoing.recipient, outgoing.data)
    return issue_id, delivery_id, smtp_server.to(email)[-1]


def test_hard_bounce_of_a_confirmation_from_a_file(smtp_app, smtp_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A bounce of a confirmation email, read from a file, marks that email failed and suppresses the address; the same bounce again changes nothing more."""
    load_newsletter(smtp_app)
    signup(smtp_app.test_client(), "nina@example.org")
    assert deliver(smtp_app) == 1
    [confirmation] = smtp_server.received
    bounce = dsn(
        confirmation.mail_from,
        "5.1.1",
        UNKNOWN_USER.format("nina@example.org"),
        final_recipient="nina@example.org",
        original=returned_headers(confirmation),
    )
    result = _ingest(smtp_app, bounce, file=tmp_path / "bounce.eml")
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "Suppressed nina@example.org: hard bounce on the confirmation email "
    )
    [mail] = mails(smtp_app)
    assert mail.state is TransactionalState.FAILED and "5.1.1" in (mail.last_error or "")
    assert _export(smtp_app)["nina@example.org"]["suppressed"] == "hard_bounce"
    state = _state(smtp_app)
    again = _ingest(smtp_app, bounce, file=tmp_path / "bounce.eml")
    assert again.exit_code == 0 and _state(smtp_app) == state


def test_complaint_about_a_welcome_from_stdin(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A feedback-loop complaint about a welcome email, piped in, suppresses the reader and ends the subscription (channel complaint)."""
    load_newsletter(smtp_app)
    _confirmation, welcome = _confirmed(smtp_app, smtp_server, "nina@example.org")
    report = arf(
        "fbl@news.example.org",
        original_mail_from=welcome.mail_from,
        original=returned_headers(welcome),
    )
    result = _ingest(smtp_app, report)
    assert result.exit_code == 0, result.output
    assert "Suppressed nina@example.org: complaint on the welcome email" in result.output
    row = _export(smtp_app)["nina@example.org"]
    assert row["suppressed"] == "complaint" and row["status"] == "unsubscribed"
    found = subscription(smtp_app, "nina@example.org")
    assert found is not None
    assert {c.withdrawal_channel for c in found.consents} == {"complaint"}
    welcome_mail = [m for m in mails(smtp_app) if m.kind is TransactionalKind.WELCOME]
    assert [m.state for m in welcome_mail] == [TransactionalState.FAILED]


def test_a_digest_bounce_found_through_the_envelope_recipient(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A bounce whose headers name no VERP address is matched by --recipient, and the next digest skips the reader."""
    load_newsletter(smtp_app)
    issue_id, delivery_id, digest = _send_digest(smtp_app, smtp_server, "ada@example.com")
    # Some servers address the report to the postmaster and return no headers.
    bounce = dsn(
        "postmaster@news.example.org",
        "5.1.1",
        UNKNOWN_USER.format("ada@example.com"),
        final_recipient="ada@example.com",
    )
    before = _state(smtp_app)
    ignored = _ingest(smtp_app, bounce)
    assert ignored.exit_code == 0 and ignored.output.startswith("Ignored:")
    assert _state(smtp_app) == before
    result = _ingest(smtp_app, bounce, "--recipient", digest.mail_from)
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        f"Suppressed ada@example.com: hard bounce on delivery {delivery_id}"
    )
    assert _export(smtp_app)["ada@example.com"]["suppressed"] == "hard_bounce"
    preview = smtp_app.test_cli_runner().invoke(
        args=["issue", "render", str(issue_id), "--to", "ada@example.com"]
    )
    assert "on the suppression list (hard bounce): the sender skips it" in preview.stderr


def test_forged_reports_change_nothing(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Bounces, complaints and unsubscribe requests without a valid signature are read, answered "Ignored" and change nothing."""
    load_newsletter(smtp_app)
    confirmation, welcome = _confirmed(smtp_app, smtp_server, "nina@example.org")
    _issue_id, delivery_id, digest = _send_digest(smtp_app, smtp_server, "ada@example.com")
    ref, mac = confirmation.mail_from.split("@")[0].removeprefix("bounces+").split("-")
    found = subscription(smtp_app, "nina@example.org")
    assert found is not None
    genuine_token = links.unsubscribe_url(smtp_app.config, found.uid).rpartition("/")[2]
    forged_token = genuine_token[:-4] + ("AAAA" if not genuine_token.endswith("AAAA") else "BBBB")
    other_site = {**smtp_app.config, "SECRET_KEY": "another-installation-0123456789"}
    forgeries = {
        "a VERP address with a wrong MAC": dsn(
            confirmation.mail_from.replace(mac, "0" * len(mac)), "5.1.1", "550 5.1.1 unknown"
        ),
        "a VERP address signed by another installation": dsn(
            verp_address(other_site, f"d{delivery_id}", "ada@example.com"), "5.1.1", "550 5.1.1 unknown"
        ),
        "a complaint quoting a tampered unsubscribe token": arf(
            "fbl@news.example.org",
            original=returned_headers(welcome, return_path=False).replace(
                genuine_token, forged_token
            ),
        ),
        "a mailto request with a tampered token": mailto_request(
            links.unsubscribe_mailto(smtp_app.config, found.uid).replace(
                genuine_token, forged_token
            ),
            "nina@example.org",
        ),
        "a bounce naming a reader only by address": dsn(
            "bounces@news.example.org",
            "5.1.1",
            UNKNOWN_USER.format("ada@example.com"),
            final_recipient="ada@example.com",
            original="From: news@news.example.org\r\nTo: ada@example.com\r\nSubject: x",
        ),
    }
    assert ref.startswith("t")
    before = _state(smtp_app)
    for name, raw in forgeries.items():
        result = _ingest(smtp_app, raw)
        assert result.exit_code == 0, (name, result.output)
        assert result.output.startswith("Ignored:"), (name, result.output)
        assert _state(smtp_app) == before, name
    assert digest.mail_from.startswith(f"bounces+d{delivery_id}-")


def test_mailto_unsubscribe_skips_the_reader_in_the_next_digest(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """The email a mail client sends for the welcome's List-Unsubscribe mailto unsubscribes the reader (channel mailto); the next digest skips them."""
    load_newsletter(smtp_app)
    _confirmation, welcome = _confirmed(smtp_app, smtp_server, "nina@example.org")
    mailto = re.findall(r"<(mailto:[^>]+)>", welcome.raw_header("List-Unsubscribe")[0])[0]
    with get_db_of(smtp_app).session() as session:
        issue_id = session.scalars(select(Issue.id)).one()
    runner = smtp_app.test_cli_runner()
    render = ["issue", "render", str(issue_id), "--to", "nina@example.org"]
    assert "the sender skips it" not in runner.invoke(args=render).stderr
    result = _ingest(smtp_app, mailto_request(mailto, "Nina <nina@example.org>"))
    assert result.exit_code == 0, result.output
    assert result.output == "Unsubscribed nina@example.org (mailto request).\n"
    found = subscription(smtp_app, "nina@example.org")
    assert found is not None and found.unsubscribed_at is not None
    assert {c.withdrawal_channel for c in found.consents} == {"mailto"}
    assert _export(smtp_app)["nina@example.org"]["status"] == "unsubscribed"
    assert (
        "This subscription is unsubscribed: the sender skips it."
        in runner.invoke(args=render).stderr
    )
    again = _ingest(smtp_app, mailto_request(mailto, "Nina <nina@example.org>"))
    assert again.exit_code == 0  # a second request is harmless


def _nested(depth: int, container: str) -> bytes:
    """A message with depth multipart (or message/rfc822) parts, each inside the last."""
    if container == "multipart":
        heads = "".join(
            f"Content-Type: multipart/mixed; boundary=b{n}\r\n\r\n--b{n}\r\n" for n in range(depth)
        )
    else:
        heads = "Content-Type: message/rfc822\r\n\r\n" * depth
    return ("From: a@example.org\r\nSubject: x\r\n" + heads + "Content-Type: text/plain\r\n\r\nhi\r\n").encode()


def _crafted() -> dict[str, tuple[bytes, str]]:
    """Messages built to exhaust the parser, and the words of the cap each one meets."""
    many = ", ".join(f"user{n}@example{n}.com" for n in range(20_000))
    parens = "(" * 50_000 + "x" + ")" * 50_000
    return {
        "3,000 nested multiparts": (_nested(3000, "multipart"), "nested parts"),
        "3,000 nested rfc822 parts": (_nested(3000, "rfc822"), "nested parts"),
        "a To header with 20,000 addresses": (
            f"To: {many}\r\nSubject: x\r\n\r\nhi\r\n".encode(), "To header is longer than"
        ),
        "1,000 nested parentheses": (
            f"To: a@example.org {'(' * 1000}x{')' * 1000}\r\nSubject: x\r\n\r\nhi\r\n".encode(),
            "To header nests comments deeper than",
        ),
        "a returned original with 50,000 nested parentheses": (
            dsn("postmaster@news.example.org", "5.1.1", "550 5.1.1 unknown",
                original=f"Return-Path: <x@example.org> {parens}\r\nSubject: x"),
            "Return-Path header is longer than",
        ),
        "3 MB of mail": (
            dsn("postmaster@news.example.org", "5.1.1", "550 5.1.1 unknown",
                original="Subject: x\r\n\r\n" + ("x" * 76 + "\r\n") * 40_000, whole_original=True),
            "larger than 2 MB",
        ),
        "nothing at all": (b"", "empty"),
    }


@pytest.mark.one_backend
@pytest.mark.parametrize("what", list(_crafted()))
def test_crafted_mail_is_ignored_in_one_line_quickly(app, what: str) -> None:  # type: ignore[no-untyped-def]
    """Huge, deeply nested or empty input is answered with one "Ignored: …" line and exit 0
    (so the mail server neither retries nor bounces a traceback to the sender), in well
    under a second of parsing, and changes nothing."""
    load_newsletter(app)
    before = _state(app)
    started = time.monotonic()
    raw, cap = _crafted()[what]
    result = _ingest(app, raw)
    elapsed = time.monotonic() - started
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Ignored: ") and result.output.count("\n") == 1, result.output
    assert cap in result.output
    assert "Traceback" not in result.output
    assert elapsed < 3, f"{what} took {elapsed:.1f} s"
    assert _state(app) == before


def _digest_process(
    env: dict[str, str], raw: bytes, *options: str
) -> subprocess.CompletedProcess[bytes]:
    digest = Path(sys.executable).with_name("digest")
    return subprocess.run(
        [str(digest), "bounces", "ingest", *options, "-"],
        input=raw,
        env=env,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_the_installed_command_as_the_mail_server_runs_it(smtp_app, smtp_server, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The `digest` console script reads a message piped to stdin and exits 0; with the database unreachable it exits 75 so the mail server retries, and nothing is lost."""
    load_newsletter(smtp_app)
    _confirmation, welcome = _confirmed(smtp_app, smtp_server, "nina@example.org")
    mailto = re.findall(r"<(mailto:[^>]+)>", welcome.raw_header("List-Unsubscribe")[0])[0]
    request = mailto_request(mailto, "nina@example.org")
    config = smtp_app.config
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "DIGEST_SECRET_KEY": config["SECRET_KEY"],
        "DIGEST_BASE_URL": config["BASE_URL"],
        "DIGEST_MAIL_FROM": config["MAIL_FROM"],
        "DIGEST_INSTANCE_PATH": str(tmp_path / "mta-instance"),
    }
    down = _digest_process(
        {**env, "DIGEST_DATABASE_URL": f"sqlite:///{tmp_path}/missing/folder/digest.sqlite3"},
        request,
    )
    assert down.returncode == 75, down.stderr
    assert b"the mail server tries again later" in down.stderr
    assert _export(smtp_app)["nina@example.org"]["status"] == "confirmed"
    up = _digest_process({**env, "DIGEST_DATABASE_URL": config["DATABASE_URL"]}, request)
    assert up.returncode == 0, up.stderr
    assert up.stdout == b"Unsubscribed nina@example.org (mailto request).\n"
    assert _export(smtp_app)["nina@example.org"]["status"] == "unsubscribed"
