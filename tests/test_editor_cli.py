"""`digest editor …` commands and the demo's admin account."""

from __future__ import annotations

import re

from sqlalchemy import select

from digest.core.models import Editor, EditorRole
from tests.support.editor import log_in


def test_create_with_password_from_stdin(runner, db, client) -> None:  # type: ignore[no-untyped-def]
    """`editor create --password-stdin` makes an account that can log in."""
    result = runner.invoke(args=["editor", "create", "Chief@Example.com", "--role", "admin", "--password-stdin"],
                           input="a long enough secret\n")
    assert result.exit_code == 0, result.output
    assert "Created admin chief@example.com" in result.output
    assert "https://news.example.org/editor/login" in result.output
    editor = db.scalar(select(Editor).where(Editor.email == "chief@example.com"))
    assert editor is not None and editor.role is EditorRole.ADMIN
    assert "a long enough secret" not in editor.password_hash
    db.rollback()
    assert log_in(client, "chief@example.com", "a long enough secret").status_code == 302


def test_create_with_prompt_asks_twice(runner, db) -> None:  # type: ignore[no-untyped-def]
    """The interactive prompt hides the password and asks for it twice."""
    result = runner.invoke(args=["editor", "create", "writer@example.com"],
                           input="first password!\nother password!\nsecond password!\nsecond password!\n")
    assert result.exit_code == 0, result.output
    assert "do not match" in result.output
    assert "second password!" not in result.output
    assert db.scalar(select(Editor.role).where(Editor.email == "writer@example.com")) is EditorRole.EDITOR


def test_create_refuses_bad_input(runner, db) -> None:  # type: ignore[no-untyped-def]
    """A malformed address, a short password or a taken address is an error, and nothing is added."""
    bad = runner.invoke(args=["editor", "create", "not-an-address", "--password-stdin"], input="long enough pw\n")
    assert bad.exit_code == 1 and "not a valid email address" in bad.output
    short = runner.invoke(args=["editor", "create", "a@example.com", "--password-stdin"], input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output
    runner.invoke(args=["editor", "create", "a@example.com", "--password-stdin"], input="long enough pw\n")
    taken = runner.invoke(args=["editor", "create", "A@example.com", "--password-stdin"], input="long enough pw\n")
    assert taken.exit_code == 1 and "already exists" in taken.output
    bad_role = runner.invoke(args=["editor", "create", "b@example.com", "--role", "owner", "--password-stdin"],
                             input="long enough pw\n")
    assert bad_role.exit_code == 2
    assert len(db.scalars(select(Editor)).all()) == 1


def test_list_deactivate_activate_reset(runner, client) -> None:  # type: ignore[no-untyped-def]
    """An operator lists editors, deactivates one (never the last admin), and resets a password."""
    for email, role in (("boss@example.com", "admin"), ("pen@example.com", "editor")):
        runner.invoke(args=["editor", "create", email, "--role", role, "--password-stdin"], input="long enough pw\n")
    listing = runner.invoke(args=["editor", "list"]).output
    assert re.search(r"boss@example.com\tadmin\tactive\tlast login never", listing)
    refused = runner.invoke(args=["editor", "deactivate", "boss@example.com"])
    assert refused.exit_code == 1 and "last active admin" in refused.output
    assert runner.invoke(args=["editor", "deactivate", "PEN@example.com"]).exit_code == 0
    assert "pen@example.com\teditor\tdeactivated" in runner.invoke(args=["editor", "list"]).output
    assert log_in(client, "pen@example.com", "long enough pw").status_code == 200
    assert runner.invoke(args=["editor", "activate", "pen@example.com"]).exit_code == 0
    reset = runner.invoke(args=["editor", "reset-password", "pen@example.com", "--password-stdin"],
                          input="brand new password\n")
    assert reset.exit_code == 0 and "has a new password" in reset.output
    assert log_in(client, "pen@example.com", "brand new password").status_code == 302
    missing = runner.invoke(args=["editor", "deactivate", "ghost@example.com"])
    assert missing.exit_code == 1 and "no editor has the address" in missing.output


def test_demo_creates_an_admin_once(runner, client) -> None:  # type: ignore[no-untyped-def]
    """`digest demo` prints the login and a generated password once; the password works."""
    first = runner.invoke(args=["demo"])
    assert first.exit_code == 0, first.output
    match = re.search(r"Editor login: https://news.example.org/editor/login as admin@example.com "
                      r"with the password (\S+)", first.output)
    assert match, first.output
    second = runner.invoke(args=["demo"])
    assert "already loaded" in second.output and match.group(1) not in second.output
    assert log_in(client, "admin@example.com", match.group(1)).status_code == 302
    dashboard = client.get("/editor/").get_data(as_text=True)
    assert "Benchmarks saturate" in dashboard  # last week's issue, with its results
    archive = client.get("/archive/weekly-model/").get_data(as_text=True)
    assert "/archive/weekly-model/benchmarks-saturate" in archive
