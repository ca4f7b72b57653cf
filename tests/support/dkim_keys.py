"""DKIM test keys and a DNS stub for dkimpy's verifier."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

DOMAIN = "news.example.org"
SELECTOR = "digest2026"

DnsFunc = Callable[..., bytes | None]


def write_key(folder: Path, kind: str, fmt: str = "pkcs8") -> Path:
    """Write a fresh private key of kind rsa|ed25519 in fmt pkcs8|pkcs1|seed; return its path."""
    if kind == "rsa":
        key: rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey = rsa.generate_private_key(
            public_exponent=65537, key_size=2048
        )
    else:
        key = ed25519.Ed25519PrivateKey.generate()
    if fmt == "seed":
        data = base64.b64encode(
            key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
        )
    else:
        private_format = (
            serialization.PrivateFormat.TraditionalOpenSSL
            if fmt == "pkcs1"
            else serialization.PrivateFormat.PKCS8
        )
        data = key.private_bytes(
            serialization.Encoding.PEM, private_format, serialization.NoEncryption()
        )
    path = folder / f"dkim-{kind}-{fmt}.key"
    path.write_bytes(data)
    return path


def dkim_settings(folder: Path, kind: str = "rsa", fmt: str = "pkcs8") -> dict[str, str]:
    """Return the app settings that sign with a fresh key of kind (see write_key) in folder."""
    return {
        "DKIM_DOMAIN": DOMAIN,
        "DKIM_SELECTOR": SELECTOR,
        "DKIM_KEY_FILE": str(write_key(folder, kind, fmt)),
    }


def dns_stub(record: str, domain: str = DOMAIN, selector: str = SELECTOR) -> DnsFunc:
    """Return a dnsfunc for dkim.verify that answers only SELECTOR._domainkey.DOMAIN."""
    name = f"{selector}._domainkey.{domain}.".encode()

    def dnsfunc(query: bytes, timeout: int = 5) -> bytes | None:
        return record.encode() if query == name else None

    return dnsfunc


def dkim_tags(data: bytes) -> dict[str, str]:
    """Return the tags of the first DKIM-Signature header, whitespace removed."""
    head = data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
    line = next(h for h in unfolded.split("\r\n") if h.lower().startswith("dkim-signature:"))
    value = "".join(line.split(":", 1)[1].split())
    return dict(tag.split("=", 1) for tag in value.split(";") if tag)
