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
from collections.abc import Callable, Iterable

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


# A click link: /c/TOKEN/REF. TOKEN names the message: issue and delivery packed in 8
# bytes, a 64-bit keyed BLAKE2b MAC over them, and the 8 bytes masked by a keystream drawn
# from the MAC (so the ids do not show), base64url: 22 characters that name no address
# and read as noise, made once per message. REF is "LINK.TAG": the link's index and a
# 24-bit tag cut from one keyed SHAKE-256 stream of the message's ids (the open pixel at
# the stream's start, link i after it), so a changed index fails verification without a
# MAC per link.
_CLICK = struct.Struct(">II")
_CLICK_MAC = 8
_TAG = 3  # bytes: 4 base64url characters
_OPEN = 0xFFFF  # the open pixel's index (digest.mail.tracking.OPEN_LINK)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


class ClickSigner:
    """Makes and reads click links under one secret (the keys are derived once)."""

    def __init__(self, secret: str) -> None:
        self._key = _purpose_key(secret, "click")
        self._mask_key = _purpose_key(secret, "click-mask")
        self._tag_key = _purpose_key(secret, "click-tag")

    def _mask(self, mac: bytes, data: bytes) -> bytes:
        stream = hashlib.blake2b(mac, key=self._mask_key, digest_size=_CLICK.size).digest()
        return (int.from_bytes(data) ^ int.from_bytes(stream)).to_bytes(_CLICK.size)

    def _tags(self, data: bytes, slots: int) -> str:
        return _b64(hashlib.shake_256(self._tag_key + data).digest(_TAG * slots))

    def refs(self, issue_id: int, delivery_id: int, links: Iterable[int]) -> dict[int, str]:
        """Return "TOKEN/REF" of each of a message's links (the open pixel's index too)."""
        data = _CLICK.pack(issue_id, delivery_id)
        mac = hashlib.blake2b(data, key=self._key, digest_size=_CLICK_MAC).digest()
        token = _b64(self._mask(mac, data) + mac)
        slots = {link: 0 if link == _OPEN else link + 1 for link in links}
        tags = self._tags(data, max(slots.values(), default=0) + 1)
        width = _TAG * 4 // 3
        return {link: f"{token}/{link}.{tags[slot * width : (slot + 1) * width]}"
                for link, slot in slots.items()}

    def read(self, token: str, ref: str) -> tuple[int, int, int]:
        """Return (issue, delivery, link) of a genuine click link; raise BadToken otherwise."""
        invalid = BadToken("this link is not valid")
        link_text, _, tag = ref.partition(".")
        if not (tag.isascii() and link_text.isascii() and link_text.isdigit()
                and len(link_text) <= 5 and int(link_text) <= _OPEN):
            raise invalid
        try:
            raw = base64.urlsafe_b64decode(token.encode("ascii") + b"==")
        except (ValueError, UnicodeError):
            raise invalid from None
        if len(token) != 22 or len(raw) != _CLICK.size + _CLICK_MAC:
            raise invalid
        mac = raw[_CLICK.size :]
        data = self._mask(mac, raw[: _CLICK.size])
        expected = hashlib.blake2b(data, key=self._key, digest_size=_CLICK_MAC).digest()
        if not hmac.compare_digest(mac, expected):
            raise invalid
        # The tag's stream grows with the index: only a genuine message token gets that far.
        link = int(link_text)
        slot = 0 if link == _OPEN else link + 1
        if not hmac.compare_digest(tag, self._tags(data, slot + 1)[-_TAG * 4 // 3 :]):
            raise invalid
        issue_id, delivery_id = _CLICK.unpack(data)
        return issue_id, delivery_id, link
