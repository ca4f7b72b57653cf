"""Fixtures: an app per test on SQLite and on PostgreSQL, a real SMTP server, a runner.

Every test that uses `app` (or anything built on `database_url`) runs once per backend,
or on the first backend only when marked `one_backend` (its outcome cannot depend on the
database). Which backends, and where PostgreSQL is, see tests/support/services.py; each
pytest worker gets a PostgreSQL database of its own, migrated once and truncated between
tests. Helpers live in tests/support/, never here.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from digest import create_app
from tests.support.apps import BASE_URL, MAIL_FROM, SECRET, get_db_of
from tests.support.services import (
    BACKENDS,
    POSTGRES_URL,
    REQUIRE_SERVICES,
    drop_database,
    migrate,
    recreate_database,
    truncate_all,
    worker_database_name,
)
from tests.support.smtp import SMTPServer


def pytest_configure(config: pytest.Config) -> None:
    """Register the one_backend marker."""
    config.addinivalue_line(
        "markers",
        "one_backend: the outcome cannot depend on the database; run on the first backend only",
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run each test that uses a database on every backend, or on the first if one_backend.

    A test that parametrizes database_url itself (PostgreSQL only, say) keeps its choice.
    """
    chosen = any("database_url" in mark.args[0] for mark in metafunc.definition.iter_markers("parametrize"))
    if "database_url" in metafunc.fixturenames and not chosen:
        one = metafunc.definition.get_closest_marker("one_backend") is not None
        metafunc.parametrize("database_url", BACKENDS[:1] if one else BACKENDS, indirect=True)


@pytest.fixture(autouse=True, scope="session")
def _clean_environment() -> Iterator[None]:
    """Keep the developer's own DIGEST_* settings out of the tests."""
    saved = {k: v for k, v in os.environ.items() if k.startswith("DIGEST_") and "TEST" not in k}
    for key in saved:
        del os.environ[key]
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once, copied for every test."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    migrate(f"sqlite:///{path}")
    return path


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this pytest worker, migrated to head."""
    admin_url = make_url(POSTGRES_URL)
    name = worker_database_name()
    try:
        url = recreate_database(admin_url, name)
    except Exception as exc:  # noqa: BLE001  (any connection failure means "no PostgreSQL")
        if REQUIRE_SERVICES:
            pytest.fail(f"PostgreSQL at {POSTGRES_URL} is required but unreachable: {exc}")
        pytest.skip(f"PostgreSQL at {POSTGRES_URL} is unreachable: {exc}")
    migrate(url)
    yield url
    drop_database(admin_url, name)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty, migrated database on this test's backend (see pytest_generate_tests)."""
    if request.param == "postgresql":
        url: str = request.getfixturevalue("postgres_url")
        truncate_all(url)
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
