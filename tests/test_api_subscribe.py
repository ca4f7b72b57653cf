"""POST /api/v1/subscribe: the signup form's rules and answers, as JSON, for other sites."""

from __future__ import annotations

import pytest
from sqlalchemy import select, update

from digest.core.models import (
    ConsentSource,
    Newsletter,
    SubscriptionStatus,
    SuppressionReason,
    TransactionalKind,
)
from digest.domain.suppression import suppress
from tests.support.apps import get_db_of
from tests.support.readers import (
    fresh_ip,
    load_newsletter,
    mails,
    subscription,
    take_signups_now,
)

URL = "/api/v1/subscribe"


def _post(client, ip: str | None = None, **payload):  # type: ignore[no-untyped-def]
    response = client.post(
        URL,
        json=payload,
        headers={"Origin": "https://blog.example.net", "User-Agent": "EmbedBrowser/2.0"},
        environ_base={"REMOTE_ADDR": ip or fresh_ip()},
    )
    take_signups_now(client.application)  # the engine's half, as `digest run` does at once
    return response


def test_get_describes_the_form_to_show(app, client) -> None:  # type: ignore[no-untyped-def]
    """An embedding page learns the consent text and version to show, and the sections."""
    load_newsletter(app)
    response = client.get(URL, headers={"Origin": "https://blog.example.net"})
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    data = response.get_json()
    assert data["newsletter"]["slug"] == "weekly-model"
    assert data["consent_version"] == "2026-11"
    assert data["consent_text"].startswith("Yes, send me The Weekly Model")
    assert [s["slug"] for s in data["sections"]] == ["news", "engineers", "startups", "tools", "careers"]
    assert client.get(URL + "?newsletter=nope").status_code == 404


@pytest.mark.one_backend
def test_cors_preflight(app, client) -> None:  # type: ignore[no-untyped-def]
    """A browser's preflight for a JSON POST from another origin is allowed, without credentials."""
    response = client.options(
        URL,
        headers={
            "Origin": "https://blog.example.net",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert response.status_code == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response.headers["Access-Control-Allow-Methods"]
    assert "Content-Type" in response.headers["Access-Control-Allow-Headers"]
    assert "Access-Control-Allow-Credentials" not in response.headers


def test_json_signup_records_an_api_consent(app, client) -> None:  # type: ignore[no-untyped-def]
    """A JSON signup needs no CSRF token, answers 202 "check your inbox" and records source "api"."""
    load_newsletter(app)
    response = _post(
        client, ip="203.0.113.40", email="Embed@Example.org", name="Em", sections=["tools"],
        consent=True, consent_version="2026-11",
    )
    assert response.status_code == 202
    assert response.get_json()["status"] == "check-your-inbox"
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Set-Cookie" not in response.headers
    found = subscription(app, "embed@example.org")
    assert found.status is SubscriptionStatus.PENDING  # type: ignore[union-attr]
    assert [s.slug for s in found.sections] == ["tools"]  # type: ignore[union-attr]
    [consent] = found.consents  # type: ignore[union-attr]
    assert consent.source is ConsentSource.API
    assert consent.ip == "203.0.113.40" and consent.user_agent == "EmbedBrowser/2.0"
    assert [m.kind for m in mails(app)] == [TransactionalKind.CONFIRM]


def test_a_consent_change_here_counts_for_the_very_next_json_signup(app, client) -> None:  # type: ignore[no-untyped-def]
    """JSON signups share the newsletter an earlier one read, until this process changes
    it: right after a new wording is saved, the old version is refused and the next
    signup records the new wording."""
    load_newsletter(app)
    assert _post(client, email="first@example.org", consent=True).status_code == 202
    with get_db_of(app).session() as session:
        newsletter = session.scalars(select(Newsletter)).one()
        newsletter.consent_text, newsletter.consent_version = "Yes, the new wording.", "2026-12"
    stale = _post(client, email="late@example.org", consent=True, consent_version="2026-11")
    assert stale.status_code == 409 and "consent" in stale.get_json()["fields"]
    assert _post(client, email="second@example.org", consent=True).status_code == 202
    [consent] = subscription(app, "second@example.org").consents  # type: ignore[union-attr]
    assert (consent.consent_text, consent.consent_version) == ("Yes, the new wording.", "2026-12")


def test_a_signup_following_another_process_change_is_not_refused(app, client) -> None:  # type: ignore[no-untyped-def]
    """A wording another process saved a moment ago (this one keeps the older for up to a
    second): a signup naming the new version is checked against the newsletter read again."""
    load_newsletter(app)
    assert _post(client, email="first@example.org", consent=True).status_code == 202
    with get_db_of(app).engine.begin() as connection:  # as another process: no session here
        connection.execute(update(Newsletter).values(consent_text="Saved elsewhere.", consent_version="2026-12"))
    response = _post(client, email="follower@example.org", consent=True, consent_version="2026-12")
    assert response.status_code == 202
    [consent] = subscription(app, "follower@example.org").consents  # type: ignore[union-attr]
    assert (consent.consent_text, consent.consent_version) == ("Saved elsewhere.", "2026-12")


def test_same_answer_for_known_and_unknown_addresses(app, client) -> None:  # type: ignore[no-untyped-def]
    """New, confirmed and suppressed addresses get the identical JSON answer."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "bounced@example.org", SuppressionReason.HARD_BOUNCE)
    answers = [
        (r.status_code, r.get_data())
        for r in (
            _post(client, email=email, consent=True)
            for email in ("new@example.org", "ada@example.com", "bounced@example.org")
        )
    ]
    assert answers[0][0] == 202
    assert answers.count(answers[0]) == 3


def test_json_answers_tell_no_address_state_by_headers(app, client) -> None:  # type: ignore[no-untyped-def]
    """Every state's answer has the same status, body and headers."""
    load_newsletter(app)
    with get_db_of(app).session() as session:
        suppress(session, app.config, "bounced@example.org", SuppressionReason.HARD_BOUNCE)
    assert _post(client, email="pending@example.org", consent=True).status_code == 202
    varying = {"Date", "X-RateLimit-Remaining", "X-RateLimit-Reset", "Retry-After", "X-Request-ID"}
    answers = {}
    for state, email in (("new", "new@example.org"), ("pending", "pending@example.org"),
                         ("confirmed", "ada@example.com"), ("suppressed", "bounced@example.org")):
        response = _post(client, email=email, consent=True)
        headers = sorted((k, v) for k, v in response.headers.items() if k not in varying)
        answers[state] = (response.status_code, response.get_data(), headers)
    for state, answer in answers.items():
        assert answer == answers["new"], f"the answer for a {state} address differs"


@pytest.mark.parametrize(
    ("payload", "status", "field"),
    [
        ({"email": "new@example.org"}, 400, "consent"),
        ({"email": "new@example.org", "consent": False}, 400, "consent"),
        ({"email": "nope", "consent": True}, 400, "email"),
        ({"email": "jörg@example.org", "consent": True}, 400, "email"),
        ({"email": "new@example.org", "consent": True, "sections": []}, 400, "sections"),
        # Well formed, but refused by what is stored: an unknown section, an old wording.
        ({"email": "new@example.org", "consent": True, "sections": ["nope"]}, 409, "sections"),
        ({"email": "new@example.org", "consent": True, "consent_version": "old"}, 409, "consent"),
        ({"email": "new@example.org", "consent": True, "website": ["bot"]}, 400, "website"),
        # JSON signups name only the documented fields (the document says so too).
        ({"email": "new@example.org", "consent": True, "x\x00": []}, 400, None),
        ({"email": "new@example.org", "consent": True, "nmae": "typo"}, 400, "nmae"),
        ({"email": "new@example.org", "consent": True, "name": "N\x0b"}, 400, "name"),
        ({"email": ["a@example.org"], "consent": True}, 400, None),
        ({"email": "new@example.org", "consent": True, "sections": "news"}, 400, None),
        ({"email": "new@example.org", "consent": True, "newsletter": 5}, 400, None),
        ({"email": "new@example.org", "consent": True, "newsletter": "nope"}, 404, None),
    ],
)
def test_bad_requests_get_clear_json_errors(app, client, payload, status, field) -> None:  # type: ignore[no-untyped-def]
    """Every problem is a JSON error (naming the field when there is one) and nothing is stored."""
    load_newsletter(app)
    response = _post(client, **payload)
    assert response.status_code == status
    body = response.get_json()
    assert body["error"]
    if field:
        assert field in body["fields"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert subscription(app, "new@example.org") is None
    assert mails(app) == []


def test_body_must_be_a_json_object(app, client) -> None:  # type: ignore[no-untyped-def]
    """A JSON array or broken JSON is refused with 400."""
    load_newsletter(app)
    assert client.post(URL, data="[1, 2]", content_type="application/json").status_code == 400
    assert client.post(URL, data="{broken", content_type="application/json").status_code == 400


def test_plain_form_posts_work_too(app, client) -> None:  # type: ignore[no-untyped-def]
    """A urlencoded POST (e.g. from fetch with FormData) follows the same rules."""
    load_newsletter(app)
    response = client.post(
        URL,
        data={"email": "formish@example.org", "consent": "yes", "sections": ["news", "tools"],
              "submit": "Subscribe"},
        environ_base={"REMOTE_ADDR": fresh_ip()},
    )
    assert response.status_code == 202
    take_signups_now(app)
    found = subscription(app, "formish@example.org")
    assert [s.slug for s in found.sections] == ["news", "tools"]  # type: ignore[union-attr]


def test_honeypot_via_the_api(app, client) -> None:  # type: ignore[no-untyped-def]
    """A filled honeypot gets the same 202 and stores nothing."""
    load_newsletter(app)
    response = _post(client, email="bot@example.org", consent=True, website="x")
    assert response.status_code == 202
    assert subscription(app, "bot@example.org") is None


def test_flood_gets_a_json_429(app, client) -> None:  # type: ignore[no-untyped-def]
    """Past the per-IP limit the API answers 429 in JSON, readable cross-origin, with Retry-After."""
    load_newsletter(app)
    for number in range(5):
        assert _post(client, ip="192.0.2.99", email=f"f{number}@example.org", consent=True).status_code == 202
    response = _post(client, ip="192.0.2.99", email="f5@example.org", consent=True)
    assert response.status_code == 429
    assert "wait" in response.get_json()["error"]
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "Retry-After" in response.headers
    assert subscription(app, "f5@example.org") is None
