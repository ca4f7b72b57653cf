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
    assert config["BASE_URL"] == "http://localhost:5000"
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
