"""DKIM signatures (RFC 6376, RFC 8463) made with OpenSSL through `cryptography`.

The key type picks the algorithm: an RSA key signs rsa-sha256, an Ed25519 key signs
ed25519-sha256. Canonicalization is relaxed/relaxed. The signed header list covers
everything a receiver judges the message by (From, To, Subject, Date, Message-ID, the
List-* headers of RFC 2919/8058, Feedback-ID, the MIME headers, Reply-To and Cc when
present) and names From and both List-Unsubscribe headers once more than they occur, so
a header of those names added later breaks the signature.

dkimpy would do the same in pure Python at ~8 ms a message for RSA; here the RSA step is
OpenSSL's (~0.3 ms) and canonicalization is a few bytes.replace calls. The digest's
renderer goes further: it keeps each static block of a stencil in canonical form and hands
the signer the body hash (`sign(..., body_hash=)`), so the ~40 KB body is not scanned again
per reader; the canonical form of headers all readers share is cached. dkimpy stays the
reference: the tests verify every signature with `dkim.verify`.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, padding, rsa

PrivateKey = rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey

# In the order they are listed in h=; names absent from a message are left out, except
# the over-signed ones, which are always listed once more than they occur.
SIGNED_HEADERS = (
    "from",
    "to",
    "cc",
    "reply-to",
    "subject",
    "date",
    "message-id",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "feedback-id",
    "mime-version",
    "content-type",
    "content-transfer-encoding",
)
OVERSIGNED = frozenset({"from", "list-unsubscribe", "list-unsubscribe-post"})
MIN_RSA_BITS = 1024
_SPACES = re.compile(rb"  +")


class BadKey(ValueError):
    """The DKIM private key cannot be used (malformed, wrong type, too short)."""


class KeyFileError(Exception):
    """The DKIM key file cannot be read or holds no usable key; the message names the file
    (digest.core.config reports it as a ConfigError naming DIGEST_DKIM_KEY_FILE)."""


def load_private_key(data: bytes) -> PrivateKey:
    """Return the RSA or Ed25519 key in data: PEM (PKCS#1 or PKCS#8) or dkimpy's base64 seed."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_private_key(text, password=None)
        except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
            raise BadKey(f"not a readable unencrypted PEM private key ({exc})") from None
    else:
        # dknewkey writes an Ed25519 private key as the base64 of its 32-byte seed.
        try:
            seed = base64.b64decode(text, validate=True)
        except ValueError:
            seed = b""
        if len(seed) != 32:
            raise BadKey("expected a PEM private key or a base64 Ed25519 seed")
        key = ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise BadKey(f"an RSA key of {key.key_size} bits is too short (at least 1024)")
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    raise BadKey(f"a {type(key).__name__} cannot sign DKIM (use RSA or Ed25519)")


def relaxed_header(name: bytes, value: bytes) -> bytes:
    """Return one header field in relaxed canonical form, without the line break."""
    value = value.replace(b"\r\n", b"").replace(b"\t", b" ")
    while b"  " in value:
        value = value.replace(b"  ", b" ")
    return name.strip().lower() + b":" + value.strip(b" ")


# The headers every reader of an issue shares (From, Subject, List-Id, the MIME headers…)
# recur in every message: their canonical form is computed once.
_relaxed_header_cached = lru_cache(maxsize=1024)(relaxed_header)


def relaxed_lines(lines: bytes) -> bytes:
    """Return whole CRLF lines with relaxed body canonicalization applied line by line
    (whitespace runs to one space, none before a line end), empty lines kept; a body
    made of such chunks hashes as relaxed_body(whole body) when its last line is not empty."""
    if b"\t" in lines:
        lines = lines.replace(b"\t", b" ")
    if b"  " in lines:
        lines = _SPACES.sub(b" ", lines)
    if b" \r\n" in lines:
        lines = lines.replace(b" \r\n", b"\r\n")
    return lines


def relaxed_body(body: bytes) -> bytes:
    """Return a CRLF body in relaxed canonical form (RFC 6376 §3.4.4)."""
    body = relaxed_lines(body).rstrip(b" \r\n")
    return body + b"\r\n" if body else b""


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """Return ([(name, raw value incl. folding)], body) of a CRLF message."""
    head, _, body = message.partition(b"\r\n\r\n")
    fields: list[tuple[bytes, bytes]] = []
    for line in head.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        else:
            name, _, value = line.partition(b":")
            fields.append((name, value))
    return fields, body


def _fold_b64(signature: bytes, first: int) -> bytes:
    # b= tolerates folding whitespace anywhere (RFC 6376 §3.5); keep lines under 78.
    chunks = [signature[:first]]
    chunks += [signature[i : i + 72] for i in range(first, len(signature), 72)]
    return b"\r\n ".join(chunk for chunk in chunks if chunk)


def _fold_names(names: list[str]) -> str:
    lines, line = [], ""
    for piece in [f"{name}:" for name in names[:-1]] + names[-1:]:
        if line and len(line) + len(piece) > 70:
            lines.append(line)
            line = ""
        line += piece
    return "\r\n  ".join([*lines, line])


class DKIMSigner:
    """Signs whole messages for one domain and selector with one key."""

    def __init__(self, domain: str, selector: str, key: PrivateKey) -> None:
        self.domain = domain
        self.selector = selector
        self.key = key
        self.algorithm = "rsa-sha256" if isinstance(key, rsa.RSAPrivateKey) else "ed25519-sha256"

    def _signature(self, digest_input: bytes) -> bytes:
        if isinstance(self.key, rsa.RSAPrivateKey):
            return self.key.sign(digest_input, padding.PKCS1v15(), hashes.SHA256())
        # RFC 8463: Ed25519 signs the SHA-256 hash of the canonical header data.
        return self.key.sign(hashlib.sha256(digest_input).digest())

    def sign(
        self, message: bytes, timestamp: int | None = None, body_hash: bytes | None = None
    ) -> bytes:
        """Return message with a DKIM-Signature header prepended; body_hash, when given,
        is the SHA-256 of the relaxed canonical body, already known to the caller."""
        fields, body = split_message(message)
        if body_hash is None:
            body_hash = hashlib.sha256(relaxed_body(body)).digest()
        body_hash = base64.b64encode(body_hash)
        by_name: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            by_name.setdefault(name.strip().lower(), []).append(value)
        signed: list[str] = []
        hashed = bytearray()
        for header in SIGNED_HEADERS:
            key = header.encode("ascii")
            values = by_name.get(key, [])
            signed += [header] * (len(values) + (header in OVERSIGNED))
            # Several fields of one name are hashed from the last one up (§5.4.2).
            for value in reversed(values):
                hashed += _relaxed_header_cached(key, value) + b"\r\n"
        if b"from" not in by_name:
            raise ValueError("a message without From cannot be DKIM-signed")
        head = (
            f"DKIM-Signature: v=1; a={self.algorithm}; c=relaxed/relaxed; d={self.domain};\r\n"
            f" s={self.selector}; t={timestamp if timestamp is not None else int(time.time())};\r\n"
            f" h={_fold_names(signed)};\r\n"
            f" bh={body_hash.decode('ascii')};\r\n b="
        ).encode("ascii")
        name, _, value = head.partition(b":")
        hashed += relaxed_header(name, value)
        signature = base64.b64encode(self._signature(bytes(hashed)))
        return head + _fold_b64(signature, 72) + b"\r\n" + message

    __call__ = sign

    def dns_record(self) -> str:
        """Return the TXT record to publish at SELECTOR._domainkey.DOMAIN."""
        public = self.key.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            der = public.public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
            return f"v=DKIM1; k=rsa; p={base64.b64encode(der).decode('ascii')}"
        raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return f"v=DKIM1; k=ed25519; p={base64.b64encode(raw).decode('ascii')}"

    def dns_record_quoted(self) -> str:
        """Return the TXT record as zone-file strings of at most 255 characters each."""
        record = self.dns_record()
        return " ".join(f'"{record[i : i + 255]}"' for i in range(0, len(record), 255))

    @property
    def record_name(self) -> str:
        """Return the DNS name the TXT record belongs at."""
        return f"{self.selector}._domainkey.{self.domain}"


@lru_cache(maxsize=8)
def _load_signer(domain: str, selector: str, key_file: str) -> DKIMSigner:
    try:
        data = Path(key_file).read_bytes()
    except OSError as exc:
        raise KeyFileError(f"cannot be read: {key_file} ({exc.strerror})") from None
    try:
        key = load_private_key(data)
    except BadKey as exc:
        raise KeyFileError(f"holds no usable DKIM key: {key_file}: {exc}") from None
    return DKIMSigner(domain, selector, key)


def signer_from_config(config: Mapping[str, Any]) -> DKIMSigner | None:
    """Return the configured signer (its key loaded once per process), or None when unset;
    raise KeyFileError for a key file that cannot be used."""
    domain, selector, key_file = (
        config.get("DKIM_DOMAIN"),
        config.get("DKIM_SELECTOR"),
        config.get("DKIM_KEY_FILE"),
    )
    if not (domain and selector and key_file):
        return None
    return _load_signer(domain, selector, str(key_file))
