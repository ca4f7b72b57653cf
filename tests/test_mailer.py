"""Messages through mailer_for to a real SMTP server: signed when DKIM is set, byte for byte."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import dkim
import pytest

from digest import create_app
from digest.domain.identity import parse_verp
from digest.domain.issue_mail import prepare_issue
from digest.mail.dkim import signer_from_config
from digest.mail.mailer import mailer_for
from digest.mail.message import Mail
from digest.mail.render import Reader
from tests.support.apps import get_db_of
from tests.support.dkim_keys import DOMAIN, dkim_settings, dkim_tags, dns_stub
from tests.support.issues import demo_issue, section_ids
from tests.support.smtp import SMTPServer


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
def test_digest_arrives_signed_and_verifies(
    app_overrides: dict[str, Any], smtp_server: SMTPServer, tmp_path: Path, kind: str
) -> None:
    """Digests sent through mailer_for reach the SMTP server DKIM-signed; dkimpy verifies them."""
    app = create_app(
        {**app_overrides, "SMTP_URL": smtp_server.url, **dkim_settings(tmp_path, kind)}
    )
    database = get_db_of(app)
    with database.sessionmaker() as db:
        prepared = prepare_issue(db, demo_issue(db).id, app.config)
        tools = section_ids(db, "Tools")
    readers = [
        Reader(1, "uidAdaAdaAdaAdaAdaAdaA", "ada@example.com", "Ada"),
        Reader(2, "uidGraceGraceGraceGrac", "grace@example.com", "Grace Hopper", tools),
        Reader(3, "uidAlanAlanAlanAlanAla", "alan@example.com"),
    ]
    sent = {}
    with mailer_for(app.config) as mailer:
        for delivery_id, reader in enumerate(readers, 100):
            out = prepared.message_for(reader, delivery_id)
            sent[reader.email] = (out, delivery_id)
            mailer.send(out.envelope_from, out.recipient, out.data)
    database.dispose()
    record = signer_from_config(app.config).dns_record()  # type: ignore[union-attr]
    assert len(smtp_server.received) == 3
    for received in smtp_server.received:
        (rcpt,) = received.rcpt_tos
        out, delivery_id = sent[rcpt]
        assert received.mail_from == out.envelope_from
        assert parse_verp(app.config, received.mail_from, rcpt) == f"d{delivery_id}"
        assert received.data.endswith(out.data)  # signed, then sent as is
        assert received.data.count(b"DKIM-Signature:") == 1
        assert dkim.verify(received.data, dnsfunc=dns_stub(record))
        assert dkim_tags(received.data)["a"] == (
            "rsa-sha256" if kind == "rsa" else "ed25519-sha256"
        )
        assert not dkim.verify(
            received.data.replace(b"One-Click", b"One-Clack"), dnsfunc=dns_stub(record)
        )
        assert (
            received.raw_header("List-Unsubscribe")
            and "=?" not in received.raw_header("List-Unsubscribe")[0]
        )
        message = received.message
        assert message["To"].addresses[0].addr_spec == rcpt


@pytest.mark.one_backend
def test_every_message_is_signed_text_only_too(
    app_overrides: dict[str, Any], smtp_server: SMTPServer, tmp_path: Path
) -> None:
    """A text-only message (a confirmation) sent through mailer_for is signed like a digest."""
    app = create_app(
        {**app_overrides, "SMTP_URL": smtp_server.url, **dkim_settings(tmp_path, "rsa", "pkcs1")}
    )
    data = Mail(
        from_=f"Weekly <news@{DOMAIN}>",
        to="reader@example.com",
        subject="Confirm",
        text="Tap the link.\n",
    ).as_bytes()
    with mailer_for(app.config) as mailer:
        mailer.send(f"bounces@{DOMAIN}", "reader@example.com", data)
    get_db_of(app).dispose()
    (received,) = smtp_server.received
    record = signer_from_config(app.config).dns_record()  # type: ignore[union-attr]
    assert dkim.verify(received.data, dnsfunc=dns_stub(record))
    names = dkim_tags(received.data)["h"].split(":")
    assert "content-transfer-encoding" in names and names.count("list-unsubscribe") == 1


@pytest.mark.one_backend
def test_without_dkim_nothing_is_signed(smtp_app, smtp_server: SMTPServer) -> None:  # type: ignore[no-untyped-def]
    """With DIGEST_DKIM_* unset, messages go out exactly as built, unsigned."""
    data = Mail(
        from_="news@news.example.org", to="r@example.com", subject="x", text="y\n"
    ).as_bytes()
    with mailer_for(smtp_app.config) as mailer:
        mailer.send("bounces@news.example.org", "r@example.com", data)
    (received,) = smtp_server.received
    assert received.data == data
    assert (
        email.message_from_bytes(received.data, policy=email.policy.default)["DKIM-Signature"]
        is None
    )
