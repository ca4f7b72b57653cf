"""A full disk during a signup: the reader is told to try again shortly (503, Retry-After),
keeps what they typed, and the same signup goes through once there is room again. A
command on a full or read-only SQLite file ends with one line naming the file and the
problem, and exit code 1.

The SQLite database lives on a real, tiny tmpfs that the test fills up (mounting one needs
root, as .ci/run has; elsewhere the test is skipped).
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from digest import create_app
from tests.support.apps import SECRET, get_db_of
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


def _command(database: Path, instance: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Run `digest ARGS` on this SQLite file as an operator would, from a shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_DATABASE_URL=f"sqlite:///{database}", DIGEST_SECRET_KEY=SECRET,
               DIGEST_INSTANCE_PATH=str(instance))
    digest = str(Path(sys.executable).with_name("digest"))
    return subprocess.run([digest, *args], env=env, capture_output=True, text=True, timeout=120, check=False)


def _one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("arguments", [("run", "--port", "0"), ("issue", "list")])
def test_commands_on_a_full_disk_say_so_in_one_line(
    small_disk: Path, sqlite_template: Path, tmp_path: Path, arguments: tuple[str, ...]
) -> None:
    """`digest run` and a reading command on a full disk: one line naming the file and that
    the disk is full, exit code 1; once there is room the same command works."""
    database = small_disk / "digest.sqlite3"
    shutil.copy(sqlite_template, database)
    filler = _fill(small_disk)
    line = _one_line_error(_command(database, tmp_path / "instance", *arguments))
    assert str(database) in line and "the disk is full" in line
    filler.unlink()
    assert _command(database, tmp_path / "instance", "issue", "list").returncode == 0


def test_run_on_a_read_only_database_says_so_in_one_line(
    small_disk: Path, sqlite_template: Path, tmp_path: Path
) -> None:
    """On a read-only filesystem SQLite opens the file read-only and only the first write
    fails: `digest run` refuses to start, naming the file and that it is read-only, rather
    than serving and failing every tick; reading commands still work."""
    database = small_disk / "digest.sqlite3"
    shutil.copy(sqlite_template, database)
    # A process that ended without closing leaves the -wal and -shm files, with which
    # SQLite opens the file read-only instead of refusing it.
    subprocess.run([sys.executable, "-c", (
        "import os, sqlite3; c = sqlite3.connect(os.environ['DB'], isolation_level=None); "
        "c.execute('PRAGMA journal_mode=WAL'); c.execute('PRAGMA user_version = 0'); os._exit(0)"
    )], env={**os.environ, "DB": str(database)}, check=True)
    assert database.with_name("digest.sqlite3-wal").exists()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    line = _one_line_error(_command(database, tmp_path / "instance", "run", "--port", "0"))
    assert str(database) in line and "read-only" in line
    assert _command(database, tmp_path / "instance", "issue", "list").returncode == 0
