"""/api/v1/webhooks: admins register, change, rotate, test and resend; a receiver verifies."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from standardwebhooks.webhooks import Webhook

from digest.core.models import EditorRole
from digest.engine.webhooks import deliver_due, webhook_client
from tests.support.api import ApiClient, make_token
from tests.support.http import Received, Reply, serving
from tests.support.readers import load_newsletter
from tests.support.waiting import wait_until

HOOKS = "/api/v1/webhooks"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    """The receiver runs on 127.0.0.1: allow it."""
    return {**app_overrides, "ALLOW_PRIVATE_URLS": True}


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """An admin's API client."""
    load_newsletter(app)
    return ApiClient(app.test_client(), make_token(app))


def _deliver(app: Flask, until: Any) -> None:
    with webhook_client(app) as client:
        wait_until(lambda: deliver_due(app, client, "api-test") >= 0 and until(), 15,
                   "webhook deliveries", every=0.05)


def test_register_test_list_attempts_and_resend(app: Flask, api: ApiClient) -> None:
    """Does an admin register an endpoint (secret shown once), send it a test event the
    receiver verifies, see the attempt with status and excerpt, and resend it?"""
    taken: list[dict[str, Any]] = []
    secret = ""

    def receiver(request: Received) -> Reply:
        taken.append(Webhook(secret).verify(request.body, request.headers))
        return Reply(202, {}, b"queued for processing")

    with serving(receiver) as server:
        created = api.post(HOOKS, json={"url": server.url + "/in", "events": ["post.published"],
                                        "description": "Slack bridge"})
        assert created.status_code == 201
        hook = created.get_json()
        secret = hook["secret"]
        assert secret.startswith("whsec_") and hook["enabled"] is True
        assert "secret" not in api.get(created.headers["Location"]).get_json()
        assert [h["id"] for h in api.get(HOOKS).get_json()["webhooks"]] == [hook["id"]]

        queued = api.post(f"{HOOKS}/{hook['id']}/test")
        assert queued.status_code == 202 and queued.get_json()["type"] == "webhook.test"
        _deliver(app, lambda: len(taken) == 1)
        (delivery,) = api.get(f"{HOOKS}/{hook['id']}/deliveries").get_json()["deliveries"]
        assert delivery["state"] == "delivered"
        (attempt,) = delivery["attempts"]
        assert attempt["status"] == 202 and attempt["excerpt"] == "queued for processing"
        assert attempt["error"] is None and attempt["elapsed_ms"] >= 0

        again = api.post(f"{HOOKS}/{hook['id']}/deliveries/{delivery['id']}/resend")
        assert again.status_code == 202
        _deliver(app, lambda: len(taken) == 2)
    assert server.received[0].headers["webhook-id"] == server.received[1].headers["webhook-id"]
    assert taken[0]["type"] == "webhook.test"


def test_post_published_reaches_the_receiver(app: Flask, api: ApiClient) -> None:
    """Does publishing a post through the API send post.published with its public URL?"""
    taken: list[dict[str, Any]] = []
    hook: dict[str, Any] = {}

    def receiver(request: Received) -> Reply:
        taken.append(Webhook(hook["secret"]).verify(request.body, request.headers))
        return Reply(204)

    with serving(receiver) as server:
        hook.update(api.post(HOOKS, json={"url": server.url, "events": ["post.published"]})
                    .get_json())
        section = api.get("/api/v1/newsletters/weekly-model/sections").get_json()["sections"][0]
        post = api.post("/api/v1/newsletters/weekly-model/posts", json={
            "title": "Hooks are here", "section_id": section["id"], "publish": True}).get_json()
        _deliver(app, lambda: len(taken) == 1)
    assert taken[0]["type"] == "post.published"
    assert taken[0]["data"]["url"] == post["url"] and taken[0]["data"]["title"] == "Hooks are here"


def test_rotate_change_and_remove(app: Flask, api: ApiClient) -> None:
    """Does rotating return a new secret with the old one's end, may an endpoint be
    switched off and on, and is a removed one gone?"""
    hook = api.post(HOOKS, json={"url": "https://crm.example.com/h",
                                 "events": ["issue.sent"]}).get_json()
    rotated = api.post(f"{HOOKS}/{hook['id']}/rotate").get_json()
    assert rotated["secret"] != hook["secret"] and rotated["previous_secret_until"]
    off = api.patch(f"{HOOKS}/{hook['id']}", json={"enabled": False}).get_json()
    assert off["enabled"] is False and off["disabled_reason"] == "disabled by an admin"
    on = api.patch(f"{HOOKS}/{hook['id']}", json={"enabled": True, "events": ["issue.scheduled"]})
    assert on.get_json()["enabled"] is True and on.get_json()["events"] == ["issue.scheduled"]
    assert api.delete(f"{HOOKS}/{hook['id']}").status_code == 204
    assert api.get(f"{HOOKS}/{hook['id']}").status_code == 404


def test_unknown_events_and_bad_urls_are_refused(api: ApiClient) -> None:
    """Is an unknown event a 409 naming it, and a non-http URL a 422?"""
    unknown = api.post(HOOKS, json={"url": "https://x.example/", "events": ["issue.eaten"]})
    assert unknown.status_code == 409 and "issue.eaten" in unknown.get_json()["fields"]["events"]
    bad = api.post(HOOKS, json={"url": "gopher://x.example/", "events": ["issue.sent"]})
    assert bad.status_code == 422 and "url" in bad.get_json()["fields"]
    assert api.get(HOOKS).get_json()["webhooks"] == []


def test_an_address_the_rules_allow_comes_back_as_the_document_says(api: ApiClient) -> None:
    """An address with non-ASCII characters passes the input rule, so the answer that
    carries it back must match the document too (found by schemathesis: the document
    promised an ASCII-only URI)."""
    hook = api.post(HOOKS, json={"url": "https://bücher.example/hooks/ünd\"quoted\"",
                                 "events": ["issue.sent"]})
    assert hook.status_code == 201, hook.get_json()
    assert api.get(f"{HOOKS}/{hook.get_json()['id']}").get_json()["url"].startswith("https://bücher.")


def test_editors_who_are_not_admins_cannot_touch_webhooks(app: Flask, api: ApiClient) -> None:
    """Does an editor's token get 403 on every webhooks operation?"""
    pen = make_token(app, "pen@example.com", EditorRole.EDITOR)
    assert api.get(HOOKS, token=pen).status_code == 403
    refused = api.post(HOOKS, token=pen, json={"url": "https://x.example/", "events": ["issue.sent"]})
    assert refused.status_code == 403
    assert api.get(HOOKS).get_json()["webhooks"] == []
