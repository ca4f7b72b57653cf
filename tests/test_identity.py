"""Sender identity, list headers and VERP envelope senders."""

from __future__ import annotations

from digest.core.models import Newsletter
from digest.domain.identity import from_header, list_headers, parse_verp, verp_address

CONFIG = {
    "BASE_URL": "https://news.example.org",
    "MAIL_FROM": "Digest <digest@news.example.org>",
    "SECRET_KEY": "s3cret",
}


def _newsletter(**kwargs) -> Newsletter:  # type: ignore[no-untyped-def]
    return Newsletter(slug="weekly", name="The Wéekly", **kwargs)


def test_from_header_prefers_the_newsletter_identity() -> None:
    """A newsletter's own name and address win over DIGEST_MAIL_FROM."""
    assert from_header(CONFIG, None) == "Digest <digest@news.example.org>"
    assert from_header(CONFIG, _newsletter(from_name="Ed", from_address="ed@example.org")) == "Ed <ed@example.org>"
    assert "digest@news.example.org" in from_header(CONFIG, _newsletter(from_name=""))


def test_list_unsubscribe_pair() -> None:
    """One HTTPS URL and one mailto, plain ASCII, and the one-click companion header."""
    headers = dict(list_headers(CONFIG, _newsletter(), "AbCdEfGhIjKlMnOpQrStUv"))
    value = headers["List-Unsubscribe"]
    assert value.startswith("<https://news.example.org/unsubscribe/")
    assert ">, <mailto:unsubscribe+" in value and value.endswith("?subject=unsubscribe>")
    assert "=?" not in value and value.isascii()
    local_part = value.split("mailto:")[1].split("@")[0]
    assert len(local_part) <= 64
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert headers["List-Id"].endswith("<weekly.news.example.org>")


def test_verp_round_trip_and_forgery() -> None:
    """A VERP address gives back its reference for the reader it was sent to; a forged or
    altered one, or one checked against another reader, gives nothing."""
    address = verp_address(CONFIG, "d12345", "Ada@example.com")
    assert address.startswith("bounces+d12345-") and address.endswith("@news.example.org")
    assert parse_verp(CONFIG, address, "ada@example.com") == "d12345"
    assert parse_verp(CONFIG, f"<{address.upper()}>", "ada@example.com") == "d12345"
    assert parse_verp(CONFIG, address, "grace@example.com") is None
    assert parse_verp(CONFIG, address.replace("d12345", "d12346"), "ada@example.com") is None
    forged = "bounces+d12345-0000000000000000@news.example.org"
    assert parse_verp(CONFIG, forged, "ada@example.com") is None
    assert parse_verp({**CONFIG, "SECRET_KEY": "other"}, address, "ada@example.com") is None
