"""Webhooks from a real `digest run`: a receiver that fails, the sender SIGKILLed while
retrying, the receiver recovering, a new `digest run` delivering every event."""

from __future__ import annotations

import hashlib
import signal
import threading
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from digest.core.models import WebhookDelivery, WebhookEvent, WebhookState
from digest.domain.subscribers.actions import EditorAddition, add_by_editor
from tests.support.delivery import digest_process, free_port, process_env
from tests.support.http import Received, Reply, serving
from tests.support.services import REQUIRE_SERVICES
from tests.support.waiting import wait_until
from tests.support.workspace import demo_newsletter

pytestmark = pytest.mark.slow


class FlakyReceiver:
    """Answers 503 while down, then verifies and takes every message."""

    def __init__(self) -> None:
        self.secret = ""
        self.down = True
        self.refused: list[str] = []
        self.taken: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Received) -> Reply:
        payload = Webhook(self.secret).verify(request.body, request.headers)
        with self._lock:
            if self.down:
                self.refused.append(request.headers["webhook-id"])
                return Reply(503, {}, b"maintenance")
            self.taken[request.headers["webhook-id"]] = payload
            return Reply(204)


def _states(db: Session) -> list[WebhookState]:
    states = list(db.scalars(select(WebhookDelivery.state).order_by(WebhookDelivery.id)))
    db.commit()
    return states


def test_no_event_is_lost_across_a_sigkill(app: Flask, db: Session, tmp_path: Path) -> None:
    """Are events whose deliveries were failing when `digest run` was SIGKILLed all
    delivered, once each id, by the next `digest run` after the receiver recovers?"""
    receiver = FlakyReceiver()
    with serving(receiver) as server:
        added = app.test_cli_runner().invoke(
            args=["webhooks", "add", server.url, "--events", "subscriber.created"])
        receiver.secret = added.output.split("shown once; keep it with the receiver): ")[1].strip()
        newsletter = demo_newsletter(db)
        for n in range(3):
            add_by_editor(db, app.config, newsletter, EditorAddition(f"kill{n}@example.org"))
        db.commit()
        uids = set(db.scalars(select(WebhookEvent.uid)))
        db.commit()
        assert len(uids) == 3

        env = process_env(app, ALLOW_PRIVATE_URLS="true", WEBHOOK_RETRY_SECONDS="0.3",
                          TICK_SECONDS="1")
        log = tmp_path / "run.log"
        port = free_port()
        with digest_process(["run", "--port", str(port)], env, log) as first:
            # Each event refused at least twice: retries are going on when the kill comes.
            wait_until(lambda: all(receiver.refused.count(u) >= 2 for u in uids), 60,
                       lambda: log.read_text(errors="replace")[-3000:])
            first.send_signal(signal.SIGKILL)
            first.wait(10)
        assert receiver.taken == {}
        assert set(_states(db)) <= {WebhookState.PENDING, WebhookState.SENDING}

        receiver.down = False
        with digest_process(["run", "--port", str(free_port())], env, log):
            wait_until(lambda: set(receiver.taken) == uids, 90,
                       lambda: log.read_text(errors="replace")[-3000:])
            wait_until(lambda: _states(db) == [WebhookState.DELIVERED] * 3, 30)
    assert sorted(p["data"]["email"] for p in receiver.taken.values()) == [
        "kill0@example.org", "kill1@example.org", "kill2@example.org"]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_celery_workers_deliver_webhooks(app: Flask, db: Session, tmp_path: Path) -> None:
    """With DIGEST_BROKER_URL, do the clock's `digest.deliver_webhooks` tasks, run by a
    Celery worker, deliver an event the receiver verifies?"""
    import redis

    checkout = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).digest()[0]
    url = f"redis://127.0.0.1:6379/{1 + (checkout + 7) % 15}"
    try:
        redis.Redis.from_url(url).flushdb()
    except redis.RedisError as exc:
        if REQUIRE_SERVICES:
            pytest.fail(f"Redis at {url} is required but unreachable: {exc}")
        pytest.skip(f"Redis at {url} is unreachable: {exc}")
    receiver = FlakyReceiver()
    receiver.down = False
    with serving(receiver) as server:
        added = app.test_cli_runner().invoke(
            args=["webhooks", "add", server.url, "--events", "post.published"])
        receiver.secret = added.output.split("shown once; keep it with the receiver): ")[1].strip()
        endpoint_id = added.output.split("endpoint ")[1].split(":")[0]
        app.test_cli_runner().invoke(args=["webhooks", "test", endpoint_id])
        uid = db.scalars(select(WebhookEvent.uid)).one()
        db.commit()
        env = process_env(app, BROKER_URL=url, ALLOW_PRIVATE_URLS="true", TICK_SECONDS="1")
        log = tmp_path / "celery.log"
        with digest_process(["worker", "--threads", "1"], env, log), \
                digest_process(["scheduler"], env, log):
            wait_until(lambda: uid in receiver.taken, 120,
                       lambda: log.read_text(errors="replace")[-3000:])
    assert receiver.taken[uid]["type"] == "webhook.test"
