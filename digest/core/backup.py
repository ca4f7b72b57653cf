"""Backups of the configured database, taken while the service runs, and restores.

Contract: `backup` writes one file that holds a consistent snapshot (a single read
transaction) of the whole database, whatever the sender commits meanwhile: SQLite through
its online backup API (a copy of the database file, checked with `PRAGMA quick_check`),
PostgreSQL through `pg_dump --format=custom`. It writes beside the target and renames at
the end, so an interrupted backup never leaves a file that looks complete. `restore`
loads such a file into the configured database, refuses a file of the other backend, a
file that is no backup, a database that already holds readers or issues (unless told to
replace it) and a backup made by newer code, and changes nothing when it refuses.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from pathlib import Path

from sqlalchemy import func, inspect, select
from sqlalchemy.engine import URL, make_url

from digest.core.db import Base, Database, SchemaTooNew, check_not_newer
from digest.core.models import Issue, Subscriber

SQLITE_MAGIC = b"SQLite format 3\x00"
PG_MAGIC = b"PGDMP"
PAGES_PER_STEP = 1024

# progress(done, total): pages (SQLite) or tables (PostgreSQL) copied so far.
Progress = Callable[[int, int], None]


class BackupError(RuntimeError):
    """A backup or restore cannot go ahead; the message says why and what to do."""


def backup(database: Database, target: Path, progress: Progress | None = None) -> None:
    """Write a consistent snapshot of database to target (which must not exist yet)."""
    if target.exists():
        raise BackupError(f"{target} already exists; choose a new file name or remove it first.")
    if not target.parent.is_dir():
        raise BackupError(f"{target.parent} is not a folder.")
    partial = target.with_name(f".{target.name}.partial")
    try:
        partial.unlink(missing_ok=True)
        partial.touch(mode=0o600)  # readers' addresses: for the operator's eyes only
        if database.dialect == "sqlite":
            _sqlite_backup(_sqlite_path(database), partial, progress)
        else:
            _pg_dump(database, partial, progress)
        partial.replace(target)
    finally:
        partial.unlink(missing_ok=True)


def restore(database: Database, source: Path, *, replace: bool = False,
            progress: Progress | None = None) -> None:
    """Load the backup at source into database, which must hold no data unless replace."""
    kind = backup_kind(source)
    if kind != database.dialect:
        raise BackupError(
            f"{source} is a {kind} backup but the configured database "
            f"(DIGEST_DATABASE_URL) is {database.dialect}; restore it into a {kind} database."
        )
    holds = _holds_data(database)
    if holds and not replace:
        raise BackupError(
            f"The configured database already holds {holds}; restoring would replace them. "
            "Stop the service and run again with --replace to do so."
        )
    if kind == "sqlite":
        _sqlite_restore(source, _sqlite_path(database), progress)
    else:
        _pg_restore(database, source)
    database.dispose()


def backup_kind(source: Path) -> str:
    """Return 'sqlite' or 'postgresql' for a backup file, or raise BackupError."""
    try:
        with source.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError as exc:
        raise BackupError(f"Cannot read {source}: {exc.strerror}.") from None
    if head.startswith(SQLITE_MAGIC):
        return "sqlite"
    if head.startswith(PG_MAGIC):
        return "postgresql"
    raise BackupError(f"{source} is not a digest backup (neither SQLite nor pg_dump's custom format).")


def _holds_data(database: Database) -> str:
    if not inspect(database.engine).has_table("subscriber"):
        return ""
    with database.session() as session:
        readers = session.scalar(select(func.count()).select_from(Subscriber)) or 0
        issues = session.scalar(select(func.count()).select_from(Issue)) or 0
    return f"{readers} readers and {issues} issues" if readers or issues else ""


def _sqlite_path(database: Database) -> Path:
    name = database.engine.url.database
    if not name or name == ":memory:":
        raise BackupError("The configured SQLite database lives in memory; there is no file to back up.")
    return Path(name)


def _sqlite_backup(source: Path, target: Path, progress: Progress | None) -> None:
    if not source.exists():
        raise BackupError(f"The database file {source} does not exist.")
    with closing(sqlite3.connect(source, isolation_level=None, timeout=30)) as src, \
            closing(sqlite3.connect(target, isolation_level=None)) as dst:
        # The backup steps run inside this one read transaction, so in WAL mode the
        # sender's commits go on meanwhile and the copy is the snapshot at BEGIN
        # (without it, each commit by another connection restarts the backup).
        src.execute("BEGIN")
        src.execute("SELECT count(*) FROM sqlite_schema").fetchone()
        src.backup(dst, pages=PAGES_PER_STEP, progress=_page_progress(progress))
        src.execute("COMMIT")
        dst.execute("PRAGMA journal_mode=DELETE")
        _check_sqlite(dst, target)


def _sqlite_restore(source: Path, target: Path, progress: Progress | None) -> None:
    with closing(sqlite3.connect(f"file:{source}?mode=ro", uri=True, isolation_level=None)) as src:
        _check_sqlite(src, source)
        _check_revision_known(src)
        with closing(sqlite3.connect(target, isolation_level=None, timeout=30)) as dst:
            dst.execute("PRAGMA journal_mode=WAL")
            src.backup(dst, pages=PAGES_PER_STEP, progress=_page_progress(progress))


def _check_sqlite(connection: sqlite3.Connection, path: Path) -> None:
    try:
        verdict = connection.execute("PRAGMA quick_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{path} is not a usable SQLite database: {exc}.") from None
    if verdict != "ok":
        raise BackupError(f"{path} is damaged (SQLite's quick_check says: {verdict}).")


def _check_revision_known(connection: sqlite3.Connection) -> None:
    try:
        rows = connection.execute("SELECT version_num FROM alembic_version").fetchall()
    except sqlite3.DatabaseError:
        raise BackupError("The file is an SQLite database but not a digest backup "
                          "(it has no migration revision).") from None
    _check_not_newer({row[0] for row in rows})


def _check_not_newer(revisions: set[str]) -> None:
    try:
        check_not_newer(revisions, "The backup")
    except SchemaTooNew as exc:
        raise BackupError(str(exc)) from None


def _page_progress(progress: Progress | None) -> Callable[[int, int, int], object] | None:
    if progress is None:
        return None

    def report(_status: int, remaining: int, total: int) -> None:
        progress(total - remaining, total)

    return report


# --- PostgreSQL -----------------------------------------------------------------------


def _pg_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise BackupError(
            f"{name} is not installed or not on PATH; it comes with PostgreSQL's client "
            f"programs (Debian/Ubuntu: apt-get install postgresql-client), in a version at "
            f"least that of the server."
        )
    return path


@contextmanager
def _libpq(database: Database) -> Iterator[tuple[list[str], dict[str, str]]]:
    """Yield connection arguments and environment for libpq tools (password via PGPASSWORD)."""
    url: URL = make_url(database.url)
    args = []
    if url.host:
        args += ["--host", url.host]
    if url.port:
        args += ["--port", str(url.port)]
    if url.username:
        args += ["--username", url.username]
    env = dict(os.environ)
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    args += ["--dbname", url.database or "postgres"]
    yield args, env


def _pg_dump(database: Database, target: Path, progress: Progress | None) -> None:
    pg_dump = _pg_tool("pg_dump")
    total = len(Base.metadata.tables) + 1  # and alembic_version
    with _libpq(database) as (args, env):
        process = subprocess.Popen(
            [pg_dump, "--format=custom", "--no-owner", "--no-privileges", "--verbose",
             "--file", str(target), *args],
            env=env, stderr=subprocess.PIPE, text=True,
        )
        assert process.stderr is not None
        done, errors = 0, []
        for line in process.stderr:
            if "dumping contents of table" in line:
                done += 1
                if progress is not None:
                    progress(min(done, total), total)
            elif "error" in line.lower():
                errors.append(line.strip())
        if process.wait() != 0:
            raise BackupError("pg_dump failed: " + (" ".join(errors) or f"exit code {process.returncode}"))


def _pg_restore(database: Database, source: Path) -> None:
    pg_restore = _pg_tool("pg_restore")
    listed = subprocess.run([pg_restore, "--list", str(source)], capture_output=True, text=True)
    if listed.returncode != 0:
        raise BackupError(f"{source} is not a readable pg_dump archive: {listed.stderr.strip()}")
    _check_not_newer(_pg_revisions(pg_restore, source))
    with _libpq(database) as (args, env):
        result = subprocess.run(
            [pg_restore, "--clean", "--if-exists", "--no-owner", "--no-privileges",
             "--single-transaction", "--exit-on-error", *args, str(source)],
            env=env, capture_output=True, text=True,
        )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed, nothing was changed: {result.stderr.strip()}")


def _pg_revisions(pg_restore: str, source: Path) -> set[str]:
    data = subprocess.run(
        [pg_restore, "--data-only", "--table=alembic_version", "--file=-", str(source)],
        capture_output=True, text=True,
    )
    lines = data.stdout.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.startswith("COPY ") and "alembic_version" in line)
    except StopIteration:
        raise BackupError(f"{source} is a pg_dump archive but not a digest backup "
                          "(it has no migration revision).") from None
    revisions = set()
    for line in lines[start + 1:]:
        if line == "\\.":
            break
        revisions.add(line.strip())
    return revisions
