"""/metrics after a real send through aiosmtpd, and /healthz naming the unhealthy part."""

from __future__ import annotations

import datetime as dt
import re
import socket
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.orm import Session

from digest import create_app
from digest.core.config import ConfigError, load_config
from digest.core.db import utcnow
from digest.domain import heartbeats, issues
from digest.engine.scheduler import tick
from digest.engine.sender import new_owner, send_batch
from digest.mail.mailer import mailer_for
from tests.support.apps import get_db_of
from tests.support.delivery import (
    CONFIG,
    digest_process,
    make_newsletter,
    process_env,
    reader_email,
)
from tests.support.smtp import SMTPServer
from tests.support.waiting import wait_until

TOKEN = "metrics-token-0123456789abcdef"


@pytest.fixture
def ops_app(app_overrides: dict[str, Any], smtp_server: SMTPServer) -> Iterator[Flask]:
    """An app mailing the test SMTP server, with a metrics token."""
    app = create_app({**app_overrides, "SMTP_URL": smtp_server.url, "METRICS_TOKEN": TOKEN})
    yield app
    get_db_of(app).dispose()


def _scrape(app: Flask) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = app.test_client().get("/metrics", headers={"Authorization": f"Bearer {TOKEN}"})
    assert response.status_code == 200, response.data
    assert response.mimetype == "text/plain"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.get_data(as_text=True))
        for sample in family.samples
    }


def test_metrics_after_a_real_send(ops_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """After a send in which the SMTP server accepts two readers, refuses one for good and
    one for now, /metrics counts each state, reply class, the queue, the rate, signups,
    the clock; an unsubscribe by one click shows at the next scrape."""
    setup = make_newsletter(db, readers=4)
    replies = {reader_email(2): "550 5.1.1 no such user", reader_email(3): "451 4.3.0 try again later"}
    smtp_server.script = lambda stage, address: replies.get(address) if stage == "rcpt" else None
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    with mailer_for(ops_app.config) as mailer:
        assert send_batch(ops_app, mailer, setup.issue_id, owner=new_owner("test")).claimed == 4
    assert tick(ops_app).errors == []
    assert len(smtp_server.received) == 2

    figures = _scrape(ops_app)
    for state, count in {"sent": 2, "failed_perm": 1, "failed_temp": 1, "pending": 0, "unknown": 0}.items():
        assert figures[("digest_deliveries", (("state", state),))] == count, state
    assert figures[("digest_smtp_replies_total", (("class", "2xx"),))] == 2
    assert figures[("digest_smtp_replies_total", (("class", "4xx"),))] == 1
    assert figures[("digest_smtp_replies_total", (("class", "5xx"),))] == 1
    assert figures[("digest_queue_depth", (("queue", "deliveries"),))] == 1  # the retry to come
    assert figures[("digest_send_rate_messages_per_second", ())] == pytest.approx(2 / 60)
    assert figures[("digest_signups_total", ())] == 4
    assert figures[("digest_unsubscribes_total", ())] == 0
    assert figures[("digest_scheduler_tick_lag_seconds", ())] == 0
    assert figures[("digest_job_errors_total", ())] == 0
    assert abs(figures[("digest_scheduler_last_tick_timestamp_seconds", ())] - utcnow().timestamp()) < 60

    one_click = re.search(r"<(https://[^>]+)>", smtp_server.received[0].raw_header("List-Unsubscribe")[0])
    assert one_click is not None
    path = one_click.group(1).removeprefix(ops_app.config["BASE_URL"])
    answer = ops_app.test_client().post(path, data={"List-Unsubscribe": "One-Click"})
    assert answer.status_code == 200
    assert _scrape(ops_app)[("digest_unsubscribes_total", ())] == 1


@pytest.mark.one_backend
def test_metrics_need_the_token(ops_app: Flask, app: Flask) -> None:
    """Without the bearer token /metrics answers 401 and shows nothing; without a token
    configured it does not exist."""
    client = ops_app.test_client()
    for headers in ({}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}, {"Authorization": TOKEN}):
        response = client.get("/metrics", headers=headers)
        assert response.status_code == 401 and b"digest_" not in response.data
    assert app.test_client().get("/metrics").status_code == 404


def test_healthz_ok_when_every_part_is(ops_app: Flask) -> None:
    """Database up, a recent tick, the SMTP server answering: 200 and every part ok."""
    tick(ops_app)
    response = ops_app.test_client().get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "checks": {"database": "ok", "scheduler": "ok", "smtp": "ok"}}


def test_healthz_names_a_stopped_scheduler_and_an_unreachable_smtp(
    app_overrides: dict[str, Any], db: Session
) -> None:
    """A clock that last ticked ten minutes ago and an SMTP server that is gone: 503, each
    named, the database still ok."""
    server = SMTPServer().start()
    url = server.url
    server.stop()
    app = create_app({**app_overrides, "SMTP_URL": url})
    try:
        heartbeats.record(db, heartbeats.CLOCK, 30, [], utcnow() - dt.timedelta(minutes=10))
        db.commit()
        response = app.test_client().get("/healthz")
    finally:
        get_db_of(app).dispose()
    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "unhealthy"
    assert body["checks"]["database"] == "ok"
    assert body["checks"]["scheduler"].startswith("no tick for 60")
    assert "cannot reach SMTP server 127.0.0.1" in body["checks"]["smtp"]


@pytest.mark.one_backend
def test_healthz_names_an_unreachable_database_and_a_clock_that_never_ticked(
    app_overrides: dict[str, Any], tmp_path: Any
) -> None:
    """A database that cannot be opened is named; a never-started clock is named too."""
    app = create_app({**app_overrides, "DATABASE_URL": f"sqlite:///{tmp_path}/missing/folder/db.sqlite3"})
    body = app.test_client().get("/healthz").get_json()
    assert body["checks"]["database"].startswith("unreachable")
    fresh = create_app(app_overrides)
    body = fresh.test_client().get("/healthz").get_json()
    assert body["checks"]["scheduler"].startswith("has never ticked")
    for each in (app, fresh):
        get_db_of(each).dispose()


@pytest.mark.one_backend
@pytest.mark.parametrize("value", ["8.8.8.8:9464", "0.0.0.0:9464", "metrics.example.org:9464", "127.0.0.1"])
def test_metrics_listener_only_on_a_private_address(value: str) -> None:
    """DIGEST_METRICS_LISTEN serves metrics without a token, so a public, wildcard or
    unparsable address stops start-up naming the variable."""
    with pytest.raises(ConfigError, match="DIGEST_METRICS_LISTEN is malformed"):
        load_config({"DIGEST_METRICS_LISTEN": value})


@pytest.mark.slow
def test_scheduler_serves_metrics_on_the_private_listener(app: Flask, tmp_path: Path) -> None:
    """`digest scheduler` with DIGEST_METRICS_LISTEN answers Prometheus there, with the
    clock's tick recorded, and without any token."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = process_env(app, METRICS_LISTEN=f"127.0.0.1:{port}", TICK_SECONDS=1)

    def scrape() -> str:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
                body: str = answer.read().decode()
        except OSError:
            return ""
        return body if "digest_scheduler_tick_lag_seconds" in body else ""

    with digest_process(["scheduler"], env, tmp_path / "scheduler.log"):
        body = wait_until(scrape, timeout=60, what=lambda: (tmp_path / "scheduler.log").read_text())
    assert 'digest_deliveries{state="sent"} 0.0' in body
