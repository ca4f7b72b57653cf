"""What editors do to readers through the workspace: add, unsubscribe, suppress, lift, erase."""

from __future__ import annotations

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from digest.core.models import (
    ConsentSource,
    EditorRole,
    Subscriber,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalKind,
)
from digest.domain.links import confirm_url
from digest.domain.suppression import suppress
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token, submit
from tests.support.readers import (
    load_newsletter,
    mails,
    signed_path,
    signup,
    subscription,
)
from tests.support.workspace import suppression_entry

ADMIN, WRITER = "admin@example.com", "writer@example.com"


def _workspace(app: Flask, client: FlaskClient, who: str = ADMIN) -> None:
    """Load the demo newsletter, create an admin and an editor, log `who` in."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        make_editor(session, ADMIN, EditorRole.ADMIN)
        make_editor(session, WRITER, EditorRole.EDITOR)
    log_in(client, who)


def _reader_id(app: Flask, email: str) -> int | None:
    with get_db_of(app).session() as session:
        return session.scalar(select(Subscriber.id).where(Subscriber.email == email))


def _readers(app: Flask) -> int:
    with get_db_of(app).session() as session:
        return session.scalar(select(func.count()).select_from(Subscriber)) or 0


def _add(client: FlaskClient, **data: object):  # type: ignore[no-untyped-def]
    fields: dict[str, object] = {"consent": "confirm", "sections": ["news", "tools"], **data}
    return submit(client, "/editor/subscribers/new", **fields)


def test_editor_adds_a_reader_who_must_confirm(app, client) -> None:  # type: ignore[no-untyped-def]
    """An editor's new reader is pending with a confirmation email, and subscribed once they confirm."""
    _workspace(app, client, WRITER)
    response = _add(client, email=" New.Reader@Example.org ", name="Nia")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "new.reader@example.org is added as pending: a confirmation email is on its way" in page
    found = subscription(app, "new.reader@example.org")
    assert found is not None and found.status is SubscriptionStatus.PENDING
    assert [s.slug for s in found.sections] == ["news", "tools"]
    [consent] = found.consents
    assert consent.source is ConsentSource.EDITOR and consent.recorded_by == WRITER
    assert consent.confirmed_at is None
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM]
    assert "Added by" in page and WRITER in page
    confirm = signed_path(app, "new.reader@example.org", confirm_url)
    assert submit(client, confirm).status_code == 200
    assert subscription(app, "new.reader@example.org").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]


def test_admin_records_consent_obtained_elsewhere(app, client) -> None:  # type: ignore[no-untyped-def]
    """Consent obtained elsewhere needs a note; with one the reader is confirmed at once and welcomed."""
    _workspace(app, client)
    refused = _add(client, email="paper@example.org", consent="elsewhere", note="  ")
    assert refused.status_code == 400
    assert "Please write how and when this reader agreed." in refused.get_data(as_text=True)
    assert subscription(app, "paper@example.org") is None and mails(app) == []
    note = "Signed the paper sheet at the Berlin meetup, 12 Nov 2026"
    response = _add(client, email="paper@example.org", consent="elsewhere", note=note)
    assert response.status_code == 302
    assert "is subscribed, with your note kept" in client.get(response.headers["Location"]).get_data(as_text=True)
    found = subscription(app, "paper@example.org")
    assert found is not None and found.status is SubscriptionStatus.CONFIRMED
    [consent] = found.consents
    assert consent.note == note and consent.recorded_by == ADMIN and consent.confirmed_at
    assert [m.kind for m in mails(app)] == [TransactionalKind.WELCOME]
    page = client.get(f"/editor/subscribers/{found.subscriber_id}").get_data(as_text=True)
    assert note in page


def test_only_admins_record_consent_elsewhere(app, client) -> None:  # type: ignore[no-untyped-def]
    """An editor who is not an admin cannot skip the confirmation email, even by crafting the form."""
    _workspace(app, client, WRITER)
    form = client.get("/editor/subscribers/new").get_data(as_text=True)
    assert 'value="elsewhere" disabled' in form
    response = _add(client, email="sneaky@example.org", consent="elsewhere", note="trust me")
    assert response.status_code == 403
    assert subscription(app, "sneaky@example.org") is None and mails(app) == []


def test_adding_refuses_bad_and_suppressed_addresses(app, client) -> None:  # type: ignore[no-untyped-def]
    """A malformed, suppressed or already subscribed address gets a clear answer and changes nothing."""
    _workspace(app, client)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "gone@example.org", SuppressionReason.HARD_BOUNCE)
        suppress(session, app.config, "erased@example.org", SuppressionReason.ERASURE)
    before = _readers(app)
    bad = _add(client, email="not an address", sections=[])
    assert bad.status_code == 400
    html = bad.get_data(as_text=True)
    assert "Please correct 2 fields" in html and "Please choose at least one section." in html
    bounced = _add(client, email="gone@example.org")
    assert bounced.status_code == 400
    assert "on the suppression list since" in bounced.get_data(as_text=True)
    assert "does not exist (hard bounce)" in bounced.get_data(as_text=True)
    erased = _add(client, email="erased@example.org", consent="elsewhere", note="phoned us")
    assert erased.status_code == 400
    assert "send them a confirmation email instead" in erased.get_data(as_text=True)
    assert _readers(app) == before and mails(app) == []
    # The erased person may still be invited: only their own confirmation brings them back.
    assert _add(client, email="erased@example.org").status_code == 302
    already = _add(client, email="ada@example.com")
    assert "ada@example.com already receives the newsletter: nothing changed." in client.get(
        already.headers["Location"]).get_data(as_text=True)
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM]  # only the invitation


def test_editor_unsubscribes_a_reader(app, client) -> None:  # type: ignore[no-untyped-def]
    """Unsubscribing from the workspace stops issues at once and withdraws consent via "editor"."""
    _workspace(app, client, WRITER)
    found = subscription(app, "ada@example.com")
    assert found is not None
    page = f"/editor/subscribers/{found.subscriber_id}"
    action = f"{page}/subscriptions/{found.id}/unsubscribe"
    response = submit(client, page, action)
    assert "ada@example.com is unsubscribed from The Weekly Model" in client.get(
        response.headers["Location"]).get_data(as_text=True)
    after = subscription(app, "ada@example.com")
    assert after.status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert {c.withdrawal_channel for c in after.consents} == {"editor"}  # type: ignore[union-attr]
    again = submit(client, page, action)
    assert "was already unsubscribed" in client.get(again.headers["Location"]).get_data(as_text=True)
    other = subscription(app, "grace@example.com")
    assert client.post(f"{page}/subscriptions/{other.id}/unsubscribe",  # type: ignore[union-attr]
                       data={"csrf_token": csrf_token(client.get(page).get_data(as_text=True))}
                       ).status_code == 404  # another reader's subscription


def test_suppressing_needs_a_note_and_blocks_every_email(app, client) -> None:  # type: ignore[no-untyped-def]
    """A manual suppression needs a reason; then the reader is unsubscribed and even a new signup mails nothing."""
    _workspace(app, client, WRITER)
    reader = _reader_id(app, "grace@example.com")
    page = f"/editor/subscribers/{reader}"
    refused = submit(client, page, f"{page}/suppress", note="")
    assert refused.status_code == 400
    assert "Please write why this address must never be mailed." in refused.get_data(as_text=True)
    assert suppression_entry(app, "grace@example.com") is None
    response = submit(client, page, f"{page}/suppress", note="Asked by phone never to be contacted")
    shown = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "grace@example.com is suppressed and unsubscribed" in shown
    assert "Asked by phone never to be contacted" in shown and "Only an admin can lift it." in shown
    entry = suppression_entry(app, "grace@example.com")
    assert entry.reason is SuppressionReason.MANUAL and entry.recorded_by == WRITER
    assert subscription(app, "grace@example.com").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert signup(app.test_client(), "grace@example.com").status_code == 200
    assert mails(app) == []  # the signup answered as usual and sent nothing


def test_lifting_a_manual_suppression_is_for_admins(app, client) -> None:  # type: ignore[no-untyped-def]
    """Only an admin lifts a suppression, only a manual one, and the reader stays unsubscribed."""
    _workspace(app, client, WRITER)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "alan@example.com", SuppressionReason.MANUAL, "by mistake")
        suppress(session, app.config, "katherine@example.com", SuppressionReason.COMPLAINT)
    page = f"/editor/subscribers/{_reader_id(app, 'alan@example.com')}"
    assert submit(client, page, "/editor/suppressions/lift", email="alan@example.com").status_code == 403
    assert suppression_entry(app, "alan@example.com") is not None
    admin = client.application.test_client()
    log_in(admin, ADMIN)
    assert "Lift the suppression" in admin.get(page).get_data(as_text=True)
    response = submit(admin, page, "/editor/suppressions/lift", email="alan@example.com", next=page)
    assert response.headers["Location"] == page
    assert "alan@example.com is off the suppression list" in admin.get(page).get_data(as_text=True)
    assert suppression_entry(app, "alan@example.com") is None
    complaint = submit(admin, "/editor/suppressions", "/editor/suppressions/lift", email="katherine@example.com")
    assert "has no manual suppression to lift" in admin.get(complaint.headers["Location"]).get_data(as_text=True)
    assert suppression_entry(app, "katherine@example.com").reason is SuppressionReason.COMPLAINT


def test_suppression_list_looks_up_and_blocks_any_address(app, client) -> None:  # type: ignore[no-untyped-def]
    """The suppression page blocks an address nobody subscribed yet and says why an address is listed."""
    _workspace(app, client, WRITER)
    response = submit(client, "/editor/suppressions", email="Stranger@Example.net", note="Asked by letter")
    assert response.status_code == 302
    assert suppression_entry(app, "stranger@example.net").detail == "Asked by letter"
    found = submit(client, "/editor/suppressions", "/editor/suppressions/check", email="stranger@example.net")
    html = found.get_data(as_text=True)
    assert "is suppressed: no email" in html and "an editor suppressed it" in html and "Asked by letter" in html
    assert "<strong>1</strong>an editor suppressed it" in html
    clean = submit(client, "/editor/suppressions", "/editor/suppressions/check", email="ada@example.com")
    assert "is not on the suppression list" in clean.get_data(as_text=True)
    bad = submit(client, "/editor/suppressions", email="nope", note="x")
    assert bad.status_code == 400 and _readers(app) == 4


def test_erasing_is_for_admins_and_asks_for_the_address(app, client) -> None:  # type: ignore[no-untyped-def]
    """Erasure needs an admin and the address typed again; then only the suppression hash remains."""
    _workspace(app, client, WRITER)
    reader = _reader_id(app, "katherine@example.com")
    erase = f"/editor/subscribers/{reader}/erase"
    assert client.get(erase).status_code == 403
    assert "Erase this reader" not in client.get(f"/editor/subscribers/{reader}").get_data(as_text=True)
    admin = client.application.test_client()
    log_in(admin, ADMIN)
    assert "Erase for good" in admin.get(erase).get_data(as_text=True)
    wrong = submit(admin, erase, confirm_email="ada@example.com")
    assert wrong.status_code == 400 and "Type katherine@example.com exactly" in wrong.get_data(as_text=True)
    assert _reader_id(app, "katherine@example.com") == reader
    done = submit(admin, erase, confirm_email=" Katherine@example.com ")
    assert done.headers["Location"] == "/editor/subscribers"
    assert "katherine@example.com is erased" in admin.get("/editor/subscribers").get_data(as_text=True)
    assert _reader_id(app, "katherine@example.com") is None
    assert suppression_entry(app, "katherine@example.com").reason is SuppressionReason.ERASURE
    assert admin.get(f"/editor/subscribers/{reader}").status_code == 404


def test_reader_data_download(app, client) -> None:  # type: ignore[no-untyped-def]
    """An editor downloads everything stored about one reader as a JSON attachment."""
    _workspace(app, client, WRITER)
    response = client.get(f"/editor/subscribers/{_reader_id(app, 'grace@example.com')}/data.json")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith("attachment;")
    data = response.get_json()
    assert data["subscriber"]["email"] == "grace@example.com"
    assert data["subscriptions"][0]["consents"]


@pytest.mark.parametrize("action", ["add", "unsubscribe", "suppress", "lift", "erase", "suppress-address"])
def test_every_action_needs_a_csrf_token(app, client, action: str) -> None:  # type: ignore[no-untyped-def]
    """A forged cross-site post without the token is refused and changes nothing."""
    _workspace(app, client)
    found = subscription(app, "ada@example.com")
    assert found is not None
    with get_db_of(app).session() as session:
        suppress(session, app.config, "alan@example.com", SuppressionReason.MANUAL, "x")
    base = f"/editor/subscribers/{found.subscriber_id}"
    url, data = {
        "add": ("/editor/subscribers/new", {"email": "forged@example.org", "consent": "confirm"}),
        "unsubscribe": (f"{base}/subscriptions/{found.id}/unsubscribe", {}),
        "suppress": (f"{base}/suppress", {"note": "forged"}),
        "lift": ("/editor/suppressions/lift", {"email": "alan@example.com"}),
        "erase": (f"{base}/erase", {"confirm_email": "ada@example.com"}),
        "suppress-address": ("/editor/suppressions", {"email": "forged@example.org", "note": "x"}),
    }[action]
    response = client.post(url, data=data)
    assert response.status_code == 400 and "This form has expired" in response.get_data(as_text=True)
    assert subscription(app, "ada@example.com").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]
    assert suppression_entry(app, "ada@example.com") is None and suppression_entry(app, "forged@example.org") is None
    assert suppression_entry(app, "alan@example.com") is not None
    assert _readers(app) == 4
