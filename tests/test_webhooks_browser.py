"""The webhooks pages in Chromium: an admin adds an endpoint, sees its secret once, sends a
test event a real receiver verifies, reads the attempt and resends; the banner after a
disable. Screenshots and axe-core at desktop and phone widths, light and dark."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from digest.core.db import utcnow
from digest.core.models import WebhookEndpoint
from digest.engine.webhooks import deliver_due, webhook_client
from tests.support.apps import get_db_of
from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path
from tests.support.editor import PASSWORD, make_editor
from tests.support.http import Received, Reply, serving
from tests.support.waiting import wait_until
from tests.support.workspace import demo_newsletter

pytestmark = [pytest.mark.browser, pytest.mark.one_backend]


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    """The receiver runs on 127.0.0.1: allow it."""
    return {**app_overrides, "ALLOW_PRIVATE_URLS": True}


def _shots(page: Any, name: str) -> list[str]:
    """Screenshot the page light and dark; return axe-core's serious or critical findings."""
    from axe_playwright_python.sync_playwright import Axe

    problems = []
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        page.screenshot(path=str(screenshot_path(f"hooks/{name}-{scheme}")), full_page=True)
        problems += [f"{name} {scheme}: {v['id']} {node['target']}"
                     for v in Axe().run(page).response["violations"]
                     if v["impact"] in {"serious", "critical"} for node in v["nodes"]]
    return problems


def test_add_test_resend_and_the_disabled_banner(app: Flask, db: Session) -> None:
    """Can an admin do the whole round in the browser, and does a disabled endpoint show
    a banner on every workspace page?"""
    demo_newsletter(db)
    make_editor(db, "admin@example.com")
    db.rollback()
    verified: list[dict[str, Any]] = []
    secret: list[str] = []

    def receiver(request: Received) -> Reply:
        verified.append(Webhook(secret[0]).verify(request.body, request.headers))
        return Reply(200, {}, b'{"received": true}')

    screenshot_path("hooks/x").parent.mkdir(exist_ok=True)
    with serving(receiver) as hook_server, live_server(app) as base, \
            chromium(viewport={"width": 1280, "height": 900}) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.click("nav >> text=Settings")
        page.click("main >> text=Webhooks")
        page.fill("#url", hook_server.url + "/digest")
        page.click("button:has-text('Add endpoint')")  # no event chosen: the errors show
        assert "Choose at least one event." in page.inner_text(".flash-error")
        problems = _shots(page, "webhooks-errors")
        page.fill("#url", hook_server.url + "/digest")
        page.fill("#description", "CRM sync")
        page.check("input[value='subscriber.created']")
        page.check("input[value='issue.sent']")
        page.click("button:has-text('Add endpoint')")
        secret.append(page.inner_text("#webhook-secret"))
        assert secret[0].startswith("whsec_")
        problems += _shots(page, "webhook-created")
        page.click("button:has-text('Send a test event')")
        with webhook_client(app) as client:
            wait_until(lambda: deliver_due(app, client, "browser") >= 0 and verified, 15)
        page.reload()
        assert page.locator(".attempts li strong").first.inner_text() == "200"
        assert "received" in page.locator(".attempts code.excerpt").first.inner_text()
        assert "#webhook-secret" not in page.content()
        page.click("button:has-text('Resend')")
        assert "queued again" in page.inner_text(".flash-success")
        with webhook_client(app) as client:
            wait_until(lambda: deliver_due(app, client, "browser") >= 0 and len(verified) == 2, 15)
        page.reload()
        assert page.locator(".attempts li").count() == 2
        problems += _shots(page, "webhook-attempts")

        with get_db_of(app).session() as session:
            session.execute(update(WebhookEndpoint).values(
                enabled=False, failing_since=utcnow() - dt.timedelta(days=3),
                disabled_at=utcnow(), disabled_reason="every attempt failed since 2026-12-02"))
        page.goto(base + "/editor/")
        banner = page.locator(".flash-warning", has_text="webhook endpoint is disabled")
        assert hook_server.url in banner.inner_text()
        problems += _shots(page, "webhook-banner")
        page.set_viewport_size({"width": 390, "height": 844})
        banner.locator("a").click()
        problems += _shots(page, "webhook-phone")
        page.click("button:has-text('Enable')")
        assert page.locator(".flash-warning", has_text="webhook endpoint").count() == 0
    assert [p["type"] for p in verified] == ["webhook.test", "webhook.test"]
    assert not problems, "\n".join(problems)
