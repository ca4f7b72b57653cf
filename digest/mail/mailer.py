"""The last step before the wire: sign (when DKIM is configured) and hand to a transport.

Every message of the app (confirmation, welcome, digest) goes through a Mailer from
`mailer_for`, so every message is signed when DIGEST_DKIM_* is set; the key is loaded
once per process.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from digest.mail.dkim import DKIMSigner, signer_from_config
from digest.mail.transport import BeforeEnd, SendResult, Timeouts, Transport, make_transport

Signer = Callable[[bytes], bytes]


class Mailer:
    """A transport plus an optional signer; send() signs the exact bytes it sends."""

    def __init__(self, transport: Transport, signer: Signer | None = None) -> None:
        self.transport = transport
        self.signer = signer

    def send(self, envelope_from: str, recipient: str, data: bytes) -> SendResult:
        """Sign data if configured and send it to one recipient."""
        return self.send_signed(envelope_from, recipient, self.sign(data))

    def sign(self, data: bytes, body_hash: bytes | None = None) -> bytes:
        """Return data signed when a signer is configured, else unchanged; body_hash (the
        renderer's SHA-256 of the relaxed canonical body) spares the DKIM signer that work."""
        if self.signer is None:
            return data
        if body_hash is not None and isinstance(self.signer, DKIMSigner):
            return self.signer.sign(data, body_hash=body_hash)
        return self.signer(data)

    def send_signed(
        self, envelope_from: str, recipient: str, data: bytes, before_end: BeforeEnd | None = None
    ) -> SendResult:
        """Send bytes that already went through sign(); before_end runs just before the end
        of the message (the ledger marks a delivery `sending` there: only a message whose
        end went out can be unclear)."""
        return self.transport.send(envelope_from, recipient, data, before_end)

    def connect(self) -> None:
        """Make sure the transport can send now (raises a SendError if it cannot)."""
        self.transport.connect()

    def close(self) -> None:
        """Release the transport's connection."""
        self.transport.close()

    def __enter__(self) -> Mailer:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def mailer_for(config: Mapping[str, Any]) -> Mailer:
    """Return a Mailer for the app's settings: SMTP or the outbox folder, DKIM when set."""
    phases = Timeouts(
        connect=config["SMTP_CONNECT_TIMEOUT"],
        greeting=config["SMTP_GREETING_TIMEOUT"],
        envelope=config["SMTP_ENVELOPE_TIMEOUT"],
        data=config["SMTP_DATA_TIMEOUT"],
        end=config["SMTP_TIMEOUT"],
    )
    transport = make_transport(
        config.get("SMTP_URL"), Path(config["OUTBOX_PATH"]), config["SMTP_TIMEOUT"], phases
    )
    return Mailer(transport, signer_from_config(config))
