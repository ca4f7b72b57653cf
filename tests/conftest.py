"""Fixtures: an app per test on SQLite and on PostgreSQL, a real SMTP server, a runner.

Every test that uses `app` runs once per backend. PostgreSQL comes from
DIGEST_TEST_POSTGRES_URL (default: the local server, database `test`, trust auth); each
pytest worker gets a database of its own, migrated once and truncated between tests.
Set DIGEST_TEST_BACKENDS=sqlite to run SQLite only; with DIGEST_TEST_REQUIRE_SERVICES=1
(as in CI) an unreachable PostgreSQL or Redis fails the run instead of skipping.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from digest import create_app
from digest.core.db import Base, Database, upgrade
from digest.core.extensions import get_db
from tests.support.smtp import SMTPServer

POSTGRES_URL = os.environ.get(
    "DIGEST_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
BACKENDS = [b for b in os.environ.get("DIGEST_TEST_BACKENDS", "sqlite,postgresql").split(",") if b]
REQUIRE_SERVICES = os.environ.get("DIGEST_TEST_REQUIRE_SERVICES") == "1"
BASE_URL = "https://news.example.org"
MAIL_FROM = "Weekly Test <news@news.example.org>"
SECRET = "test-secret-key-0123456789"


@pytest.fixture(autouse=True, scope="session")
def _clean_environment() -> Iterator[None]:
    """Keep the developer's own DIGEST_* settings out of the tests."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DIGEST_") and "TEST" not in k}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


def _worker() -> str:
    # One database per checkout and per xdist worker, so parallel runs never share one.
    checkout = hashlib.sha1(str(Path(__file__).resolve().parent).encode()).hexdigest()[:8]
    return f"{checkout}_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once, copied for every test."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    database = Database(f"sqlite:///{path}")
    upgrade(database)
    database.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this pytest worker, migrated to head."""
    admin_url = make_url(POSTGRES_URL)
    name = f"digest_test_{_worker()}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001  (any connection failure means "no PostgreSQL")
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    database = Database(url)
    upgrade(database)
    database.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on this test's backend."""
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        _truncate_all(url)
        return url
    path = tmp_path / "digest.sqlite3"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite:///{path}"


@pytest.fixture
def app_overrides(database_url: str, tmp_path: Path) -> dict[str, Any]:
    """The settings every test app starts from; tests may change them before `app`."""
    return {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": SECRET,
        "BASE_URL": BASE_URL,
        "MAIL_FROM": MAIL_FROM,
        "SMTP_URL": None,
        "RATELIMIT_STORAGE_URL": "memory://",
    }


@pytest.fixture
def app(app_overrides: dict[str, Any]) -> Iterator[Flask]:
    """A fresh app on a fresh database."""
    app = create_app(app_overrides)
    yield app
    get_db_of(app).dispose()


def get_db_of(app: Flask) -> Database:
    """Return app's Database outside a request."""
    with app.app_context():
        return get_db()


@pytest.fixture
def db(app: Flask) -> Iterator[Session]:
    """A session on the test app's database (commit to make changes visible to requests)."""
    with get_db_of(app).sessionmaker() as session:
        yield session


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A test client for app."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    """A CLI runner for app's commands."""
    return app.test_cli_runner()


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    """A real SMTP server on 127.0.0.1 recording every message it accepts."""
    server = SMTPServer().start()
    yield server
    server.stop()


@pytest.fixture
def smtp_app(app_overrides: dict[str, Any], smtp_server: SMTPServer) -> Iterator[Flask]:
    """An app whose mail goes to the test SMTP server."""
    app = create_app({**app_overrides, "SMTP_URL": smtp_server.url})
    yield app
    get_db_of(app).dispose()
