"""Transports: SMTP over one reused connection, the outbox folder, and error meaning."""

from __future__ import annotations

import datetime as dt
import logging
import time

import pytest

from digest.mail import outbox
from digest.mail.message import Mail
from digest.mail.transport import (
    OutboxTransport,
    RecipientRejected,
    SenderProblem,
    ServerTimeout,
    SMTPSettings,
    SMTPTransport,
    TemporaryFailure,
    Timeouts,
    UnclearOutcome,
    classify,
)
from tests.support.rawsmtp import RawSMTPServer
from tests.support.smtp import SMTPServer

TIMEOUT = 10  # seconds to wait for the test servers' replies


def _mail(to: str, body: str = "Hello\r\n.leading dot\r\n") -> bytes:
    return Mail(from_="A <a@example.org>", to=to, subject="Hi", text=body, html="<p>Hi</p>").as_bytes()


def test_smtp_sends_many_messages_over_one_connection(smtp_server: SMTPServer) -> None:
    """Several messages go over one session and arrive byte for byte, dot lines intact."""
    transport = SMTPTransport(SMTPSettings.from_url(smtp_server.url, timeout=TIMEOUT))
    payloads = [_mail(f"r{i}@example.org") for i in range(3)]
    results = [transport.send("bounce@example.org", f"r{i}@example.org", p) for i, p in enumerate(payloads)]
    transport.close()
    assert [r.code for r in results] == [250, 250, 250]
    assert results[0].queue_id == "Q000001"
    assert [m.data for m in smtp_server.received] == payloads
    assert smtp_server.received[0].mail_from == "bounce@example.org"
    assert ".leading dot" in smtp_server.received[0].message.get_body(("plain",)).get_content()


def test_smtp_auth() -> None:
    """AUTH with the URL's credentials works, and a wrong password is the sender's problem."""
    server = SMTPServer(auth=("user", "pa:ss")).start()
    try:
        good = SMTPTransport(
            SMTPSettings.from_url(f"smtp://user:pa%3Ass@127.0.0.1:{server.port}", timeout=TIMEOUT)
        )
        assert good.send("b@example.org", "r@example.org", _mail("r@example.org")).code == 250
        good.close()
        bad = SMTPTransport(
            SMTPSettings.from_url(f"smtp://user:wrong@127.0.0.1:{server.port}", timeout=TIMEOUT)
        )
        with pytest.raises(SenderProblem, match="535"):
            bad.send("b@example.org", "r@example.org", _mail("r@example.org"))
    finally:
        server.stop()
    assert len(server.received) == 1


def test_smtp_scripted_refusals(smtp_server: SMTPServer) -> None:
    """451 is temporary, 550 5.1.1 rejects the address, 554 5.7.1 is a sender problem."""
    replies = {
        "soft@example.org": "451 4.3.0 try again later",
        "gone@example.org": "550 5.1.1 no such user",
        "policy@example.org": "554 5.7.1 blocked by policy",
    }
    smtp_server.script = lambda stage, address: replies.get(address) if stage == "rcpt" else None
    transport = SMTPTransport(SMTPSettings.from_url(smtp_server.url, timeout=TIMEOUT))
    with pytest.raises(TemporaryFailure):
        transport.send("b@example.org", "soft@example.org", _mail("soft@example.org"))
    with pytest.raises(RecipientRejected) as rejected:
        transport.send("b@example.org", "gone@example.org", _mail("gone@example.org"))
    assert rejected.value.suppress
    with pytest.raises(SenderProblem):
        transport.send("b@example.org", "policy@example.org", _mail("policy@example.org"))
    # The same connection still delivers after the refusals.
    assert transport.send("b@example.org", "ok@example.org", _mail("ok@example.org")).code == 250
    transport.close()
    assert [m.rcpt_tos for m in smtp_server.received] == [("ok@example.org",)]


def test_smtp_unreachable_is_temporary() -> None:
    """No server listening: a temporary failure, so the caller retries later."""
    transport = SMTPTransport(SMTPSettings.from_url("smtp://127.0.0.1:9", timeout=2))
    with pytest.raises(TemporaryFailure, match="cannot reach"):
        transport.send("b@example.org", "r@example.org", _mail("r@example.org"))


@pytest.mark.parametrize(
    ("code", "text", "stage", "kind", "suppress"),
    [
        (421, "4.7.0 too many connections", "mail", TemporaryFailure, False),
        (451, "4.7.1 greylisted, try again later", "rcpt", TemporaryFailure, False),
        (554, "5.7.1 relay access denied", "rcpt", SenderProblem, False),
        (450, "4.2.1 mailbox busy", "rcpt", TemporaryFailure, False),
        (550, "5.1.1 user unknown", "rcpt", RecipientRejected, True),
        (550, "5.2.1 mailbox disabled", "rcpt", RecipientRejected, True),
        (550, "no such user here", "rcpt", RecipientRejected, True),
        (552, "5.2.2 mailbox full", "rcpt", RecipientRejected, False),
        (550, "5.7.26 unauthenticated sender", "data", SenderProblem, False),
        (535, "authentication failed", "mail", SenderProblem, False),
        (552, "5.3.4 message too big", "data", SenderProblem, False),
    ],
)
def test_classify(code: int, text: str, stage: str, kind: type, suppress: bool) -> None:
    """Each reply means what RFC 3463 says, and only address failures suppress."""
    error = classify(code, text, stage)
    assert type(error) is kind
    assert getattr(error, "suppress", False) is suppress


def test_outbox_writes_exact_bytes(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Without SMTP, each message becomes one complete .eml file."""
    outbox = OutboxTransport(tmp_path / "outbox")
    data = _mail("r@example.org")
    result = outbox.send("b@example.org", "r@example.org", data)
    files = list((tmp_path / "outbox").iterdir())
    assert [f.name for f in files] == [result.queue_id]
    assert files[0].read_bytes() == data


def test_outbox_lists_the_name_it_wrote(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The name a message is written under is one the outbox lists, with the time it was written."""
    folder = tmp_path / "outbox"
    before = dt.datetime.now(dt.UTC)
    result = OutboxTransport(folder).send("b@example.org", "r@example.org", _mail("r@example.org"))
    [entry] = outbox.list_messages(folder).entries
    assert entry.name == result.queue_id and before <= entry.written_at <= dt.datetime.now(dt.UTC)


def test_pipelining_sends_the_envelope_in_one_write() -> None:
    """A server offering PIPELINING gets MAIL, RCPT and DATA at once; refusals still mean
    what they say and the connection keeps working."""
    server = RawSMTPServer(refuse={"gone@example.org": "550 5.1.1 no such user"})
    transport = SMTPTransport(SMTPSettings.from_url(server.url, timeout=TIMEOUT))
    payloads = [_mail("r@example.org"), _mail("gone@example.org"), _mail("s@example.org")]
    try:
        first = transport.send("b@example.org", "r@example.org", payloads[0])
        with pytest.raises(RecipientRejected) as rejected:
            transport.send("b@example.org", "gone@example.org", payloads[1])
        second = transport.send("b@example.org", "s@example.org", payloads[2])
        transport.close()
    finally:
        server.close()
    assert rejected.value.suppress and rejected.value.code == 550
    assert (first.queue_id, second.queue_id) == ("RAW000001", "RAW000002")
    assert server.pipelined_envelopes == 3
    assert server.messages == [payloads[0], payloads[2]]


def test_without_pipelining_commands_go_one_by_one() -> None:
    """A server without PIPELINING gets one command at a time."""
    server = RawSMTPServer(pipelining=False)
    transport = SMTPTransport(SMTPSettings.from_url(server.url, timeout=TIMEOUT))
    try:
        assert transport.send("b@example.org", "r@example.org", _mail("r@example.org")).code == 250
        transport.close()
    finally:
        server.close()
    assert server.pipelined_envelopes == 0 and len(server.messages) == 1


def test_a_server_hanging_at_mail_times_out_once_logged_with_its_phase(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A server that stops answering at MAIL on a connection already used: the envelope
    timeout expires once (no second wait on a new connection), is logged naming the phase,
    and says the server is not answering; nothing of the message can have been accepted."""
    server = RawSMTPServer()
    phases = Timeouts(connect=2, greeting=2, envelope=1, data=2)
    transport = SMTPTransport(SMTPSettings.from_url(server.url, timeout=TIMEOUT, phases=phases))
    try:
        assert transport.send("b@example.org", "r@example.org", _mail("r@example.org")).code == 250
        server.hang_at = b"MAIL"
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="digest.mail.transport"), \
                pytest.raises(ServerTimeout) as hung:
            transport.send("b@example.org", "s@example.org", _mail("s@example.org"))
        waited = time.monotonic() - began
        transport.close()
    finally:
        server.close()
    assert hung.value.phase == "envelope" and "not answering: no reply at MAIL/RCPT within 1 s" in str(hung.value)
    assert 0.9 < waited < 1.9, waited
    assert server.connections == 1
    assert "timeout at MAIL/RCPT (1 s)" in caplog.text
    assert len(server.messages) == 1


def test_no_reply_to_the_end_of_data_within_its_timeout_is_unclear() -> None:
    """The end of the message went out and no reply came within DIGEST_SMTP_TIMEOUT: the
    server may have it, so it is unclear (and says the server timed out)."""
    server = RawSMTPServer()
    transport = SMTPTransport(SMTPSettings.from_url(server.url, timeout=1))
    server.hang_at = b"."  # the line of the final dot is read as a command after DATA
    try:
        with pytest.raises(UnclearOutcome) as unclear:
            transport.send("b@example.org", "r@example.org", _mail("r@example.org"))
    finally:
        server.close()
    assert unclear.value.timed_out and "within 1 s" in str(unclear.value)
