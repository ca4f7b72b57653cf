"""Upgrades: the deploy guide's procedure carries a database of the previous release, with
its data, to the current schema; a database newer than the code is refused untouched."""

from __future__ import annotations

import datetime as dt
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import MetaData, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from digest.core.db import Base, Database, current_revisions, upgrade
from digest.core.models import Delivery, DeliveryState, Editor, Issue, Subscriber, Subscription
from tests.support.delivery import DIGEST, process_env
from tests.support.services import fresh_database

# The schema that production runs before this version: the head of the last release.
PREVIOUS_RELEASE = "8096c9c2b49f"
NOW = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def fresh_url(database_url: str, tmp_path: Path) -> Iterator[str]:
    """An empty database on the same backend as the test's, never migrated."""
    with fresh_database(database_url, tmp_path / "fresh") as url:
        yield url


def _row(conn: Connection, meta: MetaData, table: str, **values: Any) -> int:
    """Insert a row into a table as the old schema has it, filling required columns."""
    columns = meta.tables[table].c
    for column in columns:
        if column.name in values or column.nullable or column.primary_key:
            continue
        kind = column.type.python_type
        values[column.name] = {str: "", int: 0, bool: False, float: 0.0, dt.datetime: NOW}[kind]
    return int(conn.execute(insert(meta.tables[table]).values(**values)).inserted_primary_key[0])


def _previous_release_with_data(url: str) -> None:
    database = Database(url)
    try:
        upgrade(database, PREVIOUS_RELEASE)
        with database.engine.begin() as conn:
            meta = MetaData()
            meta.reflect(conn)
            editor = _row(conn, meta, "editor", email="admin@example.org", password_hash="x", role="admin",
                          active=True)
            assert editor
            newsletter = _row(conn, meta, "newsletter", slug="weekly", name="Weekly", time_zone="UTC")
            issue = _row(conn, meta, "issue", newsletter_id=newsletter, slug="one", subject="Issue one",
                         status="sent", sent_at=NOW)
            for n in range(3):
                reader = _row(conn, meta, "subscriber", uid=f"s{n}", email=f"r{n}@example.org")
                _row(conn, meta, "subscription", uid=f"u{n}", subscriber_id=reader,
                     newsletter_id=newsletter, status="confirmed", confirmed_at=NOW)
                _row(conn, meta, "delivery", issue_id=issue, subscriber_id=reader, state="sent",
                     smtp_code=250, sent_at=NOW)
    finally:
        database.dispose()


def test_upgrade_says_what_it_did(app: Flask, tmp_path: Path, fresh_url: str) -> None:
    """`digest db upgrade` says it created the schema on a new database, what it upgraded
    on an older one, and that nothing was needed on a current one."""
    env = {**process_env(app), "DIGEST_DATABASE_URL": fresh_url, "DIGEST_INSTANCE_PATH": str(tmp_path / "fresh")}

    def upgrade_says(*revision: str) -> str:
        result = subprocess.run([DIGEST, "db", "upgrade", *revision], env=env, capture_output=True, text=True,
                                timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "Created the schema in the new database at" in upgrade_says(PREVIOUS_RELEASE)
    assert f"Upgraded the database at {fresh_url.split('://')[0]}" in (said := upgrade_says())
    assert f"from revision {PREVIOUS_RELEASE}" in said
    assert "is already up to date" in upgrade_says()


def test_upgrade_procedure_migrates_the_previous_release_with_its_data(
    app: Flask, tmp_path: Path, fresh_url: str
) -> None:
    """docs/deploy.md's upgrade: back up, `digest db upgrade`, start. A database made by the
    previous release keeps its editors, readers, issues and deliveries, and ends at the
    schema the models describe."""
    _previous_release_with_data(fresh_url)
    env = {**process_env(app), "DIGEST_DATABASE_URL": fresh_url, "DIGEST_INSTANCE_PATH": str(tmp_path / "fresh")}
    for step in (["db", "backup", str(tmp_path / "before-upgrade.bin")], ["db", "upgrade"], ["issue", "list"]):
        result = subprocess.run([DIGEST, *step], env=env, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, (step, result.stderr)
    assert "Issue one" in result.stdout
    database = Database(fresh_url)
    try:
        with database.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
        with database.session() as session:
            assert session.scalars(select(Editor.email)).all() == ["admin@example.org"]
            assert sorted(session.scalars(select(Subscriber.email))) == [f"r{n}@example.org" for n in range(3)]
            assert len(session.scalars(select(Subscription)).all()) == 3
            assert session.scalars(select(Issue.subject)).all() == ["Issue one"]
            assert set(session.scalars(select(Delivery.state))) == {DeliveryState.SENT}
    finally:
        database.dispose()


def test_upgrade_refuses_a_database_newer_than_the_code(
    app: Flask, runner: FlaskCliRunner, db: Session
) -> None:
    """`digest db upgrade` on a database a newer digest migrated stops, naming the database's
    revision and the code's newest, and changes nothing; `digest run` will not start on it."""
    database = Database(app.config["DATABASE_URL"])
    (head,) = current_revisions(database)
    db.connection().exec_driver_sql("UPDATE alembic_version SET version_num = 'ffffffffffff'")
    db.commit()
    try:
        result = runner.invoke(args=["db", "upgrade"])
        assert result.exit_code == 1
        assert "The database is at revision ffffffffffff, which this code does not know" in result.output
        assert f"this code's newest revision is {head}" in result.output
        assert current_revisions(database) == {"ffffffffffff"}
        run = subprocess.run([DIGEST, "run", "--port", "0"], env=process_env(app), capture_output=True,
                             text=True, timeout=60)
        assert run.returncode == 1 and "revision ffffffffffff, which this code does not know" in run.stderr
    finally:  # the PostgreSQL test database is shared by the tests that follow
        db.connection().exec_driver_sql(f"UPDATE alembic_version SET version_num = '{head}'")
        db.commit()
        database.dispose()
