"""Mail transports behind one small interface: SMTP, or an outbox folder of .eml files.

A transport sends one message to one recipient and returns the server's reply, or
raises a SendError subclass that says what the caller may do next:

- TemporaryFailure: nothing was accepted; try again later.
- RecipientRejected: this address is permanently refused (5.1.x, 5.2.1).
- SenderProblem: our side is wrong (policy 5.7.x/4.7.x, authentication, TLS,
  configuration); stop sending and tell a person, blame no reader.
- UnclearOutcome: the connection died after the end of the message (the final dot) was
  written, so the server may have accepted it; never retry automatically.
- Withdrawn: the caller's last check (`before_end`, run once the message is written up
  to its final dot) said no; the connection is dropped, so the server takes nothing.

A connection lost, or a server that hung up or spoke, before the final dot was written is
a TemporaryFailure: the server cannot have accepted that message.
"""

from __future__ import annotations

import logging
import os
import re
import select
import smtplib
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from digest.mail.outbox import new_name

log = logging.getLogger(__name__)


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


class ServerTimeout(TemporaryFailure):
    """The server did not answer within a phase's timeout, before the end of the message;
    it is the server's trouble, not the reader's."""

    def __init__(self, message: str, phase: str) -> None:
        super().__init__(message)
        self.phase = phase


class UnclearOutcome(SendError):
    """The message may or may not have been accepted."""

    def __init__(self, message: str, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


class Withdrawn(SendError):
    """The caller withdrew the message before its end; nothing was accepted."""


# Called once a message is written up to its final dot; False withdraws it.
BeforeEnd = Callable[[], bool]


class Transport(Protocol):
    """Sends single-recipient messages over whatever connection it keeps."""

    def connect(self) -> None:
        """Make sure the next send finds a working connection; raise SendError if not."""
        ...

    def send(
        self, sender: str, recipient: str, data: bytes, before_end: BeforeEnd | None = None
    ) -> SendResult:
        """Send data from envelope sender to one recipient, asking before_end (if given)
        just before the end of the message; raise SendError on failure."""
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
class Timeouts:
    """Seconds each SMTP phase may take (DIGEST_SMTP_*_TIMEOUT); `end` is the wait for the
    reply to the final dot (DIGEST_SMTP_TIMEOUT)."""

    connect: float = 10.0
    greeting: float = 30.0  # the 220, EHLO, STARTTLS, AUTH
    envelope: float = 30.0  # MAIL, RCPT, the DATA command's 354 (and NOOP)
    data: float = 60.0  # writing the message
    end: float = 120.0


PHASES = {
    "connect": "connecting",
    "greeting": "the greeting/EHLO",
    "envelope": "MAIL/RCPT",
    "data": "DATA",
    "end": "the end of data",
}


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
    phases: Timeouts = Timeouts()

    @classmethod
    def from_url(cls, url: str, timeout: float, phases: Timeouts | None = None) -> SMTPSettings:
        """Parse smtp://user:pass@host:port[?starttls=required] or smtps://…; timeout is
        DIGEST_SMTP_TIMEOUT's seconds (the end of data), phases the others."""
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
            phases=Timeouts(**{**(phases or Timeouts()).__dict__, "end": timeout}),
        )


class _Phased:
    """smtplib's client with a connect timeout of its own: the socket is opened within
    connect_timeout, then every read waits the current phase's timeout."""

    connect_timeout = 10.0
    phase = "connect"

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        self.phase = "connect"
        sock: socket.socket = super()._get_socket(host, port, self.connect_timeout)  # type: ignore[misc]
        # The final dot is a write of its own after the `sending` commit: without NODELAY,
        # Nagle holds it until the server's delayed ACK of the message (~40 ms a message).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.settimeout(timeout)
        self.phase = "greeting"
        return sock


class _PhasedSMTP(_Phased, smtplib.SMTP):
    pass


class _PhasedSMTPSSL(_Phased, smtplib.SMTP_SSL):
    pass


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
        smtp: _PhasedSMTP | _PhasedSMTPSSL
        if s.implicit_tls:
            smtp = _PhasedSMTPSSL(timeout=s.phases.greeting, context=self._tls())
        else:
            smtp = _PhasedSMTP(timeout=s.phases.greeting)
        smtp.connect_timeout = s.phases.connect
        try:
            smtp.connect(s.host, s.port)
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
            smtp.close()
            if _timed_out(exc):
                raise self._timeout(smtp.phase) from None
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
                self._phase(self._smtp, "envelope")
                code, _ = self._smtp.noop()
            except (OSError, smtplib.SMTPException):
                code = 0
            if code != 250:
                self._drop()
        if self._smtp is None:
            self._smtp = self._connect()
        self._last_used = time.monotonic()

    def send(
        self, sender: str, recipient: str, data: bytes, before_end: BeforeEnd | None = None
    ) -> SendResult:
        """Send one message up to its final dot, ask before_end, check the server is still
        listening, write the dot; the reply to it is returned with its queue id."""
        self.connect()
        phase = "envelope"
        try:
            smtp = self._open_transaction(sender, recipient)
            phase = self._phase(smtp, "data")
            smtp.send(_dot_stuff(data))
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            if _timed_out(exc):
                raise self._timeout(phase) from None
            raise TemporaryFailure(
                f"SMTP connection lost before the end of the message: {exc}"
            ) from None
        try:
            if before_end is not None and not before_end():
                raise Withdrawn("message withdrawn before its end")
            self._still_listening(smtp)
        except BaseException:
            self._drop()  # without the final dot the server discards the message
            raise
        try:
            smtp.send(b".\r\n")
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            raise TemporaryFailure(
                f"SMTP connection lost before the end of the message: {exc}"
            ) from None
        try:
            self._phase(smtp, "end")
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            self._drop()
            if _timed_out(exc):
                end = self.settings.phases.end
                log.warning("SMTP server %s: timeout at the end of data (%g s)", self.settings.host, end)
                raise UnclearOutcome(
                    f"SMTP server {self.settings.host} sent no reply to the end of the message "
                    f"within {end:g} s",
                    timed_out=True,
                ) from None
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

    def _phase(self, smtp: smtplib.SMTP, phase: str) -> str:
        """Give the connection's reads and writes the timeout of phase; return phase."""
        if smtp.sock is not None:
            smtp.sock.settimeout(getattr(self.settings.phases, phase))
        return phase

    def _timeout(self, phase: str) -> ServerTimeout:
        """Log a phase's timeout and return the error that says so."""
        s = self.settings
        seconds = getattr(s.phases, phase)
        log.warning("SMTP server %s:%s: timeout at %s (%g s)", s.host, s.port, PHASES[phase], seconds)
        return ServerTimeout(
            f"SMTP server {s.host}:{s.port} not answering: no reply at {PHASES[phase]} "
            f"within {seconds:g} s",
            phase,
        )

    def _still_listening(self, smtp: smtplib.SMTP) -> None:
        """Raise TemporaryFailure (or the refusal) if the server hung up or spoke during
        DATA: a server that did cannot take this message, so it is not unclear."""
        sock = smtp.sock
        if sock is None:
            raise TemporaryFailure("SMTP connection lost before the end of the message")
        pending = isinstance(sock, ssl.SSLSocket) and sock.pending() > 0
        if not pending and not select.select([sock], [], [], 0)[0]:
            return
        try:
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            raise TemporaryFailure(
                f"SMTP server closed the connection before the end of the message: {exc}"
            ) from None
        if code >= 500:
            raise classify(code, _text(reply), "data")
        raise TemporaryFailure(
            f"SMTP server interrupted the message: {code} {_text(reply)}", code, _text(reply)
        )

    def _open_transaction(self, sender: str, recipient: str) -> smtplib.SMTP:
        """MAIL, RCPT and DATA up to the 354. A reused connection that the server closed
        meanwhile (it hung up, or answers 421) is replaced once: nothing of this message
        has gone out yet, so that is safe."""
        assert self._smtp is not None
        self._phase(self._smtp, "envelope")
        try:
            return self._envelope(self._smtp, sender, recipient)
        except _Stale:
            pass
        except (OSError, smtplib.SMTPServerDisconnected) as exc:
            # A server that hangs is not a closed connection: no second wait on a new one.
            if self._sent_on_connection == 0 or _timed_out(exc):
                raise
        self._drop()
        self.connect()
        assert self._smtp is not None
        self._phase(self._smtp, "envelope")
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
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise SenderProblem(f"cannot create the outbox {self.folder}: {exc}") from None

    def send(
        self, sender: str, recipient: str, data: bytes, before_end: BeforeEnd | None = None
    ) -> SendResult:
        """Write the exact bytes to a new private (0600) file, atomically (once before_end agrees)."""
        if before_end is not None and not before_end():
            raise Withdrawn("message withdrawn before its end")
        name = new_name()
        temp = self.folder / f".{name}.tmp"
        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Messages hold readers' live unsubscribe and preference links: owner only.
            descriptor = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(descriptor, "wb") as stream:
                stream.write(data)
            temp.replace(self.folder / name)
        except OSError as exc:
            temp.unlink(missing_ok=True)
            raise SenderProblem(f"cannot write to the outbox {self.folder}: {exc}") from None
        return SendResult(250, f"written to outbox as {name}", name)

    def close(self) -> None:
        """Nothing to release."""


def make_transport(
    smtp_url: str | None, outbox: Path, timeout: float, phases: Timeouts | None = None
) -> Transport:
    """Return an SMTP transport for smtp_url (the end of data awaited up to timeout seconds,
    the other phases up to phases), or the outbox folder when it is unset."""
    if smtp_url:
        return SMTPTransport(SMTPSettings.from_url(smtp_url, timeout, phases))
    return OutboxTransport(outbox)


def _timed_out(exc: BaseException) -> bool:
    """Return whether exc is a timeout, or smtplib's disconnect that wraps one."""
    return isinstance(exc, TimeoutError) or isinstance(exc.__context__, TimeoutError)


def _dot_stuff(data: bytes) -> bytes:
    """Return data dot-stuffed and ending in CRLF, without the final dot."""
    if data.startswith(b"."):
        data = b"." + data
    data = data.replace(b"\r\n.", b"\r\n..")
    if not data.endswith(b"\r\n"):
        data += b"\r\n"
    return data


def _queue_id(text: str) -> str | None:
    for pattern in _QUEUE_IDS:
        if match := pattern.search(text):
            return match.group(1)
    return None


def _text(reply: bytes | str) -> str:
    return reply.decode("utf-8", "replace") if isinstance(reply, bytes) else reply

