"""`digest db backup` and `digest db restore`: a consistent copy while the service sends,
restored into a fresh instance; every refusal changes nothing."""

from __future__ import annotations

import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.db import Database
from digest.core.models import Delivery, Issue, IssueStatus, Subscriber
from digest.domain import issues
from tests.support.delivery import CONFIG, DIGEST, digest_process, make_newsletter, process_env
from tests.support.services import fresh_database
from tests.support.smtp import SMTPServer
from tests.support.waiting import wait_until

FAST = {"TICK_SECONDS": 1, "LEASE_SECONDS": 4, "RETRY_SECONDS": 1, "BATCH_SIZE": 10}


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database on the same backend as the test's, never migrated."""
    with fresh_database(database_url, tmp_path / "fresh") as url:
        yield url


def _digest(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DIGEST, *args], env=env, capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_backup_during_a_send_restores_every_reader_issue_and_delivery(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session, tmp_path: Path, fresh_url: str
) -> None:
    """A backup taken while a worker sends, restored into a fresh instance, holds every
    reader, the issue and one delivery row per reader, as they stood at one moment."""
    setup = make_newsletter(db, readers=120)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    env = process_env(smtp_app, SEND_RATE=10, SENDER_THREADS=2, **FAST)
    log = tmp_path / "send.log"
    target = tmp_path / "backup.bin"
    with digest_process(["scheduler"], env, log), digest_process(["worker"], env, log):
        wait_until(lambda: len(smtp_server.received) >= 10, timeout=60, what=lambda: log.read_text())
        result = _digest(["db", "backup", str(target)], env)
        received_after = len(smtp_server.received)
    assert result.returncode == 0, result.stderr
    assert "Backed up" in result.stdout
    assert received_after < 120, "the send was over before the backup finished"
    assert os.stat(target).st_mode & 0o077 == 0, "a backup of readers' addresses is private"

    fresh_env = {**env, "DIGEST_DATABASE_URL": fresh_url, "DIGEST_INSTANCE_PATH": str(tmp_path / "fresh")}
    restored = _digest(["db", "restore", str(target)], fresh_env)
    assert restored.returncode == 0, restored.stderr
    database = Database(fresh_url)
    try:
        with database.session() as session:
            emails = set(session.scalars(select(Subscriber.email)))
            issue = session.scalars(select(Issue)).one()
            rows = session.execute(select(Delivery.subscriber_id, Delivery.state)).all()
            readers = set(session.scalars(select(Subscriber.id)))
    finally:
        database.dispose()
    assert emails == set(setup.emails)
    assert issue.id == setup.issue_id and issue.status == IssueStatus.SENDING
    assert len(rows) == 120 and {r.subscriber_id for r in rows} == readers
    sent = sum(1 for r in rows if r.state == "sent")
    assert 0 < sent <= received_after, (sent, received_after)
    upgraded = _digest(["db", "upgrade"], fresh_env)
    assert upgraded.returncode == 0 and "up to date" in upgraded.stdout


@pytest.mark.one_backend
def test_restore_refuses_what_is_no_backup_and_a_database_with_data(
    app: Flask, runner: FlaskCliRunner, db: Session, tmp_path: Path
) -> None:
    """Restoring a file that is no backup, or over a database that holds readers, is refused
    with a message saying why, and the database keeps its readers."""
    make_newsletter(db, readers=3)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    result = runner.invoke(args=["db", "restore", str(junk)])
    assert result.exit_code == 1 and "is not a digest backup" in result.output

    backup = tmp_path / "copy.sqlite3"
    assert runner.invoke(args=["db", "backup", str(backup)]).exit_code == 0
    again = runner.invoke(args=["db", "backup", str(backup)])
    assert again.exit_code == 1 and "already exists" in again.output
    result = runner.invoke(args=["db", "restore", str(backup)])
    assert result.exit_code == 1 and "already holds 3 readers and 1 issues" in result.output
    assert "--replace" in result.output
    assert len(db.scalars(select(Subscriber)).all()) == 3


def test_restore_refuses_a_backup_made_by_newer_code(
    app: Flask, runner: FlaskCliRunner, db: Session, tmp_path: Path, fresh_url: str
) -> None:
    """A backup whose schema is newer than the code is refused, naming both revisions."""
    make_newsletter(db, readers=2)
    head = db.connection().exec_driver_sql("SELECT version_num FROM alembic_version").scalar_one()
    db.connection().exec_driver_sql("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    db.commit()
    backup = tmp_path / "newer.bin"
    try:
        assert runner.invoke(args=["db", "backup", str(backup)]).exit_code == 0
    finally:  # the PostgreSQL test database is shared by the tests that follow
        db.connection().exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head}'")
        db.commit()
    fresh = Database(fresh_url)
    try:
        from digest.core.backup import BackupError, restore

        with pytest.raises(BackupError, match="revision ffffffffffff, which this code does not know"):
            restore(fresh, backup)
    finally:
        fresh.dispose()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_backup_without_pg_dump_says_what_to_install(
    runner: FlaskCliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without pg_dump on PATH the backup stops with a message naming the package; no file."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = runner.invoke(args=["db", "backup", str(tmp_path / "b.dump")])
    assert result.exit_code == 1
    assert "pg_dump is not installed" in result.output and "postgresql-client" in result.output
    assert not (tmp_path / "b.dump").exists()


@pytest.mark.one_backend
def test_sqlite_backup_is_an_intact_database(runner: FlaskCliRunner, db: Session, tmp_path: Path) -> None:
    """The SQLite backup is a self-contained database file (no WAL beside it) that passes
    SQLite's integrity check."""
    make_newsletter(db, readers=2)
    backup = tmp_path / "b.sqlite3"
    assert runner.invoke(args=["db", "backup", str(backup)]).exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("b.")) == ["b.sqlite3"]
    with sqlite3.connect(backup) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT count(*) FROM subscriber").fetchone() == (2,)
