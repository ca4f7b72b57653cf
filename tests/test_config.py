"""Settings: defaults, environment, and failing fast with the variable's name."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from digest.core.config import SETTINGS, ConfigError, load_config


def test_defaults_run_on_embedded_settings() -> None:
    """With no environment at all, the service has a usable configuration."""
    config = load_config(environ={})
    assert config["BASE_URL"] == "http://127.0.0.1:5000"
    assert config["SMTP_URL"] is None
    assert config["SEND_RATE"] is None
    assert config["MAIL_FROM"] == "Digest <digest@localhost>"


def test_environment_is_parsed() -> None:
    """DIGEST_* variables are read and converted to their types."""
    config = load_config(
        environ={
            "DIGEST_BASE_URL": "https://news.example.org/",
            "DIGEST_SEND_RATE": "12.5",
            "DIGEST_SMTP_URL": "smtp://u:p@mail.example.org:587?starttls=required",
            "DIGEST_CHECK_DELIVERABILITY": "yes",
        }
    )
    assert config["BASE_URL"] == "https://news.example.org"
    assert config["SEND_RATE"] == 12.5
    assert config["CHECK_DELIVERABILITY"] is True


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("DIGEST_SEND_RATE", "fast"),
        ("DIGEST_SEND_RATE", "-3"),
        ("DIGEST_BASE_URL", "news.example.org"),
        ("DIGEST_SMTP_URL", "http://mail.example.org"),
        ("DIGEST_SMTP_URL", "smtp://mail.example.org:notaport"),
        ("DIGEST_MAIL_FROM", "not an address"),
        ("DIGEST_CHECK_DELIVERABILITY", "maybe"),
        ("DIGEST_DATABASE_URL", "digest.sqlite3"),
        ("DIGEST_SENDER_THREADS", "0"),
        ("DIGEST_LINK_RATE_LIMIT", "thirty a minute"),
    ],
)
def test_malformed_setting_is_named(name: str, value: str) -> None:
    """A malformed value stops start-up with an error that names the variable."""
    with pytest.raises(ConfigError, match=name):
        load_config(environ={name: value})


def test_production_requires_a_secret_key() -> None:
    """In production the secret cannot be generated silently."""
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY"):
        load_config(environ={"DIGEST_ENV": "production"})


def test_dkim_settings_come_together(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Half a DKIM configuration is an error, not a silently unsigned newsletter."""
    with pytest.raises(ConfigError, match="DIGEST_DKIM_SELECTOR"):
        load_config(environ={"DIGEST_DKIM_DOMAIN": "example.org"})
    with pytest.raises(ConfigError, match="DIGEST_DKIM_KEY_FILE"):
        load_config(
            environ={
                "DIGEST_DKIM_DOMAIN": "example.org",
                "DIGEST_DKIM_SELECTOR": "s1",
                "DIGEST_DKIM_KEY_FILE": str(tmp_path / "missing.pem"),
            }
        )


def test_create_app_generates_a_secret_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """In development the secret is generated into the instance folder and reused."""
    from digest import create_app

    overrides = {"INSTANCE_PATH": str(tmp_path / "inst")}
    first = create_app(overrides).config["SECRET_KEY"]
    second = create_app(overrides).config["SECRET_KEY"]
    assert first == second and len(first) > 40
    assert (tmp_path / "inst" / "secret_key").stat().st_mode & 0o077 == 0


@pytest.mark.parametrize(
    "value",
    ["a", "a" * 64, "ab" * 40, "hunter2hunter2", secrets.token_urlsafe(16), secrets.token_hex(24)],
    ids=["one-char", "repeated", "pattern", "password", "urlsafe-16", "hex-24"],
)
@pytest.mark.parametrize("env", ["development", "production"])
def test_a_weak_secret_key_is_refused(value: str, env: str) -> None:
    """A key with less than 32 bytes of randomness stops start-up, naming the setting and how
    to make a good one; generated keys of 32 bytes or more are taken."""
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY is malformed: .*less than 32 bytes"):
        load_config(environ={"DIGEST_ENV": env, "DIGEST_SECRET_KEY": value})
    for good in (secrets.token_urlsafe(32), secrets.token_hex(32), secrets.token_urlsafe(48)):
        assert load_config(environ={"DIGEST_ENV": env, "DIGEST_SECRET_KEY": good})["SECRET_KEY"] == good


@pytest.mark.parametrize("content", ["", "\n", "short"])
def test_an_empty_or_weak_key_file_is_refused(tmp_path: Path, content: str) -> None:
    """An instance secret_key file that is empty (a crash while writing, a mistaken edit) or
    weak stops start-up naming the file, instead of signing every link with it."""
    from digest import create_app

    (tmp_path / "inst").mkdir()
    (tmp_path / "inst" / "secret_key").write_text(content)
    with pytest.raises(ConfigError, match=r"secret key file .*secret_key is unusable.*delete the file"):
        create_app({"INSTANCE_PATH": str(tmp_path / "inst")})
    assert (tmp_path / "inst" / "secret_key").read_text() == content


def test_processes_starting_together_share_one_whole_private_key(tmp_path: Path) -> None:
    """Several processes starting at once on a new instance folder all use the same key, none
    an empty or partial one, and no temporary file is left behind."""
    import subprocess
    import sys

    folder = tmp_path / "inst"
    folder.mkdir()
    code = "from digest.core.config import instance_secret_key as k; import sys, pathlib; print(k(pathlib.Path(sys.argv[1])))"
    processes = [subprocess.Popen([sys.executable, "-c", code, str(folder)], stdout=subprocess.PIPE, text=True)
                 for _ in range(6)]
    keys = {process.communicate(timeout=60)[0].strip() for process in processes}
    assert len(keys) == 1 and len(keys.pop()) == 64
    assert [p.name for p in folder.iterdir()] == ["secret_key"]
    assert (folder / "secret_key").stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    ("name", "value", "password"),
    [
        ("DIGEST_SMTP_URL", "smtp://digest:Tr0ub4dor-3@mail.example.org:25x", "Tr0ub4dor-3"),
        ("DIGEST_SMTP_URL", "smtp://digest:pass/Tr0ub4dor@mail.example.org:587", "Tr0ub4dor"),
        ("DIGEST_SMTP_URL", "smpt://digest:Tr0ub4dor-3@mail.example.org:587", "Tr0ub4dor-3"),
        ("DIGEST_DATABASE_URL", "postgresql+psycopg:/digest:Tr0ub4dor-3@db/digest", "Tr0ub4dor-3"),
        ("DIGEST_SECRET_KEY", "Tr0ub4dor-3", "Tr0ub4dor-3"),
    ],
)
def test_a_malformed_setting_never_echoes_its_password(name: str, value: str, password: str) -> None:
    """The error naming a malformed URL or key shows where it points, never the password or
    the key itself (start-up errors end up in logs and support tickets)."""
    with pytest.raises(ConfigError, match=name) as raised:
        load_config(environ={name: value})
    message = str(raised.value)
    assert password not in message and "pass/" not in message, message
    if "://" in value:
        assert "***@" in message


def test_smtp_settings_never_show_the_password() -> None:
    """The parsed SMTP settings, as a log line or a traceback would print them, hold no password."""
    from digest.mail.transport import SMTPSettings

    settings = SMTPSettings.from_url("smtp://digest:Tr0ub4dor-3@mail.example.org:587", 10)
    assert settings.password == "Tr0ub4dor-3" and "Tr0ub4dor" not in repr(settings)


EXAMPLE_ENV = Path(__file__).resolve().parent.parent / "config" / "example.env"
_DOCUMENTED = re.compile(r"^#?(DIGEST_[A-Z0-9_]+)=(.*)$", re.M)


def _example_environ() -> dict[str, str]:
    """Return the variables example.env sets (its uncommented lines), as a shell would."""
    return {m[1]: m[2] for m in _DOCUMENTED.finditer(EXAMPLE_ENV.read_text()) if not m[0].startswith("#")}


def test_every_setting_is_documented_in_example_env_and_nothing_else() -> None:
    """config/example.env names each DIGEST_* setting the app reads, and only those."""
    documented = {m[1] for m in _DOCUMENTED.finditer(EXAMPLE_ENV.read_text())}
    read = {f"DIGEST_{setting.key}" for setting in SETTINGS}
    assert documented - read == set(), "documented but never read"
    assert read - documented == set(), "read but not documented"


def test_example_env_copied_blindly_does_not_start() -> None:
    """Used as it is, the example stops start-up asking for a real secret, naming the setting."""
    environ = _example_environ()
    assert environ["DIGEST_SECRET_KEY"] == ""
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY is required.*secrets.token_urlsafe"):
        load_config(environ=environ)


@pytest.mark.parametrize("value", ["change-me-to-64-random-characters", " Change-Me ", "secret"])
@pytest.mark.parametrize("env", ["development", "production"])
def test_an_example_secret_is_refused(value: str, env: str) -> None:
    """A secret copied from documentation is refused, naming the setting and how to make one."""
    with pytest.raises(ConfigError, match="DIGEST_SECRET_KEY is malformed: this is an example value"):
        load_config(environ={"DIGEST_ENV": env, "DIGEST_SECRET_KEY": value})
    generated = secrets.token_urlsafe(48)
    assert load_config(environ={"DIGEST_ENV": env, "DIGEST_SECRET_KEY": generated})["SECRET_KEY"] == generated


def test_the_instance_folder_and_its_files_are_private(tmp_path: Path) -> None:
    """Whatever the umask, the instance folder is the owner's alone (0700), and so are the
    SQLite database with its WAL and shared-memory files and every outbox message (0600):
    they hold readers' addresses and live unsubscribe and preference links."""
    import os
    import stat

    from sqlalchemy import text

    from digest import create_app
    from digest.mail.mailer import mailer_for
    from tests.support.apps import get_db_of

    previous = os.umask(0o022)
    try:
        app = create_app({"INSTANCE_PATH": str(tmp_path / "inst")})
        database = get_db_of(app)
        with database.engine.begin() as conn:
            conn.execute(text("CREATE TABLE t (x INTEGER)"))
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with database.engine.connect() as reader, mailer_for(app.config) as mailer:
            reader.execute(text("SELECT x FROM t")).all()
            mailer.send("bounces@example.org", "ada@example.com", b"Subject: x\r\n\r\nhi\r\n")
            folder = tmp_path / "inst"
            modes = {p.relative_to(folder).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in folder.rglob("*")}
        database.dispose()
    finally:
        os.umask(previous)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {"digest.sqlite3", "digest.sqlite3-wal", "digest.sqlite3-shm", "secret_key", "outbox"} <= set(modes)
    assert modes.pop("outbox") == 0o700
    assert any(name.endswith(".eml") for name in modes)
    assert modes == dict.fromkeys(modes, 0o600), modes
