"""Who a message is from, which list it belongs to, and where its bounces go.

Contract: every value here is made from the app's settings (DIGEST_MAIL_FROM,
DIGEST_BASE_URL, the secret key) and a newsletter's row; nothing reads or writes the
database. The envelope sender is a VERP address, `bounces+REF-MAC@domain`: REF names
what was sent (a delivery, or a confirmation) and MAC is an HMAC over it, so a bounce
maps to exactly one message and a forged bounce maps to nothing. `SignedLinks` hands
digest.mail, which holds no secret, a reader's signed links and bounce address.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from digest.core.models import Newsletter
from digest.core.tokens import keyed_hash
from digest.domain import links
from digest.mail.message import (
    encode_text_header,
    format_mailbox,
    list_unsubscribe_headers,
    parse_mailbox,
)

_VERP = re.compile(r"^bounces\+([A-Za-z0-9]+)-([0-9a-f]{16})@", re.IGNORECASE)


def from_header(config: Mapping[str, Any], newsletter: Newsletter | None) -> str:
    """Return the From header: the newsletter's sender identity, else DIGEST_MAIL_FROM."""
    default_name, default_address = parse_mailbox(config["MAIL_FROM"])
    if newsletter is None:
        return format_mailbox(default_name, default_address)
    return format_mailbox(
        newsletter.from_name or newsletter.name or default_name,
        newsletter.from_address or default_address,
    )


def list_id(config: Mapping[str, Any], newsletter: Newsletter) -> str:
    """Return the List-Id (RFC 2919): the newsletter's name and slug under the site's host."""
    host = urlsplit(config["BASE_URL"]).hostname or "localhost"
    return f"{encode_text_header(newsletter.name)} <{newsletter.slug}.{host}>"


def list_unsubscribe(config: Mapping[str, Any], subscription_uid: str) -> list[tuple[str, str]]:
    """Return the RFC 8058 pair: one HTTPS URL and one mailto, never encoded, and the POST hint."""
    return list_unsubscribe_headers(
        links.unsubscribe_url(config, subscription_uid),
        links.unsubscribe_mailto(config, subscription_uid),
    )


def list_headers(
    config: Mapping[str, Any], newsletter: Newsletter, subscription_uid: str
) -> list[tuple[str, str]]:
    """Return List-Id and the RFC 8058 pair: one HTTPS URL and one mailto, never encoded."""
    return [("List-Id", list_id(config, newsletter)), *list_unsubscribe(config, subscription_uid)]


def feedback_id(config: Mapping[str, Any], campaign: str, newsletter: Newsletter, kind: str) -> str:
    """Return a Feedback-ID (Gmail's feedback loop): campaign:newsletter:kind:SenderId.

    The SenderId is the same for every message of this installation: the letters and
    digits of the mail domain, 5 to 15 of them, as Google's format asks.
    """
    sender = "".join(c for c in links.mail_domain(config) if c.isascii() and c.isalnum())
    sender = (sender + "digest")[:15] if len(sender) < 5 else sender[:15]
    fields = [re.sub(r"[^A-Za-z0-9._-]", "", value) for value in (campaign, newsletter.slug, kind)]
    return ":".join([*fields, sender])


def verp_address(config: Mapping[str, Any], ref: str) -> str:
    """Return the envelope sender that carries ref (letters and digits) under an HMAC."""
    if not ref.isalnum():
        raise ValueError(f"a VERP reference must be letters and digits, got {ref!r}")
    mac = keyed_hash(config["SECRET_KEY"], "verp", ref.lower())[:16]
    return f"bounces+{ref}-{mac}@{links.mail_domain(config)}"


def parse_verp(config: Mapping[str, Any], address: str) -> str | None:
    """Return the reference inside a VERP address, or None if it is not one of ours."""
    match = _VERP.match(address.strip().strip("<>"))
    if not match:
        return None
    ref, mac = match.groups()
    expected = keyed_hash(config["SECRET_KEY"], "verp", ref.lower())[:16]
    return ref.lower() if mac.lower() == expected else None


class SignedLinks:
    """A reader's signed links and the bounce address of a message, under one app's
    settings (digest.mail.render.ReaderLinks)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config

    def unsubscribe_url(self, subscription_uid: str) -> str:
        """Return the reader's one-click unsubscribe URL."""
        return links.unsubscribe_url(self.config, subscription_uid)

    def unsubscribe_mailto(self, subscription_uid: str) -> str:
        """Return the reader's mailto: unsubscribe URI."""
        return links.unsubscribe_mailto(self.config, subscription_uid)

    def preferences_url(self, subscription_uid: str) -> str:
        """Return the reader's preference-center link."""
        return links.preferences_url(self.config, subscription_uid)

    def bounce_address(self, ref: str) -> str:
        """Return the VERP envelope sender of the message ref names."""
        return verp_address(self.config, ref)
