"""Two-factor sign-in: enrolment, the two-step login, recovery codes, replay, limits, admin reset."""

from __future__ import annotations

import re
import time

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from digest.core.models import Editor, EditorRole, RecoveryCode
from tests.support.api import make_token
from tests.support.editor import PASSWORD, log_in, make_editor
from tests.support.forms import csrf_token, submit


def code(secret: str, steps_ahead: int = 0) -> str:
    """Return the authenticator's code for this 30-second step, or one a few steps on."""
    return pyotp.TOTP(secret).at(time.time() + 30 * steps_ahead)


def enrol(client: FlaskClient) -> tuple[str, list[str]]:
    """Set up two-factor sign-in for the logged-in editor; return the secret and recovery codes."""
    submit(client, "/editor/account/two-factor", "/editor/account/two-factor/start")
    page = client.get("/editor/account/two-factor").get_data(as_text=True)
    match = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page)
    assert match, "the set-up page shows no secret"
    secret = match.group(1).replace(" ", "")
    done = submit(client, "/editor/account/two-factor", code=code(secret))
    assert done.status_code == 200, done.get_data(as_text=True)
    codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", done.get_data(as_text=True))
    return secret, codes


def log_out(client: FlaskClient) -> None:
    """Press "Log out"."""
    client.post("/editor/logout", data={"csrf_token": csrf_token(client.get("/editor/").get_data(as_text=True))})


def enter_code(client: FlaskClient, typed: str):  # type: ignore[no-untyped-def]
    """Submit the login's code step."""
    return submit(client, "/editor/login/code", code=typed)


def logged_in(client: FlaskClient) -> bool:
    """Return whether the workspace opens for this browser."""
    return client.get("/editor/posts").status_code == 200


def test_enrolment_is_on_only_after_a_confirmed_code(client, db) -> None:  # type: ignore[no-untyped-def]
    """A wrong code changes nothing; the right one turns 2FA on and shows ten codes, once."""
    make_editor(db)
    log_in(client, "admin@example.com")
    submit(client, "/editor/account", "/editor/account/two-factor/start")
    page = client.get("/editor/account/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")  # type: ignore[union-attr]
    assert "<svg" in page and "QR code for your authenticator app" in page
    wrong = submit(client, "/editor/account/two-factor", code="000000" if code(secret) != "000000" else "111111")
    assert wrong.status_code == 400 and b"does not match" in wrong.data
    assert b"Off: your password alone" in client.get("/editor/account").data
    done = submit(client, "/editor/account/two-factor", code=code(secret))
    codes = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", done.get_data(as_text=True))
    assert len(set(codes)) == 10
    account = client.get("/editor/account").get_data(as_text=True)
    assert "10 of your recovery codes are unused" in account
    assert client.get("/editor/account/two-factor").status_code == 302  # the secret is never shown again
    for shown in (account, client.get("/editor/account/two-factor", follow_redirects=True).get_data(as_text=True)):
        assert secret not in shown.replace(" ", "") and codes[0] not in shown


def test_secret_and_recovery_codes_are_not_stored_readable(client, db) -> None:  # type: ignore[no-untyped-def]
    """The database holds the TOTP secret encrypted and the recovery codes hashed."""
    make_editor(db)
    log_in(client, "admin@example.com")
    secret, codes = enrol(client)
    stored = db.scalar(select(Editor.totp_secret))
    assert stored and secret not in stored
    hashes = list(db.scalars(select(RecoveryCode.code_hash)))
    assert len(hashes) == 10
    assert not any(c.replace("-", "") in h for c in codes for h in hashes)


def test_sign_in_is_two_steps_and_no_session_exists_between(client, db) -> None:  # type: ignore[no-untyped-def]
    """After the right password only the code step opens; the workspace needs the code too."""
    make_editor(db)
    log_in(client, "admin@example.com")
    secret, _codes = enrol(client)
    log_out(client)
    first = log_in(client, "admin@example.com", next="/editor/posts")
    assert first.status_code == 302 and first.location == "/editor/login/code"
    assert not logged_in(client)
    assert client.get("/editor/login/code").status_code == 200  # still waiting for the code
    assert enter_code(client, "12345x").status_code == 400
    assert not logged_in(client)
    done = enter_code(client, code(secret, 1))
    assert done.status_code == 302 and done.location == "/editor/posts"
    assert logged_in(client)


def test_the_code_step_needs_the_password_step(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """A browser that did not pass the password step cannot use the code step."""
    make_editor(db)
    log_in(client, "admin@example.com")
    secret, _codes = enrol(client)
    stranger = app.test_client()
    page = stranger.get("/editor/login/code")
    assert page.status_code == 302 and page.location == "/editor/login"
    token = csrf_token(stranger.get("/editor/login").get_data(as_text=True))
    assert stranger.post("/editor/login/code", data={"csrf_token": token, "code": code(secret, 1)}).status_code == 302
    assert not logged_in(stranger)


def test_the_code_step_waits_five_minutes_at_most(client, db) -> None:  # type: ignore[no-untyped-def]
    """A password step older than five minutes must be done again before any code counts."""
    make_editor(db)
    log_in(client, "admin@example.com")
    secret, _codes = enrol(client)
    log_out(client)
    log_in(client, "admin@example.com")
    token = csrf_token(client.get("/editor/login/code").get_data(as_text=True))
    with client.session_transaction() as state:
        pending = state["pending_second_factor"]
        state["pending_second_factor"] = {**pending, "since": pending["since"] - 301}
    late = client.post("/editor/login/code", data={"csrf_token": token, "code": code(secret, 1)})
    assert late.status_code == 302 and late.location == "/editor/login"
    assert not logged_in(client)


def test_a_code_cannot_be_replayed(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """A code that signed in once does not sign in again, even within its window."""
    make_editor(db)
    log_in(client, "admin@example.com")
    secret, _codes = enrol(client)
    log_out(client)
    used = code(secret, 1)
    log_in(client, "admin@example.com")
    assert enter_code(client, used).status_code == 302
    other = app.test_client()
    log_in(other, "admin@example.com")
    replay = enter_code(other, used)
    assert replay.status_code == 400 and not logged_in(other)
    assert b"That code does not work" in replay.data


def test_the_code_that_confirmed_the_set_up_does_not_sign_in(client, db) -> None:  # type: ignore[no-untyped-def]
    """The code typed to turn 2FA on is spent: someone watching cannot reuse it to log in."""
    make_editor(db)
    log_in(client, "admin@example.com")
    submit(client, "/editor/account/two-factor", "/editor/account/two-factor/start")
    page = client.get("/editor/account/two-factor").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7 ]+)<', page).group(1).replace(" ", "")  # type: ignore[union-attr]
    confirming = code(secret)
    assert submit(client, "/editor/account/two-factor", code=confirming).status_code == 200
    log_out(client)
    log_in(client, "admin@example.com")
    assert enter_code(client, confirming).status_code == 400
    assert not logged_in(client)


def test_two_sign_ins_racing_with_one_code_cannot_both_pass(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """Two requests that loaded the editor before either used the code: only the first passes."""
    from digest.core.db import utcnow
    from digest.domain import two_factor
    from tests.support.apps import SECRET, get_db_of

    make_editor(db)
    log_in(client, "admin@example.com")
    secret, codes = enrol(client)
    typed = code(secret, 1)
    database = get_db_of(app)
    with database.sessionmaker() as first, database.sessionmaker() as second:
        theirs = second.scalars(select(Editor)).one()
        second.expunge(theirs)  # as loaded now: its last used step is the one before the race
        second.rollback()  # SQLite: the read must not hold the database while the first writes
        mine = first.scalars(select(Editor)).one()
        assert two_factor.check_code(first, mine, SECRET, typed, utcnow())
        first.commit()
        assert not two_factor.check_code(second, theirs, SECRET, typed, utcnow())
        second.commit()
        assert two_factor.check_code(first, mine, SECRET, codes[0], utcnow())
        first.commit()
        assert not two_factor.check_code(second, theirs, SECRET, codes[0], utcnow())


def test_a_recovery_code_works_once(client, db) -> None:  # type: ignore[no-untyped-def]
    """Each recovery code signs in once, typed in any case; then it is spent."""
    make_editor(db)
    log_in(client, "admin@example.com")
    _secret, codes = enrol(client)
    log_out(client)
    log_in(client, "admin@example.com")
    assert enter_code(client, codes[3].upper()).status_code == 302
    assert b"9 of your recovery codes are unused" in client.get("/editor/account").data
    log_out(client)
    log_in(client, "admin@example.com")
    assert enter_code(client, codes[3]).status_code == 400
    assert not logged_in(client)


def test_new_recovery_codes_replace_the_old_ones(client, db) -> None:  # type: ignore[no-untyped-def]
    """With the password, an editor gets ten new recovery codes; the old ones stop working."""
    make_editor(db)
    log_in(client, "admin@example.com")
    _secret, old = enrol(client)
    refused = submit(client, "/editor/account", "/editor/account/two-factor/recovery-codes", password="nope")
    assert refused.status_code == 302
    renewed = submit(client, "/editor/account", "/editor/account/two-factor/recovery-codes", password=PASSWORD)
    new = re.findall(r"<li><code>([a-z0-9]{5}-[a-z0-9]{5})</code></li>", renewed.get_data(as_text=True))
    assert len(new) == 10 and not set(new) & set(old)
    log_out(client)
    log_in(client, "admin@example.com")
    assert enter_code(client, old[0]).status_code == 400
    assert enter_code(client, new[0]).status_code == 302


def test_codes_are_rate_limited_per_account(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """Five wrong codes for one account, from any browser, stop the code step for a while."""
    make_editor(db)
    log_in(client, "admin@example.com")
    secret, _codes = enrol(client)
    log_out(client)
    for n in range(5):
        browser = app.test_client()
        browser.environ_base["REMOTE_ADDR"] = f"203.0.113.{n}"
        log_in(browser, "admin@example.com")
        assert enter_code(browser, "000000" if code(secret) != "000000" else "111111").status_code == 400
    log_in(client, "admin@example.com")
    limited = enter_code(client, code(secret, 1))
    assert limited.status_code == 429 and not logged_in(client)


def test_the_workspace_can_require_two_factor(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """Once an admin requires it, an editor without it is sent to set it up after the password."""
    make_editor(db)
    make_editor(db, "writer@example.com", EditorRole.EDITOR)
    log_in(client, "admin@example.com")
    enrol(client)
    done = submit(client, "/editor/editors", "/editor/editors/two-factor", require="1")
    assert done.status_code == 302
    assert logged_in(client)  # the admin has a second factor
    writer = app.test_client()
    assert log_in(writer, "writer@example.com").status_code == 302
    sent = writer.get("/editor/posts")
    assert sent.status_code == 302 and sent.location == "/editor/account/two-factor"
    assert b"requires two-factor sign-in" in writer.get(sent.location).data
    enrol(writer)
    assert logged_in(writer)
    off = submit(writer, "/editor/account", "/editor/account/two-factor/off", password=PASSWORD)
    assert b"it cannot be turned off" in writer.get(off.location).data


def test_an_editor_turns_it_off_with_the_password(client, db) -> None:  # type: ignore[no-untyped-def]
    """Turning 2FA off needs the current password; then the password alone logs in."""
    make_editor(db)
    log_in(client, "admin@example.com")
    enrol(client)
    submit(client, "/editor/account", "/editor/account/two-factor/off", password="not my password")
    assert b"recovery codes are unused" in client.get("/editor/account").data
    submit(client, "/editor/account", "/editor/account/two-factor/off", password=PASSWORD)
    log_out(client)
    assert log_in(client, "admin@example.com").location == "/editor/"


def test_admin_resets_a_lost_device_from_the_cli(app, client, runner, db) -> None:  # type: ignore[no-untyped-def]
    """`digest editor reset-2fa EMAIL` turns the second factor off and ends the editor's sessions."""
    make_editor(db)
    log_in(client, "admin@example.com", remember="on")
    enrol(client)
    assert "\t2fa on" in runner.invoke(args=["editor", "list"]).output
    result = runner.invoke(args=["editor", "reset-2fa", "admin@example.com"])
    assert result.exit_code == 0, result.output
    assert "no second factor now" in result.output
    assert "\t2fa off" in runner.invoke(args=["editor", "list"]).output
    assert not logged_in(client)
    assert log_in(client, "admin@example.com").location == "/editor/"
    assert runner.invoke(args=["editor", "reset-2fa", "nobody@example.com"]).exit_code == 1


def test_api_tokens_work_without_a_code(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """An editor's API token keeps working when they turn 2FA on (it is a secret of its own)."""
    token = make_token(app)
    log_in(client, "admin@example.com")
    enrol(client)
    response = client.get("/api/v1/newsletters", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200


def serious_violations(page) -> list[str]:  # type: ignore[no-untyped-def]
    """Return axe-core's serious and critical findings on the page."""
    from axe_playwright_python.sync_playwright import Axe

    found = Axe().run(page).response["violations"]
    return [f"{v['id']}: {n['target']}" for v in found if v["impact"] in {"serious", "critical"} for n in v["nodes"]]


@pytest.mark.browser
@pytest.mark.one_backend
def test_two_factor_journey_in_chromium(app: Flask, db) -> None:  # type: ignore[no-untyped-def]
    """Enrol, log out, log in with a code, log out, log in with a recovery code (once only)."""
    from tests.support.browser import chromium, live_server, log_in_editor, screenshot_path

    make_editor(db)
    # bypass_csp: axe is injected as a script; the pages' own CSP is tested elsewhere.
    with live_server(app) as base, chromium(bypass_csp=True) as context:
        page = context.new_page()  # type: ignore[attr-defined]
        log_in_editor(page, base, "admin@example.com", PASSWORD)
        page.goto(base + "/editor/account")
        page.click("text=Set up two-factor sign-in")
        page.click("button:has-text('Set up an authenticator app')")
        page.wait_for_selector("#totp-secret")
        secret = page.inner_text("#totp-secret").replace(" ", "")
        assert page.locator(".qr svg").is_visible()
        for scheme in ("light", "dark"):
            page.emulate_media(color_scheme=scheme)
            for width in (1280, 375):
                page.set_viewport_size({"width": width, "height": 900})
                page.screenshot(path=str(screenshot_path(f"two-factor-enrol-{width}-{scheme}")), full_page=True)
                assert not serious_violations(page), (scheme, width)
        page.emulate_media(color_scheme="light")
        page.set_viewport_size({"width": 1280, "height": 900})
        page.fill("#code", code(secret))
        page.click("button:has-text('Turn on two-factor sign-in')")
        page.wait_for_selector("#recovery-codes")
        recovery = [c.strip() for c in page.locator("#recovery-codes code").all_inner_texts()]
        assert len(recovery) == 10
        page.screenshot(path=str(screenshot_path("two-factor-recovery-codes-1280-light")), full_page=True)
        page.click("text=I have saved them")
        page.wait_for_selector("text=10 of your recovery codes are unused")
        assert not serious_violations(page)
        page.goto(base + "/editor/editors")
        assert not serious_violations(page)

        def log_out_and_enter_password() -> None:
            page.click("button:has-text('Log out')")
            page.wait_for_selector("h1:has-text('Log in')")
            page.fill("#email", "admin@example.com")
            page.fill("#password", PASSWORD)
            page.click("button:has-text('Log in')")
            page.wait_for_selector("h1:has-text('Your code')")

        log_out_and_enter_password()
        page.goto(base + "/editor/posts")  # no session yet: back to the password
        page.wait_for_selector("h1:has-text('Log in')")
        page.fill("#email", "admin@example.com")
        page.fill("#password", PASSWORD)
        page.click("button:has-text('Log in')")
        page.wait_for_selector("h1:has-text('Your code')")
        page.fill("#code", code(secret, 1))
        page.click("button:has-text('Log in')")
        page.wait_for_selector("h1:has-text('Posts')")  # where it was going before the login

        log_out_and_enter_password()
        page.fill("#code", recovery[0])
        page.click("button:has-text('Log in')")
        page.wait_for_selector("h1:has-text('Dashboard')")

        log_out_and_enter_password()
        page.fill("#code", recovery[0])
        page.click("button:has-text('Log in')")
        page.wait_for_selector("text=That code does not work")
        assert not serious_violations(page)
        page.set_viewport_size({"width": 375, "height": 800})
        page.screenshot(path=str(screenshot_path("two-factor-code-refused-375-light")), full_page=True)
        assert "/editor/login/code" in page.url
