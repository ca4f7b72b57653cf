"""The preference center: name, sections, pause, unsubscribe, download my data, delete me."""

from __future__ import annotations

import json
import re
from zoneinfo import ZoneInfo

from sqlalchemy import select, text

from digest.core.db import Base, utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    Issue,
    IssueStatus,
    Newsletter,
    Subscriber,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
    TransactionalKind,
)
from digest.domain.links import preferences_url, unsubscribe_url
from digest.domain.subscribers.privacy import erase
from digest.domain.suppression import email_hash, is_suppressed, suppress
from tests.support.apps import BASE_URL, get_db_of
from tests.support.forms import csrf_token, submit
from tests.support.readers import (
    deliver,
    link,
    load_newsletter,
    mails,
    signed_path,
    signup,
    subscription,
)


def _path(app, email: str = "grace@example.com") -> str:  # type: ignore[no-untyped-def]
    return signed_path(app, email, preferences_url)


def _act(client, path: str, action: str, **data):  # type: ignore[no-untyped-def]
    """Press one of the preference page's buttons (its form field is named "action")."""
    token = csrf_token(client.get(path).get_data(as_text=True))
    return client.post(path, data={"csrf_token": token, "action": action, **data})


def _with_deliveries(app) -> None:  # type: ignore[no-untyped-def]
    """Give Grace and Ada one delivered issue each; Grace's bounced reply names her address."""
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        issue = Issue(
            newsletter_id=newsletter.id, slug="week-1", subject="Week one", status=IssueStatus.SENT,
            sent_at=utcnow(),
        )
        session.add(issue)
        session.flush()
        for email, response in (
            ("grace@example.com", "250 2.0.0 Ok: queued for <grace@example.com>"),
            ("ada@example.com", "250 2.0.0 Ok: queued for <ada@example.com>"),
        ):
            reader = session.scalars(select(Subscriber).where(Subscriber.email == email)).one()
            session.add(
                Delivery(
                    issue_id=issue.id, subscriber_id=reader.id, state=DeliveryState.SENT,
                    attempts=1, smtp_code=250, smtp_response=response, sent_at=utcnow(),
                )
            )


def test_page_shows_the_reader_and_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """The signed link opens the reader's preferences without login; opening it changes nothing."""
    load_newsletter(app)
    response = client.get(_path(app))
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "grace@example.com" in html and 'value="Grace"' in html
    assert re.search(r'value="engineers"\s+checked', html)
    assert not re.search(r'value="news"\s+checked', html)
    assert "Pause delivery" in html and "Download my data" in html and "Delete my data…" in html
    assert subscription(app, "grace@example.com").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]


def test_change_name_and_sections(app, client) -> None:  # type: ignore[no-untyped-def]
    """Saving changes the name and sections; ticking every section means all sections."""
    load_newsletter(app)
    path = _path(app)
    response = _act(client, path, "save", name="  Grace   Hopper ", sections=["news", "careers"])
    assert response.status_code == 200 and "preferences are saved" in response.get_data(as_text=True)
    found = subscription(app, "grace@example.com")
    assert found.subscriber.name == "Grace Hopper"  # type: ignore[union-attr]
    assert [s.slug for s in found.sections] == ["news", "careers"]  # type: ignore[union-attr]
    everything = ["news", "engineers", "startups", "tools", "careers"]
    _act(client, path, "save", name="Grace", sections=everything)
    assert subscription(app, "grace@example.com").sections == []  # type: ignore[union-attr]


def test_bad_preferences_are_refused_and_change_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """No section ticked, an unknown section or an overlong name gets a clear error and saves nothing."""
    load_newsletter(app)
    path = _path(app)
    none = _act(client, path, "save", name="Changed")
    assert none.status_code == 400
    assert "Please choose at least one section." in none.get_data(as_text=True)
    unknown = _act(client, path, "save", name="Changed", sections=["nope"])
    assert unknown.status_code == 400 and "no section called" in unknown.get_data(as_text=True)
    long_name = _act(client, path, "save", name="x" * 101, sections=["news"])
    assert long_name.status_code == 400 and "under 100 characters" in long_name.get_data(as_text=True)
    found = subscription(app, "grace@example.com")
    assert found.subscriber.name == "Grace"  # type: ignore[union-attr]
    assert [s.slug for s in found.sections] == ["engineers", "tools"]  # type: ignore[union-attr]


def test_pause_and_resume(app, client) -> None:  # type: ignore[no-untyped-def]
    """Pausing stops delivery (status paused, with its time, shown as the archive writes
    dates); resuming restores it."""
    newsletter = load_newsletter(app)
    path = _path(app)
    assert "Paused" in _act(client, path, "pause").get_data(as_text=True)
    paused = subscription(app, "grace@example.com")
    assert paused.status is SubscriptionStatus.PAUSED and paused.paused_at  # type: ignore[union-attr]
    page = client.get(path).get_data(as_text=True)
    assert "Resume delivery" in page
    local = paused.paused_at.astimezone(ZoneInfo(newsletter.time_zone))  # type: ignore[union-attr]
    day = f"{local:%B} {local.day}, {local.year}"  # as Babel writes an English date in full
    assert "Delivery is paused since <time datetime=" in page and f">{day}</time>" in page
    _act(client, path, "resume")
    resumed = subscription(app, "grace@example.com")
    assert resumed.status is SubscriptionStatus.CONFIRMED and resumed.paused_at is None  # type: ignore[union-attr]


def test_unsubscribe_and_resubscribe_from_preferences(app, client) -> None:  # type: ignore[no-untyped-def]
    """Unsubscribing here records the channel "preferences"; resubscribing is a new consent."""
    load_newsletter(app)
    path = _path(app)
    _act(client, path, "unsubscribe")
    found = subscription(app, "grace@example.com")
    assert found.status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]
    assert found.consents[0].withdrawal_channel == "preferences"  # type: ignore[union-attr]
    _act(client, path, "resubscribe")
    again = subscription(app, "grace@example.com")
    assert again.status is SubscriptionStatus.CONFIRMED and len(again.consents) == 2  # type: ignore[union-attr]


def test_actions_need_csrf_and_a_known_action(app, client) -> None:  # type: ignore[no-untyped-def]
    """A forged POST without the token, or an unknown action, changes nothing."""
    load_newsletter(app)
    path = _path(app)
    assert client.post(path, data={"action": "pause"}).status_code == 400
    assert _act(client, path, "explode").status_code == 400
    assert subscription(app, "grace@example.com").status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]


def test_download_my_data_holds_everything_and_nobody_else(app, client) -> None:  # type: ignore[no-untyped-def]
    """The JSON export has the reader's profile, subscriptions, consents, emails and deliveries, and no other reader."""
    load_newsletter(app)
    _with_deliveries(app)
    response = client.get(_path(app) + "/data.json")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    assert response.headers["Cache-Control"] == "no-store"
    data = json.loads(response.get_data(as_text=True))
    assert data["subscriber"]["email"] == "grace@example.com"
    [sub] = data["subscriptions"]
    assert sub["newsletter"]["slug"] == "weekly-model" and sub["status"] == "confirmed"
    assert sub["sections"] == ["Engineers", "Tools"]
    assert sub["consents"][0]["source"] == "import"
    assert sub["consents"][0]["consent_text"].startswith("Yes, send me")
    [delivery] = data["deliveries"]
    assert delivery["issue"] == "Week one" and delivery["state"] == "sent"
    raw = response.get_data(as_text=True)
    for other in ("ada@example.com", "alan@example.com", "Katherine"):
        assert other not in raw


def test_delete_needs_a_confirmation_step_and_csrf(app, client) -> None:  # type: ignore[no-untyped-def]
    """"Delete my data" first shows what will happen; a POST without the token deletes nothing."""
    load_newsletter(app)
    path = _path(app)
    page = client.get(path + "/delete")
    assert page.status_code == 200
    assert "Delete everything</button>" in page.get_data(as_text=True)
    assert client.post(path + "/delete").status_code == 400
    assert subscription(app, "grace@example.com") is not None


def _all_text(app) -> str:  # type: ignore[no-untyped-def]
    """Return every row of every table as text (to look for a leftover address)."""
    with get_db_of(app).engine.connect() as conn:
        return "\n".join(
            repr(tuple(row))
            for table in Base.metadata.sorted_tables
            for row in conn.execute(text(f'SELECT * FROM "{table.name}"'))
        )


def test_erasure_leaves_only_a_hash(app, client) -> None:  # type: ignore[no-untyped-def]
    """After "delete me" no row holds the address or name; a keyed hash suppresses it and delivery figures survive."""
    load_newsletter(app)
    _with_deliveries(app)
    path = _path(app)
    unsubscribe = unsubscribe_url(app.config, subscription(app, "grace@example.com").uid).removeprefix(BASE_URL)  # type: ignore[union-attr]
    response = submit(client, path + "/delete")
    assert response.status_code == 200 and "Your data is deleted" in response.get_data(as_text=True)
    # No contradiction with the delete page's "you can sign up again later".
    assert "unless you sign up anew" in response.get_data(as_text=True)
    everything = _all_text(app)
    assert "grace@example.com" not in everything.lower()
    assert "Grace" not in everything
    with get_db_of(app).session() as session:
        [entry] = session.scalars(select(Suppression)).all()
        assert entry.reason is SuppressionReason.ERASURE
        assert entry.email_hash == email_hash(app.config, "Grace@Example.com")
        deliveries = session.scalars(select(Delivery).order_by(Delivery.id)).all()
        assert [(d.subscriber_id is None, d.state) for d in deliveries] == [
            (True, DeliveryState.SENT), (False, DeliveryState.SENT),
        ]
        assert deliveries[0].smtp_response == "250 2.0.0 Ok: queued for <[erased]>"
    assert client.get(path).status_code == 404
    assert client.get(unsubscribe).status_code == 404


def test_erasure_scrubs_the_address_from_a_bounce_suppression(app, client) -> None:  # type: ignore[no-untyped-def]
    """A reader suppressed by a hard bounce, then erased: the entry keeps blocking the address,
    but the server reply it kept no longer names it."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "grace@example.com", SuppressionReason.HARD_BOUNCE,
                 "RCPT refused: 550 5.1.1 <Grace@Example.com>: Recipient address rejected")
        session.commit()
    with get_db_of(app).session() as session:
        subscriber = session.scalars(select(Subscriber).where(Subscriber.email == "grace@example.com")).one()
        erase(session, app.config, subscriber)
        session.commit()
    assert "grace@example.com" not in _all_text(app).lower()
    with get_db_of(app).session() as session:
        [entry] = session.scalars(select(Suppression)).all()
        assert entry.reason is SuppressionReason.HARD_BOUNCE
        assert entry.detail == "RCPT refused: 550 5.1.1 <[erased]>: Recipient address rejected"
        assert is_suppressed(session, app.config, "grace@example.com")


def test_an_erased_reader_can_come_back_with_double_opt_in(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A new signup of an erased address gets a confirmation; confirming lifts the erasure entry."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    submit(client, _path(smtp_app) + "/delete")
    assert signup(client, "grace@example.com", name="Grace").status_code == 200
    with get_db_of(smtp_app).session() as session:
        assert is_suppressed(session, smtp_app.config, "grace@example.com")  # no digest before confirming
    assert deliver(smtp_app) == 1
    confirm = link(smtp_server.to("grace@example.com")[-1], "confirm", BASE_URL)
    submit(client, confirm)
    found = subscription(smtp_app, "grace@example.com")
    assert found.status is SubscriptionStatus.CONFIRMED  # type: ignore[union-attr]
    assert len(found.consents) == 1 and found.consents[0].source.value == "form"  # type: ignore[union-attr]
    with get_db_of(smtp_app).session() as session:
        assert not is_suppressed(session, smtp_app.config, "grace@example.com")
    assert deliver(smtp_app) == 1  # the welcome
    assert [m.kind for m in mails(smtp_app)] == [TransactionalKind.CONFIRM, TransactionalKind.WELCOME]


def test_a_complaint_survives_erasure(app, client) -> None:  # type: ignore[no-untyped-def]
    """An address that complained and then erased itself stays blocked: a later signup is never mailed."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "grace@example.com", SuppressionReason.COMPLAINT)
    submit(client, _path(app) + "/delete")
    with get_db_of(app).session() as session:
        assert session.scalars(select(Suppression)).one().reason is SuppressionReason.COMPLAINT
    assert signup(client, "grace@example.com").status_code == 200
    assert subscription(app, "grace@example.com") is None
    assert mails(app) == []


def test_resubscribing_a_bounced_address_says_why_not(app, client) -> None:  # type: ignore[no-untyped-def]
    """From the preference center too, a suppressed address is not resubscribed, and the page says so."""
    load_newsletter(app)
    path = _path(app)
    _act(client, path, "unsubscribe")
    with get_db_of(app).session() as session:
        suppress(session, app.config, "grace@example.com", SuppressionReason.HARD_BOUNCE)
    response = _act(client, path, "resubscribe")
    html = response.get_data(as_text=True)
    assert "We cannot send to this address" in html
    # The reader is told whom to write to: the newsletter's reply-to address.
    assert 'If you think this is a mistake, write to <a href="mailto:editors@example.com">' in html
    assert subscription(app, "grace@example.com").status is SubscriptionStatus.UNSUBSCRIBED  # type: ignore[union-attr]


def test_signed_pages_are_neither_cached_nor_indexed(app, client) -> None:  # type: ignore[no-untyped-def]
    """Pages opened from a reader's link carry no-store and noindex; the front page does not need them."""
    load_newsletter(app)
    for page in (_path(app), _path(app) + "/delete", _path(app) + "/data.json"):
        response = client.get(page)
        assert response.headers["Cache-Control"] == "no-store"
        assert response.headers["X-Robots-Tag"] == "noindex"
    assert "X-Robots-Tag" not in client.get("/").headers
