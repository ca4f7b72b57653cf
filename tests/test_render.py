"""The digest message on the wire: structure, headers, content and personalization."""

from __future__ import annotations

import email
import email.policy
import hashlib
import random
import re
from email.message import EmailMessage
from email.utils import parsedate_to_datetime

import dkim
import pytest

from digest.domain.identity import parse_verp
from digest.domain.issue_mail import prepare_issue
from digest.mail.dkim import DKIMSigner, load_private_key, relaxed_body, relaxed_lines
from digest.mail.lint import lint_html
from digest.mail.mailer import Mailer
from digest.mail.message import quoted_printable
from digest.mail.render import (
    REFUSE_BYTES,
    WARN_BYTES,
    NotSendable,
    Reader,
    check_sendable,
    size_report,
)
from digest.mail.stencil import _Part, plain_values
from digest.mail.transport import OutboxTransport
from tests.support.dkim_keys import DOMAIN, SELECTOR, dkim_tags, dns_stub, write_key
from tests.support.issues import PostSpec, demo_issue, make_issue, section_ids

SINGLETONS = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "X-Digest-Delivery",
]


def _parse(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def _raw_headers(data: bytes, name: str) -> list[bytes]:
    head = data.split(b"\r\n\r\n", 1)[0]
    return re.findall(rb"(?im)^" + re.escape(name.encode()) + rb":.*(?:\r\n[ \t].*)*", head)


def _parts(data: bytes) -> tuple[str, str]:
    text, html = _parse(data).iter_parts()
    return text.get_content().replace("\r\n", "\n"), html.get_content().replace("\r\n", "\n")


def _flat(text: str) -> str:
    return " ".join(text.split())


def test_structure_and_every_header(app, db) -> None:  # type: ignore[no-untyped-def]
    """multipart/alternative (text, then HTML), UTF-8 QP, short CRLF lines, each header once."""
    issue = demo_issue(db)
    prepared = prepare_issue(db, issue.id, app.config)
    out = prepared.message_for(Reader(3, "AbCdEfGhIjKlMnOpQrStUv", "ada@example.com", "Ada"), 4711)
    data = out.data
    assert data.isascii() and b"\n" not in data.replace(b"\r\n", b"")
    assert max(len(line) for line in data.split(b"\r\n")) <= 998
    message = _parse(data)
    for name in SINGLETONS:
        assert len(message.get_all(name) or []) == 1, name
    assert "Return-Path" not in message
    assert message.get_content_type() == "multipart/alternative"
    parts = list(message.iter_parts())
    assert [p.get_content_type() for p in parts] == ["text/plain", "text/html"]
    for part in parts:
        assert part.get_content_charset() == "utf-8"
        assert part["Content-Transfer-Encoding"] == "quoted-printable"
    assert message["From"].addresses[0].addr_spec == "news@news.example.org"
    assert str(message["To"]) == "Ada <ada@example.com>"
    assert str(message["Subject"]) == issue.subject
    assert parsedate_to_datetime(message["Date"]).tzinfo is not None
    assert message["Message-ID"] == f"<digest.{issue.id}.d4711@news.example.org>"
    assert message["Reply-To"] == "editors@example.com"
    assert message["List-Id"] == "The Weekly Model <weekly-model.news.example.org>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert re.fullmatch(r"([^:]*:){0,3}[A-Za-z0-9]{5,15}", message["Feedback-ID"])
    assert message["X-Digest-Delivery"] == "4711"
    # The unsubscribe header: raw, unencoded, one HTTPS URI and one mailto, no address inside.
    (raw,) = _raw_headers(data, "List-Unsubscribe")
    assert b"=?" not in raw
    uris = re.findall(r"<([^>]+)>", str(message["List-Unsubscribe"]))
    assert [u.split(":")[0] for u in uris] == ["https", "mailto"]
    assert "ada@example.com" not in str(message["List-Unsubscribe"])
    token = uris[0].rsplit("/", 1)[1]
    assert len(token) >= 22 and f"unsubscribe+{token}@news.example.org" in uris[1]
    # The envelope: a VERP address that maps back to exactly this delivery.
    assert parse_verp(app.config, out.envelope_from, "ada@example.com") == "d4711"
    assert out.recipient == "ada@example.com"


def test_message_ids_differ_per_delivery_and_preview(app, db) -> None:  # type: ignore[no-untyped-def]
    """Each delivery has its own Message-ID; previews get a fresh one each time."""
    prepared = prepare_issue(db, demo_issue(db).id, app.config)
    reader = Reader(1, "uid1", "ada@example.com")
    ids = [_parse(prepared.message_for(reader, d).data)["Message-ID"] for d in (1, 2, None, None)]
    assert len(set(ids)) == 4
    preview = prepared.message_for(reader, None)
    assert "X-Digest-Delivery" not in _parse(preview.data)
    assert parse_verp(app.config, preview.envelope_from, "ada@example.com") == "preview"


def test_text_part_has_every_title_of_the_readers_sections(app, db) -> None:  # type: ignore[no-untyped-def]
    """The text part carries the reader's post titles, links, unsubscribe URL and postal address."""
    issue = demo_issue(db)
    prepared = prepare_issue(db, issue.id, app.config)
    chosen = section_ids(db, "Engineers", "Tools")
    reader = Reader(2, "uidGrace", "grace@example.com", "Grace", chosen, tracked=False)
    text, html = _parts(prepared.message_for(reader, 5).data)
    flat = _flat(text)
    mine = [p for s in prepared.sections if s.id in chosen for p in s.posts]
    others = [p for s in prepared.sections if s.id not in chosen for p in s.posts]
    assert mine and others
    for post in mine:
        assert post.title in flat and post.url in text and post.url in html
        assert post.title in html
    for post in others:
        assert post.title not in flat and post.title not in html
    unsubscribe = _parse(prepared.message_for(reader, 5).data)["List-Unsubscribe"]
    https = re.findall(r"<(https://[^>]+)>", str(unsubscribe))[0]
    assert f"Unsubscribe:\n{https}\n" in text and f'href="{https}"' in html
    assert "Manage preferences:\nhttps://news.example.org/preferences/" in text
    assert "The Weekly Model, 12 Example Street, 10115 Berlin, Germany" in text
    assert "12 Example Street" in html
    assert prepared.web_url in text and prepared.web_url in html
    assert "Hi Grace," in text and "Hi Grace," in html
    assert "Your sections: Engineers, Tools." in flat
    assert "because you subscribed as grace@example.com" in flat
    # Real text: wrapped lines, no markup.
    assert max(len(line) for line in text.splitlines() if "://" not in line) <= 72
    # A link stands on a line of its own, whole, so no label pushes it past 78 characters.
    linked = [line.strip() for line in text.splitlines() if "://" in line]
    assert linked and all(re.fullmatch(r"<?https?://\S+", line) for line in linked), linked
    assert "<" not in text.replace("<https", "")


def test_html_is_accessible_and_dark_mode_ready(app, db) -> None:  # type: ignore[no-untyped-def]
    """lang, role=presentation on every table, color-scheme meta and dark styles, alt text."""
    issue = make_issue(
        db,
        [
            PostSpec(
                "News",
                "With a picture",
                body="![A chart of costs](https://example.org/c.png)\n\nText.",
            )
        ],
        subject="Pictures",
        preheader="A chart and some text this week.",
    )
    prepared = prepare_issue(db, issue.id, app.config)
    _, html = _parts(prepared.message_for(Reader(1, "u1", "a@example.com"), 1).data)
    assert re.search(r'<html lang="en"', html)
    tables = re.findall(r"<table\b[^>]*>", html)
    assert tables and all('role="presentation"' in t for t in tables)
    assert '<meta name="color-scheme" content="light dark">' in html
    assert '<meta name="supported-color-schemes" content="light dark">' in html
    assert "@media (prefers-color-scheme: dark)" in html
    assert "<title>Pictures</title>" in html
    images = re.findall(r"<img\b[^>]*>", html)
    assert images and all(re.search(r'\balt="[^"]+"', img) for img in images)
    assert 'width="600"' in html and "max-width: 600px" in html
    # The preheader is visible text, the first thing in the body; nothing is hidden.
    body = html.split("<body", 1)[1].split(">", 1)[1]
    first_text = re.sub(r"<[^>]+>", " ", body).split()
    assert " ".join(first_text[:7]).rstrip("\u034f\u200c") == "A chart and some text this week."
    # Zero-width characters, not hidden text, fill the inbox snippet after the preheader.
    assert first_text[6].endswith("\u034f\u200c" * 90)
    assert "display: none" not in html and "display:none" not in html
    assert "max-height: 0" not in html and "mso-hide" not in html
    # Styles are inlined once per issue; no stylesheet is fetched.
    assert 'style="' in html and "<link" not in html


def test_personalization_never_leaks_between_readers(app, db) -> None:  # type: ignore[no-untyped-def]
    """Many readers rendered in any order each get only their own name, address and tokens."""
    issue = demo_issue(db)
    prepared = prepare_issue(db, issue.id, app.config)
    all_sections = sorted(s.id for s in prepared.sections)
    rng = random.Random(7)
    readers = [
        Reader(
            i,
            f"Uid{i:03d}{'x' * 18}",
            f"reader{i:03d}@example.com",
            "" if i % 4 == 0 else f"Name{i:03d} Family{i:03d}",
            frozenset(rng.sample(all_sections, rng.randint(0, 3))),
        )
        for i in range(40)
    ]

    def render(order: list[Reader]) -> dict[int, bytes]:
        return {r.subscriber_id: prepared.message_for(r, r.subscriber_id).data for r in order}  # type: ignore[misc]

    def without_date(data: bytes) -> bytes:
        return re.sub(rb"\r\nDate: [^\r]*", b"", data)

    first = render(readers)
    shuffled = readers[:]
    rng.shuffle(shuffled)
    for order in (list(reversed(readers)), shuffled):
        again = render(order)
        assert all(
            without_date(again[r.subscriber_id]) == without_date(first[r.subscriber_id])
            for r in readers
        )  # type: ignore[index]
    for reader in readers:
        data = first[reader.subscriber_id]  # type: ignore[index]
        text, html = _parts(data)
        decoded = text + html + str(_parse(data)["To"]) + str(_parse(data)["List-Unsubscribe"])
        assert reader.email in decoded and reader.subscription_uid in decoded
        if reader.name:
            greeting = f"Hi {reader.name.split()[0]},"
            assert greeting in text and greeting in html
        else:
            assert "Hi " not in text and 'class="greeting"' not in html
        for other in readers:
            if other is reader:
                continue
            assert other.email not in decoded
            assert other.subscription_uid not in decoded
            if other.name:
                assert other.name not in decoded


def test_non_ascii_names_and_subjects_survive(app, db) -> None:  # type: ignore[no-untyped-def]
    """A non-ASCII subject, name and IDN domain arrive intact in headers and both parts."""
    issue = make_issue(
        db,
        [
            PostSpec(
                "News", "Ünïcödé tïtle — 漢字 🚀", summary="Grüße aus Köln: „Anführungszeichen“."
            )
        ],
        subject="Größte Neuigkeiten der Woche — 🚀 und mehr",
        name="Zoë's Wöchentliche",
    )
    prepared = prepare_issue(db, issue.id, app.config)
    reader = Reader(1, "u1", "jurgen@bücher.example", "Jürgen Ñúñez 山田", frozenset())
    out = prepared.message_for(reader, 9)
    message = _parse(out.data)
    assert out.data.isascii()
    assert str(message["Subject"]) == "Größte Neuigkeiten der Woche — 🚀 und mehr"
    assert message["To"].addresses[0].display_name == "Jürgen Ñúñez 山田"
    assert message["To"].addresses[0].domain == "xn--bcher-kva.example"
    assert out.recipient == "jurgen@xn--bcher-kva.example"
    assert message["From"].addresses[0].display_name == "Zoë's Wöchentliche"
    text, html = _parts(out.data)
    for part in (text, html):
        assert "Hi Jürgen," in part
        assert "Ünïcödé tïtle — 漢字 🚀" in part
        assert "Größte Neuigkeiten der Woche — 🚀 und mehr" in part


def test_reader_name_is_escaped_in_html_and_literal_in_text(app, db) -> None:  # type: ignore[no-untyped-def]
    """A name with markup is shown as text in HTML and left as typed in the text part."""
    issue = make_issue(db, [PostSpec("News", "A post", summary="S")])
    prepared = prepare_issue(db, issue.id, app.config)
    name = '<img/src=x/onerror=alert(1)>"Bob"&Co'  # one word: the greeting prints all of it
    text, html = _parts(prepared.message_for(Reader(1, "u1", "bob@example.com", name), 1).data)
    assert "<img/src=x" not in html and "&lt;img/src=x/onerror=alert(1)&gt;" in html
    assert f"Hi {name}," in text


def test_script_in_markdown_never_reaches_the_html(app, db) -> None:  # type: ignore[no-untyped-def]
    """Script, event handlers and javascript: links in post bodies and the intro are neutralized."""
    evil = (
        "<script>alert('body')</script>\n\n"
        "[click](javascript:alert(1)) <img src=x onerror=alert(2)>\n\n"
        "![x](javascript:alert(3))"
    )
    issue = make_issue(
        db,
        [PostSpec("News", "Evil post", body=evil)],
        intro="<script>alert('intro')</script> *hello*",
    )
    prepared = prepare_issue(db, issue.id, app.config)
    text, html = _parts(prepared.message_for(Reader(1, "u1", "a@example.com"), 1).data)
    assert "<script" not in html.lower()
    assert not re.search(r"""(href|src)=["']?\s*javascript:""", html, re.IGNORECASE)
    assert "onerror" not in re.sub(r"&lt;.*?&gt;", "", html)
    assert "&lt;script&gt;" in html  # shown as text, as typed
    assert "<em>hello</em>" in html


def test_post_without_summary_shows_its_body(app, db) -> None:  # type: ignore[no-untyped-def]
    """A post with no summary shows its Markdown body: lists and links in both parts."""
    body = (
        "Three things we learned this week, from [the report](https://example.org/report):\n\n"
        "- evaluation sets beat intuition every single time we measured it carefully\n"
        "- chunk size matters\n\n"
        "```\nkeep  this   spacing\n```\n"
    )
    issue = make_issue(db, [PostSpec("Tools", "Body only", body=body)])
    prepared = prepare_issue(db, issue.id, app.config)
    text, html = _parts(prepared.message_for(Reader(1, "u1", "a@example.com", tracked=False), 1).data)
    assert '<a href="https://example.org/report"' in html and ">chunk size matters</li>" in html
    assert "<pre" in html and "keep  this   spacing" in html
    assert "from the report [1]:" in text
    assert "  [1] https://example.org/report" in text
    assert (
        "  - evaluation sets beat intuition every single time we measured it\n    carefully" in text
    )
    assert "      keep  this   spacing" in text


def test_reader_whose_sections_have_nothing_this_week(app, db) -> None:  # type: ignore[no-untyped-def]
    """A reader who chose only quiet sections is told so and pointed at the web issue."""
    issue = make_issue(db, [PostSpec("News", "Only news")])
    prepared = prepare_issue(db, issue.id, app.config)
    reader = Reader(1, "u1", "a@example.com", "", section_ids(db, "Careers"))
    text, html = _parts(prepared.message_for(reader, 1).data)
    assert "Only news" not in text and "Only news" not in html
    assert "Nothing new in your sections this week." in text
    assert "Nothing new in your sections this week." in html
    assert "Your sections: Careers." in _flat(text)


def test_prepared_issue_outlives_its_session(app, db) -> None:  # type: ignore[no-untyped-def]
    """A prepared issue renders new readers after the session that loaded it committed and closed."""
    issue = demo_issue(db)
    prepared = prepare_issue(db, issue.id, app.config)
    db.commit()
    db.close()
    text, _ = _parts(prepared.message_for(Reader(1, "u1", "a@example.com", "Late"), 1).data)
    assert "Hi Late," in text and "The Weekly Model" in text


def test_parts_are_encoded_line_by_line_like_the_whole() -> None:
    """Pre-encoding static lines and filling the rest gives the same bytes as encoding it all."""
    marker = re.compile("SLOT(name|email)SLOT")
    text = (
        "Grüße SLOTnameSLOT, trailing space \n" + "x" * 200 + " = equals\n\tTab\n"
        "SLOTemailSLOT and SLOTnameSLOT\n.\nlast\n"
    )
    values = {"name": "Zoë", "email": "z@example.org"}
    filled = text.replace("SLOTnameSLOT", "Zoë").replace("SLOTemailSLOT", "z@example.org")
    part = _Part(text, marker)
    assert part.encoded(values) == quoted_printable(filled)
    assert part.filled(values) == filled


def test_plain_values_are_joined_like_the_whole_is_encoded() -> None:
    """Lines whose values need no encoding (signed links) are joined from pieces encoded
    once: the bytes and their DKIM relaxed form equal encoding every line whole, at and
    past the 76-character line limit, around spaces, tabs and "=", and for "." alone."""
    marker = re.compile("SLOT(link|url|name)SLOT")
    lines = ["href=\"SLOTlinkSLOT\"", "  [1]  SLOTurlSLOT  tail ", "\tSLOTlinkSLOT=SLOTurlSLOT",
             "SLOTlinkSLOT", "a  b SLOTnameSLOT SLOTlinkSLOT", "SLOTurlSLOT"]
    text = "static  line \n" + "\n".join(lines) + "\n.\nend\n"
    part = _Part(text, marker)
    for width in range(1, 90):
        for values in ({"link": "h" * width, "url": "https://x.org/c/Ab-_9/3.xY", "name": "."},
                       {"link": ".", "url": "u" * width, "name": "Zoë = é"}):
            filled = text
            for slot, value in values.items():
                filled = filled.replace(f"SLOT{slot}SLOT", value)
            plain = plain_values(values)
            digest = hashlib.sha256()
            assert part.encoded(values, digest, plain) == quoted_printable(filled), width
            assert digest.digest() == hashlib.sha256(relaxed_lines(quoted_printable(filled))).digest()


def test_size_report_warns_then_refuses(app, db) -> None:  # type: ignore[no-untyped-def]
    """The editor is warned above 75 KB of HTML and sending is refused above 90 KB, well before
    Gmail, whose own rewriting adds bytes, clips near 100 KB."""

    def issue_of(n: int):  # type: ignore[no-untyped-def]
        return make_issue(
            db, [PostSpec("News", f"Post {i}", summary="word " * 200) for i in range(n)]
        )

    small = size_report(prepare_issue(db, issue_of(2).id, app.config))
    assert not small.warn and not small.refuse and small.bytes < WARN_BYTES
    per_post = size_report(prepare_issue(db, issue_of(3).id, app.config)).bytes - small.bytes
    warn_n = 2 + (WARN_BYTES - small.bytes) // per_post + 1
    warned = prepare_issue(db, issue_of(warn_n).id, app.config)
    report = check_sendable(warned)
    assert report.warn and not report.refuse and WARN_BYTES < report.bytes <= REFUSE_BYTES
    assert "close to the 90 KB this service sends (Gmail clips near 100 KB)" in report.message
    assert (WARN_BYTES, REFUSE_BYTES) == (75_000, 90_000)
    refuse_n = 2 + (REFUSE_BYTES - small.bytes) // per_post + 1
    refused = prepare_issue(db, issue_of(refuse_n).id, app.config)
    with pytest.raises(NotSendable, match="over the 90 KB this service sends: Gmail clips messages near 100 KB") as info:
        check_sendable(refused)
    assert "unsubscribe link" in str(info.value)
    html, _ = refused.parts_for(Reader(1, "u1", "a@example.com"))
    assert REFUSE_BYTES - per_post < len(html.encode()) <= size_report(refused).bytes


def test_empty_postal_address_refuses_sending(app, db) -> None:  # type: ignore[no-untyped-def]
    """An issue of a newsletter without a postal address cannot be sent, and says so."""
    issue = make_issue(db, [PostSpec("News", "A post")], postal_address="  ")
    with pytest.raises(NotSendable, match="no postal address"):
        check_sendable(prepare_issue(db, issue.id, app.config))


def test_a_filter_on_a_per_reader_value_is_caught(app, db) -> None:  # type: ignore[no-untyped-def]
    """A template that changes a reader's value with a filter fails loudly, not with garbage."""
    from jinja2 import DictLoader, TemplateError

    issue = make_issue(db, [PostSpec("News", "A post", summary="S")])
    prepared = prepare_issue(db, issue.id, app.config)
    prepared.env = prepared.env.overlay(
        loader=DictLoader(
            {
                "emails/digest.html": "<p>Hi {{ reader.name | upper }}</p>",
                "emails/digest.txt": "Hi {{ reader.name }}",
            }
        )
    )
    with pytest.raises(TemplateError, match="reader.name"):
        prepared.message_for(Reader(1, "u1", "a@example.com", "Ada"), 1)


def test_sections_for_tells_the_sender_who_gets_nothing_new(app, db) -> None:  # type: ignore[no-untyped-def]
    """sections_for lists a reader's sections with posts; empty when theirs are all quiet."""
    issue = make_issue(db, [PostSpec("News", "Only news"), PostSpec("Tools", "A tool")])
    prepared = prepare_issue(db, issue.id, app.config)
    everyone = Reader(1, "u1", "a@example.com")
    assert [s.name for s in prepared.sections_for(everyone)] == ["News", "Tools"]
    quiet = Reader(2, "u2", "b@example.com", section_ids=section_ids(db, "Careers"))
    assert prepared.sections_for(quiet) == []
    gone = Reader(3, "u3", "c@example.com", section_ids=frozenset({10_000}))
    assert [s.name for s in prepared.sections_for(gone)] == ["News", "Tools"]


def test_form_line_breaks_and_a_broken_subject_stay_harmless(app, db) -> None:  # type: ignore[no-untyped-def]
    """CRLF from browser forms and a subject with a line break give clean lines and one Subject."""
    issue = make_issue(
        db,
        [PostSpec("News", "A post", summary="First line\r\nsecond line\r\n\r\nThird.")],
        subject="Two\r\nlines\nBcc: victim@example.org",
        intro="Hello\r\n\r\n- one\r\n- two\r\n",
    )
    prepared = prepare_issue(db, issue.id, app.config)
    data = prepared.message_for(Reader(1, "u1", "a@example.com"), 1).data
    assert b"\n" not in data.replace(b"\r\n", b"") and b"\r" not in data.replace(b"\r\n", b"")
    message = _parse(data)
    assert message["Subject"] == "Two lines Bcc: victim@example.org" and message["Bcc"] is None
    text, html = _parts(data)
    assert "  First line\n  second line\n\n  Third." in text
    assert ">one</li>" in html and "- one\n- two" in text


def test_body_hash_is_the_signers_and_the_signature_verifies(app, db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The body hash message_for computes from pre-canonicalized lines is the one the DKIM
    signer would compute (indented text, runs of spaces in <pre>, a name with a tab), and
    a message signed with it verifies with dkimpy."""
    body = "From the report:\n\n```\n\tkeep  this   spacing  \n```\n\n- a list  item"
    issue = make_issue(db, [PostSpec("Tools", "Body only", body=body)])
    prepared = prepare_issue(db, issue.id, app.config)
    outgoing = prepared.message_for(Reader(1, "u1", "a@example.com", "Zoë  \tQ"), 1)
    message_body = outgoing.data.partition(b"\r\n\r\n")[2]
    assert b"  " in message_body  # the case that needs canonicalizing
    assert outgoing.body_hash == hashlib.sha256(relaxed_body(message_body)).digest()
    signer = DKIMSigner(DOMAIN, SELECTOR, load_private_key(write_key(tmp_path, "rsa").read_bytes()))
    signed = Mailer(OutboxTransport(tmp_path), signer).sign(outgoing.data, outgoing.body_hash)
    assert signed == signer.sign(outgoing.data, timestamp=int(dkim_tags(signed)["t"]))
    assert dkim.verify(signed, dnsfunc=dns_stub(signer.dns_record()))


def test_html_holds_in_outlook_and_where_styles_are_dropped(app, db) -> None:  # type: ignore[no-untyped-def]
    """After inlining: Outlook's 600 px ghost table and settings, the lang wrapper, data detectors
    tamed, phone and dark rules in separate blocks, and post Markdown shaped for mail clients."""
    body = (
        "# Big heading\n\nSome text.\n\n![A wide chart](https://example.org/wide.png)\n\n"
        "> A quote\n\n```\ncode\n```\n\n| Item | Cost |\n|:-----|-----:|\n| GPU | 9 |\n"
    )
    issue = make_issue(db, [PostSpec("News", "Charts", body=body)], subject="Wide & tall")
    prepared = prepare_issue(db, issue.id, app.config)
    _, html = _parts(prepared.message_for(Reader(1, "u1", "a@example.com"), 1).data)
    assert 'xmlns:o="urn:schemas-microsoft-com:office:office"' in html
    assert "<o:PixelsPerInch>96</o:PixelsPerInch>" in html
    assert re.search(r'<!--\[if mso\]><table role="presentation" align="center" width="600"', html)
    assert html.count("<!--[if mso]></td></tr></table><![endif]-->") == 1
    wrapper = re.search(r'<div [^>]*role="article"[^>]*>', html)
    assert wrapper and 'lang="en"' in wrapper[0] and 'dir="ltr"' in wrapper[0]
    assert 'aria-label="Wide &amp; tall"' in wrapper[0]
    assert 'name="format-detection"' in html and "a[x-apple-data-detectors]" in html
    styles = re.findall(r"<style>(.*?)</style>", html, re.DOTALL)
    phone = [s for s in styles if "max-width: 620px" in s]
    dark = [s for s in styles if "prefers-color-scheme: dark" in s]
    assert len(phone) == len(dark) == 1 and phone != dark
    # Outlook sizes images by their attribute; everyone else by the column.
    image = re.search(r"<img\b[^>]*>", html)
    assert image and 'width="518"' in image[0] and "display: block" in image[0]
    assert not re.search(r"<p[^>]*>\s*<img", html)
    # Headings rank below the post's h3; tables keep alignment and say what a header labels.
    assert "<h4" in html and "<h1>Big" not in html and "<h1 " not in html.split("</h1>", 1)[1]
    assert re.search(r'<th align="right" scope="col"[^>]*>Cost</th>', html)
    assert re.search(r'<td align="right"[^>]*>9</td>', html)
    # Padding and rules live on table cells, which Outlook pads and borders.
    for cell in ("quote-cell", "code-cell", "post-cell", "section-title-cell", "toc-cell"):
        assert re.search(rf'<td class="{cell}[^"]*" style="[^"]*padding', html), cell
    assert not re.search(r'<(div|p|h\d|pre|blockquote)\b[^>]*style="[^"]*(padding|border)', html)
    # Line heights in px under Outlook's exact rule; no em letter-spacing, no wrapping CSS
    # that Outlook, Gmail or Yahoo ignore.
    inline = " ".join(re.findall(r'style="([^"]*)"', html))
    assert not re.search(r"line-height:\s*[\d.]+(;|$)", inline)
    assert not re.search(r"letter-spacing:\s*-?[\d.]+em", inline)
    for prop in ("overflow-wrap", "word-break", "white-space"):
        assert prop not in inline, prop  # pre-wrap stays a <style> enhancement, never inline
    assert lint_html(html) == []
