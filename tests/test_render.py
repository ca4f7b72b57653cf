"""Issue rendering: each reader gets their sections, their name and their links."""

from __future__ import annotations

from sqlalchemy import select

from digest.demo import load_demo
from digest.mail.render import Reader, prepare_issue
from digest.models import Issue, Section


def test_reader_gets_only_chosen_sections_and_own_links(app, db) -> None:  # type: ignore[no-untyped-def]
    """A reader who chose Tools sees Tools only, their own name, and unsubscribe headers."""
    load_demo(db)
    db.commit()
    issue = db.scalars(select(Issue)).one()
    tools = db.scalars(select(Section).where(Section.slug == "tools")).one()
    prepared = prepare_issue(db, issue.id, app)
    ada = prepared.message_for(Reader(1, "uidAda", "ada@example.com", "Ada", frozenset({tools.id})), 7)
    bob = prepared.message_for(Reader(2, "uidBob", "bob@example.com", "Bob"), 8)
    ada_text = ada.data.decode()
    assert "Hello Ada" in ada_text and "Bob" not in ada_text
    assert "Tried it: a local model runner" in ada_text
    assert "Write the evals before you write the prompt" not in ada_text
    assert "Write the evals before you write the prompt" in bob.data.decode()
    assert "uidAda" in ada_text and "uidBob" not in ada_text
    assert ada.envelope_from.startswith("bounces+d7-")
    assert ada.recipient == "ada@example.com"
