"""Who a message is from, which list it belongs to, and where its bounces go.

Contract: every value here is made from the app's settings (DIGEST_MAIL_FROM,
DIGEST_BASE_URL, the secret key) and a newsletter's row; nothing reads or writes the
database. The envelope sender is a VERP address, `bounces+REF-MAC@domain`: REF names
what was sent (a delivery, or a confirmation by its random reference) and MAC is an HMAC
over REF and the recipient's address, so a bounce maps to exactly one message to one
reader, and a forged bounce, or an old one whose reference now names someone else, maps
to nothing. `SignedLinks` hands
digest.mail, which holds no secret, a reader's signed links and bounce address.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from digest.core.models import Newsletter
from digest.core.tokens import ClickSigner, keyed_hash
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


def _verp_mac(config: Mapping[str, Any], ref: str, recipient: str) -> str:
    return keyed_hash(config["SECRET_KEY"], "verp", f"{ref.lower()}\n{recipient.lower()}")[:16]


def verp_address(config: Mapping[str, Any], ref: str, recipient: str) -> str:
    """Return the envelope sender that carries ref (letters and digits) under an HMAC bound to
    the recipient's address."""
    if not ref.isalnum():
        raise ValueError(f"a VERP reference must be letters and digits, got {ref!r}")
    return f"bounces+{ref}-{_verp_mac(config, ref, recipient)}@{links.mail_domain(config)}"


def split_verp(address: str) -> tuple[str, str] | None:
    """Return (reference, MAC) of an address shaped like a VERP address, unverified."""
    match = _VERP.match(address.strip().strip("<>"))
    return (match.group(1).lower(), match.group(2).lower()) if match else None


def verp_signed(config: Mapping[str, Any], ref: str, mac: str, recipient: str) -> bool:
    """Return whether mac is our signature of ref for a message to recipient."""
    return hmac.compare_digest(mac.lower(), _verp_mac(config, ref, recipient))


def parse_verp(config: Mapping[str, Any], address: str, recipient: str) -> str | None:
    """Return the reference inside a VERP address of a message to recipient, or None if it
    is not one of ours."""
    parts = split_verp(address)
    if parts is None or not verp_signed(config, *parts, recipient):
        return None
    return parts[0]


class SignedLinks:
    """A reader's signed links and the bounce address of a message, under one app's
    settings (digest.mail.render.ReaderLinks)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self._clicks = ClickSigner(config["SECRET_KEY"])
        self._click_base = links.absolute(config, "/c/")

    def unsubscribe_url(self, subscription_uid: str) -> str:
        """Return the reader's one-click unsubscribe URL."""
        return links.unsubscribe_url(self.config, subscription_uid)

    def unsubscribe_mailto(self, subscription_uid: str) -> str:
        """Return the reader's mailto: unsubscribe URI."""
        return links.unsubscribe_mailto(self.config, subscription_uid)

    def preferences_url(self, subscription_uid: str) -> str:
        """Return the reader's preference-center link."""
        return links.preferences_url(self.config, subscription_uid)

    def bounce_address(self, ref: str, recipient: str) -> str:
        """Return the VERP envelope sender of the message ref names, to recipient."""
        return verp_address(self.config, ref, recipient)

    def click_urls(self, issue_id: int, delivery_id: int, links: Iterable[int]) -> dict[int, str]:
        """Return the signed redirects that record clicks on a message's links, by index."""
        base = self._click_base
        return {link: base + ref for link, ref in self._clicks.refs(issue_id, delivery_id, links).items()}
