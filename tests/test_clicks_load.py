"""Clicks under load: a flood is answered but recorded within bounds, and a `digest run`
killed while readers click loses at most the clicks of its last second."""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from digest import create_app
from digest.core.models import ClickEvent, ClickTally
from digest.engine import clicks
from digest.engine.clicks import recorder
from tests.support.apps import BASE_URL, get_db_of
from tests.support.browser import live_server
from tests.support.delivery import (
    digest_server,
    make_newsletter,
    process_env,
    reader_email,
)
from tests.support.smtp import SMTPServer
from tests.support.waiting import wait_until
from tests.test_clicks import CLICK, _send

BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


# A crash loses at most the clicks of the last FLUSH_SECONDS; the test allows this much
# more for a loaded machine (the flush thread waiting for a core, a commit for the disk).
SLACK_SECONDS = 2.0


def _stored(db: Session) -> int:
    """Return the clicks in the database: waiting to settle, or counted already."""
    db.rollback()  # a fresh snapshot
    waiting = db.scalar(select(func.count()).select_from(ClickEvent)) or 0
    counted = db.scalar(select(func.sum(ClickTally.clicks))) or 0
    db.rollback()  # on SQLite an open transaction would hold off the server's writes
    return waiting + counted


def _first_link(app: Flask, db: Session, smtp_server: SMTPServer, readers: int = 1) -> tuple[str, str]:
    """Send an issue to the readers; return reader 0's tool link and where it goes."""
    setup = make_newsletter(db, readers=readers)
    _send(app, db, setup)
    html = smtp_server.to(reader_email(0))[0].message.get_body(("html",)).get_content()
    found = re.search(r'href="(' + CLICK.pattern + r')"[^>]*>A tool</a>', html)
    assert found is not None
    return found.group(1).removeprefix(BASE_URL), f"{BASE_URL}/posts/weekly/second"


def test_a_flood_is_answered_but_recorded_within_bounds(
    app_overrides: dict[str, Any], smtp_server: SMTPServer, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """One client clicking far past DIGEST_CLICK_RECORD_LIMIT is sent on every time, but
    only its allowance is recorded; past the buffer's bound clicks are dropped, not held;
    both are counted and logged, and the database gets what was kept."""
    monkeypatch.setattr(clicks, "FLUSH_SECONDS", 3600.0)  # this test writes the buffer itself
    monkeypatch.setattr(clicks, "BUFFER_LIMIT", 4)
    app = create_app({**app_overrides, "SMTP_URL": smtp_server.url, "CLICK_RECORD_LIMIT": "6/minute"})
    with get_db_of(app).sessionmaker() as db:
        path, target = _first_link(app, db, smtp_server)
        with live_server(app) as base, requests.Session() as http:
            answers = [http.get(base + path, allow_redirects=False, timeout=10,
                                headers={"User-Agent": BROWSER}) for _ in range(30)]
        assert [a.status_code for a in answers] == [302] * 30
        assert {a.headers["Location"] for a in answers} == {target}
        kept = recorder(app)
        assert (kept.overflow, kept.over_limit) == (2, 24)  # 6 allowed, 4 held, 2 dropped
        with caplog.at_level(logging.WARNING, logger="digest.engine.clicks"):
            assert kept.flush() == 4
        assert "24 not recorded over DIGEST_CLICK_RECORD_LIMIT" in caplog.text
        assert "2 past the buffer's bound of 4" in caplog.text
        assert _stored(db) == 4
    get_db_of(app).dispose()


def test_the_limit_counts_an_ipv6_host_by_its_64(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    """Addresses of one IPv6 /64 share a client's allowance; another /64 and an IPv4
    address have their own."""
    monkeypatch.setattr(clicks, "FLUSH_SECONDS", 3600.0)  # made-up ids: never written
    app.config["CLICK_RECORD_LIMIT"] = "2/minute"
    app.extensions.pop("digest.clicks", None)
    kept = recorder(app)
    try:
        results = [kept.record(1, 1, 0, None, address) for address in (
            "2001:db8::1", "2001:db8::2:3", "2001:db8::9", "2001:db8:0:1::1", "192.0.2.1", "192.0.2.1",
            "192.0.2.1")]
        assert results == [True, True, False, True, True, True, False]
        assert kept.over_limit == 2
    finally:
        with kept._lock:
            kept._buffer.clear()  # made-up ids: nothing for the database
        kept.stop()


def test_a_killed_server_loses_at_most_its_last_second_of_clicks(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session, tmp_path: Path
) -> None:
    """Readers click a real `digest run` without pause; SIGKILL loses none of the clicks
    answered more than FLUSH_SECONDS (plus slack for a loaded machine) before it, and
    SIGTERM right after the last click loses none at all."""
    path, target = _first_link(smtp_app, db, smtp_server)
    db.commit()  # on SQLite an open transaction would hold the write lock
    env = process_env(smtp_app, CLICK_RECORD_LIMIT="1000000/minute")
    answered: list[float] = []
    stop = threading.Event()

    def click(base: str) -> None:
        with requests.Session() as http:
            while not stop.is_set():
                try:
                    answer = http.get(base + path, allow_redirects=False, timeout=10,
                                      headers={"User-Agent": BROWSER})
                except requests.ConnectionError:
                    return  # the server is gone
                assert answer.headers["Location"] == target
                answered.append(time.monotonic())

    with digest_server(env, tmp_path / "run.log") as (base, process):
        clicker = threading.Thread(target=click, args=(base,))
        clicker.start()
        try:
            spread = clicks.FLUSH_SECONDS + SLACK_SECONDS + 2
            wait_until(lambda: len(answered) > 20 and answered[-1] - answered[0] > spread, 60,
                       "clicks answered over a few seconds")
            killed_at = time.monotonic()
            process.send_signal(signal.SIGKILL)
            process.wait(10)
        finally:
            stop.set()
            clicker.join(20)
    old_enough = sum(1 for at in answered if at <= killed_at - clicks.FLUSH_SECONDS - SLACK_SECONDS)
    stored = _stored(db)
    assert old_enough <= stored <= len(answered), (old_enough, stored, len(answered))

    with digest_server(env, tmp_path / "run2.log") as (base, process):
        with requests.Session() as http:
            for _ in range(40):
                answer = http.get(base + path, allow_redirects=False, timeout=10,
                                  headers={"User-Agent": BROWSER})
                assert answer.headers["Location"] == target
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
    assert _stored(db) == stored + 40
