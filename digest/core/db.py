"""Database plumbing: declarative base, engines with the SQLite pragmas, sessions.

The Database object knows nothing about Flask, so the scheduler, sender threads and
Celery workers use the same engine setup as the web app.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import CursorResult, DateTime, MetaData, Result, Table, create_engine, event
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

if TYPE_CHECKING:
    from alembic.config import Config

BUSY_TIMEOUT_SECONDS = 30
# The execution option of Database.reader()'s sessions.
READ_ONLY = "digest_read_only"

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    if TYPE_CHECKING:
        # Every model maps a plain Table, which Core's insert() and update() take.
        __table__: ClassVar[Table]


class UTCDateTime(TypeDecorator[dt.datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.UTC)
        return value.astimezone(dt.UTC)


def utcnow() -> dt.datetime:
    """Return the current time as an aware UTC datetime."""
    return dt.datetime.now(dt.UTC)


def rowcount(result: Result[Any]) -> int:
    """Return how many rows the UPDATE, INSERT or DELETE that gave result matched."""
    if not isinstance(result, CursorResult):
        raise TypeError(f"a {type(result).__name__} counts no rows")
    return result.rowcount


def _sqlite_setup(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # Take BEGIN away from pysqlite so the "begin" hook below controls it.
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_SECONDS * 1000}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # A deferred transaction that reads then writes can fail with SQLITE_BUSY
        # without waiting; IMMEDIATE takes the write lock up front and honours
        # busy_timeout, which also makes ledger claims exclusive. A session opened with
        # Database.reader() only reads: it begins deferred, on a snapshot WAL keeps
        # apart from the writer, and waits for no one.
        if conn.get_execution_options().get(READ_ONLY):
            conn.exec_driver_sql("BEGIN")
            return
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _create_private(path: str | None) -> None:
    """Create a missing SQLite file empty and readable by its owner alone: SQLite gives its
    WAL and shared-memory files the database file's permissions."""
    if not path or path == ":memory:" or path.startswith("file:"):
        return
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except OSError:
        pass  # it exists, or its folder is missing: SQLite reports that on the first connection


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; SQLite gets WAL, foreign keys, a busy timeout and BEGIN IMMEDIATE,
    and a new database file is private (0600)."""
    if url.startswith("sqlite"):
        kwargs.setdefault(
            "connect_args",
            {"check_same_thread": False, "timeout": BUSY_TIMEOUT_SECONDS},
        )
        engine = create_engine(url, **kwargs)
        _create_private(engine.url.database)
        _sqlite_setup(engine)
        return engine
    kwargs.setdefault("pool_pre_ping", True)
    return create_engine(url, **kwargs)


# Less free space than this under an I/O error means the disk is full (SQLite grows its
# WAL and shared-memory files in steps of tens of kilobytes).
NO_ROOM_BYTES = 1 << 20

# What SQLite's errors mean for the person who runs a command.
_SQLITE_ADVICE = {
    "SQLITE_READONLY": "the file (or its folder) is read-only",
    "SQLITE_CANTOPEN": "the file, its folder or its -wal/-shm files cannot be opened for writing",
    "SQLITE_FULL": "the disk is full",
    "SQLITE_IOERR": "the disk failed to read or write it",
    "SQLITE_PERM": "access to it is denied",
}


def _no_room(folder: Path) -> bool:
    try:
        return shutil.disk_usage(folder).free < NO_ROOM_BYTES
    except OSError:
        return False


def describe_failure(url: str, exc: BaseException) -> str:
    """Return one line naming the database and what is wrong with it, for a command that
    failed on it (no traceback, no password)."""
    orig = getattr(exc, "orig", None) or exc
    reason = (str(orig).strip().splitlines() or [type(orig).__name__])[0]
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        code = str(getattr(orig, "sqlite_errorname", "") or "")
        path = Path(parsed.database or "").resolve()
        # Extended codes (SQLITE_IOERR_SHMSIZE, SQLITE_READONLY_DIRECTORY...) share their base's advice.
        base = "_".join(code.split("_")[:2])
        advice = _SQLITE_ADVICE.get(code) or _SQLITE_ADVICE.get(base)
        if base in ("SQLITE_IOERR", "SQLITE_FULL") and _no_room(path.parent):
            # A full disk often shows as an I/O error on the WAL's shared-memory file.
            advice = f"the disk is full: free space on the disk holding {path.parent}"
        detail = f"{reason} ({advice})" if advice else reason
        return f"database file {path}: {detail}"
    where = f"{parsed.host or 'localhost'}:{parsed.port or 5432}/{parsed.database}"
    return f"database {where}: {reason}"


class Database:
    """An engine plus its session factory."""

    def __init__(self, url: str, **engine_kwargs: Any) -> None:
        self.url = url
        self.engine = make_engine(url, **engine_kwargs)
        self.sessionmaker = sessionmaker(self.engine, expire_on_commit=False)
        self.readers = sessionmaker(
            self.engine.execution_options(**{READ_ONLY: True}), expire_on_commit=False
        )

    @property
    def dialect(self) -> str:
        """Return the backend name: 'sqlite' or 'postgresql'."""
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yield a session that commits on success and rolls back on error."""
        with self.sessionmaker() as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    @contextmanager
    def reader(self) -> Iterator[Session]:
        """Yield a session for reading only: on SQLite it waits for no writer and none for it."""
        with self.readers() as session:  # closing ends the transaction, keeping what was read
            yield session

    def dispose(self) -> None:
        """Close every pooled connection (after a fork, or at shutdown)."""
        self.engine.dispose()


class SchemaTooNew(RuntimeError):
    """The database (or a backup) was migrated by a newer digest than this one."""


def alembic_config(database: Database | None = None) -> Config:
    """Return an Alembic Config for the packaged migrations, bound to no connection yet."""
    from alembic.config import Config

    from digest.core.resources import resource_dir

    config = Config()
    config.set_main_option("script_location", str(resource_dir("migrations")))
    if database is not None:
        config.set_main_option("sqlalchemy.url", database.url.replace("%", "%%"))
    return config


def check_not_newer(revisions: set[str], what: str) -> None:
    """Raise SchemaTooNew if revisions name a migration this code does not have."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config())
    unknown = revisions - {rev.revision for rev in script.walk_revisions()}
    if unknown:
        raise SchemaTooNew(
            f"{what} is at revision {', '.join(sorted(unknown))}, which this code does not know; "
            f"this code's newest revision is {', '.join(sorted(script.get_heads()))}. It was "
            "migrated by a newer version of digest: install that version (or a newer one), "
            "or restore a backup made by this version."
        )


def current_revisions(database: Database) -> set[str]:
    """Return the migration revisions the database is at (empty when never migrated)."""
    from alembic.migration import MigrationContext

    with database.engine.connect() as connection:
        return set(MigrationContext.configure(connection).get_current_heads())


def upgrade(database: Database, revision: str = "head") -> None:
    """Apply migrations up to revision; refuse a database newer than this code."""
    from alembic import command

    check_not_newer(current_revisions(database), "The database")
    config = alembic_config(database)
    with database.engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
        connection.commit()


def check_writable(database: Database) -> None:
    """Write in a transaction and undo it (raises if the database cannot take writes: on
    SQLite that needs the file, its folder and its WAL writable)."""
    with database.engine.connect() as connection:
        if database.dialect == "sqlite":
            # A file SQLite could open only read-only still begins IMMEDIATE; the first
            # write fails. Rewriting the header's user_version changes nothing and is undone.
            version = connection.exec_driver_sql("PRAGMA user_version").scalar_one()
            connection.exec_driver_sql(f"PRAGMA user_version = {int(version)}")
        else:
            connection.exec_driver_sql("SELECT 1")
        connection.rollback()


def pending_migrations(database: Database) -> bool:
    """Return whether the database is behind the latest migration; raise SchemaTooNew if a
    newer digest migrated it."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(alembic_config(database))
    current = current_revisions(database)
    check_not_newer(current, "The database")
    return current != set(script.get_heads())
