"""DKIM signing with OpenSSL, proven by dkimpy's own verifier."""

from __future__ import annotations

import re
from pathlib import Path

import dkim
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from digest import create_app
from digest.core.config import ConfigError
from digest.mail.dkim import DKIMSigner, KeyFileError, load_private_key, signer_from_config
from digest.mail.message import Mail, format_mailbox
from tests.support.dkim_keys import DOMAIN, SELECTOR, dkim_tags, dns_stub, write_key

SIGNED = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "MIME-Version",
    "Content-Type",
]


def _message() -> bytes:
    return Mail(
        from_=format_mailbox("Zoë's Weekly", f"news@{DOMAIN}"),
        to=format_mailbox("Jürgen", "j@example.com"),
        subject="Größte Neuigkeiten — 🚀",
        text="Hallo Jürgen,\n\n\ttabbed  and  spaced   \n\n\n",
        html="<p>Grüße</p>\n<pre>  a\t b  </pre>\n",
        headers=[
            ("List-Id", f"Weekly <weekly.{DOMAIN}>"),
            (
                "List-Unsubscribe",
                f"<https://{DOMAIN}/unsubscribe/tok>, <mailto:unsubscribe+tok@{DOMAIN}>",
            ),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
            ("Feedback-ID", "issue1:weekly:digest:newsexampleorg"),
        ],
        message_id=f"<digest.1.d1@{DOMAIN}>",
        reply_to=f"editors@{DOMAIN}",
    ).as_bytes()


@pytest.fixture(params=["rsa", "ed25519"])
def signer(request: pytest.FixtureRequest, tmp_path: Path) -> DKIMSigner:
    """A signer of each key type."""
    key = load_private_key(write_key(tmp_path, request.param).read_bytes())
    return DKIMSigner(DOMAIN, SELECTOR, key)


def _replace_header(data: bytes, name: str, new_value: bytes) -> bytes:
    pattern = re.compile(
        rb"(?im)^(" + re.escape(name.encode()) + rb":)[^\r\n]*(\r\n[ \t][^\r\n]*)*"
    )
    changed, count = pattern.subn(lambda m: m.group(1) + b" " + new_value, data, count=1)
    assert count == 1, name
    return changed


def test_signature_verifies_with_dkimpy(signer: DKIMSigner) -> None:
    """dkimpy verifies our rsa-sha256 and ed25519-sha256 signatures against the DNS record."""
    message = _message()
    signed = signer.sign(message)
    assert dkim.verify(signed, dnsfunc=dns_stub(signer.dns_record()))
    tags = dkim_tags(signed)
    assert tags["a"] == signer.algorithm
    assert tags["a"] == ("rsa-sha256" if "k=rsa" in signer.dns_record() else "ed25519-sha256")
    assert tags["c"] == "relaxed/relaxed"
    assert tags["d"] == DOMAIN and tags["s"] == SELECTOR
    assert signed.endswith(b"\r\n" + message)  # the message itself is untouched
    assert all(len(line) <= 78 for line in signed.split(b"\r\n\r\n")[0].split(b"\r\n")[:8])


def test_header_list_covers_and_oversigns(signer: DKIMSigner) -> None:
    """h= lists every header a receiver judges by; From and the unsubscribe pair once more."""
    names = dkim_tags(signer.sign(_message()))["h"].lower().split(":")
    for name in SIGNED:
        assert name.lower() in names, name
    assert names.count("from") == 2
    assert names.count("list-unsubscribe") == 2
    assert names.count("list-unsubscribe-post") == 2
    assert names.count("to") == 1


@pytest.mark.parametrize("name", SIGNED)
def test_touching_a_signed_header_breaks_the_signature(signer: DKIMSigner, name: str) -> None:
    """Changing any signed header's value makes dkimpy reject the message."""
    signed = signer.sign(_message())
    tampered = _replace_header(signed, name, b"tampered")
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dns_stub(signer.dns_record()))


def test_touching_the_body_breaks_the_signature(signer: DKIMSigner) -> None:
    """One changed character of the body makes dkimpy reject the message."""
    signed = signer.sign(_message())
    tampered = signed.replace(b"Gr=C3=BC=C3=9Fe", b"Gr=C3=BC=C3=9FE")
    assert tampered != signed
    assert not dkim.verify(tampered, dnsfunc=dns_stub(signer.dns_record()))


@pytest.mark.parametrize(
    "added",
    [
        b"List-Unsubscribe: <https://evil.example/u>\r\n",
        b"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n",
        b"From: mallory@evil.example\r\n",
    ],
)
def test_an_added_oversigned_header_breaks_the_signature(signer: DKIMSigner, added: bytes) -> None:
    """A second From or List-Unsubscribe(-Post) added after signing fails verification."""
    signed = signer.sign(_message())
    head, body = signed.split(b"\r\n\r\n", 1)
    assert not dkim.verify(
        head + b"\r\n" + added + b"\r\n" + body, dnsfunc=dns_stub(signer.dns_record())
    )
    assert not dkim.verify(added + signed, dnsfunc=dns_stub(signer.dns_record()))


def test_relaxed_canonicalization_survives_refolding(signer: DKIMSigner) -> None:
    """A relay that refolds a header or pads spaces does not break a relaxed/relaxed signature."""
    signed = signer.sign(_message())
    refolded = signed.replace(
        b"List-Unsubscribe-Post: List-Unsubscribe",
        b"List-Unsubscribe-Post:\r\n \t List-Unsubscribe",
    )
    refolded = refolded.replace(b"tabbed", b"tabbed \t", 1)
    assert refolded != signed
    assert dkim.verify(refolded, dnsfunc=dns_stub(signer.dns_record()))


@pytest.mark.parametrize(
    ("kind", "fmt"), [("rsa", "pkcs1"), ("rsa", "pkcs8"), ("ed25519", "pkcs8"), ("ed25519", "seed")]
)
def test_key_formats(tmp_path: Path, kind: str, fmt: str) -> None:
    """PEM keys (PKCS#1, PKCS#8) and dknewkey's base64 Ed25519 seed all load and sign."""
    signer = DKIMSigner(
        DOMAIN, SELECTOR, load_private_key(write_key(tmp_path, kind, fmt).read_bytes())
    )
    assert signer.dns_record().startswith(f"v=DKIM1; k={kind}; p=")
    assert dkim.verify(signer.sign(_message()), dnsfunc=dns_stub(signer.dns_record()))


def _overrides(tmp_path: Path, key_file: Path) -> dict[str, object]:
    return {
        "DATABASE_URL": f"sqlite:///{tmp_path / 'x.sqlite3'}",
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "SECRET_KEY": "x",
        "DKIM_DOMAIN": DOMAIN,
        "DKIM_SELECTOR": SELECTOR,
        "DKIM_KEY_FILE": str(key_file),
    }


# A 768-bit RSA key (cryptography refuses to generate one): far too weak for DKIM.
WEAK_RSA = b"""-----BEGIN PRIVATE KEY-----
MIIB5QIBADANBgkqhkiG9w0BAQEFAASCAc8wggHLAgEAAmEA1c3wNQXlqw7L4WX+
cM1MdIoGmPAaYvDSVDG0kjmhTcfxf2ZI9eFwHaQ0PykjzZTFKrahtPlyucg2FSwo
3919TbrYgTeqGyb1EfAseLSIjnVrA73Pib1DX6RZRfH6/rdFAgMBAAECYCE4cXVb
qDbvAqDQHzvZumJ1O9cxn3f2IUgxvPPnfne+dHiuJPIHiEsiw3d45fZAgiVKQggs
EF9bgJ8jBnXFaO65Rwm/H052TsKMI4xbWFZ89Ow+cqDvN2qaivZFNvvCdQIxAP8T
TEp2YY9Fu6m5IeeJYeGDn38X3ybOwqlk44FNYlvfI2wJHpk8immZ3OCeWX170wIx
ANaUV5epMM6AKnVp4uyquL6+rsNe8WdlAz/exbk1mycdpdzBhAepHRKmt2doqqgJ
hwIxAMi/7GwyTUgQTskeHnP2qOVuzQmexQ7q7UOaVn9+YuoBbQRrDPz3K8w+vxq9
JZtf5wIwPj+ieXi3k/BSYOVq00VjetJOWJb+aQRAwRKbQXNvoxVSvIvXBXHl4TdE
FVejykOZAjEAv8tmnsGT5PoWx05xTknXvzyo9I8Vrcum/W7d5GdgqOOS5SAutMzE
8M6BXn6EXbA8
-----END PRIVATE KEY-----
"""


def _ec_key() -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"not a key at all", "no usable DKIM key"),
        (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "no usable DKIM key"),
        (WEAK_RSA, "too short"),
        (_ec_key(), "cannot sign DKIM"),
    ],
)
def test_unusable_key_stops_start_up(tmp_path: Path, content: bytes, says: str) -> None:
    """A malformed, weak or wrong-type key file is a start-up error naming DIGEST_DKIM_KEY_FILE."""
    key_file = tmp_path / "bad.key"
    key_file.write_bytes(content)
    with pytest.raises(ConfigError, match="DIGEST_DKIM_KEY_FILE") as info:
        create_app(_overrides(tmp_path, key_file))
    assert says in str(info.value)


def test_unreadable_key_file_stops_start_up(tmp_path: Path) -> None:
    """A key file that exists but cannot be read is named in the start-up error."""
    key_file = tmp_path / "dir.key"
    key_file.mkdir()
    with pytest.raises(ConfigError, match="DIGEST_DKIM_KEY_FILE"):
        create_app(_overrides(tmp_path, key_file))


def test_unusable_key_is_dkims_own_error_naming_the_file(tmp_path: Path) -> None:
    """Asked directly (not at start-up), the signer refuses an unusable key with its own
    error naming the file; config turns that into the ConfigError shown above."""
    key_file = tmp_path / "garbage.key"
    key_file.write_bytes(b"not a key at all")
    config = {"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR, "DKIM_KEY_FILE": str(key_file)}
    with pytest.raises(KeyFileError, match=f"holds no usable DKIM key: {re.escape(str(key_file))}"):
        signer_from_config(config)


def test_key_is_loaded_once_per_process(tmp_path: Path) -> None:
    """Two lookups of the configured signer return the same loaded key."""
    key_file = write_key(tmp_path, "ed25519")
    config = {"DKIM_DOMAIN": DOMAIN, "DKIM_SELECTOR": SELECTOR, "DKIM_KEY_FILE": str(key_file)}
    first = signer_from_config(config)
    key_file.write_bytes(b"replaced on disk")
    assert signer_from_config(config) is first
    assert signer_from_config({}) is None


def test_dkim_record_command_prints_the_published_key(tmp_path: Path) -> None:
    """`digest dkim record` prints the TXT record that makes our signatures verify."""
    app = create_app(_overrides(tmp_path, write_key(tmp_path, "rsa")))
    result = app.test_cli_runner().invoke(args=["dkim", "record"])
    assert result.exit_code == 0, result.output
    name, txt = result.output.strip().split(" IN TXT ")
    assert name == f"{SELECTOR}._domainkey.{DOMAIN}."
    chunks = re.findall(r'"([^"]*)"', txt)
    assert all(len(chunk) <= 255 for chunk in chunks) and len(chunks) == 2
    signer = signer_from_config(app.config)
    assert signer is not None
    assert dkim.verify(signer.sign(_message()), dnsfunc=dns_stub("".join(chunks)))
    unset = create_app(
        {
            **_overrides(tmp_path, tmp_path),
            "DKIM_DOMAIN": None,
            "DKIM_SELECTOR": None,
            "DKIM_KEY_FILE": None,
        }
    )
    result = unset.test_cli_runner().invoke(args=["dkim", "record"])
    assert result.exit_code != 0 and "DKIM is not configured" in result.output
