"""Signed, opaque, purpose-bound tokens for every public link.

A token carries only a random uid (never an address) and an HMAC over it, salted by
purpose, so a confirmation token cannot unsubscribe and vice versa. Only the purposes
given a max age expire; unsubscribe links work forever.

The MAC is a 128-bit HMAC-BLAKE2s: strong enough, and it keeps an unsubscribe token at
45 characters so `unsubscribe+TOKEN@domain` fits the 64-octet local-part limit and the
List-Unsubscribe header stays short.
"""

from __future__ import annotations

import base64
import enum
import functools
import hashlib
import hmac
import struct
from collections.abc import Callable

from cryptography.fernet import Fernet, InvalidToken
from itsdangerous import BadSignature, SignatureExpired, Signer, TimestampSigner


class Purpose(enum.StrEnum):
    CONFIRM = "confirm"
    UNSUBSCRIBE = "unsubscribe"
    PREFERENCES = "preferences"
    ARCHIVE = "archive"


CONFIRM_MAX_AGE = 7 * 24 * 3600
_MAC = functools.partial(hashlib.blake2s, digest_size=16)
_TIMED = {Purpose.CONFIRM}


class BadToken(ValueError):
    """The token was tampered with, is for another purpose, or is malformed."""


class ExpiredToken(BadToken):
    """The token is genuine but too old; the uid is kept so a new link can be sent."""

    def __init__(self, uid: str) -> None:
        super().__init__("this link has expired")
        self.uid = uid


def _signer(secret: str, purpose: Purpose) -> Signer:
    cls = TimestampSigner if purpose in _TIMED else Signer
    return cls(secret, salt=f"digest.{purpose}", digest_method=_MAC)


def make_token(secret: str, purpose: Purpose, uid: str) -> str:
    """Return a signed token for uid, valid only for purpose."""
    return _signer(secret, purpose).sign(uid).decode("ascii")


def read_token(secret: str, purpose: Purpose, token: str) -> str:
    """Return the uid inside token, or raise BadToken / ExpiredToken."""
    signer = _signer(secret, purpose)
    try:
        if isinstance(signer, TimestampSigner):
            return signer.unsign(token, max_age=CONFIRM_MAX_AGE).decode("ascii")
        return signer.unsign(token).decode("ascii")
    except SignatureExpired as exc:
        if exc.payload is None:
            raise BadToken("malformed link") from None
        return_uid = exc.payload.decode("ascii", "replace")
        raise ExpiredToken(return_uid) from None
    except (BadSignature, UnicodeError):
        raise BadToken("this link is not valid") from None


def _purpose_key(secret: str, purpose: str) -> bytes:
    return hashlib.sha256(f"digest.{purpose}:{secret}".encode()).digest()


def keyed_hash(secret: str, purpose: str, value: str) -> str:
    """Return a hex HMAC-SHA256 of value under a purpose-specific key."""
    return hmac.new(_purpose_key(secret, purpose), value.encode("utf-8"), hashlib.sha256).hexdigest()


def keyed_hasher(secret: str, purpose: str) -> Callable[[str], str]:
    """Return keyed_hash(secret, purpose, ·) with the key set up once, for hashing many values."""
    base = hmac.new(_purpose_key(secret, purpose), digestmod=hashlib.sha256)

    def digest(value: str) -> str:
        mac = base.copy()
        mac.update(value.encode("utf-8"))
        return mac.hexdigest()

    return digest


def seal(secret: str, purpose: str, value: str) -> str:
    """Return value encrypted and authenticated (Fernet) under a purpose-specific key."""
    return _fernet(secret, purpose).encrypt(value.encode("utf-8")).decode("ascii")


def unseal(secret: str, purpose: str, sealed: str) -> str:
    """Return the value seal() encrypted; raise BadToken if it was altered or the key changed."""
    try:
        return _fernet(secret, purpose).decrypt(sealed.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError):
        raise BadToken("this value cannot be decrypted with the current secret key") from None


def _fernet(secret: str, purpose: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(_purpose_key(secret, f"sealed.{purpose}")))


# A click token: issue, delivery and link packed in 10 bytes, a 64-bit keyed BLAKE2b MAC
# over them, and the 10 bytes masked by a keystream drawn from the MAC (so the ids do not
# show), base64url: 24 characters that name no address and read as noise.
_CLICK = struct.Struct(">IIH")
_CLICK_MAC = 8


class ClickSigner:
    """Makes and reads click tokens under one secret (the keys are derived once)."""

    def __init__(self, secret: str) -> None:
        self._key = _purpose_key(secret, "click")
        self._mask_key = _purpose_key(secret, "click-mask")

    def _mask(self, mac: bytes, data: bytes) -> bytes:
        stream = hashlib.blake2b(mac, key=self._mask_key, digest_size=_CLICK.size).digest()
        return (int.from_bytes(data) ^ int.from_bytes(stream)).to_bytes(_CLICK.size)

    def token(self, issue_id: int, delivery_id: int, link: int) -> str:
        """Return the token naming (issue, delivery, link)."""
        data = _CLICK.pack(issue_id, delivery_id, link)
        mac = hashlib.blake2b(data, key=self._key, digest_size=_CLICK_MAC).digest()
        return base64.urlsafe_b64encode(self._mask(mac, data) + mac).decode("ascii")

    def read(self, token: str) -> tuple[int, int, int]:
        """Return (issue, delivery, link) of a genuine token; raise BadToken otherwise."""
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii"))
        except (ValueError, UnicodeError):
            raise BadToken("this link is not valid") from None
        if len(raw) != _CLICK.size + _CLICK_MAC:
            raise BadToken("this link is not valid")
        mac = raw[_CLICK.size :]
        data = self._mask(mac, raw[: _CLICK.size])
        expected = hashlib.blake2b(data, key=self._key, digest_size=_CLICK_MAC).digest()
        if not hmac.compare_digest(mac, expected):
            raise BadToken("this link is not valid")
        issue_id, delivery_id, link = _CLICK.unpack(data)
        return issue_id, delivery_id, link
