"""Web wiring: security headers, error pages, the front page (health: test_monitoring.py)."""

from __future__ import annotations

import pytest

from digest.domain.demo import load_demo


def test_security_headers(client) -> None:  # type: ignore[no-untyped-def]
    """Every page forbids framing, sniffing and foreign scripts."""
    response = client.get("/")
    assert response.status_code == 200
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


@pytest.mark.one_backend
def test_not_found_is_a_page(client) -> None:  # type: ignore[no-untyped-def]
    """An unknown address gets a readable 404 page."""
    response = client.get("/no/such/page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_front_page_names_the_newsletter(client, db) -> None:  # type: ignore[no-untyped-def]
    """With the demo loaded, the front page says what the newsletter is."""
    load_demo(db)
    db.commit()
    html = client.get("/").get_data(as_text=True)
    assert "The Weekly Model" in html


def test_demo_loads_once(runner) -> None:  # type: ignore[no-untyped-def]
    """`digest demo` loads the demo, and a second run changes nothing."""
    assert "Loaded the demo newsletter" in runner.invoke(args=["demo"]).output
    assert "already loaded" in runner.invoke(args=["demo"]).output


def test_demo_hard_bounce_is_suppressed_and_left_out(app, runner, db) -> None:  # type: ignore[no-untyped-def]
    """The demo reader whose last issue hard-bounced is on the suppression list, and the demo's draft issue leaves them out."""
    from sqlalchemy import select

    from digest.core.models import Delivery, DeliveryState, Issue, IssueStatus, Subscriber
    from digest.domain.deliveries import fan_out_chunks
    from digest.domain.suppression import suppression_for

    assert "Loaded the demo newsletter" in runner.invoke(args=["demo"]).output
    bounced = db.scalars(
        select(Subscriber).join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.state == DeliveryState.FAILED_PERM)
    ).all()
    assert len(bounced) == 1
    entry = suppression_for(db, app.config, bounced[0].email)
    assert entry is not None and entry.reason.value == "hard_bounce" and "5.1.1" in entry.detail
    draft = db.scalars(select(Issue).where(Issue.status == IssueStatus.DRAFT)).one()
    for _ in fan_out_chunks(db, draft.id, app.config):
        pass
    mailed = set(db.scalars(select(Delivery.subscriber_id).where(Delivery.issue_id == draft.id)))
    assert mailed and bounced[0].id not in mailed
    db.rollback()


@pytest.mark.one_backend
def test_digest_run_delivers_a_large_answer_to_a_slow_reader_whole(app, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """`digest run` (waitress with its own connection class) sends an answer larger than the
    socket buffers to a reader that takes it slowly, byte for byte, and keeps answering others."""
    import socket
    import time
    import urllib.request

    from tests.support.delivery import digest_server, process_env

    expected = client.get("/api/v1/openapi.json").get_data()
    assert len(expected) > 1 << 17  # beyond what the connection leaves to the serving thread
    with digest_server(process_env(app), tmp_path / "run.log") as (base, _process):
        host, port = base.removeprefix("http://").split(":")
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect((host, int(port)))
        slow.sendall(f"GET /api/v1/openapi.json HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        time.sleep(0.5)  # the server fills both buffers and must hold the rest meanwhile
        with urllib.request.urlopen(f"{base}/healthz", timeout=10) as other:
            assert other.status == 200
        received = b""
        slow.settimeout(30)
        while b"\r\n\r\n" not in received or len(received.split(b"\r\n\r\n", 1)[1]) < len(expected):
            chunk = slow.recv(4096)
            assert chunk, f"the connection closed after {len(received)} bytes"
            received += chunk
            time.sleep(0.001)
        slow.close()
    head, body = received.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and body == expected
