"""Settings: built-in defaults, then DIGEST_* environment variables, then overrides.

Every setting is parsed and checked here, once, when the app is created; a missing or
malformed value raises ConfigError naming the variable, so the process stops at start
instead of failing on the first email.
"""

from __future__ import annotations

import math
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from email_validator import EmailNotValidError, validate_email
from limits import parse_many

from digest.mail.dkim import KeyFileError, signer_from_config


class ConfigError(RuntimeError):
    """A setting is missing or malformed; the message names the variable."""


def _text(value: str) -> str:
    return value.strip()


def _bool(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError("expected one of 1/0, true/false, yes/no, on/off")


def _positive_float(value: str) -> float | None:
    if value.strip().lower() in {"", "unlimited", "0"}:
        return None
    number = float(value)
    if number <= 0:
        raise ValueError("expected a positive number of messages per second")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise ValueError("expected a positive whole number")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("expected 0 or a positive whole number")
    return number


def _seconds(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0:
        raise ValueError("expected 0 or a positive number of seconds")
    return number


def _positive_seconds(value: str) -> float:
    number = float(value)
    if not math.isfinite(number) or number <= 0:
        raise ValueError("expected a positive number of seconds")
    return number


def _rate_limit(value: str) -> str:
    parse_many(value)  # raises ValueError naming what it could not read
    return value.strip()


# Secrets printed in documentation: anyone could forge links signed with one of them.
EXAMPLE_SECRET_KEYS = frozenset({"change-me-to-64-random-characters", "change-me", "changeme",
                                 "secret", "your-secret-key"})
GENERATE_SECRET = "python3 -c 'import secrets; print(secrets.token_urlsafe(48))'"


def _secret_key(value: str) -> str:
    if value.strip().lower() in EXAMPLE_SECRET_KEYS:
        raise ValueError(f"this is an example value, which anyone could use to forge links; "
                         f"generate your own with {GENERATE_SECRET}")
    return value.strip()


def _base_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError("expected an absolute http:// or https:// URL")
    if parts.query or parts.fragment:
        raise ValueError("must not carry a query string or fragment")
    return value.strip().rstrip("/")


def _smtp_url(value: str) -> str | None:
    if not value.strip():
        return None
    parts = urlsplit(value.strip())
    if parts.scheme not in {"smtp", "smtps"}:
        raise ValueError("expected smtp://user:pass@host:port or smtps://…")
    if not parts.hostname:
        raise ValueError("has no host")
    parts.port  # raises ValueError on a malformed port
    return value.strip()


def _mailbox(value: str) -> str:
    name, address = parseaddr(value)
    if not address:
        raise ValueError("expected an address such as 'Digest <digest@example.org>'")
    try:
        validate_email(address, check_deliverability=False, test_environment=True)
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None
    return value.strip()


def _database_url(value: str) -> str:
    if "://" not in value:
        raise ValueError("expected an SQLAlchemy URL such as postgresql+psycopg://host/db")
    return value.strip()


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.strip() not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value.strip()

    return parse


@dataclass(frozen=True)
class Setting:
    """One DIGEST_* variable: its config key, parser and default."""

    key: str
    parse: Callable[[str], Any]
    default: Any = None


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", _choice("development", "production"), "development"),
    Setting("INSTANCE_PATH", _text),
    Setting("DATABASE_URL", _database_url),
    Setting("SECRET_KEY", _secret_key),
    Setting("BASE_URL", _base_url, "http://localhost:5000"),
    Setting("SMTP_URL", _smtp_url),
    # SMTP timeouts per phase (digest/mail/transport.py): SMTP_TIMEOUT is the wait for the
    # reply to the end of a message, the longest a server may rightly take.
    Setting("SMTP_CONNECT_TIMEOUT", _positive_seconds, 10.0),
    Setting("SMTP_GREETING_TIMEOUT", _positive_seconds, 30.0),
    Setting("SMTP_ENVELOPE_TIMEOUT", _positive_seconds, 30.0),
    Setting("SMTP_DATA_TIMEOUT", _positive_seconds, 60.0),
    Setting("SMTP_TIMEOUT", _positive_int, 120),
    Setting("MAIL_FROM", _mailbox, "Digest <digest@localhost>"),
    Setting("DKIM_DOMAIN", _text),
    Setting("DKIM_SELECTOR", _text),
    Setting("DKIM_KEY_FILE", _text),
    Setting("BROKER_URL", _text),
    Setting("SEND_RATE", _positive_float),
    Setting("SENDER_THREADS", _positive_int, 2),
    Setting("CHECK_DELIVERABILITY", _bool, False),
    Setting("RATELIMIT_STORAGE_URL", _text, "memory://"),
    Setting("AMBIGUOUS", _choice("hold", "resend"), "hold"),
    # Delivery engine tuning (digest/deliveries.py, digest/sender.py, digest/scheduler.py).
    Setting("TICK_SECONDS", _positive_int, 30),
    Setting("BATCH_SIZE", _positive_int, 50),
    Setting("LEASE_SECONDS", _positive_int, 300),
    Setting("HEARTBEAT_SECONDS", _positive_seconds, 5.0),
    Setting("RETRY_SECONDS", _positive_int, 60),
    Setting("MAX_ATTEMPTS", _positive_int, 8),
    Setting("CELERY_TASKS", _positive_int, 8),
    Setting("TRUSTED_PROXIES", _non_negative_int, 0),
    # Rate limits per client IP (per token for the API), in the limits library's notation.
    Setting("SIGNUP_RATE_LIMIT", _rate_limit, "5 per minute;20 per hour"),
    Setting("LINK_RATE_LIMIT", _rate_limit, "30 per minute;300 per hour"),
    Setting("ONE_CLICK_RATE_LIMIT", _rate_limit, "600 per minute"),
    Setting("API_RATE_LIMIT", _rate_limit, "120 per minute"),
    Setting("API_FAILED_AUTH_LIMIT", _rate_limit, "20 per 10 minutes"),
    # The least time every signup answer takes, so timing tells no known address apart.
    Setting("SIGNUP_MIN_SECONDS", _seconds, 0.25),
)


def load_config(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Return the app's settings from defaults, the DIGEST_* environment and overrides."""
    environ = os.environ if environ is None else environ
    overrides = dict(overrides or {})
    config: dict[str, Any] = {}
    for setting in SETTINGS:
        name = f"DIGEST_{setting.key}"
        if setting.key in overrides:
            config[setting.key] = overrides.pop(setting.key)
            continue
        raw = environ.get(name)
        if raw is None or (raw.strip() == "" and setting.default is not None):
            config[setting.key] = setting.default
            continue
        try:
            config[setting.key] = setting.parse(raw)
        except ValueError as exc:
            raise ConfigError(f"{name} is malformed: {exc} (got {raw!r})") from None
    config.update(overrides)
    _check_together(config)
    return config


def _check_together(config: dict[str, Any]) -> None:
    dkim = [config.get(key) for key in ("DKIM_DOMAIN", "DKIM_SELECTOR", "DKIM_KEY_FILE")]
    if any(dkim) and not all(dkim):
        raise ConfigError(
            "DIGEST_DKIM_DOMAIN, DIGEST_DKIM_SELECTOR and DIGEST_DKIM_KEY_FILE must be set "
            "together (or none of them)"
        )
    key_file = config.get("DKIM_KEY_FILE")
    if key_file and not Path(key_file).is_file():
        raise ConfigError(f"DIGEST_DKIM_KEY_FILE names no readable file: {key_file}")
    if key_file:
        try:
            signer_from_config(config)  # a malformed key stops start-up, naming the variable
        except KeyFileError as exc:
            raise ConfigError(f"DIGEST_DKIM_KEY_FILE {exc}") from None
    if config["ENV"] == "production" and not config.get("SECRET_KEY"):
        raise ConfigError(
            f"DIGEST_SECRET_KEY is required when DIGEST_ENV=production; generate one with "
            f"{GENERATE_SECRET}"
        )


def instance_secret_key(instance_path: Path) -> str:
    """Return the development secret kept in the instance folder, creating it once."""
    path = instance_path / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    path.touch(mode=0o600)
    path.write_text(key)
    return key
