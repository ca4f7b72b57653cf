"""Mail that comes back, written the way real servers write it.

`dsn` is a bounce in Postfix's layout (RFC 3464: a human-readable part, the
message/delivery-status report, the returned headers or the whole original), `arf` a
complaint in the layout of the Yahoo and Microsoft feedback loops (RFC 5965), and
`mailto_request` what a mail client sends for a List-Unsubscribe mailto: URI. All are
built here, by hand, so the tests need no sample files.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.smtp import Received

REPORTING_MTA = "mx.example.com"


def returned_headers(received: Received, return_path: bool = True) -> str:
    """Return the header block a report quotes from a message we sent.

    The receiving server adds the Return-Path (our VERP address); feedback loops that
    redact the report drop it (return_path=False).
    """
    head = received.data.split(b"\r\n\r\n", 1)[0].decode("ascii")
    return f"Return-Path: <{received.mail_from}>\r\n{head}" if return_path else head


def dsn(
    to: str,
    status: str,
    diagnostic: str,
    *,
    action: str = "failed",
    final_recipient: str = "reader@example.com",
    original: str = "",
    whole_original: bool = False,
    delivered_to: str = "",
) -> bytes:
    """Return a Postfix-style delivery status notification sent to `to`.

    original is the returned message's header block (text/rfc822-headers), or with
    whole_original its headers and a body (message/rfc822). delivered_to adds the
    Delivered-To header the receiving Postfix puts on local deliveries.
    """
    boundary = "3F2A1C0B9E.1795935605/mx.example.com"
    head = f"Delivered-To: {delivered_to}\r\n" if delivered_to else ""
    # Postfix folds a long diagnostic onto continuation lines.
    folded = diagnostic.replace(": ", ":\r\n    ", 1)
    returned = ""
    if original:
        kind = "message/rfc822" if whole_original else "text/rfc822-headers"
        body = "\r\n\r\nThe original message's body.\r\n" if whole_original else "\r\n"
        returned = (
            f"--{boundary}\r\n"
            "Content-Description: Undelivered Message Headers\r\n"
            f"Content-Type: {kind}\r\n\r\n{original}{body}\r\n"
        )
    return (
        f"Return-Path: <>\r\n{head}"
        f"Received: by {REPORTING_MTA} (Postfix) id 3F2A1C0B9E; Mon, 30 Nov 2026 08:00:05 +0100\r\n"
        "Date: Mon, 30 Nov 2026 08:00:05 +0100 (CET)\r\n"
        f"From: MAILER-DAEMON@{REPORTING_MTA} (Mail Delivery System)\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"To: {to}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: multipart/report; report-type=delivery-status;\r\n"
        f'\tboundary="{boundary}"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n"
        f"Message-Id: <20261130070005.3F2A1C0B9E@{REPORTING_MTA}>\r\n"
        "\r\n"
        "This is a MIME-encapsulated message.\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Notification\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\n\r\n"
        f"This is the mail system at host {REPORTING_MTA}.\r\n\r\n"
        "I'm sorry to have to inform you that your message could not\r\n"
        "be delivered to one or more recipients. It's attached below.\r\n\r\n"
        f"<{final_recipient}>: host {REPORTING_MTA}[192.0.2.25] said: {diagnostic}\r\n"
        "    (in reply to RCPT TO command)\r\n\r\n"
        f"--{boundary}\r\n"
        "Content-Description: Delivery report\r\n"
        "Content-Type: message/delivery-status\r\n\r\n"
        f"Reporting-MTA: dns; {REPORTING_MTA}\r\n"
        "X-Postfix-Queue-ID: 3F2A1C0B9E\r\n"
        "Arrival-Date: Mon, 30 Nov 2026 08:00:01 +0100 (CET)\r\n\r\n"
        f"Final-Recipient: rfc822; {final_recipient}\r\n"
        f"Original-Recipient: rfc822;{final_recipient}\r\n"
        f"Action: {action}\r\n"
        f"Status: {status}\r\n"
        f"Remote-MTA: dns; {REPORTING_MTA}\r\n"
        f"Diagnostic-Code: smtp; {folded}\r\n\r\n"
        f"{returned}--{boundary}--\r\n"
    ).encode()


def arf(
    to: str,
    feedback_type: str = "abuse",
    *,
    original_mail_from: str = "",
    original: str = "",
    user_agent: str = "Yahoo!-Mail-Feedback/2.0",
) -> bytes:
    """Return a feedback-loop complaint (ARF) sent to `to`, quoting original's headers."""
    boundary = "----=_Part_60521_1449813237.1795935603"
    mail_from = f"Original-Mail-From: <{original_mail_from}>\r\n" if original_mail_from else ""
    return (
        "From: feedback@arf.mail.yahoo.com\r\n"
        f"To: {to}\r\n"
        "Date: Mon, 30 Nov 2026 07:00:03 +0000\r\n"
        "Subject: FW: The Weekly Model\r\n"
        "Message-ID: <1795935603.60521@arf.mail.yahoo.com>\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=feedback-report; boundary="{boundary}"\r\n'
        "\r\n"
        f"--{boundary}\r\n"
        'Content-Type: text/plain; charset="us-ascii"\r\n'
        "Content-Transfer-Encoding: 7bit\r\n\r\n"
        "This is an email abuse report for an email message received from IP\r\n"
        "203.0.113.7 on Mon, 30 Nov 2026 07:00:03 +0000.\r\n"
        f"--{boundary}\r\n"
        "Content-Type: message/feedback-report\r\n\r\n"
        f"Feedback-Type: {feedback_type}\r\n"
        f"User-Agent: {user_agent}\r\n"
        "Version: 1\r\n"
        f"{mail_from}"
        "Original-Rcpt-To: <reader@example.com>\r\n"
        "Arrival-Date: Mon, 30 Nov 2026 07:00:03 +0000\r\n"
        "Reported-Domain: news.example.org\r\n"
        "Source-IP: 203.0.113.7\r\n"
        "Authentication-Results: mta1.mail.example; dkim=pass header.d=news.example.org\r\n"
        "\r\n"
        f"--{boundary}\r\n"
        "Content-Type: text/rfc822-headers\r\n\r\n"
        f"{original}\r\n"
        f"--{boundary}--\r\n"
    ).encode()


def mailto_request(mailto: str, sender: str, delivered_to: bool = True) -> bytes:
    """Return the email a mail client sends for a List-Unsubscribe mailto: URI.

    With delivered_to the receiving Postfix's Delivered-To header is on it, as when it
    pipes the message into `digest bounces ingest`, in lower case as Postfix may write
    it (the token in it no longer verifies; the To header still carries it intact).
    """
    parts = urlsplit(mailto)
    address = unquote(parts.path)
    subject = parse_qs(parts.query).get("subject", ["unsubscribe"])[0]
    head = f"Delivered-To: {address.lower()}\r\n" if delivered_to else ""
    return (
        f"{head}From: {sender}\r\n"
        f"To: {address}\r\n"
        f"Subject: {subject}\r\n"
        "Date: Mon, 30 Nov 2026 09:12:00 +0100\r\n"
        "Message-ID: <unsubscribe-request@mail.example.com>\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        "This message was automatically generated by Mail to unsubscribe you.\r\n"
    ).encode()
