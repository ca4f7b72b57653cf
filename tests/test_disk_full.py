"""A full disk during a signup: the reader is told to try again shortly (503, Retry-After),
keeps what they typed, and the same signup goes through once there is room again.

The SQLite database lives on a real, tiny tmpfs that the test fills up (mounting one needs
root, as .ci/run has; elsewhere the test is skipped).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from digest import create_app
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, screenshot_path
from tests.support.readers import load_newsletter, signup, subscription, take_signups_now

pytestmark = pytest.mark.one_backend


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MB tmpfs mounted for this test."""
    if os.geteuid() != 0:
        pytest.skip("mounting a small filesystem needs root")
    mount = tmp_path / "small-disk"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], check=True)
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.fixture
def full_disk_app(app_overrides: dict[str, Any], small_disk: Path, sqlite_template: Path) -> Iterator[Flask]:
    """An app whose SQLite database (with demo content) lives on the small disk."""
    database = small_disk / "digest.sqlite3"
    shutil.copy(sqlite_template, database)
    app = create_app({**app_overrides, "DATABASE_URL": f"sqlite:///{database}"})
    load_newsletter(app)
    yield app
    get_db_of(app).dispose()


def _fill(folder: Path) -> Path:
    """Write a file until the filesystem has no room left; return it."""
    filler = folder / "filler"
    with open(filler, "wb") as out:
        try:
            while True:
                out.write(b"\0" * 65536)
                out.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


def test_signup_on_a_full_disk_asks_to_retry(full_disk_app: Flask, small_disk: Path) -> None:
    """The form answers 503 with Retry-After and the reader's input kept; after space is
    freed the same signup is recorded and confirmed as usual."""
    client = full_disk_app.test_client()
    filler = _fill(small_disk)
    response = signup(client, "nina@example.org", name="Nina", engine=False)
    assert response.status_code == 503
    assert response.headers["Retry-After"].isdigit()
    html = response.get_data(as_text=True)
    assert "try again" in html.lower()
    assert 'value="nina@example.org"' in html and 'value="Nina"' in html
    json_answer = client.post("/api/v1/subscribe", json={"email": "owen@example.org", "consent": True})
    assert json_answer.status_code == 503 and json_answer.headers["Retry-After"].isdigit()
    assert "try again" in json_answer.get_json()["error"].lower()
    filler.unlink()
    assert signup(client, "nina@example.org", name="Nina").status_code == 200
    found = subscription(full_disk_app, "nina@example.org")
    assert found is not None and found.subscriber.name == "Nina"
    assert take_signups_now(full_disk_app) == 0


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (375, "dark")])
def test_full_disk_signup_in_a_browser(full_disk_app: Flask, small_disk: Path, width: int, scheme: str) -> None:
    """In Chromium, a signup on a full disk shows "try again shortly" above the form, which
    keeps the address and name; sending it again once there is room works."""
    filler = _fill(small_disk)
    with live_server(full_disk_app) as base, chromium(
        viewport={"width": width, "height": 900}, color_scheme=scheme
    ) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        page.goto(base + "/")
        page.get_by_label("Email address").fill("nina@example.org")
        page.get_by_label("Your name").fill("Nina")
        page.get_by_label("Yes, send me The Weekly Model").check()
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Please try again shortly").wait_for()
        page.screenshot(path=str(screenshot_path(f"signup-disk-full-{width}-{scheme}")), full_page=True)
        assert page.get_by_label("Email address").input_value() == "nina@example.org"
        assert page.get_by_label("Your name").input_value() == "Nina"
        filler.unlink()
        page.get_by_label("Yes, send me The Weekly Model").check()
        page.get_by_role("button", name="Subscribe").click()
        page.get_by_role("heading", name="Check your inbox").wait_for()
    assert take_signups_now(full_disk_app) == 1
    assert subscription(full_disk_app, "nina@example.org") is not None
