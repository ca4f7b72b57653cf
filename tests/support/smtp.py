"""A real SMTP server for tests (aiosmtpd on 127.0.0.1) that records the raw bytes.

Replies can be scripted per stage: set `server.script` to a callable
(stage, address) -> "451 4.3.0 try later" | None, with stage one of "mail", "rcpt",
"data", to make the server refuse exactly what a test needs.
"""

from __future__ import annotations

import email
import email.policy
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

Script = Callable[[str, str], str | None]


def refuse_once(stage: str, address: str, reply: str) -> Script:
    """Return a script that answers reply the first time address reaches stage, then accepts."""
    refused: list[str] = []

    def script(at: str, to: str) -> str | None:
        if at == stage and to == address and not refused:
            refused.append(to)
            return reply
        return None

    return script


@dataclass(frozen=True)
class Received:
    """One message as the server received it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    at: float = field(default_factory=time.monotonic)  # when the server accepted it

    @property
    def message(self) -> EmailMessage:
        """Return the message parsed with the modern email policy."""
        return email.message_from_bytes(self.data, policy=email.policy.default)

    def raw_header(self, name: str) -> list[str]:
        """Return every raw (unfolded, undecoded) value of header name."""
        head = self.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
        unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ")
        prefix = name.lower() + ":"
        return [
            line.split(":", 1)[1].strip()
            for line in unfolded.split("\r\n")
            if line.lower().startswith(prefix)
        ]


class _Handler:
    def __init__(self, server: SMTPServer) -> None:
        self.server = server

    def _scripted(self, stage: str, address: str) -> str | None:
        script = self.server.script
        return script(stage, address) if script else None

    async def handle_MAIL(self, server, session, envelope, address, mail_options):  # type: ignore[no-untyped-def]
        reply = self._scripted("mail", address)
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        reply = self._scripted("rcpt", address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        reply = self._scripted("data", envelope.rcpt_tos[0] if envelope.rcpt_tos else "")
        if reply:
            return reply
        with self.server.lock:
            self.server.received.append(
                Received(envelope.mail_from, tuple(envelope.rcpt_tos), envelope.original_content)
            )
            number = len(self.server.received)
        return f"250 2.0.0 Ok: queued as Q{number:06d}"


class SMTPServer:
    """aiosmtpd in a thread; `received` lists every accepted message in order."""

    def __init__(self, port: int = 0, auth: tuple[str, str] | None = None) -> None:
        self.received: list[Received] = []
        self.script: Script | None = None
        self.lock = threading.Lock()
        self._auth = auth
        kwargs: dict[str, Any] = {}
        if auth:
            kwargs = {
                "authenticator": self._authenticate, "auth_require_tls": False, "auth_required": True
            }
        self.controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=port or _free_port(), **kwargs
        )

    def _authenticate(self, server, session, envelope, mechanism, auth_data):  # type: ignore[no-untyped-def]
        ok = isinstance(auth_data, LoginPassword) and (
            auth_data.login.decode(),
            auth_data.password.decode(),
        ) == self._auth
        return AuthResult(success=ok, handled=False)

    @property
    def port(self) -> int:
        """Return the port the server listens on."""
        return self.controller.port

    @property
    def url(self) -> str:
        """Return a DIGEST_SMTP_URL for this server."""
        if self._auth:
            return f"smtp://{self._auth[0]}:{self._auth[1]}@127.0.0.1:{self.port}"
        return f"smtp://127.0.0.1:{self.port}"

    def start(self) -> SMTPServer:
        """Start listening."""
        self.controller.start()
        return self

    def stop(self) -> None:
        """Stop listening; clients see the connection refused."""
        self.controller.stop()

    def to(self, address: str) -> list[Received]:
        """Return the messages received for address."""
        with self.lock:
            return [m for m in self.received if address in m.rcpt_tos]


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port
