"""Tokens: signed, opaque, purpose-bound, expiring only where they should."""

from __future__ import annotations

import time

import pytest

from digest.core.tokens import BadToken, ExpiredToken, Purpose, make_token, read_token

SECRET = "s3cret"


def test_round_trip_and_opacity() -> None:
    """A token gives back its uid and contains nothing else readable."""
    token = make_token(SECRET, Purpose.UNSUBSCRIBE, "abc123")
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, token) == "abc123"
    assert "@" not in token


def test_purpose_bound() -> None:
    """A confirmation token cannot unsubscribe, and the reverse."""
    confirm = make_token(SECRET, Purpose.CONFIRM, "abc123")
    unsubscribe = make_token(SECRET, Purpose.UNSUBSCRIBE, "abc123")
    with pytest.raises(BadToken):
        read_token(SECRET, Purpose.UNSUBSCRIBE, confirm)
    with pytest.raises(BadToken):
        read_token(SECRET, Purpose.CONFIRM, unsubscribe)
    with pytest.raises(BadToken):
        read_token(SECRET, Purpose.PREFERENCES, unsubscribe)


@pytest.mark.parametrize("token", ["", "abc", "abc123.AAAA", "a.b.c", "\u00e9.x"])
def test_tampered_or_malformed(token: str) -> None:
    """Anything not signed by us is refused."""
    with pytest.raises(BadToken):
        read_token(SECRET, Purpose.UNSUBSCRIBE, token)


def test_other_secret_refused() -> None:
    """A token signed with another instance's secret is refused."""
    token = make_token("other", Purpose.UNSUBSCRIBE, "abc123")
    with pytest.raises(BadToken):
        read_token(SECRET, Purpose.UNSUBSCRIBE, token)


def test_confirm_expires_but_unsubscribe_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    """Confirmation links expire after a week (keeping the uid for a new link); unsubscribe links never."""
    confirm = make_token(SECRET, Purpose.CONFIRM, "abc123")
    unsubscribe = make_token(SECRET, Purpose.UNSUBSCRIBE, "abc123")
    later = time.time() + 8 * 24 * 3600
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(ExpiredToken) as info:
        read_token(SECRET, Purpose.CONFIRM, confirm)
    assert info.value.uid == "abc123"
    assert read_token(SECRET, Purpose.UNSUBSCRIBE, unsubscribe) == "abc123"
