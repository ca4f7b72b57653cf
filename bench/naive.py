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
from email.utils import make_msgid

import dkim
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from digest.mail.dkim import PrivateKey
from digest.mail.message import ascii_address, date_header, list_unsubscribe_headers
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
        uid = reader.subscription_uid
        urls = {
            "unsubscribe_url": p.links.unsubscribe_url(uid),
            "preferences_url": p.links.preferences_url(uid),
        }
        html, text = render_email(
            p.env, "digest", p.context_for(p.chosen_sections(reader), reader, urls)
        )
        message = EmailMessage(policy=POLICY)
        message["From"] = p.newsletter.from_header
        message["To"] = reader.email if not reader.name else f"{reader.name} <{reader.email}>"
        message["Subject"] = p.subject
        message["Date"] = date_header()
        message["Message-ID"] = make_msgid(f"digest.{p.issue_id}.d{delivery_id}", p.mail_domain)
        if p.newsletter.reply_to:
            message["Reply-To"] = p.newsletter.reply_to
        message["List-Id"] = p.newsletter.list_id
        mailto = p.links.unsubscribe_mailto(uid)
        for name, value in list_unsubscribe_headers(urls["unsubscribe_url"], mailto):
            message[name] = value
        message["Feedback-ID"] = p.feedback_id
        message.set_content(text, cte="quoted-printable")
        message.add_alternative(html, subtype="html", cte="quoted-printable")
        data = message.as_bytes()
        if self.signer is not None:
            data = self.signer(data)
        envelope_from = p.links.bounce_address(f"d{delivery_id}", reader.email)
        return Outgoing(envelope_from, ascii_address(reader.email), data)
