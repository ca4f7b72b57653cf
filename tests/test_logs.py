"""DIGEST_LOG_FORMAT=json: a real `digest run` writes one JSON object per line, and every
line of a web request carries its request id, as the answer's X-Request-ID does."""

from __future__ import annotations

import json
import socket
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from tests.support.delivery import digest_process, process_env
from tests.support.waiting import wait_until


def _get(url: str, headers: dict[str, str]) -> Any:
    try:
        return urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10)
    except OSError:
        return None


@pytest.mark.slow
@pytest.mark.one_backend
def test_json_logs_carry_request_ids(app: Flask, tmp_path: Path) -> None:
    """Every line is a JSON object with time, level, logger and message; a request's access
    line carries the proxy's X-Request-ID (or a new id, echoed in the answer); the clock's
    lines carry none."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = process_env(app, LOG_FORMAT="json", TICK_SECONDS=1)
    log = tmp_path / "run.log"
    base = f"http://127.0.0.1:{port}"
    with digest_process(["run", "--port", str(port)], env, log):
        wait_until(lambda: _get(f"{base}/archive/none/", {}) or "Serving on" in log.read_text(),
                   timeout=60, what=lambda: log.read_text())
        urllib.request.urlopen(urllib.request.Request(f"{base}/", headers={"X-Request-ID": "proxy-id-12345678"}),
                               timeout=10).close()
        answer = urllib.request.urlopen(f"{base}/", timeout=10)
        answer.close()
        fresh_id = answer.headers["X-Request-ID"]
        forged = urllib.request.urlopen(
            urllib.request.Request(f"{base}/", headers={"X-Request-ID": "bad id <script> forged"}), timeout=10)
        forged.close()
        wait_until(lambda: log.read_text().count('"digest.web.access"') >= 3, timeout=30,
                   what=lambda: log.read_text())
    records = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    non_json = [line for line in lines if not line.startswith("{") and "digest is serving" not in line]
    assert non_json == [], "every log line should be JSON"
    assert all({"time", "level", "logger", "message"} <= record.keys() for record in records)
    access = [r for r in records if r["logger"] == "digest.web.access" and r["path"] == "/"]
    ids = [r["request_id"] for r in access]
    assert ids[0] == "proxy-id-12345678"
    assert ids[1] == fresh_id and len(fresh_id) == 32
    assert ids[2] not in {"bad id <script> forged", None} and forged.headers["X-Request-ID"] == ids[2]
    assert access[0]["status"] == 200 and access[0]["method"] == "GET"
    clock = [r for r in records if r["logger"].startswith("digest.engine") or r["logger"].startswith("apscheduler")]
    assert clock and all(r["request_id"] is None for r in clock)
