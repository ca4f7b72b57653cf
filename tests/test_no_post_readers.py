"""Readers none of whose sections has a post in an issue: skipped (the default, counted as
such) or sent a short note, as the newsletter's setting says; and the combinations the
editor is warned about leave suppressed addresses out, as the sender does."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.models import (
    Delivery,
    DeliveryState,
    EditorRole,
    Newsletter,
    NoPostChoice,
    Section,
    Subscription,
    SubscriptionSection,
    SuppressionReason,
)
from digest.domain import issues
from digest.domain.issue_mail import reach_warnings, section_combinations
from digest.domain.suppression import suppress
from digest.engine.scheduler import maintain
from digest.engine.sender import new_owner, send_batch
from digest.mail.mailer import mailer_for
from tests.support.delivery import (
    CONFIG,
    Setup,
    make_newsletter,
    per_recipient,
    reader_email,
    states,
)
from tests.support.editor import log_in, make_editor
from tests.support.forms import submit
from tests.support.smtp import SMTPServer
from tests.test_settings import SETTINGS


def _quiet_readers(db: Session, setup: Setup, count: int) -> int:
    """Give the first count readers only a new section no post of the issue is in; return its id."""
    quiet = Section(newsletter_id=setup.newsletter_id, slug="quiet", name="Quiet", position=2)
    db.add(quiet)
    db.flush()
    for subscription_id in db.scalars(select(Subscription.id).order_by(Subscription.id).limit(count)):
        db.add(SubscriptionSection(subscription_id=subscription_id, section_id=quiet.id))
    db.commit()
    db.expire_all()  # the test's session keeps the newsletter's sections from before
    return quiet.id


def _send(app: Flask, db: Session, issue_id: int) -> None:
    issues.send_now(db, issue_id)
    issues.start_issue(db, issue_id, CONFIG)
    db.commit()
    with mailer_for(app.config) as mailer:
        for _ in range(20):
            maintain(app)
            if not send_batch(app, mailer, issue_id, owner=new_owner("test")).claimed:
                break
    maintain(app)


def _set_choice(db: Session, setup: Setup, choice: NoPostChoice) -> None:
    newsletter = db.get(Newsletter, setup.newsletter_id)
    assert newsletter is not None
    newsletter.no_post = choice
    db.commit()


def test_by_default_readers_with_no_post_get_nothing_and_are_counted_as_skipped(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """Two of five readers chose only a section without posts: three messages go out, the two
    rows are skipped with the reason, the issue is sent, and the sending page says so."""
    setup = make_newsletter(db, readers=5)
    _quiet_readers(db, setup, 2)
    _send(smtp_app, db, setup.issue_id)

    assert per_recipient(smtp_server) == {reader_email(n): 1 for n in (2, 3, 4)}
    assert states(db, setup.issue_id) == {"sent": 3, "skipped": 2}
    reasons = set(db.scalars(select(Delivery.smtp_response).where(Delivery.state == DeliveryState.SKIPPED)))
    assert reasons == {"no post for their sections"}
    assert issues.get_issue(db, setup.issue_id).status.value == "sent"

    make_editor(db, "editor@example.com", EditorRole.EDITOR)
    client = smtp_app.test_client()
    assert log_in(client, "editor@example.com").status_code == 302
    progress = client.get(f"/editor/issues/{setup.issue_id}/progress.json").get_json()
    assert progress["status_text"] == "Sent: 3 of 5 readers got it. 2 skipped: no post for their sections."
    assert (progress["counts"]["no_post"], progress["counts"]["skipped"]) == (2, 0)
    page = client.get(f"/editor/issues/{setup.issue_id}/sending").get_data(as_text=True)
    assert "2 skipped: no post for their sections." in page
    assert re.search(r'Skipped: no post.*?<td data-count="no_post">2</td>', page, re.S)


def test_with_the_note_setting_they_get_a_short_note(
    smtp_app: Flask, smtp_server: SMTPServer, db: Session
) -> None:
    """With "send a short note", every reader gets a message; the quiet ones read that
    nothing is new in their sections."""
    setup = make_newsletter(db, readers=3)
    _quiet_readers(db, setup, 1)
    _set_choice(db, setup, NoPostChoice.NOTE)
    _send(smtp_app, db, setup.issue_id)

    assert per_recipient(smtp_server) == {reader_email(n): 1 for n in range(3)}
    assert states(db, setup.issue_id) == {"sent": 3}
    body = smtp_server.to(reader_email(0))[0].message.get_body(("plain",))
    assert body is not None and "Nothing new in your sections this week" in body.get_content()


@pytest.mark.parametrize(
    ("choice", "what"),
    [
        (NoPostChoice.SKIP, "they are skipped and get nothing (the sending page counts them)"),
        (NoPostChoice.NOTE, "they receive a short note that nothing is new in their sections"),
    ],
)
def test_the_warning_says_what_such_readers_get(app: Flask, db: Session, choice: NoPostChoice, what: str) -> None:
    """The schedule's warning names the newsletter's choice."""
    setup = make_newsletter(db, readers=4)
    _quiet_readers(db, setup, 2)
    _set_choice(db, setup, choice)
    assert reach_warnings(db, setup.issue_id, app.config)[0] == (
        f"2 readers who chose Quiet get no post in this issue: {what}."
    )


def test_combinations_leave_suppressed_addresses_out(app: Flask, db: Session) -> None:
    """A hard-bounced address is never mailed, so it counts in no combination and no warning."""
    setup = make_newsletter(db, readers=4)
    _quiet_readers(db, setup, 2)
    suppress(db, app.config, reader_email(0), SuppressionReason.HARD_BOUNCE, "550 5.1.1")
    suppress(db, app.config, reader_email(1), SuppressionReason.COMPLAINT, "ARF")
    db.commit()

    counts = {c.names: c.readers for c in section_combinations(db, setup.issue_id, app.config)}
    assert counts == {(): 2}
    assert reach_warnings(db, setup.issue_id, app.config) == []


def test_an_admin_chooses_it_in_the_settings(app: Flask, db: Session) -> None:
    """The settings page offers both choices, skip checked at first; a saved choice sticks."""
    setup = make_newsletter(db, readers=1)
    make_editor(db, "admin@example.com", EditorRole.ADMIN)
    db.commit()
    client = app.test_client()
    assert log_in(client, "admin@example.com").status_code == 302
    page = client.get("/editor/settings").get_data(as_text=True)
    assert 'value="skip" checked' in page and 'value="note">' in page

    response = submit(client, "/editor/settings", **SETTINGS, no_post="note")
    assert response.status_code == 302
    db.expire_all()
    newsletter = db.get(Newsletter, setup.newsletter_id)
    assert newsletter is not None and newsletter.no_post is NoPostChoice.NOTE
    db.commit()
    assert 'value="note" checked' in client.get("/editor/settings").get_data(as_text=True)


@pytest.mark.parametrize("choice", [NoPostChoice.SKIP, NoPostChoice.NOTE])
def test_the_preview_of_a_combination_without_posts_says_whether_it_is_sent(
    app: Flask, db: Session, choice: NoPostChoice
) -> None:
    """Previewing the readers whose sections have no post says, by default, that they get
    nothing; with the note setting it shows the note without that warning."""
    setup = make_newsletter(db, readers=3)
    quiet = _quiet_readers(db, setup, 1)
    _set_choice(db, setup, choice)
    make_editor(db, "editor@example.com", EditorRole.EDITOR)
    client = app.test_client()
    assert log_in(client, "editor@example.com").status_code == 302
    page = client.get(f"/editor/issues/{setup.issue_id}/preview?sections={quiet}").get_data(as_text=True)
    skipped = "the sender skips them and they get nothing" in page
    assert skipped is (choice is NoPostChoice.SKIP)
    everyone = client.get(f"/editor/issues/{setup.issue_id}/preview?sections=all").get_data(as_text=True)
    assert "the sender skips them" not in everyone
