"""/api/v1 readers: list and page, one record, add by double opt-in, unsubscribe, suppress."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from flask import Flask
from sqlalchemy import func, select

from digest.core.models import (
    Subscriber,
    SuppressionReason,
    TransactionalKind,
    TransactionalState,
)
from digest.domain.suppression import suppress
from tests.support.api import ApiClient, make_token
from tests.support.apps import BASE_URL, get_db_of
from tests.support.forms import submit
from tests.support.readers import deliver, link, load_newsletter, mails, subscription

READERS = "/api/v1/newsletters/weekly-model/subscribers"


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """An admin's API client on the demo newsletter (four confirmed readers)."""
    load_newsletter(app)
    return ApiClient(app.test_client(), make_token(app))


def _id(app: Flask, email: str) -> int:
    with get_db_of(app).session() as session:
        return session.scalars(select(Subscriber.id).where(Subscriber.email == email)).one()


def _count(app: Flask) -> int:
    with get_db_of(app).session() as session:
        return session.scalar(select(func.count()).select_from(Subscriber)) or 0


def test_list_filters_by_status_section_and_search(app, api) -> None:  # type: ignore[no-untyped-def]
    """Filters narrow the list: status, section (a reader with no choice gets all), words."""
    everyone = api.get(READERS).get_json()
    assert everyone["total"] == 4 and everyone["next"] is None and everyone["previous"] is None
    assert {r["email"] for r in everyone["subscribers"]} == {
        "ada@example.com", "grace@example.com", "alan@example.com", "katherine@example.com"}
    grace = next(r for r in everyone["subscribers"] if r["email"] == "grace@example.com")
    assert grace["subscription"]["sections"] == ["engineers", "tools"]
    assert grace["subscription"]["status"] == "confirmed"

    sections = {s["slug"]: s["id"] for s in
                api.get("/api/v1/newsletters/weekly-model/sections").get_json()["sections"]}
    tools = api.get(f"{READERS}?section_id={sections['tools']}").get_json()
    assert {r["email"] for r in tools["subscribers"]} == {
        "ada@example.com", "grace@example.com", "katherine@example.com"}
    # JSON Schema counts 1.0 as an integer, so a client built from the document may send it.
    assert api.get(f"{READERS}?section_id={sections['tools']}.0").get_json() == tools
    assert [r["email"] for r in api.get(f"{READERS}?search=KATH").get_json()["subscribers"]] == [
        "katherine@example.com"]
    assert api.get(f"{READERS}?status=pending").get_json()["total"] == 0
    assert api.get(f"{READERS}?search=%25").get_json()["total"] == 0


@pytest.mark.parametrize("query, field", [
    ("status=gone", "status"),
    ("limit=0", "limit"),
    ("limit=201", "limit"),
    ("before=-1", "before"),
    ("section_id=abc", "section_id"),
    ("section_id=1.5", "section_id"),
    ("section_id=1e0", "section_id"),
    ("search=%00", "search"),
])
def test_bad_filters_are_422(api, query: str, field: str) -> None:  # type: ignore[no-untyped-def]
    """A filter out of range or of the wrong kind is named in a 422 answer."""
    response = api.get(f"{READERS}?{query}")
    assert response.status_code == 422
    assert field in response.get_json()["fields"]


def _local(url: str | None) -> str | None:
    """Return the path and query of a page link, which must be under DIGEST_BASE_URL."""
    if url is None:
        return None
    assert url.startswith(BASE_URL + "/api/v1/"), url
    return url.removeprefix(BASE_URL)


def test_page_links_come_from_the_validated_parameters_only(app, api) -> None:  # type: ignore[no-untyped-def]
    """Odd query parameters and a forged Host neither break the list nor move its links elsewhere."""
    for n in range(3):
        assert api.post(READERS, json={"email": f"new{n}@example.org", "consent": True}).status_code == 201
    for query in ("newsletter=x", "_method=POST", "_external=1&_scheme=http", "_anchor=x",
                  "endpoint=api.openapi", "values=1", "limit=2&search=new&newsletter=other"):
        response = api.get(f"{READERS}?limit=2&{query}", headers={"Host": "evil.example"})
        assert response.status_code == 200, query
        page = response.get_json()
        next_url = urlsplit(page["next"])
        assert (next_url.scheme, next_url.netloc, next_url.path) == (
            "https", "news.example.org", READERS), query
        assert set(parse_qs(next_url.query)) <= {"limit", "search", "before"}, query
        assert page["previous"] is None


def test_keyset_pages_cover_everyone_once(app, api) -> None:  # type: ignore[no-untyped-def]
    """Following `next` with limit=3 visits every reader once, newest first; `previous` goes back."""
    for n in range(4):
        assert api.post(READERS, json={"email": f"new{n}@example.org", "consent": True}).status_code == 201
    seen: list[str] = []
    pages = []
    path: str | None = f"{READERS}?limit=3&status=pending"
    while path:
        page = api.get(path).get_json()
        assert page["total"] == 4
        pages.append(page)
        seen += [r["email"] for r in page["subscribers"]]
        path = _local(page["next"])
    assert seen == [f"new{n}@example.org" for n in (3, 2, 1, 0)]
    assert len(pages) == 2
    assert parse_qs(urlsplit(pages[0]["next"]).query)["status"] == ["pending"]
    back = api.get(_local(pages[1]["previous"])).get_json()
    assert [r["email"] for r in back["subscribers"]] == seen[:3]


def test_one_reader_with_subscriptions_and_consents(app, api) -> None:  # type: ignore[no-untyped-def]
    """A reader's record carries each subscription's consent records; unknown ids are 404."""
    record = api.get(f"/api/v1/subscribers/{_id(app, 'grace@example.com')}").get_json()
    assert record["email"] == "grace@example.com" and record["name"] == "Grace"
    assert record["suppression"] is None and record["deliveries"] == []
    (sub,) = record["subscriptions"]
    assert sub["newsletter"] == "weekly-model" and sub["sections"] == ["engineers", "tools"]
    (consent,) = sub["consents"]
    assert consent["source"] == "import" and consent["consent_version"] == "2026-11"
    assert consent["confirmed_at"] is not None and consent["withdrawn_at"] is None
    assert api.get("/api/v1/subscribers/999999").status_code == 404
    assert api.get("/api/v1/subscribers/99999999999").status_code == 404
    assert api.get("/api/v1/newsletters/nope/subscribers").status_code == 404


def test_add_is_double_opt_in_with_an_api_consent(smtp_app, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """An added reader is pending with an "api" consent, gets a confirmation email, and confirms."""
    load_newsletter(smtp_app)
    api = ApiClient(smtp_app.test_client(), make_token(smtp_app))
    response = api.post(READERS, json={
        "email": "Lin@Example.ORG", "name": "Lin", "sections": ["news"], "consent": True,
        "consent_version": "2026-11", "ip": "2001:db8::7", "user_agent": "Signup widget",
    })
    assert response.status_code == 201
    body = response.get_json()
    assert body["outcome"] == "created"
    reader = body["subscriber"]
    assert response.headers["Location"].endswith(f"/api/v1/subscribers/{reader['id']}")
    assert reader["email"] == "lin@example.org"
    (sub,) = reader["subscriptions"]
    assert sub["status"] == "pending" and sub["sections"] == ["news"]
    (consent,) = sub["consents"]
    assert (consent["source"], consent["ip"], consent["user_agent"]) == (
        "api", "2001:db8::7", "Signup widget")
    assert consent["confirmed_at"] is None

    assert deliver(smtp_app) == 1
    (message,) = smtp_server.received
    assert list(message.rcpt_tos) == ["lin@example.org"]
    client = smtp_app.test_client()
    confirm = link(message, "confirm", smtp_app.config["BASE_URL"])
    assert submit(client, confirm).status_code == 200
    confirmed = api.get(f"/api/v1/subscribers/{reader['id']}").get_json()["subscriptions"][0]
    assert confirmed["status"] == "confirmed"
    assert confirmed["consents"][0]["confirmed_at"] is not None


def test_adding_a_known_address_says_what_happened(app, api) -> None:  # type: ignore[no-untyped-def]
    """A pending address stays pending (no second email today); a subscribed one is untouched."""
    first = api.post(READERS, json={"email": "kim@example.org", "consent": True})
    assert first.status_code == 201
    again = api.post(READERS, json={"email": "kim@example.org", "name": "Kim", "consent": True})
    assert again.status_code == 200 and again.get_json()["outcome"] == "still-pending"
    confirms = [m for m in mails(app) if m.kind is TransactionalKind.CONFIRM]
    assert len(confirms) == 1
    known = api.post(READERS, json={"email": "grace@example.com", "name": "Someone else",
                                    "sections": ["news"], "consent": True})
    assert known.status_code == 200
    body = known.get_json()
    assert body["outcome"] == "already-subscribed"
    assert body["subscriber"]["name"] == "Grace"
    assert body["subscriber"]["subscriptions"][0]["sections"] == ["engineers", "tools"]


@pytest.mark.parametrize("payload, field", [
    ({"email": "new@example.org"}, "consent"),
    ({"email": "new@example.org", "consent": False}, "consent"),
    ({"email": "nope", "consent": True}, "email"),
    ({"email": "new@example.org", "consent": True, "sections": []}, "sections"),
    ({"email": " new@example.org", "consent": True}, "email"),
    ({"email": "new@mail.example.test", "consent": True}, "email"),  # special-use domain
    ({"email": ["new@example.org"], "consent": True}, "email"),
    ({"email": "new@example.org", "consent": "yes"}, "consent"),
    ({"email": "new@example.org", "consent": True, "ip": "300.1.1.1"}, "ip"),
    ({"email": "new@example.org", "consent": True, "nmae": "typo"}, "nmae"),
    ({"email": "new\x00@example.org", "consent": True}, "email"),
])
def test_bad_additions_are_422_and_add_nobody(app, api, payload, field) -> None:  # type: ignore[no-untyped-def]
    """Each refused field is named in a 422 answer, and no reader or email is added."""
    response = api.post(READERS, json=payload)
    assert response.status_code == 422
    assert field in response.get_json()["fields"]
    assert _count(app) == 4 and mails(app) == []


@pytest.mark.parametrize("payload, field", [
    ({"email": "new@example.org", "consent": True, "sections": ["nope"]}, "sections"),
    ({"email": "new@example.org", "consent": True, "consent_version": "1999"}, "consent"),
])
def test_well_formed_additions_the_data_refuses_are_409(app, api, payload, field) -> None:  # type: ignore[no-untyped-def]
    """An unknown section or an outdated consent version is a 409 naming the field; nobody is added."""
    response = api.post(READERS, json=payload)
    assert response.status_code == 409
    assert field in response.get_json()["fields"]
    assert _count(app) == 4 and mails(app) == []


def test_a_body_that_is_not_json_is_400(app, api) -> None:  # type: ignore[no-untyped-def]
    """A form-encoded or broken body gets 400 saying to send JSON."""
    form = api.post(READERS, data={"email": "x@example.org", "consent": "true"})
    assert form.status_code == 400 and "JSON object" in form.get_json()["error"]
    broken = api.post(READERS, data="{", headers={"Content-Type": "application/json"})
    assert broken.status_code == 400
    assert api.post(READERS, json=["x@example.org"]).status_code == 400
    assert _count(app) == 4


def test_a_suppressed_address_is_refused(app, api) -> None:  # type: ignore[no-untyped-def]
    """Adding an address that bounced hard answers 409 naming the reason, and adds nothing."""
    with get_db_of(app).session() as session:
        suppress(session, app.config, "bounced@example.org", SuppressionReason.HARD_BOUNCE)
    response = api.post(READERS, json={"email": "Bounced@example.org", "consent": True})
    assert response.status_code == 409
    assert "hard bounce" in response.get_json()["fields"]["email"]
    assert _count(app) == 4 and mails(app) == []


def test_unsubscribe_withdraws_consent(app, api) -> None:  # type: ignore[no-untyped-def]
    """An admin unsubscribes a reader: status unsubscribed, consent withdrawn via "api", idempotent."""
    reader = _id(app, "ada@example.com")
    path = f"{READERS}/{reader}/unsubscribe"
    response = api.post(path)
    assert response.status_code == 200
    (sub,) = response.get_json()["subscriptions"]
    assert sub["status"] == "unsubscribed" and sub["unsubscribed_at"] is not None
    assert sub["consents"][0]["withdrawal_channel"] == "api"
    again = api.post(path).get_json()["subscriptions"][0]
    assert again["unsubscribed_at"] == sub["unsubscribed_at"]
    assert api.post(f"{READERS}/999999/unsubscribe").status_code == 404
    assert api.post(f"/api/v1/newsletters/nope/subscribers/{reader}/unsubscribe").status_code == 404


def test_unsubscribe_cancels_a_pending_confirmation(app, api) -> None:  # type: ignore[no-untyped-def]
    """Unsubscribing a reader who has not confirmed yet cancels the confirmation email."""
    added = api.post(READERS, json={"email": "soon@example.org", "consent": True}).get_json()
    api.post(f"{READERS}/{added['subscriber']['id']}/unsubscribe")
    assert [m.state for m in mails(app)] == [TransactionalState.SKIPPED]
    assert deliver(app) == 0


def test_suppress_blocks_the_address_everywhere(app, api) -> None:  # type: ignore[no-untyped-def]
    """An admin suppresses a reader: a manual entry with the note, every subscription ended."""
    reader = _id(app, "alan@example.com")
    response = api.post(f"/api/v1/subscribers/{reader}/suppress",
                        json={"detail": "Asked by phone never to be mailed."})
    assert response.status_code == 200
    record = response.get_json()
    assert record["suppression"]["reason"] == "manual"
    assert record["suppression"]["detail"] == "Asked by phone never to be mailed."
    assert record["subscriptions"][0]["status"] == "unsubscribed"
    assert record["subscriptions"][0]["consents"][0]["withdrawal_channel"] == "api"
    found = subscription(app, "alan@example.com")
    assert found is not None and found.unsubscribed_at is not None
    again = api.post(READERS, json={"email": "alan@example.com", "consent": True})
    assert again.status_code == 409 and "an editor suppressed it" in again.get_json()["fields"]["email"]
    assert api.post(f"/api/v1/subscribers/{_id(app, 'ada@example.com')}/suppress").status_code == 200
    too_long = api.post(f"/api/v1/subscribers/{reader}/suppress", json={"detail": "x" * 1001})
    assert too_long.status_code == 422
    assert api.post("/api/v1/subscribers/999999/suppress").status_code == 404
