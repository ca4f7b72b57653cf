"""The MIME builder: structure, encodings and line lengths on the wire."""

from __future__ import annotations

import email
import email.policy

import pytest

from digest.mail.message import HeaderError, Mail, ascii_address, format_mailbox


def test_multipart_alternative_text_first_quoted_printable() -> None:
    """Text then HTML, both UTF-8 quoted-printable, every line within 998 octets."""
    html = "<p>" + "Grüße " * 400 + "</p>"
    data = Mail(
        from_=format_mailbox("Zoë's Digest", "news@example.org"),
        to=format_mailbox("Jürgen", "j@bücher.example"),
        subject="Größte Neuigkeiten der Woche — 🚀 und mehr",
        text="Hallo Jürgen,\n\n" + "lang " * 300,
        html=html,
        headers=[("List-Id", "Weekly <weekly.example.org>")],
    ).as_bytes()
    assert data.isascii()
    assert all(len(line) <= 998 for line in data.split(b"\r\n"))
    assert b"\n" not in data.replace(b"\r\n", b"")
    message = email.message_from_bytes(data, policy=email.policy.default)
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    assert all(p["Content-Transfer-Encoding"] == "quoted-printable" for p in parts)
    assert parts[1].get_content().strip() == html
    assert parts[0].get_content().replace("\r\n", "\n").startswith("Hallo Jürgen,\n\n")
    assert str(message["Subject"]) == "Größte Neuigkeiten der Woche — 🚀 und mehr"
    assert message["To"].addresses[0].display_name == "Jürgen"
    assert message["To"].addresses[0].domain == "xn--bcher-kva.example"


def test_idna_2008_not_2003() -> None:
    """faß.de keeps its ß (IDNA 2008) instead of becoming fass.de (the stdlib codec)."""
    assert ascii_address("a@faß.de") == "a@xn--fa-hia.de"


def test_non_ascii_local_part_refused() -> None:
    """Without SMTPUTF8 a non-ASCII local part cannot be sent; say so rather than mangle it."""
    with pytest.raises(HeaderError):
        ascii_address("jürgen@example.org")


def test_header_injection_refused() -> None:
    """A line break inside a header value is refused, never sent as a second header."""
    with pytest.raises(HeaderError):
        Mail(from_="a@example.org", to="b@example.org", subject="x", text="y",
             headers=[("X-Test", "a\nBcc: victim@example.org")]).as_bytes()
