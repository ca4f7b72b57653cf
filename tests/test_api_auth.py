"""API tokens: created and revoked from the CLI and the workspace, and enforced on /api/v1."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from sqlalchemy import select

from digest.core.models import ApiToken, EditorRole
from digest.domain import api_tokens
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import submit
from tests.support.readers import fresh_ip
from tests.support.workspace import demo_newsletter

ME = "/api/v1/me"


def _tokens(app) -> list[ApiToken]:  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        return list(session.scalars(select(ApiToken).order_by(ApiToken.id)))


def test_cli_creates_lists_and_revokes(app, runner) -> None:  # type: ignore[no-untyped-def]
    """`api-token create` prints a token once that works; `list` hides it; `revoke` kills it."""
    with get_db_of(app).session() as session:
        make_editor(session, "pen@example.com", EditorRole.EDITOR)
    created = runner.invoke(args=["api-token", "create", "PEN@example.com", "--name", "zapier"])
    assert created.exit_code == 0, created.output
    secret = re.search(r"^(dg_[A-Za-z0-9_-]{43})$", created.stdout, re.MULTILINE)
    assert secret, created.output
    assert "shown once" in created.stderr
    stored = _tokens(app)
    assert [t.name for t in stored] == ["zapier"]
    assert secret.group(1) not in stored[0].token_hash
    api = ApiClient(app.test_client(), secret.group(1))
    assert api.get(ME).get_json()["email"] == "pen@example.com"

    listing = runner.invoke(args=["api-token", "list"]).output
    assert re.search(rf"^{stored[0].id}\tpen@example.com\tzapier\tcreated .*\tlast used 20", listing, re.MULTILINE)
    assert secret.group(1) not in listing

    revoked = runner.invoke(args=["api-token", "revoke", str(stored[0].id)])
    assert revoked.exit_code == 0 and "revoked" in revoked.output
    assert api.get(ME).status_code == 401


def test_cli_refuses_bad_input(app, runner) -> None:  # type: ignore[no-untyped-def]
    """Unknown editor, empty name, deactivated editor or unknown id: a message, nothing created."""
    with get_db_of(app).session() as session:
        make_editor(session, "boss@example.com")
        make_editor(session, "gone@example.com", EditorRole.EDITOR).active = False
    unknown = runner.invoke(args=["api-token", "create", "who@example.com", "--name", "x"])
    assert unknown.exit_code == 1 and "no editor has the address" in unknown.output
    empty = runner.invoke(args=["api-token", "create", "boss@example.com", "--name", "  "])
    assert empty.exit_code == 1 and "Name is required" in empty.output
    gone = runner.invoke(args=["api-token", "create", "gone@example.com", "--name", "x"])
    assert gone.exit_code == 1 and "deactivated" in gone.output
    missing = runner.invoke(args=["api-token", "revoke", "999"])
    assert missing.exit_code == 1 and "there is no token 999" in missing.output
    assert _tokens(app) == []


@pytest.mark.one_backend
def test_no_token_is_401_with_a_challenge(app, client) -> None:  # type: ignore[no-untyped-def]
    """Without a token the API answers 401 JSON with `WWW-Authenticate: Bearer`."""
    response = ApiClient(client).get(ME)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == 'Bearer realm="digest"'
    assert "Authorization: Bearer" in response.get_json()["error"]


@pytest.mark.parametrize("header", [
    "Bearer dg_wrong",
    "Bearer " + "dg_" + "A" * 43,
    "Basic YWRtaW5AZXhhbXBsZS5jb206cGFzc3dvcmQ=",
    "Bearer",
    "Bearer dg_\u00e9t\u00e9",
])
def test_a_wrong_token_is_401(app, client, header: str) -> None:  # type: ignore[no-untyped-def]
    """A mistyped token, another scheme or an empty one gets 401 and changes nothing."""
    make_token(app)
    response = ApiClient(client).get(ME, headers={"Authorization": header})
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith('Bearer realm="digest"')
    if header.startswith("Bearer dg_"):
        assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]


def test_a_session_cookie_alone_is_refused(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """A logged-in admin's browser session does not authenticate API requests (no CSRF route)."""
    demo_newsletter(db)
    make_editor(db, "boss@example.com")
    assert log_in(client, "boss@example.com").status_code == 302
    assert client.get("/editor/").status_code == 200
    api = ApiClient(client)
    assert api.get(ME).status_code == 401
    created = api.post("/api/v1/newsletters/weekly-model/posts",
                       json={"title": "Sneaky", "section_id": 1})
    assert created.status_code == 401
    assert api.get("/api/v1/newsletters/weekly-model/posts?search=Sneaky",
                   token=make_token(app, "boss@example.com")).get_json()["total"] == 0


def test_token_posts_need_no_csrf_token(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """A token-authenticated POST works without any CSRF token (no cookie is read)."""
    newsletter = demo_newsletter(db)
    section_id = newsletter.sections[0].id
    api = ApiClient(client, make_token(app))
    response = api.post("/api/v1/newsletters/weekly-model/posts",
                        json={"title": "Without CSRF", "section_id": section_id})
    assert response.status_code == 201
    assert "Set-Cookie" not in response.headers


def test_a_token_dies_with_its_editors_deactivation(app, client, runner) -> None:  # type: ignore[no-untyped-def]
    """Deactivating the editor refuses their tokens at once; reactivating restores them."""
    with get_db_of(app).session() as session:
        make_editor(session, "boss@example.com")
    token = make_token(app, "pen@example.com", EditorRole.EDITOR)
    api = ApiClient(client, token)
    assert api.get(ME).status_code == 200
    assert runner.invoke(args=["editor", "deactivate", "pen@example.com"]).exit_code == 0
    refused = api.get(ME)
    assert refused.status_code == 401 and "deactivated" in refused.get_json()["error"]
    assert runner.invoke(args=["editor", "activate", "pen@example.com"]).exit_code == 0
    assert api.get(ME).status_code == 200


def test_a_token_acts_with_its_editors_current_role(app, client, runner) -> None:  # type: ignore[no-untyped-def]
    """An editor's token gets 403 on admin-only endpoints; promoted to admin, the same token passes."""
    with get_db_of(app).session() as session:
        demo_newsletter(session)
        make_editor(session, "boss@example.com")
    api = ApiClient(client, make_token(app, "pen@example.com", EditorRole.EDITOR))
    assert api.get(ME).get_json()["role"] == "editor"
    listing = api.get("/api/v1/newsletters/weekly-model/subscribers").get_json()
    reader = listing["subscribers"][0]["id"]
    refused = api.post(f"/api/v1/subscribers/{reader}/suppress")
    assert refused.status_code == 403 and "admin" in refused.get_json()["error"]
    assert api.post(f"/api/v1/newsletters/weekly-model/subscribers/{reader}/unsubscribe").status_code == 403
    assert api.get(f"/api/v1/subscribers/{reader}").get_json()["suppression"] is None
    with get_db_of(app).session() as session:
        from digest.domain.editors import find_editor, set_role

        set_role(session, find_editor(session, "pen@example.com"), EditorRole.ADMIN)
    assert api.post(f"/api/v1/subscribers/{reader}/suppress").status_code == 200


def test_last_use_is_written_at_most_once_a_minute(app, client) -> None:  # type: ignore[no-untyped-def]
    """Many requests within a minute write last_used_at once; a request a minute later moves it."""
    secret = make_token(app)
    api = ApiClient(client, secret)
    assert _tokens(app)[0].last_used_at is None
    for _ in range(5):
        assert api.get(ME).status_code == 200
    first = _tokens(app)[0].last_used_at
    assert first is not None
    for _ in range(5):
        api.get(ME)
    assert _tokens(app)[0].last_used_at == first
    with get_db_of(app).session() as session:
        token = session.scalars(select(ApiToken)).one()
        token.last_used_at = first - dt.timedelta(seconds=61)
    assert api.get(ME).get_json()["token"]["last_used_at"] > first.isoformat()
    assert _tokens(app)[0].last_used_at > first


def _allowed(limit: str) -> int:
    return int(limit.split()[0])


def test_rate_limit_is_per_token(app, client) -> None:  # type: ignore[no-untyped-def]
    """One request over the limit with one token gets 429 JSON with Retry-After; another token goes on."""
    busy = ApiClient(client, make_token(app, name="busy"))
    calm = ApiClient(client, make_token(app, name="calm"))
    for _ in range(_allowed(app.config["API_RATE_LIMIT"])):
        assert busy.get(ME).status_code == 200
    limited = busy.get(ME)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0
    assert "this token" in limited.get_json()["error"]
    assert calm.get(ME).status_code == 200


def test_failed_authentications_are_limited_per_ip(app, client) -> None:  # type: ignore[no-untyped-def]
    """After a few wrong tokens from one address, even a right one waits; other addresses do not."""
    secret = make_token(app)
    api = ApiClient(client)
    guesser = {"REMOTE_ADDR": fresh_ip()}
    for n in range(_allowed(app.config["API_FAILED_AUTH_LIMIT"])):
        assert api.get(ME, token=f"dg_guess{n}", environ_base=guesser).status_code == 401
    assert api.get(ME, token=secret, environ_base=guesser).status_code == 429
    assert api.get(ME, token=secret, environ_base={"REMOTE_ADDR": fresh_ip()}).status_code == 200


def test_workspace_page_creates_shows_once_and_revokes(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """An editor creates a token on their account page, sees it once, uses it, and revokes it."""
    demo_newsletter(db)
    make_editor(db, "pen@example.com", EditorRole.EDITOR)
    make_editor(db, "other@example.com", EditorRole.ADMIN)
    db.close()
    others = make_token(app, "other@example.com", name="not yours")
    log_in(client, "pen@example.com")
    page = client.get("/editor/account/tokens")
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert 'href="/editor/account/tokens"' in page.get_data(as_text=True)
    assert "not yours" not in page.get_data(as_text=True)

    created = submit(client, "/editor/account/tokens", name="My script")
    assert created.status_code == 201
    assert created.headers["Cache-Control"] == "no-store"
    secret = re.search(r'id="new-token">(dg_[^<]+)<', created.get_data(as_text=True)).group(1)
    api = ApiClient(app.test_client(), secret)
    assert api.get(ME).get_json()["token"]["name"] == "My script"
    again = client.get("/editor/account/tokens").get_data(as_text=True)
    assert secret not in again and "My script" in again

    empty = submit(client, "/editor/account/tokens", name="")
    assert empty.status_code == 400 and "Name is required" in empty.get_data(as_text=True)

    by_name = {t.name: t for t in _tokens(app)}
    mine, theirs = by_name["My script"], by_name["not yours"]
    html = client.get("/editor/account/tokens").get_data(as_text=True)
    foreign = submit(client, "/editor/account/tokens", f"/editor/account/tokens/{theirs.id}/revoke")
    assert foreign.status_code == 404
    assert ApiClient(app.test_client(), others).get(ME).status_code == 200
    assert f"/editor/account/tokens/{mine.id}/revoke" in html
    revoked = submit(client, "/editor/account/tokens", f"/editor/account/tokens/{mine.id}/revoke")
    assert revoked.status_code == 302
    assert "is revoked" in client.get("/editor/account/tokens").get_data(as_text=True)
    assert api.get(ME).status_code == 401


def test_tokens_are_stored_only_as_hashes(app) -> None:  # type: ignore[no-untyped-def]
    """The database holds the SHA-256 of a token, never the token, and each token is new."""
    first, second = make_token(app), make_token(app)
    assert first != second and first.startswith("dg_") and len(first) == 46
    stored = {t.token_hash for t in _tokens(app)}
    assert stored == {api_tokens.hash_token(first), api_tokens.hash_token(second)}
    assert not any(first in h or second in h for h in stored)
