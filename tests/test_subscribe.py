"""Signing up through the front page: validation, consent, one answer for every address."""

from __future__ import annotations

import datetime as dt
import re
import uuid

import pytest
from sqlalchemy import event, func, select, update

from digest.core.db import utcnow
from digest.core.models import (
    Consent,
    ConsentSource,
    Issue,
    IssueStatus,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalKind,
    TransactionalMail,
    TransactionalState,
)
from digest.domain.subscribers.privacy import erase
from digest.domain.subscribers.signup import (
    Signup,
    SignupOutcome,
    confirm,
    pause,
    subscribe,
    unsubscribe,
)
from digest.domain.suppression import suppress
from tests.support.apps import get_db_of
from tests.support.forms import submit
from tests.support.readers import (
    confirm_by_email,
    deliver,
    link,
    load_newsletter,
    mails,
    signup,
    subscription,
    take_signups_now,
)


def _count(app, model) -> int:  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def test_front_page_offers_an_accessible_signup_form(app, client) -> None:  # type: ignore[no-untyped-def]
    """The form has labelled fields, section choices, an unticked consent box with its text, a honeypot and CSRF."""
    load_newsletter(app)
    html = client.get("/").get_data(as_text=True)
    assert '<label for="email">' in html and 'type="email" id="email"' in html
    assert '<label for="name">' in html
    assert "<legend>Sections you want</legend>" in html
    assert html.count('name="sections"') == 5
    consent = re.search(r'<input type="checkbox" id="consent"[^>]*>', html, re.S)
    assert consent and "checked" not in consent.group(0)
    assert "Yes, send me The Weekly Model by email once a week" in html
    assert 'name="website"' in html and 'tabindex="-1"' in html
    assert 'name="csrf_token"' in html
    assert "Latest issue" not in html


def test_front_page_links_the_latest_sent_issue(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """Once an issue is sent, the front page links its archive page; drafts stay hidden."""
    newsletter = load_newsletter(app)
    db.add(
        Issue(
            newsletter_id=newsletter.id,
            slug="first-week",
            subject="The first week",
            status=IssueStatus.SENT,
            sent_at=utcnow() - dt.timedelta(days=3),
        )
    )
    db.commit()
    html = client.get("/").get_data(as_text=True)
    assert "Latest issue" in html
    assert 'href="https://news.example.org/archive/weekly-model/first-week"' in html
    assert "open-weights-catch-up" not in html  # the demo's draft


def test_signup_records_consent_and_a_confirmation_request(app, client) -> None:  # type: ignore[no-untyped-def]
    """A new address becomes a pending subscription with a full consent record and one confirmation due."""
    load_newsletter(app)
    response = signup(client, "Nina@Example.ORG", name="Nina", sections=["news", "tools"], ip="203.0.113.7")
    assert response.status_code == 200
    assert "Check your inbox" in response.get_data(as_text=True)
    found = subscription(app, "nina@example.org")
    assert found is not None and found.status is SubscriptionStatus.PENDING
    assert found.subscriber.name == "Nina"
    assert [s.slug for s in found.sections] == ["news", "tools"]
    [consent] = found.consents
    assert consent.source is ConsentSource.FORM
    assert consent.ip == "203.0.113.7"
    assert consent.user_agent and "Werkzeug" in consent.user_agent
    assert consent.consent_text.startswith("Yes, send me The Weekly Model")
    assert consent.consent_version == "2026-11"
    assert consent.created_at is not None and consent.confirmed_at is None
    [mail] = mails(app)
    assert mail.kind is TransactionalKind.CONFIRM and mail.state is TransactionalState.PENDING


def _prepare_state(app, state: str) -> str:  # type: ignore[no-untyped-def]
    """Put a fresh address into state and return it."""
    email = f"{state}-{uuid.uuid4().hex[:6]}@example.org"
    database = get_db_of(app)
    newsletter_config = app.config
    with database.session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        if state == "new":
            return email
        if state in ("bounced", "complained"):
            reason = SuppressionReason.HARD_BOUNCE if state == "bounced" else SuppressionReason.COMPLAINT
            suppress(session, newsletter_config, email, reason)
            return email
        subscribe(
            session, newsletter_config, newsletter,
            Signup(email=email, consent=True, ip="198.51.100.1"),
            now=utcnow() - dt.timedelta(days=3),
        )
        sub = session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == email)
        ).one()
        if state in ("confirmed", "paused", "unsubscribed", "erased"):
            confirm(session, newsletter_config, sub)
        if state == "paused":
            pause(session, sub)
        if state == "unsubscribed":
            unsubscribe(session, sub, "one-click")
        if state == "erased":
            erase(session, newsletter_config, sub.subscriber)
    return email


STATES = ["new", "pending", "confirmed", "paused", "unsubscribed", "bounced", "complained", "erased"]


def test_same_answer_whatever_the_address_state(app, client) -> None:  # type: ignore[no-untyped-def]
    """New, pending, confirmed, paused, unsubscribed, suppressed and erased addresses get byte-identical answers."""
    load_newsletter(app)
    answers = {}
    for state in STATES:
        email = _prepare_state(app, state)
        response = signup(client, email)
        answers[state] = (response.status_code, response.get_data(as_text=True))
    baseline = answers["new"]
    assert baseline[0] == 200 and "Check your inbox" in baseline[1]
    for state, answer in answers.items():
        assert answer == baseline, f"the answer for a {state} address differs"


def test_every_state_takes_the_same_path(app, client) -> None:  # type: ignore[no-untyped-def]
    """The request runs the same SQL statements for every address state, and none reads the
    readers or the suppression list: it only records the signup, so neither the answer nor
    its timing can tell states apart. The engine acts on it afterwards."""
    load_newsletter(app)
    engine = get_db_of(app).engine
    paths = {}
    for state in STATES:
        email = _prepare_state(app, state)
        statements: list[str] = []

        def record(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
            statements.append(statement)

        event.listen(engine, "before_cursor_execute", record)
        try:
            assert signup(client, email, engine=False).status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", record)
        paths[state] = statements
    assert any("INSERT INTO signup_request" in s for s in paths["new"])
    touched = " ".join(paths["new"])
    for table in ("subscriber", "subscription", "suppression", "transactional_mail", "consent"):
        assert not re.search(rf"(FROM|INTO|UPDATE|JOIN) {table}\b", touched), table
    for state, path in paths.items():
        assert path == paths["new"], f"a {state} address takes another path"
    assert take_signups_now(app) == len(STATES)


def test_what_each_state_leads_to(app) -> None:  # type: ignore[no-untyped-def]
    """Behind the one answer: who gets a confirmation, who an "already subscribed" note, who nothing."""
    load_newsletter(app)
    expected = {
        "new": (SignupOutcome.CREATED, TransactionalKind.CONFIRM),
        "confirmed": (SignupOutcome.ALREADY_SUBSCRIBED, TransactionalKind.ALREADY),
        "unsubscribed": (SignupOutcome.REJOINING, TransactionalKind.CONFIRM),
        "bounced": (SignupOutcome.SUPPRESSED, None),
        "erased": (SignupOutcome.CREATED, TransactionalKind.CONFIRM),
    }
    database = get_db_of(app)
    for state, (outcome, kind) in expected.items():
        email = _prepare_state(app, state)
        before = len(mails(app))
        with database.session() as session:
            newsletter = session.scalars(select(Newsletter)).one()
            got = subscribe(
                session, app.config, newsletter, Signup(email=email, consent=True)
            )
        assert got is outcome, state
        new_mails = mails(app)[before:]
        assert [m.kind for m in new_mails] == ([kind] if kind else []), state


def test_form_without_consent_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """Without the consent box ticked the form comes back with a clear error tied to it, and nothing is stored."""
    load_newsletter(app)
    response = signup(client, "maybe@example.org", name="Maybe", consent=False)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="consent-error"' in html and "Please tick the box" in html
    assert 'aria-describedby="consent-error"' in html
    assert 'value="maybe@example.org"' in html and 'value="Maybe"' in html
    assert subscription(app, "maybe@example.org") is None
    assert mails(app) == []


def test_consent_text_changed_since_page_load(app, client) -> None:  # type: ignore[no-untyped-def]
    """A form that showed an older consent version is refused, so the record never claims a text nobody saw."""
    load_newsletter(app)
    response = signup(client, "late@example.org", consent_version="2025-01")
    assert response.status_code == 400
    assert "wording of this consent changed" in response.get_data(as_text=True)
    assert subscription(app, "late@example.org") is None


def test_honeypot_gets_the_usual_answer_and_nothing_else(app, client) -> None:  # type: ignore[no-untyped-def]
    """A bot that fills the hidden field sees "check your inbox", but nothing is stored or sent."""
    load_newsletter(app)
    response = signup(client, "bot@example.org", website="http://spam.example")
    assert response.status_code == 200 and "Check your inbox" in response.get_data(as_text=True)
    assert subscription(app, "bot@example.org") is None
    assert mails(app) == []


@pytest.mark.parametrize(
    ("address", "message"),
    [
        ("", "Please enter your email address."),
        ("not-an-address", "An email address has a name, an @ and a domain"),
        ("someone@localhost", "The part after the @ is not a valid domain name"),
        ("two@@example.org", "The part before the @ has a character"),
        ("spaces in@example.org", "The part before the @ has a character"),
        ("jörg@example.org", "part before the @ uses plain letters"),
        ("a@[192.0.2.1]", "The part after the @ is not a valid domain name"),
    ],
)
def test_malformed_addresses_are_refused_clearly(app, client, address: str, message: str) -> None:  # type: ignore[no-untyped-def]
    """A malformed or non-ASCII-local address gets a readable error next to the field and changes nothing."""
    load_newsletter(app)
    response = signup(client, address)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="email-error"' in html and 'aria-invalid="true"' in html
    assert message in html
    assert _count(app, Consent) == 4  # the demo readers' only
    assert mails(app) == []


def test_international_domains_are_sent_in_idna_2008_form(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Unicode domains are accepted, stored readable, and mailed as IDNA 2008 ASCII (faß.de is not fass.de)."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    assert signup(client, "Nina@Bücher.DE").status_code == 200
    assert signup(client, "max@faß.de").status_code == 200
    assert subscription(smtp_app, "nina@bücher.de") is not None
    assert subscription(smtp_app, "max@faß.de") is not None
    assert deliver(smtp_app) == 2
    recipients = sorted(r for m in smtp_server.received for r in m.rcpt_tos)
    assert recipients == ["max@xn--fa-hia.de", "nina@xn--bcher-kva.de"]
    assert smtp_server.received[0].raw_header("To")[0].isascii()


def test_deliverability_check_follows_the_setting(app, client) -> None:  # type: ignore[no-untyped-def]
    """With DIGEST_CHECK_DELIVERABILITY off a domain is not looked up; on, a domain that does not exist is refused."""
    load_newsletter(app)
    domain = f"no-such-domain-{uuid.uuid4().hex[:10]}.com"
    assert signup(client, f"a@{domain}").status_code == 200
    app.config["CHECK_DELIVERABILITY"] = True
    response = signup(client, f"b@{domain}")
    assert response.status_code == 400
    assert f"The domain {domain} does not receive email" in response.get_data(as_text=True)
    assert subscription(app, f"b@{domain}") is None


def test_at_most_one_confirmation_per_address_per_day(app, client) -> None:  # type: ignore[no-untyped-def]
    """Signing the same address up again and again queues one confirmation a day, not one per request."""
    load_newsletter(app)
    for _ in range(3):
        assert signup(client, "again@example.org").status_code == 200
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM]
    assert len(subscription(app, "again@example.org").consents) == 3  # type: ignore[union-attr]
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        subscribe(
            session, app.config, newsletter,
            Signup(email="again@example.org", consent=True),
            now=utcnow() + dt.timedelta(hours=25),
        )
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM] * 2


def test_a_stranger_cannot_edit_a_subscribed_reader(app, client) -> None:  # type: ignore[no-untyped-def]
    """Signing up a confirmed address with another name and sections changes nothing about that reader."""
    load_newsletter(app)
    assert signup(client, "grace@example.com", name="Mallory", sections=["careers"]).status_code == 200
    found = subscription(app, "grace@example.com")
    assert found is not None
    assert found.subscriber.name == "Grace"
    assert [s.slug for s in found.sections] == ["engineers", "tools"]
    assert found.status is SubscriptionStatus.CONFIRMED
    assert len(found.consents) == 1
    assert [m.kind for m in mails(app)] == [TransactionalKind.ALREADY]


def test_flood_of_signups_is_rate_limited(app, client) -> None:  # type: ignore[no-untyped-def]
    """Past five signups a minute from one address, the form answers 429 with a readable page and stores nothing."""
    load_newsletter(app)
    for number in range(5):
        assert signup(client, f"flood{number}@example.org", ip="192.0.2.50").status_code == 200
    response = signup(client, "flood5@example.org", ip="192.0.2.50")
    assert response.status_code == 429
    assert "Please wait a moment" in response.get_data(as_text=True)
    assert "Retry-After" in response.headers
    assert subscription(app, "flood5@example.org") is None
    api = client.post(
        "/api/v1/subscribe",
        json={"email": "flood6@example.org", "consent": True},
        environ_base={"REMOTE_ADDR": "192.0.2.50"},
    )
    assert api.status_code == 429  # the API shares the budget
    assert signup(client, "other@example.org", ip="192.0.2.51").status_code == 200
    assert len(mails(app)) == 6


def test_signup_needs_a_csrf_token(app, client) -> None:  # type: ignore[no-untyped-def]
    """A cross-site form post without the token is refused and stores nothing."""
    load_newsletter(app)
    response = client.post(
        "/subscribe",
        data={"email": "csrf@example.org", "consent": "yes", "newsletter": "weekly-model"},
    )
    assert response.status_code == 400
    assert subscription(app, "csrf@example.org") is None


def test_no_section_chosen_is_an_error_tied_to_the_choices(app, client) -> None:  # type: ignore[no-untyped-def]
    """Unticking every section gets an error on the section fieldset, with the boxes left as the reader left them."""
    load_newsletter(app)
    response = signup(client, "choosy@example.org", sections=[])
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert 'id="sections-error"' in html and "Please choose at least one section." in html
    assert 'aria-describedby="sections-error"' in html
    assert not re.search(r'name="sections" value="\w+"\s+checked', html)
    assert subscription(app, "choosy@example.org") is None


def test_unconfirmed_signups_are_purged_after_a_month(app, runner) -> None:  # type: ignore[no-untyped-def]
    """Signups nobody confirmed for 30 days are deleted with their reader; recent, confirmed and unsubscribed ones stay."""
    load_newsletter(app)
    old = utcnow() - dt.timedelta(days=40)
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        for email, when in (("stale@example.org", old), ("fresh@example.org", utcnow())):
            subscribe(session, app.config, newsletter, Signup(email=email, consent=True), now=when)
        subscribe(session, app.config, newsletter, Signup(email="retried@example.org", consent=True), now=old)
        subscribe(session, app.config, newsletter, Signup(email="retried@example.org", consent=True))
    unsubscribed = _prepare_state(app, "unsubscribed")
    result = runner.invoke(args=["subscribers", "purge-unconfirmed"])
    assert result.exit_code == 0
    assert "Deleted 1 unconfirmed signup(s) older than 30 days." in result.output
    assert subscription(app, "stale@example.org") is None
    with get_db_of(app).session() as session:
        assert session.scalar(select(Subscriber).where(Subscriber.email == "stale@example.org")) is None
    for kept in ("fresh@example.org", "retried@example.org", unsubscribed, "ada@example.com"):
        assert subscription(app, kept) is not None, kept


def test_simultaneous_signups_of_one_address(app) -> None:  # type: ignore[no-untyped-def]
    """Two signups of the same new address at the same moment make one reader, one subscription, no error."""
    import threading

    load_newsletter(app)
    database = get_db_of(app)
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def sign_up() -> None:
        # Meet before the transaction: on SQLite the first statement takes the write lock.
        start.wait(timeout=30)
        with database.session() as session:
            newsletter = session.scalars(select(Newsletter)).one()
            outcomes.append(
                subscribe(
                    session, app.config, newsletter, Signup(email="race@example.org", consent=True)
                )
            )

    threads = [threading.Thread(target=sign_up) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(map(str, outcomes)) == ["created", "still-pending"]
    found = subscription(app, "race@example.org")
    assert found is not None and len(found.consents) == 2
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM]


def _choices(app, email: str) -> tuple[str, list[str], SubscriptionStatus]:  # type: ignore[no-untyped-def]
    found = subscription(app, email)
    assert found is not None
    return found.subscriber.name, [s.slug for s in found.sections], found.status


def test_a_stranger_cannot_edit_a_pending_reader(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Signing up a pending reader's address again with another name and sections changes
    nothing; the owner's confirmation link confirms what the owner chose."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    signup(client, "nina@example.org", name="Nina", sections=["news"])
    assert deliver(smtp_app) == 1
    owners_link = link(smtp_server.to("nina@example.org")[-1], "confirm", smtp_app.config["BASE_URL"])
    signup(client, "nina@example.org", name="Mallory", sections=["tools"])
    assert deliver(smtp_app) == 0  # within the day: no second email
    assert _choices(smtp_app, "nina@example.org") == ("Nina", ["news"], SubscriptionStatus.PENDING)
    assert submit(client, owners_link).status_code == 200
    assert _choices(smtp_app, "nina@example.org") == ("Nina", ["news"], SubscriptionStatus.CONFIRMED)


def test_changes_to_an_unsubscribed_reader_wait_for_their_confirmation(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """A signup of an unsubscribed address with a new name and sections changes nothing until
    the confirmation link it sent is used; then they take effect."""
    load_newsletter(smtp_app)
    client = smtp_app.test_client()
    confirm_by_email(smtp_app, smtp_server, "owen@example.org", name="Owen", sections=["news"])
    database = get_db_of(smtp_app)
    with database.session() as session:
        found = session.scalars(select(Subscription).join(Subscriber).where(Subscriber.email == "owen@example.org")).one()
        unsubscribe(session, found, "one-click")
        # A day later, so the new signup earns a new confirmation email.
        session.execute(update(TransactionalMail).values(created_at=utcnow() - dt.timedelta(days=2)))
    signup(client, "owen@example.org", name="Someone Else", sections=["tools"])
    assert deliver(smtp_app) == 1
    assert _choices(smtp_app, "owen@example.org") == ("Owen", ["news"], SubscriptionStatus.UNSUBSCRIBED)
    new_link = link(smtp_server.to("owen@example.org")[-1], "confirm", smtp_app.config["BASE_URL"])
    page = client.get(new_link).get_data(as_text=True)
    assert "Sections: Tools." in page and "Name in the greeting: Someone Else." in page
    assert submit(client, new_link).status_code == 200
    assert _choices(smtp_app, "owen@example.org") == ("Someone Else", ["tools"], SubscriptionStatus.CONFIRMED)
