"""`digest doctor`: check an installation and say what to fix.

Contract: `checks` looks at a loaded app's settings and everything they point at — the
base URL's scheme, the secret and the sender address in production, file permissions of
the instance folder, the secret, the SQLite file and the DKIM key, the database and its
migrations, the SMTP server (connect, TLS, login) and the DKIM key against the published
TXT record when DNS answers — and returns one Finding per check, each failure or warning
with the fix. It changes nothing (the SMTP check logs in and quits; no mail is sent).
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from digest.core.db import Database, SchemaTooNew, check_not_newer, current_revisions
from digest.engine.monitoring import smtp_verdict
from digest.mail.dkim import DKIMSigner, KeyFileError, signer_from_config

OK, WARN, FAIL = "ok", "warn", "FAIL"
DNS_TIMEOUT = 5.0
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}


@dataclass(frozen=True)
class Finding:
    """One check's verdict: level (ok, warn, FAIL), what was checked, what was found, the fix."""

    level: str
    check: str
    detail: str
    fix: str = ""


def checks(config: Mapping[str, Any], database: Database, nameserver: str | None = None) -> list[Finding]:
    """Run every check against the settings and what they point at; return the findings."""
    return [
        *_settings(config),
        _base_url(config),
        *_permissions(config, database),
        *_database(database),
        _smtp(config),
        _dkim(config, nameserver),
    ]


def _settings(config: Mapping[str, Any]) -> list[Finding]:
    findings = [Finding(OK, "settings", "every DIGEST_* variable parses")]
    if config["ENV"] != "production":
        findings.append(Finding(WARN, "settings", "DIGEST_ENV is development",
                                "set DIGEST_ENV=production on a real installation (it requires a fixed secret)"))
    if "digest@localhost" in config["MAIL_FROM"]:
        findings.append(Finding(WARN, "settings", "DIGEST_MAIL_FROM is the built-in digest@localhost",
                                "set DIGEST_MAIL_FROM to an address of your own domain"))
    return findings


def _base_url(config: Mapping[str, Any]) -> Finding:
    parts = urlsplit(config["BASE_URL"])
    if parts.scheme == "https":
        return Finding(OK, "base URL", f"{config['BASE_URL']} is served over TLS")
    if (parts.hostname or "") in LOCAL_HOSTS:
        return Finding(WARN, "base URL", f"{config['BASE_URL']} is a local address: links in emails reach nobody",
                       "set DIGEST_BASE_URL to the public https:// address")
    return Finding(FAIL, "base URL",
                   f"{config['BASE_URL']} uses http://: every link in every email and the editors' "
                   "logins would travel unencrypted",
                   "serve the site over TLS (docs/deploy.md) and set DIGEST_BASE_URL=https://…")


def _private(path: Path, what: str, check_group: bool = True) -> Finding | None:
    try:
        mode = path.stat().st_mode
    except OSError:
        return None
    mask = stat.S_IRWXG | stat.S_IRWXO if check_group else stat.S_IRWXO
    if mode & mask:
        target = "600" if path.is_file() else "700"
        return Finding(FAIL, "permissions", f"{what} {path} is readable by others (mode {stat.S_IMODE(mode):o})",
                       f"chmod {target} {path}")
    return Finding(OK, "permissions", f"{what} {path} is private")


def _permissions(config: Mapping[str, Any], database: Database) -> list[Finding]:
    findings = []
    instance = Path(config["INSTANCE_PATH"])
    if not os.access(instance, os.W_OK | os.X_OK):
        findings.append(Finding(FAIL, "permissions", f"the instance folder {instance} is not writable by this user",
                                f"chown the folder to the user that runs digest, e.g. chown digest: {instance}"))
    elif instance.stat().st_mode & stat.S_IWOTH:
        findings.append(Finding(FAIL, "permissions", f"the instance folder {instance} is writable by anyone",
                                f"chmod 750 {instance}"))
    else:
        findings.append(Finding(OK, "permissions", f"the instance folder {instance} is writable, not by everyone"))
    candidates = [(instance / "secret_key", "the generated secret")]
    if config.get("DKIM_KEY_FILE"):
        candidates.append((Path(config["DKIM_KEY_FILE"]), "the DKIM private key"))
    if database.dialect == "sqlite" and database.engine.url.database:
        candidates.append((Path(database.engine.url.database), "the SQLite database (readers' addresses)"))
    for path, what in candidates:
        # Only the secret must be the user's alone; a key or database may be shared with a group.
        finding = _private(path, what, check_group=path.name == "secret_key")
        if finding is not None:
            findings.append(finding)
    return findings


def _database(database: Database) -> list[Finding]:
    from alembic.script import ScriptDirectory

    from digest.core.db import alembic_config

    where = database.engine.url.render_as_string(hide_password=True)
    try:
        revisions = current_revisions(database)
    except Exception as exc:  # noqa: BLE001  (any failure to connect is the finding)
        reason = str(exc).splitlines()[0]
        return [Finding(FAIL, "database", f"cannot reach {where}: {reason}",
                        "check DIGEST_DATABASE_URL (host, port, name, user, password) and that the server runs")]
    found = [Finding(OK, "database", f"{where} answers")]
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    try:
        check_not_newer(revisions, "The database")
    except SchemaTooNew as exc:
        return [*found, Finding(FAIL, "migrations", str(exc), "install the digest version that migrated it")]
    if revisions == heads:
        found.append(Finding(OK, "migrations", f"at the latest revision {', '.join(sorted(heads))}"))
    else:
        at = ", ".join(sorted(revisions)) or "no revision (an empty database)"
        found.append(Finding(FAIL, "migrations", f"at {at}; this code needs {', '.join(sorted(heads))}",
                             "back up (digest db backup FILE), then run digest db upgrade"))
    return found


def _smtp(config: Mapping[str, Any]) -> Finding:
    if not config.get("SMTP_URL"):
        level = WARN if config["ENV"] == "production" else OK
        return Finding(level, "smtp", f"DIGEST_SMTP_URL is unset: mail is written to {config['OUTBOX_PATH']}",
                       "set DIGEST_SMTP_URL to your mail server to send for real" if level == WARN else "")
    verdict = smtp_verdict(config, timeout=10.0)
    host = urlsplit(config["SMTP_URL"]).hostname
    if verdict == "ok":
        login = " and logged in" if urlsplit(config["SMTP_URL"]).username else ""
        return Finding(OK, "smtp", f"connected to {host}{login}")
    return Finding(FAIL, "smtp", verdict,
                   "check DIGEST_SMTP_URL's host, port, user and password (percent-encoded) and "
                   "that this machine may reach the server")


def _dkim(config: Mapping[str, Any], nameserver: str | None) -> Finding:
    try:
        signer = signer_from_config(config)
    except KeyFileError as exc:
        return Finding(FAIL, "dkim", f"DIGEST_DKIM_KEY_FILE {exc}", "point it at a readable PEM private key")
    if signer is None:
        return Finding(WARN, "dkim", "messages are not DKIM-signed; Gmail and Yahoo require it of bulk senders",
                       "create a key and set DIGEST_DKIM_DOMAIN, DIGEST_DKIM_SELECTOR, DIGEST_DKIM_KEY_FILE")
    published = _published_record(signer, nameserver)
    if published is None:
        return Finding(WARN, "dkim", f"could not ask DNS for {signer.record_name}; the record is unchecked",
                       "run digest doctor where DNS answers")
    if published == "":
        return Finding(FAIL, "dkim", f"no DKIM record at {signer.record_name}",
                       f"publish the TXT record that `digest dkim record` prints at {signer.record_name}")
    if _key_of(published) != _key_of(signer.dns_record()):
        return Finding(FAIL, "dkim", f"the record at {signer.record_name} holds another key than "
                       f"DIGEST_DKIM_KEY_FILE: receivers will reject the signatures",
                       "publish the TXT record that `digest dkim record` prints (or use the matching key)")
    return Finding(OK, "dkim", f"the record at {signer.record_name} matches the signing key")


def _key_of(record: str) -> str:
    match = re.search(r"(?:^|;)\s*p=([A-Za-z0-9+/=\s]*)", record)
    return re.sub(r"\s", "", match.group(1)) if match else ""


def _published_record(signer: DKIMSigner, nameserver: str | None) -> str | None:
    """Return the TXT record at the signer's name, "" when there is none, None when DNS fails."""
    import dns.exception
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=nameserver is None)
    if nameserver is not None:
        host, _, port = nameserver.partition(":")
        resolver.nameservers = [host]
        resolver.port = int(port or 53)
    resolver.lifetime = DNS_TIMEOUT
    try:
        answer = resolver.resolve(signer.record_name, "TXT")
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return ""
    except (dns.exception.DNSException, OSError):
        return None
    for rdata in answer:
        text = b"".join(rdata.strings).decode("ascii", "replace")
        if "p=" in text:
            return text
    return ""

