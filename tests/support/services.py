"""The services a test run uses: which database backends, and PostgreSQL databases of its own.

Contract: DIGEST_TEST_BACKENDS (default "sqlite,postgresql") lists the backends every
database test runs on, the first one also running the tests marked `one_backend`;
PostgreSQL comes from DIGEST_TEST_POSTGRES_URL (default: the local server, database
`test`, trust auth). Each checkout and pytest worker gets a database of its own, so
parallel runs never share one. With DIGEST_TEST_REQUIRE_SERVICES=1 (as in CI) an
unreachable PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import URL, make_url

from digest.core.db import Base, Database, upgrade

POSTGRES_URL = os.environ.get(
    "DIGEST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = [b for b in os.environ.get("DIGEST_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
REQUIRE_SERVICES = os.environ.get("DIGEST_TEST_REQUIRE_SERVICES") == "1"


def migrate(url: str) -> None:
    """Bring the database at url to the head revision."""
    database = Database(url)
    upgrade(database)
    database.dispose()


def worker_database_name() -> str:
    """Return the name of this checkout's and this pytest worker's PostgreSQL database."""
    checkout = hashlib.sha1(str(Path(__file__).resolve().parents[1]).encode()).hexdigest()[:8]
    return f"digest_test_{checkout}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


def _run_admin(admin_url: URL, *statements: str) -> None:
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        for statement in statements:
            conn.execute(text(statement))
    admin.dispose()


def recreate_database(admin_url: URL, name: str) -> str:
    """Drop and create database name on admin_url's server; return its URL."""
    _run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)', f'CREATE DATABASE "{name}"')
    return admin_url.set(database=name).render_as_string(hide_password=False)


def drop_database(admin_url: URL, name: str) -> None:
    """Drop database name on admin_url's server."""
    _run_admin(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def truncate_all(url: str) -> None:
    """Empty every table of the PostgreSQL database at url and restart its sequences."""
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()



@contextmanager
def fresh_database(backend_of: str, folder: Path) -> Iterator[str]:
    """Yield the URL of an empty, never migrated database on the backend of backend_of's URL."""
    if not backend_of.startswith("postgresql"):
        folder.mkdir(parents=True, exist_ok=True)
        yield f"sqlite:///{folder / 'digest.sqlite3'}"
        return
    admin = make_url(POSTGRES_URL)
    name = f"{worker_database_name()}_fresh"
    yield recreate_database(admin, name)
    drop_database(admin, name)
