"""`digest issue render ID --to ADDRESS`: the exact bytes a reader would receive."""

from __future__ import annotations

import email
import email.policy
from pathlib import Path
from typing import Any

import dkim
from sqlalchemy import select

from digest import create_app
from digest.core.models import Delivery, Subscriber
from digest.domain.identity import parse_verp
from digest.mail.dkim import signer_from_config
from tests.support.apps import get_db_of
from tests.support.dkim_keys import dkim_settings, dns_stub
from tests.support.issues import demo_issue


def _message(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_renders_a_subscribers_real_message(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """A subscriber gets their name, sections, links and delivery, as the sender would send it."""
    issue = demo_issue(db)
    grace = db.scalars(select(Subscriber).where(Subscriber.email == "grace@example.com")).one()
    delivery = Delivery(issue_id=issue.id, subscriber_id=grace.id)
    db.add(delivery)
    db.commit()
    issue_id, delivery_id = issue.id, delivery.id
    db.commit()
    result = runner.invoke(args=["issue", "render", str(issue_id), "--to", "Grace@Example.com"])
    assert result.exit_code == 0, result.output
    data = result.stdout_bytes
    message = _message(data)
    assert str(message["To"]) == "Grace <grace@example.com>"
    assert message["X-Digest-Delivery"] == str(delivery_id)
    assert message["Message-ID"] == f"<digest.{issue_id}.d{delivery_id}@news.example.org>"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi Grace," in text and "Write the evals before you write the prompt" in text
    assert "An open-weights reasoning model" not in text  # Grace chose Engineers and Tools
    assert "DKIM-Signature" not in message
    assert f"MAIL FROM:<bounces+d{delivery_id}-" in result.stderr
    assert (
        parse_verp(
            app.config, result.stderr.split("MAIL FROM:<")[1].split(">")[0], "grace@example.com"
        )
        == f"d{delivery_id}"
    )


def test_unknown_address_gets_a_preview_reader(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """An address that is not subscribed gets the message of a new reader, and is told so."""
    issue_id = demo_issue(db).id
    db.commit()  # end the read transaction: SQLite sessions begin IMMEDIATE
    result = runner.invoke(args=["issue", "render", str(issue_id), "--to", "someone@example.net"])
    assert result.exit_code == 0, result.output
    message = _message(result.stdout_bytes)
    assert str(message["To"]) == "someone@example.net"
    assert "X-Digest-Delivery" not in message
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "Hi " not in text and "An open-weights reasoning model" in text  # no name, no greeting
    assert "is not subscribed to The Weekly Model" in result.stderr


def test_signed_when_dkim_is_configured(app_overrides: dict[str, Any], tmp_path: Path) -> None:
    """With DKIM configured the printed bytes carry a signature that dkimpy verifies."""
    app = create_app({**app_overrides, **dkim_settings(tmp_path)})
    database = get_db_of(app)
    with database.sessionmaker() as db:
        issue_id = demo_issue(db).id
    result = app.test_cli_runner().invoke(
        args=["issue", "render", str(issue_id), "--to", "ada@example.com"]
    )
    database.dispose()
    assert result.exit_code == 0, result.output
    record = signer_from_config(app.config).dns_record()  # type: ignore[union-attr]
    assert result.stdout_bytes.startswith(b"DKIM-Signature: v=1; a=rsa-sha256;")
    assert dkim.verify(result.stdout_bytes, dnsfunc=dns_stub(record))


def test_bad_input_is_a_clear_error(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """An unknown issue or a malformed address is a one-line error and prints no message."""
    issue_id = demo_issue(db).id
    db.commit()
    missing = runner.invoke(
        args=["issue", "render", str(issue_id + 100), "--to", "ada@example.com"]
    )
    assert missing.exit_code != 0 and f"There is no issue {issue_id + 100}." in missing.output
    assert missing.stdout_bytes == b""
    malformed = runner.invoke(args=["issue", "render", str(issue_id), "--to", "not-an-address"])
    assert malformed.exit_code != 0 and "is not an email address" in malformed.output
    assert malformed.stdout_bytes == b""


def test_warns_when_sending_would_be_refused(app, db, runner) -> None:  # type: ignore[no-untyped-def]
    """Rendering still works without a postal address, but says that sending would refuse."""
    issue = demo_issue(db)
    issue.newsletter.postal_address = ""
    issue_id = issue.id
    db.commit()
    result = runner.invoke(args=["issue", "render", str(issue_id), "--to", "ada@example.com"])
    assert result.exit_code == 0
    assert "Sending would refuse this issue" in result.stderr and "postal address" in result.stderr
