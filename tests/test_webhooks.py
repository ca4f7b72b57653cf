"""Outgoing webhooks against real local HTTP receivers: signatures checked with the
Standard Webhooks library, retries, order per reader, rotation, the SSRF guard, disabling."""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    EditorRole,
    Subscriber,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    WebhookState,
)
from digest.domain import issues, webhooks
from digest.domain.editors import create_editor
from digest.domain.subscribers.actions import EditorAddition, add_by_editor, suppress_by_editor
from digest.domain.subscribers.privacy import erase
from digest.domain.subscribers.signup import unsubscribe
from digest.engine.webhooks import deliver_due, webhook_client
from tests.support.apps import get_db_of
from tests.support.delivery import CONFIG, make_newsletter
from tests.support.editor import PASSWORD
from tests.support.http import Received, Reply, serving
from tests.support.readers import load_newsletter, signup, take_signups_now
from tests.support.smtp import SMTPServer
from tests.support.waiting import wait_until
from tests.support.workspace import demo_newsletter


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    """Receivers run on 127.0.0.1: allow it; retry after a fraction of a second."""
    return {**app_overrides, "ALLOW_PRIVATE_URLS": True, "WEBHOOK_RETRY_SECONDS": 0.2}


class Receiver:
    """A receiver that verifies every message with the standardwebhooks library."""

    def __init__(self, fail_first: int = 0) -> None:
        self.secret = ""
        self.fail_first = fail_first
        self.verified: list[dict[str, Any]] = []
        self.ids: list[str] = []
        self.refused = 0
        self._lock = threading.Lock()

    def __call__(self, request: Received) -> Reply:
        with self._lock:
            try:
                payload = Webhook(self.secret).verify(request.body, request.headers)
            except WebhookVerificationError:
                self.refused += 1
                return Reply(400, {}, b"bad signature")
            self.ids.append(request.headers["webhook-id"])
            if self.fail_first > 0:
                self.fail_first -= 1
                return Reply(500, {}, b"database is down, try later")
            self.verified.append(payload)
            return Reply(200, {}, b'{"ok": true}')

    def types(self) -> list[str]:
        """Return the types of the messages taken, in order."""
        return [p["type"] for p in self.verified]


def _add(app: Flask, url: str, events: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["webhooks", "add", url, "--events", events,
                                                "--description", "CRM sync"])
    assert result.exit_code == 0, result.output
    endpoint_id = int(re.search(r"endpoint (\d+)", result.output).group(1))  # type: ignore[union-attr]
    secret = re.search(r"(whsec_\S+)", result.output).group(1)  # type: ignore[union-attr]
    return endpoint_id, secret


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """A session on the app's database."""
    with get_db_of(app).sessionmaker() as session:
        yield session


def _drain(app: Flask, until: Callable[[], bool], timeout: float = 15.0,
           now: Callable[[], dt.datetime] = utcnow) -> None:
    with webhook_client(app) as client:
        wait_until(lambda: deliver_due(app, client, "test-owner", now) >= 0 and until(),
                   timeout, "webhook deliveries", every=0.05)


def _reader_lifecycle(app: Flask, db: Session) -> int:
    newsletter = demo_newsletter(db)
    _outcome, subscription = add_by_editor(
        db, app.config, newsletter,
        EditorAddition("hook-reader@example.org", "Hook Reader", consent_elsewhere=True,
                       note="Signed up at our stand on 2026-11-30"))
    db.commit()
    unsubscribe(db, subscription, "test")
    db.commit()
    return subscription.subscriber_id


def test_public_signups_announce_each_new_reader_once(
    app: Flask, client: FlaskClient, db_session: Session
) -> None:
    """Do readers who sign up on the front page, acted on by the engine together, raise one
    subscriber.created event each, with their address, name and newsletter, and does the
    same address signing up twice raise only one?"""
    slug = load_newsletter(app).slug
    with serving(Receiver()) as server:
        _add(app, server.url, "subscriber.created")
    for email, name in [("first@example.org", "First Reader"), ("second@example.org", ""),
                        ("first@example.org", "First Reader")]:
        assert signup(client, email, name=name, engine=False).status_code == 200
    assert take_signups_now(app) == 3
    events = [e.payload["data"] for e in db_session.scalars(
        select(WebhookEvent).where(WebhookEvent.type == "subscriber.created").order_by(WebhookEvent.id)
    )]
    db_session.commit()
    assert [(e["email"], e["name"], e["newsletter"], e["status"]) for e in events] == [
        ("first@example.org", "First Reader", slug, "pending"),
        ("second@example.org", "", slug, "pending"),
    ]


def test_events_arrive_signed_and_in_order(app: Flask, db_session: Session) -> None:
    """Does a receiver verify every message with the Standard Webhooks library and get a
    reader's events in order, the erasure carrying no address?"""
    receiver = Receiver()
    with serving(receiver) as server:
        _id, receiver.secret = _add(app, server.url + "/hooks",
                                    "subscriber.created,subscriber.confirmed,"
                                    "subscriber.unsubscribed,subscriber.erased")
        reader_id = _reader_lifecycle(app, db_session)
        _drain(app, lambda: len(receiver.verified) == 3)
        erase(db_session, app.config, db_session.get_one(Subscriber, reader_id))
        db_session.commit()
        _drain(app, lambda: len(receiver.verified) == 4)
    assert receiver.refused == 0
    assert receiver.types() == ["subscriber.created", "subscriber.confirmed",
                                "subscriber.unsubscribed", "subscriber.erased"]
    stored = json.dumps([e.payload for e in db_session.scalars(select(WebhookEvent))])
    db_session.commit()
    assert "hook-reader" not in stored and "Hook Reader" not in stored
    created = receiver.verified[0]["data"]  # sent before the erasure, so with the address
    assert created["email"] == "hook-reader@example.org" and created["newsletter"]
    assert receiver.verified[3]["data"] == {"subscriber_id": reader_id}
    assert "hook-reader" not in json.dumps(receiver.verified[3])
    assert len(set(receiver.ids)) == 4
    headers = server.received[0].headers
    assert headers["content-type"] == "application/json"
    assert abs(int(headers["webhook-timestamp"]) - utcnow().timestamp()) < 60


def test_a_forged_signature_is_refused_by_the_receiver(app: Flask) -> None:
    """Does the library refuse a message signed with another secret (the check is real)?"""
    receiver = Receiver()
    with serving(receiver) as server:
        _id, _secret = _add(app, server.url, "subscriber.created")
        receiver.secret = webhooks.new_secret()
        with get_db_of(app).session() as db:
            webhooks.send_test(db, db.get_one(WebhookEndpoint, _id))
        _drain(app, lambda: receiver.refused >= 1)
    assert receiver.verified == []


def test_failing_receiver_is_retried_with_the_same_id_until_it_recovers(
        app: Flask, db_session: Session) -> None:
    """Is a message refused twice retried after a backoff with the same webhook-id, and
    are later events of the same reader held back until it got through?"""
    receiver = Receiver(fail_first=2)
    with serving(receiver) as server:
        endpoint_id, receiver.secret = _add(app, server.url, "subscriber.created,subscriber.confirmed")
        newsletter = demo_newsletter(db_session)
        add_by_editor(db_session, app.config, newsletter,
                      EditorAddition("retry@example.org", consent_elsewhere=True, note="By phone"))
        db_session.commit()
        _drain(app, lambda: len(receiver.verified) == 2)
    created_id = receiver.ids[0]
    assert receiver.ids[:3] == [created_id] * 3
    assert receiver.types() == ["subscriber.created", "subscriber.confirmed"]
    listing = app.test_cli_runner().invoke(args=["webhooks", "attempts", str(endpoint_id)])
    lines = listing.output.strip().splitlines()
    assert [line.split("\t")[4] for line in lines] == ["200", "200", "500", "500"]
    assert "database is down, try later" in lines[-1]
    times = [dt.datetime.fromisoformat(line.split("\t")[3]) for line in lines]
    assert times[-1] <= times[-2] <= times[-3]


def test_resend_delivers_again_with_the_same_id(app: Flask) -> None:
    """Does "resend" post a delivered message again, with its webhook-id unchanged?"""
    receiver = Receiver()
    with serving(receiver) as server:
        endpoint_id, receiver.secret = _add(app, server.url, "subscriber.created")
        test = app.test_cli_runner().invoke(args=["webhooks", "test", str(endpoint_id)])
        delivery_id = re.search(r"delivery (\d+)", test.output).group(1)  # type: ignore[union-attr]
        _drain(app, lambda: len(receiver.verified) == 1)
        again = app.test_cli_runner().invoke(
            args=["webhooks", "resend", str(endpoint_id), delivery_id])
        assert again.exit_code == 0, again.output
        _drain(app, lambda: len(receiver.verified) == 2)
    assert receiver.types() == ["webhook.test", "webhook.test"]
    assert receiver.ids[0] == receiver.ids[1]


def test_rotation_signs_with_both_secrets_during_the_overlap(app: Flask) -> None:
    """After a rotation, do receivers holding the old or the new secret both verify, and
    only the new one after the overlap?"""
    old_receiver, new_receiver = Receiver(), Receiver()

    def both(request: Received) -> Reply:
        old_receiver(request)
        return new_receiver(request)

    with serving(both) as server:
        endpoint_id, old_receiver.secret = _add(app, server.url, "subscriber.created")
        rotated = app.test_cli_runner().invoke(args=["webhooks", "rotate", str(endpoint_id)])
        new_receiver.secret = re.search(r"(whsec_\S+)", rotated.output).group(1)  # type: ignore[union-attr]
        assert new_receiver.secret != old_receiver.secret
        with get_db_of(app).session() as db:
            webhooks.send_test(db, db.get_one(WebhookEndpoint, endpoint_id))
        _drain(app, lambda: len(new_receiver.verified) == 1)
        assert len(old_receiver.verified) == 1
        assert len(server.received[0].headers["webhook-signature"].split(" ")) == 2

        with get_db_of(app).session() as db:
            endpoint = db.get_one(WebhookEndpoint, endpoint_id)
            assert endpoint.previous_secret_until is not None
            overlap = endpoint.previous_secret_until - utcnow()
            assert dt.timedelta(hours=23) < overlap <= webhooks.ROTATION_OVERLAP
            # The overlap is over (moved back rather than the clock forward: receivers
            # refuse timestamps far from their own clock).
            endpoint.previous_secret_until = utcnow() - dt.timedelta(seconds=1)
            webhooks.send_test(db, endpoint)
        _drain(app, lambda: len(new_receiver.verified) == 2)
    assert len(old_receiver.verified) == 1 and old_receiver.refused == 1
    assert len(server.received[-1].headers["webhook-signature"].split(" ")) == 1


def test_private_address_is_refused_without_the_setting(
        app_overrides: dict[str, Any]) -> None:
    """Without DIGEST_ALLOW_PRIVATE_URLS, is an endpoint on 127.0.0.1 never contacted, the
    refusal listed as the attempt's error and the delivery kept for a retry?"""
    from digest import create_app

    app = create_app({**app_overrides, "ALLOW_PRIVATE_URLS": False})
    receiver = Receiver()
    with serving(receiver) as server:
        endpoint_id, receiver.secret = _add(app, server.url, "subscriber.created")
        app.test_cli_runner().invoke(args=["webhooks", "test", str(endpoint_id)])
        with webhook_client(app) as client:
            assert deliver_due(app, client, "test-owner") == 1
        assert server.received == []
    listing = app.test_cli_runner().invoke(args=["webhooks", "attempts", str(endpoint_id)])
    assert "refused to connect to 127.0.0.1: 127.0.0.1 is a loopback address" in listing.output
    with get_db_of(app).session() as db:
        assert db.scalars(select(WebhookDelivery.state)).one() is WebhookState.PENDING
    get_db_of(app).dispose()


def test_an_endpoint_failing_for_days_is_disabled(smtp_app: Flask, smtp_server: SMTPServer) -> None:
    """Is an endpoint that failed every attempt for DIGEST_WEBHOOK_DISABLE_AFTER_HOURS
    disabled, every active admin emailed about it, and its deliveries sent once an admin
    enables it again?"""
    app = smtp_app
    with get_db_of(app).session() as db:
        create_editor(db, "boss@example.org", PASSWORD, EditorRole.ADMIN)
        create_editor(db, "pen@example.org", PASSWORD, EditorRole.EDITOR)
    receiver = Receiver(fail_first=1)
    with serving(receiver) as server:
        endpoint_id, receiver.secret = _add(app, server.url, "subscriber.created")
        app.test_cli_runner().invoke(args=["webhooks", "test", str(endpoint_id)])
        with webhook_client(app) as client:
            assert deliver_due(app, client, "test-owner") == 1
            later = utcnow() + dt.timedelta(hours=app.config["WEBHOOK_DISABLE_AFTER_HOURS"],
                                            minutes=1)
            assert deliver_due(app, client, "test-owner", lambda: later) == 0
        listed = app.test_cli_runner().invoke(args=["webhooks", "list"]).output
        assert "disabled: every attempt failed since" in listed
        (mail,) = smtp_server.received
        assert mail.rcpt_tos == ("boss@example.org",)
        message = mail.message
        assert message["Subject"] == "1 webhook endpoint disabled after failing for 72 hours"
        text = message.get_content()
        assert server.url in text and "every attempt failed since" in text
        assert "https://news.example.org/editor/webhooks" in text
        app.test_cli_runner().invoke(args=["webhooks", "enable", str(endpoint_id)])
        _drain(app, lambda: len(receiver.verified) == 1)
    assert receiver.types() == ["webhook.test"]


def test_a_lost_lease_is_sent_again_with_the_same_id(app: Flask) -> None:
    """If the process sending a message dies before recording it, is the message sent
    again once its lease expires, with the same webhook-id (at least once)?"""
    receiver = Receiver()
    with serving(receiver) as server:
        endpoint_id, receiver.secret = _add(app, server.url, "subscriber.created")
        with get_db_of(app).session() as db:
            uid = webhooks.send_test(db, db.get_one(WebhookEndpoint, endpoint_id)).event.uid
        with get_db_of(app).session() as db:
            assert len(webhooks.claim_due(db, "dead-process")) == 1
        with get_db_of(app).session() as db:
            assert webhooks.claim_due(db, "another") == []
        later = utcnow() + webhooks.LEASE + dt.timedelta(seconds=1)
        _drain(app, lambda: len(receiver.verified) == 1, now=lambda: later)
    assert receiver.ids == [uid]


def test_only_asked_for_events_are_recorded(app: Flask, db_session: Session) -> None:
    """Is an event written only for endpoints that asked for its type, and none at all
    (no outbox row) when no endpoint did?"""
    _add(app, "https://hooks.example.net/a", "issue.sent")
    newsletter = demo_newsletter(db_session)
    add_by_editor(db_session, app.config, newsletter, EditorAddition("quiet@example.org"))
    db_session.commit()
    assert db_session.scalars(select(WebhookDelivery)).all() == []


def test_bad_input_is_refused(app: Flask) -> None:
    """Are an unknown event and a non-http URL refused with a message naming them?"""
    runner = app.test_cli_runner()
    unknown = runner.invoke(args=["webhooks", "add", "https://x.example/", "--events", "bogus"])
    assert unknown.exit_code != 0 and "Unknown event bogus" in unknown.output
    ftp = runner.invoke(args=["webhooks", "add", "ftp://x.example/", "--events", "issue.sent"])
    assert ftp.exit_code != 0 and "http" in ftp.output


def test_issue_and_suppression_events_are_written_with_their_change(db_session: Session) -> None:
    """Are issue.scheduled, issue.sent and subscriber.suppressed written in the transaction
    of the change, and gone with it when it rolls back (outbox)?"""
    db = db_session
    webhooks.create_endpoint(db, "https://hooks.example.net/all", webhooks.EVENTS)
    setup = make_newsletter(db, readers=2)
    db.commit()
    now = utcnow()
    issues.schedule_issue(db, setup.issue_id, (now + dt.timedelta(days=2)).replace(tzinfo=None),
                          "UTC", now)
    db.rollback()
    assert db.scalars(select(WebhookEvent.type)).all() == []
    issues.schedule_issue(db, setup.issue_id, (now + dt.timedelta(days=2)).replace(tzinfo=None),
                          "UTC", now)
    db.commit()
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.execute(update(Delivery).values(state="sent"))
    assert issues.finish_issue(db, setup.issue_id)
    suppress_by_editor(db, CONFIG, setup.emails[0], "Asked by phone", "admin@example.org")
    db.commit()
    events = {e.type: e for e in db.scalars(select(WebhookEvent))}
    assert set(events) >= {"issue.scheduled", "issue.sent", "subscriber.suppressed"}
    assert events["issue.sent"].payload["data"]["issue_id"] == setup.issue_id
    assert events["subscriber.suppressed"].payload["data"]["email"] == setup.emails[0]
    assert events["subscriber.suppressed"].payload["data"]["reason"] == "manual"
