"""App-wide guarantees: CSRF on every state-changing route, security headers on every answer."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from digest import create_app
from digest.core.db import Base
from digest.domain.links import confirm_url, preferences_url, unsubscribe_url
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.readers import (
    fresh_ip,
    load_newsletter,
    signed_path,
    signup,
)

CHANGING = {"POST", "PUT", "PATCH", "DELETE"}
# The documented exemptions: RFC 8058 one-click unsubscribe (mail providers send no token),
# the bearer-token API (reads no cookie), and the CORS signup for other sites' forms.
EXEMPT = {"public.unsubscribe", "api.subscribe"}
EXEMPT_BLUEPRINT = "api.editor_api."
# What a form might send: enough that a route missing CSRF would change something.
FORM = {
    "action": "pause", "title": "Changed", "name": "Changed", "email": "changed@example.org",
    "password": "correct horse battery", "new_password": "another horse battery",
    "consent": "yes", "newsletter": "weekly-model", "section_id": "1", "body_md": "Changed",
    "publish": "1", "role": "editor", "active": "0", "note": "changed", "direction": "up",
    "sections": "news", "statuses": "keep", "source": "import", "reason": "manual",
}


def _snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    with get_db_of(app).session() as session:
        return {
            table.name: sorted(map(tuple, session.execute(select(table)).all()), key=repr)
            for table in Base.metadata.sorted_tables
        }


def _changing_rules(app: Flask) -> list[tuple[str, str, str]]:
    """Return (endpoint, method, rule) of every route that takes a changing method."""
    return sorted(
        (rule.endpoint, method, rule.rule)
        for rule in app.url_map.iter_rules()
        for method in (rule.methods or set()) & CHANGING
    )


def _path(app: Flask, rule: str) -> str:
    tokens = {
        "/confirm/": signed_path(app, "pending@example.org", confirm_url).rsplit("/", 1)[1],
        "/unsubscribe/": signed_path(app, "ada@example.com", unsubscribe_url).rsplit("/", 1)[1],
        "/preferences/": signed_path(app, "grace@example.com", preferences_url).rsplit("/", 1)[1],
    }

    def value(match: re.Match[str]) -> str:
        if match["converter"] == "int":
            return "1"
        if match["name"] == "token":
            return next(token for prefix, token in tokens.items() if rule.startswith(prefix))
        return "weekly-model"

    return re.sub(r"<(?:(?P<converter>\w+)(?:\([^)]*\))?:)?(?P<name>\w+)>", value, rule)


def test_every_state_changing_route_needs_a_csrf_token(app) -> None:  # type: ignore[no-untyped-def]
    """Each POST/PUT/PATCH/DELETE route, but the documented exemptions, refuses a tokenless request and changes nothing."""
    app.config["WTF_CSRF_ENABLED"] = True
    load_newsletter(app)
    with get_db_of(app).session() as session:
        make_editor(session)
    client = app.test_client()
    assert signup(client, "pending@example.org").status_code == 200
    assert log_in(client, "admin@example.com").status_code == 302
    before = _snapshot(app)
    checked = []
    for endpoint, method, rule in _changing_rules(app):
        if endpoint in EXEMPT or endpoint.startswith(EXEMPT_BLUEPRINT):
            continue
        path = _path(app, rule)
        response = client.open(path, method=method, data=FORM,
                               environ_base={"REMOTE_ADDR": fresh_ip()})
        assert response.status_code == 400, f"{method} {path} answered {response.status_code}"
        assert "This form has expired" in response.get_data(as_text=True), f"{method} {path}"
        checked.append(endpoint)
    assert _snapshot(app) == before
    assert client.get("/editor/").status_code == 200  # the refused logout left the session alone
    # The walk found the routes it should: the workspace's and the readers'.
    assert {"editor.login", "editor.logout", "editor.post_new", "public.subscribe",
            "public.preferences_action", "public.delete", "public.confirm"} <= set(checked)


@pytest.mark.one_backend
def test_only_the_documented_routes_are_exempt(app) -> None:  # type: ignore[no-untyped-def]
    """The exemptions are exactly the one-click POST, the bearer-token API and the CORS signup."""
    csrf = app.extensions["csrf"]
    exempt_views = {app.view_functions[e] for e, _m, _r in _changing_rules(app)
                    if f"{app.view_functions[e].__module__}.{app.view_functions[e].__name__}"
                    in csrf._exempt_views}
    assert {view.__name__ for view in exempt_views} == {"unsubscribe", "subscribe"}
    assert {"api.subscribe", "public.unsubscribe"} == {
        e for e, _m, _r in _changing_rules(app) if app.view_functions[e] in exempt_views
    }
    assert {blueprint.name for blueprint in csrf._exempt_blueprints} == {"editor_api"}


def _headers_present(response: Any, hsts: bool) -> None:
    headers = response.headers
    where = f"{response.status_code} {response.mimetype}"
    assert "frame-ancestors 'none'" in headers.get("Content-Security-Policy", ""), where
    assert "default-src 'self'" in headers["Content-Security-Policy"], where
    assert headers.get("X-Content-Type-Options") == "nosniff", where
    assert headers.get("Referrer-Policy") == "no-referrer", where
    assert headers.get("X-Frame-Options") == "DENY", where
    assert ("Strict-Transport-Security" in headers) is hsts, where


def test_security_headers_are_on_every_kind_of_answer(app, client) -> None:  # type: ignore[no-untyped-def]
    """HTML, JSON, the feed, a static file, 404, 405, 429 and a redirect all carry the headers, with HSTS on https."""
    load_newsletter(app)
    app.config["LINK_RATE_LIMIT"] = "1 per minute"
    preferences = signed_path(app, "grace@example.com", preferences_url)
    answers = {
        "html": client.get("/"),
        "json": client.get("/api/v1/openapi.json"),
        "feed": client.get("/archive/weekly-model/feed.xml"),
        "static": client.get("/static/site.css"),
        "404": client.get("/no/such/page"),
        "api 404": client.get("/api/v1/no-such-thing"),
        "405": client.get("/subscribe"),
        "redirect": client.get("/editor/"),
        "first": client.get(preferences),
        "429": client.get(preferences),
    }
    kinds = {name: (r.status_code, r.mimetype) for name, r in answers.items()}
    assert kinds["html"] == (200, "text/html") and kinds["json"] == (200, "application/json")
    assert kinds["feed"] == (200, "application/atom+xml") and kinds["static"] == (200, "text/css")
    assert kinds["404"][0] == 404 and kinds["api 404"] == (404, "application/json")
    assert kinds["405"][0] == 405 and kinds["redirect"][0] == 302 and kinds["429"][0] == 429
    for response in answers.values():
        _headers_present(response, hsts=True)


def test_no_hsts_over_plain_http(app_overrides: dict[str, Any]) -> None:
    """Served over http://, the app does not ask browsers for HTTPS (it could lock them out)."""
    plain = create_app({**app_overrides, "BASE_URL": "http://localhost:5000"})
    client = plain.test_client()
    for response in (client.get("/"), client.get("/static/site.css"), client.get("/nothing")):
        _headers_present(response, hsts=False)
    get_db_of(plain).dispose()

