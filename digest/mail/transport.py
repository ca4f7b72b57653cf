"""Mail transports behind one small interface: SMTP, or an outbox folder of .eml files.

A transport sends one message to one recipient and returns the server's reply, or
raises a SendError subclass that says what the caller may do next:

- TemporaryFailure: nothing was accepted; try again later.
- RecipientRejected: this address is permanently refused (5.1.x, 5.2.1).
- SenderProblem: our side is wrong (policy 5.7.x/4.7.x, authentication, TLS,
  configuration); stop sending and tell a person, blame no reader.
- UnclearOutcome: the connection died after the whole message was handed over, so the
  server may have accepted it; never retry automatically.
"""

from __future__ import annotations

import re
import smtplib
import ssl
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from digest.mail.outbox import new_name


@dataclass(frozen=True)
class SendResult:
    """The server's final reply to one accepted message."""

    code: int
    response: str
    queue_id: str | None = None


class SendError(Exception):
    """A message was not (or not surely) accepted."""

    def __init__(self, message: str, code: int | None = None, response: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.response = response


class TemporaryFailure(SendError):
    """Nothing was accepted; a later attempt may succeed."""


class RecipientRejected(SendError):
    """The recipient is permanently refused; suppress says the address itself is bad."""

    def __init__(
        self, message: str, code: int | None = None, response: str = "", suppress: bool = False
    ) -> None:
        super().__init__(message, code, response)
        self.suppress = suppress


class SenderProblem(SendError):
    """The sender is misconfigured or blocked; no reader is at fault."""


class UnclearOutcome(SendError):
    """The message may or may not have been accepted."""


class Transport(Protocol):
    """Sends single-recipient messages over whatever connection it keeps."""

    def connect(self) -> None:
        """Make sure the next send finds a working connection; raise SendError if not."""
        ...

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        """Send data from envelope sender to one recipient; raise SendError on failure."""
        ...

    def close(self) -> None:
        """Release any connection."""
        ...


_ENHANCED = re.compile(r"^\s*([245])\.(\d{1,3})\.(\d{1,3})\b")
# A connection idle longer than this gets a NOOP before use (servers drop idle clients).
IDLE_CHECK_SECONDS = 15.0
_AUTH_CODES = frozenset({530, 534, 535, 538})
# Postfix/Exim say "queued as X", SES "Ok <id>", others "id=X"; the first that matches wins.
_QUEUE_IDS = tuple(
    re.compile(pattern + r"\s*<?([A-Za-z0-9._@-]{4,200})>?", re.IGNORECASE)
    for pattern in (r"queued as", r"\bid=", r"\bOk:?")
)


def enhanced_status(response: str) -> tuple[int, int, int] | None:
    """Return the RFC 3463 enhanced status code at the start of a reply text, if any."""
    match = _ENHANCED.match(response)
    if not match:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def classify(code: int, response: str, stage: str) -> SendError:
    """Turn an SMTP reply at a stage (mail, rcpt, data) into the SendError it means.

    Every 4xx is temporary, 4.7.x included: greylisting answers 451 4.7.1 and providers
    throttle with 421 4.7.0 or 454, and a later attempt succeeds, so the issue keeps
    going (and slows down); 5.7.x and authentication replies are the sender's problem.
    """
    status = enhanced_status(response)
    text = f"{stage.upper()} refused: {code} {response}".strip()
    if code in _AUTH_CODES:
        return SenderProblem(text, code, response)
    if 400 <= code < 500:
        return TemporaryFailure(text, code, response)
    if status is not None and status[1] == 7:
        return SenderProblem(text, code, response)
    if stage == "mail":
        return SenderProblem(text, code, response)
    if status is not None and (status[1] == 1 or status[1:] == (2, 1)):
        return RecipientRejected(text, code, response, suppress=True)
    if status is not None and status[1] in (3, 6):
        # Message-level faults (size, encoding): every reader would get the same answer.
        return SenderProblem(text, code, response)
    # A bare 550 at RCPT is "no such user"; other 5xx fail this delivery only.
    return RecipientRejected(text, code, response, suppress=stage == "rcpt" and status is None)


@dataclass(frozen=True)
class SMTPSettings:
    """Where and how to connect, parsed from DIGEST_SMTP_URL."""

    host: str
    port: int
    username: str | None
    password: str | None = field(repr=False)  # never in a log line or a traceback
    implicit_tls: bool
    starttls_required: bool
    timeout: float

    @classmethod
    def from_url(cls, url: str, timeout: float) -> SMTPSettings:
        """Parse smtp://user:pass@host:port[?starttls=required] or smtps://…; timeout is
        DIGEST_SMTP_TIMEOUT's seconds."""
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        implicit = parts.scheme == "smtps"
        return cls(
            host=parts.hostname or "localhost",
            port=parts.port or (465 if implicit else 25),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            implicit_tls=implicit,
            starttls_required=query.get("starttls", [""])[0] == "required",
            timeout=timeout,
        )


class SMTPTransport:
    """One reused SMTP connection: STARTTLS when offered, AUTH when configured."""

    def __init__(self, settings: SMTPSettings, recycle_after: int = 100) -> None:
        self.settings = settings
        self.recycle_after = recycle_after
        self._smtp: smtplib.SMTP | None = None
        self._sent_on_connection = 0
        self._last_used = 0.0
        self._context: ssl.SSLContext | None = None

    def _tls(self) -> ssl.SSLContext:
        # Loading the system's CA store costs ~40 ms: once per transport, and only for TLS.
        if self._context is None:
            self._context = ssl.create_default_context()
        return self._context

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        try:
            if s.implicit_tls:
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(
                    s.host, s.port, timeout=s.timeout, context=self._tls()
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, timeout=s.timeout)
            smtp.ehlo()
            if not s.implicit_tls:
                if smtp.has_extn("starttls"):
                    smtp.starttls(context=self._tls())
                    smtp.ehlo()
                elif s.starttls_required:
                    smtp.close()
                    raise SenderProblem(
                        f"{s.host}:{s.port} does not offer STARTTLS, which DIGEST_SMTP_URL requires"
                    )
            if s.username:
                smtp.login(s.username, s.password or "")
        except smtplib.SMTPAuthenticationError as exc:
            raise SenderProblem(
                f"SMTP login to {s.host} failed: {exc.smtp_code} {_text(exc.smtp_error)}",
                exc.smtp_code,
                _text(exc.smtp_error),
            ) from None
        except smtplib.SMTPNotSupportedError as exc:
            raise SenderProblem(f"SMTP server {s.host} cannot log us in: {exc}") from None
        except ssl.SSLError as exc:
            raise SenderProblem(f"TLS with {s.host}:{s.port} failed: {exc}") from None
        except smtplib.SMTPResponseException as exc:
            raise TemporaryFailure(
                f"SMTP server {s.host} refused the connection: {exc.smtp_code} "
                f"{_text(exc.smtp_error)}",
                exc.smtp_code,
                _text(exc.smtp_error),
            ) from None
        except (OSError, smtplib.SMTPException) as exc:
            raise TemporaryFailure(f"cannot reach SMTP server {s.host}:{s.port}: {exc}") from None
        self._sent_on_connection = 0
        return smtp

    def connect(self) -> None:
        """Open the connection, replace it after recycle_after messages, and check one
        that sat idle with NOOP; raise TemporaryFailure or SenderProblem."""
        if self._smtp is not None and self._sent_on_connection >= self.recycle_after:
            self.close()
        if self._smtp is not None and time.monotonic() - self._last_used > IDLE_CHECK_SECONDS:
            try:
                code, _ = self._smtp.noop()
            except (OSError, smtplib.SMTPException):
                code = 0
            if code != 250:
                self._drop()
        if self._smtp is None:
            self._smtp = self._connect()
        self._last_used = time.monotonic()

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        """Send one message; the reply to the final dot is returned with its queue id."""
        self.connect()
        try:
            smtp = self._open_transaction(sender, recipient)
            smtp.send(_dot_stuff(data))
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            raise TemporaryFailure(
                f"SMTP connection lost before the message was sent: {exc}"
            ) from None
        try:
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            raise UnclearOutcome(
                f"SMTP connection lost after the message was handed over: {exc}"
            ) from None
        self._last_used = time.monotonic()
        text = _text(reply)
        if code == 421:
            self._drop()
        if code != 250:
            raise classify(code, text, "data")
        self._sent_on_connection += 1
        return SendResult(code, text, _queue_id(text))

    def _open_transaction(self, sender: str, recipient: str) -> smtplib.SMTP:
        """MAIL, RCPT and DATA up to the 354. A reused connection that the server closed
        meanwhile (it hung up, or answers 421) is replaced once: nothing of this message
        has gone out yet, so that is safe."""
        assert self._smtp is not None
        try:
            return self._envelope(self._smtp, sender, recipient)
        except _Stale:
            pass
        except (OSError, smtplib.SMTPServerDisconnected):
            if self._sent_on_connection == 0:
                raise
        self._drop()
        self.connect()
        assert self._smtp is not None
        return self._envelope(self._smtp, sender, recipient)

    def _envelope(self, smtp: smtplib.SMTP, sender: str, recipient: str) -> smtplib.SMTP:
        """Send the envelope, in one write when the server offers PIPELINING (RFC 2920),
        which saves two round trips per message; raise the first refusal."""
        stages = (("mail", f"MAIL FROM:<{sender}>"), ("rcpt", f"RCPT TO:<{recipient}>"), ("data", "DATA"))
        pipelined = smtp.has_extn("pipelining")
        if pipelined:
            smtp.send("".join(f"{command}\r\n" for _, command in stages).encode("utf-8"))
        refusal: tuple[int, str, str] | None = None
        for stage, command in stages:
            if not pipelined:
                if refusal is not None:
                    break
                smtp.send(f"{command}\r\n".encode("utf-8"))
            code, reply = smtp.getreply()
            if code == 421:
                self._drop()
                if stage == "mail" and self._sent_on_connection:
                    raise _Stale()
                raise classify(code, _text(reply), stage)
            expected = (354,) if stage == "data" else (250, 251)
            if code in expected and stage == "data" and refusal is not None:
                # The server opened DATA although an earlier command failed: end it empty.
                smtp.send(b".\r\n")
                smtp.getreply()
            elif code not in expected and refusal is None:
                refusal = (code, _text(reply), stage)
        if refusal is not None:
            self._reset(smtp, refusal[0])
            raise classify(*refusal)
        return smtp

    def _reset(self, smtp: smtplib.SMTP, code: int) -> None:
        if code == 421:
            self._drop()
            return
        try:
            smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        if self._smtp is not None:
            try:
                self._smtp.close()
            finally:
                self._smtp = None

    def close(self) -> None:
        """Say QUIT and close the connection, if one is open."""
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass
        finally:
            self._drop()


class _Stale(Exception):
    """A reused connection turned out to be closed before this message began."""


class OutboxTransport:
    """Writes each message as an .eml file into a folder, for running without SMTP."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def connect(self) -> None:
        """Make sure the folder exists; a folder that cannot be made is a SenderProblem."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise SenderProblem(f"cannot create the outbox {self.folder}: {exc}") from None

    def send(self, sender: str, recipient: str, data: bytes) -> SendResult:
        """Write the exact bytes to a new file, atomically."""
        self.folder.mkdir(parents=True, exist_ok=True)
        name = new_name()
        temp = self.folder / f".{name}.tmp"
        try:
            temp.write_bytes(data)
            temp.replace(self.folder / name)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise SenderProblem(f"cannot write to the outbox {self.folder}: {exc}") from None
        return SendResult(250, f"written to outbox as {name}", name)

    def close(self) -> None:
        """Nothing to release."""


def make_transport(smtp_url: str | None, outbox: Path, timeout: float) -> Transport:
    """Return an SMTP transport for smtp_url (replies awaited up to timeout seconds), or the
    outbox folder when it is unset."""
    if smtp_url:
        return SMTPTransport(SMTPSettings.from_url(smtp_url, timeout))
    return OutboxTransport(outbox)


def _dot_stuff(data: bytes) -> bytes:
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data + b".\r\n"


def _queue_id(text: str) -> str | None:
    for pattern in _QUEUE_IDS:
        if match := pattern.search(text):
            return match.group(1)
    return None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply

