"""The naive pipeline, as a baseline: what most Python newsletter code does per message.

Per message: Jinja renders both templates, css-inline inlines the HTML, the stdlib
EmailMessage builds and serializes the MIME, and dkimpy signs (pure-Python RSA). It uses
the same templates, content and headers as digest's own pipeline, so the two produce the
same message and only the way of building it differs.
"""

from __future__ import annotations

import base64
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.domain import links
from digest.core.db import utcnow
from digest.mail import identity
from digest.mail.dkim import PrivateKey
from digest.mail.message import ascii_address
from digest.mail.render import Outgoing, PreparedIssue, Reader
from digest.mail.stencil import render_email

# Never fold List-Unsubscribe into encoded words (policy.SMTP does at 78 columns).
POLICY = SMTP.clone(max_line_length=998)
HEADERS = [
    b"from",
    b"from",
    b"to",
    b"subject",
    b"date",
    b"message-id",
    b"reply-to",
    b"list-id",
    b"list-unsubscribe",
    b"list-unsubscribe",
    b"list-unsubscribe-post",
    b"list-unsubscribe-post",
    b"feedback-id",
    b"mime-version",
    b"content-type",
]


class NaiveSigner:
    """dkimpy with the same key, canonicalization and header list as digest's signer."""

    def __init__(self, domain: str, selector: str, key: PrivateKey) -> None:
        self.domain = domain.encode()
        self.selector = selector.encode()
        if isinstance(key, rsa.RSAPrivateKey):
            self.algorithm = b"rsa-sha256"
            self.key = key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.TraditionalOpenSSL,
                serialization.NoEncryption(),
            )
        else:
            assert isinstance(key, ed25519.Ed25519PrivateKey)
            self.algorithm = b"ed25519-sha256"
            self.key = base64.b64encode(
                key.private_bytes(
                    serialization.Encoding.Raw,
                    serialization.PrivateFormat.Raw,
                    serialization.NoEncryption(),
                )
            )

    def __call__(self, data: bytes) -> bytes:
        """Return data with dkimpy's DKIM-Signature prepended."""
        signature = dkim.sign(
            data,
            self.selector,
            self.domain,
            self.key,
            canonicalize=(b"relaxed", b"relaxed"),
            signature_algorithm=self.algorithm,
            include_headers=HEADERS,
        )
        return signature + data


class NaivePipeline:
    """Renders, builds and signs every message from scratch."""

    def __init__(self, prepared: PreparedIssue, signer: NaiveSigner | None = None) -> None:
        self.prepared = prepared
        self.signer = signer

    def message_for(self, reader: Reader, delivery_id: int | None) -> Outgoing:
        """Return one reader's message, built the slow way."""
        p = self.prepared
        config = p.config
        urls = {
            "unsubscribe_url": links.unsubscribe_url(config, reader.subscription_uid),
            "preferences_url": links.preferences_url(config, reader.subscription_uid),
        }
        html, text = render_email(
            p.env, "digest", p.context_for(p.chosen_sections(reader), reader, urls)
        )
        message = EmailMessage(policy=POLICY)
        message["From"] = p.newsletter.from_header
        message["To"] = reader.email if not reader.name else f"{reader.name} <{reader.email}>"
        message["Subject"] = p.subject
        message["Date"] = format_datetime(utcnow())
        message["Message-ID"] = make_msgid(f"digest.{p.issue_id}.d{delivery_id}", p.mail_domain)
        if p.newsletter.reply_to:
            message["Reply-To"] = p.newsletter.reply_to
        message["List-Id"] = p.newsletter.list_id
        for name, value in identity.list_unsubscribe(config, reader.subscription_uid):
            message[name] = value
        message["Feedback-ID"] = p.feedback_id
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        data = message.as_bytes()
        if self.signer is not None:
            data = self.signer(data)
        return Outgoing(
            identity.verp_address(config, f"d{delivery_id}"), ascii_address(reader.email), data
        )
