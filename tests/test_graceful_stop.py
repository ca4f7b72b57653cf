"""Graceful stop: SIGTERM (systemd's stop, `docker stop`) lets a real `digest worker` or
`digest run` finish the message it is sending, record it, give back what it claimed,
and exit, leaving no delivery `sending` (so nothing becomes `unknown`)."""

from __future__ import annotations

import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from digest.domain import issues
from tests.support.delivery import (
    CONFIG,
    digest_process,
    make_newsletter,
    per_recipient,
    process_env,
    states,
)
from tests.support.smtp import SMTPServer

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.mark.parametrize("command", ["worker", "run"])
def test_sigterm_finishes_the_message_in_flight(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session, tmp_path: Path, command: str
) -> None:
    """SIGTERM arrives while the SMTP server is still taking a message: the process waits for
    the 250, records it `sent`, returns its other claims to `pending`, exits 0; every
    accepted message is `sent`, none `sending` or `unknown`."""
    setup = make_newsletter(db, readers=30)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    in_data = threading.Event()

    def slow_data(stage: str, _address: str) -> None:
        if stage == "data" and len(smtp_server.received) >= 3:
            in_data.set()
            time.sleep(1.5)  # the message is in flight when SIGTERM comes

    smtp_server.script = slow_data
    env = process_env(smtp_app, SENDER_THREADS=1, BATCH_SIZE=10, TICK_SECONDS=1, LEASE_SECONDS=60)
    args = ["worker"] if command == "worker" else ["run", "--port", str(_free_port())]
    log = tmp_path / "stop.log"
    with digest_process(args, env, log) as process:
        assert in_data.wait(60), log.read_text()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0, log.read_text()
    final = states(db, setup.issue_id)
    received = per_recipient(smtp_server)
    assert len(received) >= 4, "the message in flight was not finished"
    assert final["sent"] == len(received) and max(received.values()) == 1
    assert final["sending"] == 0 and final["claimed"] == 0 and final["unknown"] == 0, final
    assert final["pending"] == 30 - len(received)
