"""Settings: built-in defaults, then DIGEST_* environment variables, then overrides.

Every setting is parsed and checked here, once, when the app is created; a missing or
malformed value raises ConfigError naming the variable, so the process stops at start
instead of failing on the first email.
"""

from __future__ import annotations

import ipaddress
import math
import os
import re
import secrets
import string
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


MIN_SECRET_BITS = 256  # 32 bytes: HMAC-SHA256's key size


def secret_bits(value: str) -> float:
    """Return an upper estimate of a key's entropy in bits: its length times the bits per
    character of the character classes it uses (hex digits alone count as 4)."""
    if not value:
        return 0.0
    if all(c in string.hexdigits for c in value) and not (
        any(c in "abcdef" for c in value) and any(c in "ABCDEF" for c in value)
    ):
        alphabet = 16
    else:
        classes = (string.ascii_lowercase, string.ascii_uppercase, string.digits)
        alphabet = sum(len(chars) for chars in classes if any(c in chars for c in value))
        alphabet += 32 if any(not c.isascii() or not c.isalnum() for c in value) else 0
    # A few characters repeated (aaaa…, abab…) carry next to nothing, whatever the length.
    if len(set(value)) < 12:
        return len(set(value)) * math.log2(alphabet)
    return len(value) * math.log2(alphabet)


def check_secret(value: str) -> str:
    """Return the key stripped, or raise ValueError saying why it is too weak to sign with."""
    key = value.strip()
    if key.lower() in EXAMPLE_SECRET_KEYS:
        raise ValueError(f"this is an example value, which anyone could use to forge links; "
                         f"generate your own with {GENERATE_SECRET}")
    if secret_bits(key) < MIN_SECRET_BITS:
        raise ValueError(
            f"a key of {len(key)} characters holds less than 32 bytes of randomness, so "
            f"links signed with it could be forged; generate one with {GENERATE_SECRET}"
        )
    return key


def _secret_key(value: str) -> str:
    # Empty means unset: generated in development, required in production (_check_together).
    return check_secret(value) if value.strip() else ""


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
    try:
        parts.port
    except ValueError:
        # urllib's own message quotes the text it took for a port: part of a password.
        raise ValueError(
            "has a malformed port (percent-encode any / ? # or @ in the user name or password)"
        ) from None
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


def _metrics_token(value: str) -> str | None:
    if not value.strip():
        return None
    if len(value.strip()) < 24:
        raise ValueError(f"too short to resist guessing: use 24 characters or more, e.g. {GENERATE_SECRET}")
    return value.strip()


def _private_listen(value: str) -> tuple[str, int] | None:
    if not value.strip():
        return None
    host, sep, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("expected ADDRESS:PORT, e.g. 127.0.0.1:9464 or 10.0.0.5:9464")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{host!r} is not an IP address") from None
    if not (address.is_private or address.is_loopback) or address.is_unspecified:
        raise ValueError(f"{host} is not a private or loopback address; metrics carry no "
                         "token there, so they must not be reachable from the internet")
    return host, int(port)


def _choice(*options: str) -> Callable[[str], str]:
    def parse(value: str) -> str:
        if value.strip() not in options:
            raise ValueError(f"expected one of {', '.join(options)}")
        return value.strip()

    return parse


def _media_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if not value.strip():
        return ""
    if parts.scheme == "s3":
        if not parts.netloc:
            raise ValueError("expected s3://BUCKET/PREFIX")
    elif parts.scheme == "file":
        if not parts.path.startswith("/"):
            raise ValueError("expected file:///ABSOLUTE/FOLDER")
    else:
        raise ValueError("expected s3://BUCKET/PREFIX or file:///FOLDER (empty: <instance>/media)")
    return value.strip().rstrip("/")


def _optional_http_url(value: str) -> str:
    return _base_url(value) if value.strip() else ""


# The address the README tells people to open; `digest run --port` moves it in development.
DEFAULT_BASE_URL = "http://127.0.0.1:5000"


@dataclass(frozen=True)
class Setting:
    """One DIGEST_* variable: its config key, parser and default."""

    key: str
    parse: Callable[[str], Any]
    default: Any = None
    private: bool = False  # holds a secret or a password: an error never shows it


SETTINGS: tuple[Setting, ...] = (
    Setting("ENV", _choice("development", "production"), "development"),
    Setting("INSTANCE_PATH", _text),
    Setting("DATABASE_URL", _database_url, private=True),
    Setting("SECRET_KEY", _secret_key, private=True),
    Setting("BASE_URL", _base_url, DEFAULT_BASE_URL),
    Setting("SMTP_URL", _smtp_url, private=True),
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
    Setting("BROKER_URL", _text, private=True),
    Setting("SEND_RATE", _positive_float),
    Setting("SENDER_THREADS", _positive_int, 2),
    Setting("CHECK_DELIVERABILITY", _bool, False),
    Setting("RATELIMIT_STORAGE_URL", _text, "memory://", private=True),
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
    # Outbound HTTP (webhooks, feeds) may reach private and loopback addresses (SSRF guard off).
    Setting("ALLOW_PRIVATE_URLS", _bool, False),
    # Webhooks: the first retry's wait (doubling up to an hour, for a day), and how long an
    # endpoint may fail every attempt before it is disabled and the admins are told.
    Setting("WEBHOOK_RETRY_SECONDS", _positive_seconds, 30.0),
    Setting("WEBHOOK_DISABLE_AFTER_HOURS", _positive_seconds, 72.0),
    # Operations: /metrics behind a bearer token, or a listener on a private address; logs.
    Setting("METRICS_TOKEN", _metrics_token),
    Setting("METRICS_LISTEN", _private_listen),
    Setting("LOG_FORMAT", _choice("text", "json"), "text"),
    # Rate limits per client IP (per token for the API), in the limits library's notation.
    Setting("SIGNUP_RATE_LIMIT", _rate_limit, "5 per minute;20 per hour"),
    Setting("LINK_RATE_LIMIT", _rate_limit, "30 per minute;300 per hour"),
    Setting("ONE_CLICK_RATE_LIMIT", _rate_limit, "600 per minute"),
    Setting("API_RATE_LIMIT", _rate_limit, "120 per minute"),
    Setting("API_FAILED_AUTH_LIMIT", _rate_limit, "20 per 10 minutes"),
    # Clicks recorded per client address and process (the redirect answers past it too).
    Setting("CLICK_RECORD_LIMIT", _rate_limit, "600 per minute"),
    # Uploaded images: where they are kept, and what an upload may be (digest/domain/media.py).
    Setting("MEDIA_URL", _media_url, ""),
    Setting("MEDIA_S3_ENDPOINT", _optional_http_url, ""),
    Setting("MEDIA_S3_REGION", _text, "us-east-1"),
    Setting("MEDIA_S3_ACCESS_KEY", _text, "", private=True),
    Setting("MEDIA_S3_SECRET_KEY", _text, "", private=True),
    Setting("MEDIA_MAX_BYTES", _positive_int, 10 * 2**20),
    Setting("MEDIA_MAX_PIXELS", _positive_int, 40_000_000),
    Setting("MEDIA_MAX_FRAMES", _positive_int, 60),
    # Per editor: "send me a test" of an issue.
    Setting("TEST_SEND_RATE_LIMIT", _rate_limit, "5 per 10 minutes"),
    # Feed intake (digest/engine/feeds.py): how often each source is read, how big it may be.
    Setting("FEED_INTERVAL_SECONDS", _positive_int, 3600),
    Setting("FEED_MAX_BYTES", _positive_int, 5_000_000),
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
            if setting.private:
                raise ConfigError(f"{name} is malformed: {_redacted(str(exc), raw)}") from None
            raise ConfigError(f"{name} is malformed: {exc} (got {raw!r})") from None
    config.update(overrides)
    _check_together(config)
    return config


def _redacted(problem: str, raw: str) -> str:
    """Return the problem and what was given, with any password or secret in it hidden."""
    scheme, separator, rest = raw.strip().partition("://")
    if not separator:
        return f"{problem} (got {len(raw.strip())} characters, not shown)"
    credentials, at, host = rest.rpartition("@")
    if not at:
        return f"{problem} (got {raw.strip()!r})"
    password = credentials.partition(":")[2]
    for piece in sorted({password, *re.split(r"[/?#@]", password)}, key=len, reverse=True):
        if len(piece) >= 3:
            problem = problem.replace(piece, "***")
    return f"{problem} (got '{scheme}://***@{host}')"


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
    """Return the development secret kept in the instance folder, creating it once.

    The key is written whole to a private (0600) temporary file first and linked into
    place only if no other process got there first, so a reader never sees a partial key
    and every process uses the same one. A weak or empty key file stops start-up.
    """
    path = instance_path / "secret_key"
    if not path.exists():
        key = secrets.token_urlsafe(48)
        temporary = instance_path / f".secret_key.{secrets.token_hex(8)}"
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(descriptor, "w") as stream:
                stream.write(key)
                stream.flush()
                os.fsync(stream.fileno())
            try:
                os.link(temporary, path)
            except FileExistsError:
                pass  # another process created it first: use theirs
        finally:
            temporary.unlink()
    try:
        return check_secret(path.read_text())
    except ValueError as exc:
        raise ConfigError(
            f"the secret key file {path} is unusable: {exc}; or delete the file to have "
            "a new key generated (every signed link sent so far then stops working)"
        ) from None
