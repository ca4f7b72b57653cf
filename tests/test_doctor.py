"""`digest doctor` as an operator runs it: a good installation passes, a broken one gets
each problem named with its fix and a non-zero exit."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from digest.mail.dkim import signer_from_config
from tests.support.delivery import DIGEST, process_env
from tests.support.dkim_keys import dkim_settings
from tests.support.dns import TXTServer
from tests.support.services import fresh_database
from tests.support.smtp import SMTPServer


@pytest.fixture
def login_smtp() -> Iterator[SMTPServer]:
    """An SMTP server that requires the login digest / right."""
    server = SMTPServer(auth=("digest", "right")).start()
    yield server
    server.stop()


def _record(settings: dict[str, str]) -> tuple[str, str]:
    signer = signer_from_config(settings)
    assert signer is not None
    return signer.record_name, signer.dns_record()


def _doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([DIGEST, "doctor", *args], env=env, capture_output=True, text=True, timeout=120)


def test_doctor_passes_a_good_installation(app: Flask, login_smtp: SMTPServer, tmp_path: Path) -> None:
    """Production settings, private files, a migrated database, a working SMTP login and the
    published DKIM record matching the key: every check ok, exit 0."""
    instance = Path(app.config["INSTANCE_PATH"])
    instance.chmod(0o700)
    keys = tmp_path / "keys"
    keys.mkdir()
    dkim = dkim_settings(keys)
    Path(dkim["DKIM_KEY_FILE"]).chmod(0o600)
    if app.config["DATABASE_URL"].startswith("sqlite"):
        Path(app.config["DATABASE_URL"].removeprefix("sqlite:///")).chmod(0o600)
    dns = TXTServer(dict([_record(dkim)])).start()
    try:
        env = process_env(app, ENV="production", SMTP_URL=login_smtp.url, **dkim)
        result = _doctor(env, "--nameserver", dns.address)
    finally:
        dns.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[-1] == "Nothing needs fixing."
    assert not [line for line in lines if line.startswith(("FAIL", "warn"))], result.stdout
    for check in ("settings", "base URL", "permissions", "database", "migrations", "smtp", "dkim"):
        assert any(line.startswith(f"ok   {check}:") for line in lines), check
    assert "ok   smtp: connected to 127.0.0.1 and logged in" in lines
    assert any("matches the signing key" in line for line in lines)


def test_doctor_names_each_problem_of_a_broken_installation(
    app: Flask, database_url: str, login_smtp: SMTPServer, tmp_path: Path
) -> None:
    """An http base URL, a wrong SMTP password, a readable DKIM key whose published record
    is another key's, and a database never migrated: each is a FAIL line with its fix."""
    keys = tmp_path / "keys"
    keys.mkdir()
    dkim = dkim_settings(keys)
    Path(dkim["DKIM_KEY_FILE"]).chmod(0o644)
    other = dkim_settings(tmp_path, kind="ed25519")
    name, _ = _record(dkim)
    dns = TXTServer({name: _record(other)[1]}).start()
    wrong_login = login_smtp.url.replace(":right@", ":wrong@")
    try:
        with fresh_database(database_url, tmp_path / "fresh") as empty:
            env = process_env(app, ENV="production", SMTP_URL=wrong_login, BASE_URL="http://news.example.org",
                              DATABASE_URL=empty, **dkim)
            result = _doctor(env, "--nameserver", dns.address)
    finally:
        dns.stop()
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "FAIL base URL: http://news.example.org uses http://" in out
    assert "fix: serve the site over TLS (docs/deploy.md) and set DIGEST_BASE_URL=https://" in out
    assert "FAIL smtp: SMTP login to 127.0.0.1 failed: 535" in out
    assert "wrong" not in out, "the password must not be printed"
    assert f"FAIL permissions: the DKIM private key {dkim['DKIM_KEY_FILE']} is readable by others" in out
    assert f"fix: chmod 600 {dkim['DKIM_KEY_FILE']}" in out
    assert f"FAIL dkim: the record at {name} holds another key" in out
    assert "FAIL migrations: at no revision (an empty database)" in out
    assert "fix: back up (digest db backup FILE), then run digest db upgrade" in out
    assert out.splitlines()[-1] == "5 problems to fix."


@pytest.mark.one_backend
def test_doctor_reports_a_setting_that_does_not_load(app: Flask) -> None:
    """A malformed setting is itself the finding: named, with where to fix it, exit 1."""
    result = _doctor(process_env(app, SEND_RATE="fast"))
    assert result.returncode == 1
    assert result.stdout.startswith("FAIL settings: DIGEST_SEND_RATE is malformed")
