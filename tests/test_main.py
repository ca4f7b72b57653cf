"""The `digest` command itself: a database it cannot use ends every command with one line."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.support.apps import SECRET
from tests.support.delivery import DIGEST

COMMANDS = [
    ["run", "--port", "0"],
    ["db", "upgrade"],
    ["scheduler", "--once"],
    ["worker"],
    ["issue", "list"],
    ["subscribers", "send-pending"],
]


def _digest(args: list[str], database_url: str, instance: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": "/usr/bin:/bin", "DIGEST_DATABASE_URL": database_url,
           "DIGEST_INSTANCE_PATH": str(instance), "DIGEST_SECRET_KEY": SECRET}
    return subprocess.run([DIGEST, *args], env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("args", COMMANDS, ids=lambda args: " ".join(args[:2]))
def test_a_sqlite_file_that_cannot_be_written_is_named_in_one_line(
    args: list[str], sqlite_template: Path, tmp_path: Path
) -> None:
    """A SQLite database whose write-ahead log cannot be created (a directory stands where
    the -wal file goes, which stops root too): the command exits non-zero with one line
    naming the file and the problem, and no traceback."""
    path = tmp_path / "digest.sqlite3"
    shutil.copy(sqlite_template, path)
    (tmp_path / "digest.sqlite3-wal").mkdir()
    result = _digest(args, f"sqlite:///{path}", tmp_path / "instance")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert lines == [
        f"Error: database file {path}: unable to open database file (the file, its folder or "
        "its -wal/-shm files cannot be opened for writing)"
    ], result.stderr


def test_an_unreachable_postgresql_is_named_in_one_line(tmp_path: Path) -> None:
    """PostgreSQL not listening: one line naming the server and database, no password."""
    url = "postgresql+psycopg://digest:s3cret@127.0.0.1:1/newsletter"
    result = _digest(["issue", "list"], url, tmp_path / "instance")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: database 127.0.0.1:1/newsletter: ") and "s3cret" not in line
