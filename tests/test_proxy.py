"""DIGEST_TRUSTED_PROXIES: X-Forwarded-For is believed only for the configured proxy hops."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient

from digest import create_app
from digest.core.config import ConfigError, load_config
from tests.support.apps import get_db_of
from tests.support.delivery import digest_server, process_env
from tests.support.readers import (
    load_newsletter,
    subscription,
    take_signups_now,
)
from tests.support.waiting import wait_until

PROXY = "10.0.0.2"


def _signup(client: FlaskClient, email: str, forwarded_for: str) -> int:
    response = client.post(
        "/api/v1/subscribe",
        json={"email": email, "consent": True},
        headers={"X-Forwarded-For": forwarded_for, "X-Forwarded-Proto": "https"},
        environ_base={"REMOTE_ADDR": PROXY},
    )
    take_signups_now(client.application)
    return response.status_code


def _consent_ip(app: Flask, email: str) -> str | None:
    found = subscription(app, email)
    assert found is not None
    return found.consents[0].ip


@pytest.fixture
def proxied_app(app_overrides: dict[str, Any]) -> Iterator[Flask]:
    """An app told that one reverse proxy stands in front of it."""
    app = create_app({**app_overrides, "TRUSTED_PROXIES": 1})
    yield app
    get_db_of(app).dispose()


def test_forwarded_for_is_ignored_by_default(app, client) -> None:  # type: ignore[no-untyped-def]
    """Without the setting a client cannot choose the IP recorded with its consent."""
    load_newsletter(app)
    assert _signup(client, "direct@example.org", "203.0.113.7") == 202
    assert _consent_ip(app, "direct@example.org") == PROXY


def test_one_trusted_proxy_gives_the_readers_address(proxied_app) -> None:  # type: ignore[no-untyped-def]
    """Behind one proxy the consent keeps the address the proxy saw, not a forged one before it."""
    load_newsletter(proxied_app)
    client = proxied_app.test_client()
    assert _signup(client, "reader@example.org", "203.0.113.7") == 202
    assert _consent_ip(proxied_app, "reader@example.org") == "203.0.113.7"
    # A client that sends its own X-Forwarded-For only adds an entry the proxy appends to.
    assert _signup(client, "forger@example.org", "198.51.100.66, 203.0.113.8") == 202
    assert _consent_ip(proxied_app, "forger@example.org") == "203.0.113.8"


def test_rate_limit_counts_each_reader_behind_the_proxy(proxied_app, app) -> None:  # type: ignore[no-untyped-def]
    """Behind a trusted proxy six readers may sign up at once; unconfigured, the proxy is one client."""
    # Both apps use the same database.
    load_newsletter(proxied_app)
    proxied = proxied_app.test_client()
    answers = [_signup(proxied, f"p{n}@example.org", f"203.0.113.{n + 10}") for n in range(6)]
    assert answers == [202] * 6
    direct = app.test_client()
    answers = [_signup(direct, f"d{n}@example.org", f"203.0.113.{n + 10}") for n in range(6)]
    assert answers == [202] * 5 + [429]


def test_setting_is_parsed_and_checked() -> None:
    """DIGEST_TRUSTED_PROXIES defaults to 0 and refuses a negative or non-numeric value."""
    assert load_config(environ={})["TRUSTED_PROXIES"] == 0
    assert load_config(environ={"DIGEST_TRUSTED_PROXIES": "2"})["TRUSTED_PROXIES"] == 2
    for bad in ("-1", "two"):
        with pytest.raises(ConfigError, match="DIGEST_TRUSTED_PROXIES"):
            load_config(environ={"DIGEST_TRUSTED_PROXIES": bad})


def _post_through(base: str, email: str, forwarded_for: str) -> int:
    url = urlsplit(base)
    connection = http.client.HTTPConnection(url.hostname or "", url.port, timeout=30)
    try:
        connection.request(
            "POST", "/api/v1/subscribe", json.dumps({"email": email, "consent": True}),
            {"Content-Type": "application/json", "X-Forwarded-For": forwarded_for,
             "X-Forwarded-Proto": "https"},
        )
        return connection.getresponse().status
    finally:
        connection.close()


def test_digest_run_believes_the_trusted_proxy(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Under `digest run` (waitress) behind one proxy, two readers get a rate-limit budget
    each and their consents keep their own addresses, not the proxy's."""
    load_newsletter(app)
    env = process_env(app, TRUSTED_PROXIES=1, SIGNUP_RATE_LIMIT="5 per minute")
    with digest_server(env, tmp_path / "run.log") as (base, _process):
        first = [_post_through(base, f"a{n}@example.org", "203.0.113.7") for n in range(6)]
        second = _post_through(base, "b0@example.org", "198.51.100.66, 203.0.113.8")
        assert first == [202] * 5 + [429]
        assert second == 202
        assert wait_until(lambda: subscription(app, "b0@example.org"), what="the signup to be recorded")
    assert _consent_ip(app, "a0@example.org") == "203.0.113.7"
    assert _consent_ip(app, "b0@example.org") == "203.0.113.8"
