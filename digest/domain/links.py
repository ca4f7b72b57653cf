"""Public links in emails and pages, built from DIGEST_BASE_URL and signed tokens.

Emails are rendered outside any request, so links are built from the configured base
URL rather than url_for; the paths here are the ones the public blueprint serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any
from urllib.parse import quote

from digest.core.tokens import Purpose, make_token
from digest.mail.message import parse_mailbox

CONFIRM_PATH = "/confirm/{token}"
UNSUBSCRIBE_PATH = "/unsubscribe/{token}"
PREFERENCES_PATH = "/preferences/{token}"
ARCHIVE_PATH = "/archive/{newsletter}/"
ISSUE_PATH = "/archive/{newsletter}/{issue}"
POST_PATH = "/posts/{newsletter}/{post}"
FEED_PATH = "/archive/{newsletter}/feed.xml"


def absolute(config: Mapping[str, Any], path: str) -> str:
    """Return the public URL of a path."""
    return f"{config['BASE_URL']}{path}"


def confirm_url(
    config: Mapping[str, Any], subscription_uid: str, consent_id: int | None = None
) -> str:
    """Return the link that opens the Confirm page of a pending subscription; naming the
    signup (consent) it confirms, whose asked-for changes it then applies."""
    payload = subscription_uid if consent_id is None else f"{subscription_uid}{CONSENT_MARK}{consent_id}"
    token = make_token(config["SECRET_KEY"], Purpose.CONFIRM, payload)
    return absolute(config, CONFIRM_PATH.format(token=token))


# Separates the subscription's uid from the consent id in a confirmation token's payload
# (uids are URL-safe base64, which never contains it; the signer splits at its last dot).
CONSENT_MARK = "."


def unsubscribe_url(config: Mapping[str, Any], subscription_uid: str) -> str:
    """Return the one-click unsubscribe URL (RFC 8058) of a subscription; it never expires."""
    token = make_token(config["SECRET_KEY"], Purpose.UNSUBSCRIBE, subscription_uid)
    return absolute(config, UNSUBSCRIBE_PATH.format(token=token))


def preferences_url(config: Mapping[str, Any], subscription_uid: str) -> str:
    """Return the preference-center link of a subscription."""
    token = make_token(config["SECRET_KEY"], Purpose.PREFERENCES, subscription_uid)
    return absolute(config, PREFERENCES_PATH.format(token=token))


def mail_domain(config: Mapping[str, Any]) -> str:
    """Return the domain of DIGEST_MAIL_FROM, where unsubscribe and bounce mail arrives."""
    return _domain_of(config["MAIL_FROM"])


@lru_cache(maxsize=16)
def _domain_of(mailbox: str) -> str:
    # Parsing an address is slow and this runs for every message sent.
    return parse_mailbox(mailbox)[1].rpartition("@")[2]


def unsubscribe_mailto(config: Mapping[str, Any], subscription_uid: str) -> str:
    """Return the mailto: unsubscribe URI of a subscription."""
    token = make_token(config["SECRET_KEY"], Purpose.UNSUBSCRIBE, subscription_uid)
    return f"mailto:unsubscribe+{token}@{mail_domain(config)}?subject={quote('unsubscribe')}"


def issue_url(config: Mapping[str, Any], newsletter_slug: str, issue_slug: str) -> str:
    """Return the public archive page of an issue (the "view in browser" link)."""
    return absolute(config, ISSUE_PATH.format(newsletter=newsletter_slug, issue=issue_slug))


def post_url(config: Mapping[str, Any], newsletter_slug: str, post_slug: str) -> str:
    """Return the public page of a post (the "read more" link when it has no external link)."""
    return absolute(config, POST_PATH.format(newsletter=newsletter_slug, post=post_slug))
