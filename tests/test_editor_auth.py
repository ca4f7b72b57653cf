"""Editor login, sessions, permissions, CSRF and login rate limiting."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from digest.core.models import EditorRole, Post
from digest.web.editor import PUBLIC_ENDPOINTS
from tests.support.editor import PASSWORD, log_in, make_editor
from tests.support.forms import csrf_token


def editor_routes(app: Flask, prefix: str = "editor.") -> Iterator[tuple[str, str]]:
    """Yield (method, url) for every route of the workspace behind the login, with sample ids filled in."""
    adapter = app.url_map.bind("news.example.org")
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(prefix) or rule.endpoint in PUBLIC_ENDPOINTS:
            continue
        url = adapter.build(rule.endpoint, {name: 1 for name in rule.arguments})
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            yield method, url


@pytest.mark.one_backend
def test_every_editor_route_is_covered(app) -> None:  # type: ignore[no-untyped-def]
    """The route list the permission tests walk includes the pages a user knows."""
    urls = {url for _, url in editor_routes(app)}
    for expected in ("/editor/", "/editor/posts", "/editor/settings", "/editor/editors",
                     "/editor/subscribers", "/editor/preview"):
        assert expected in urls


def test_anonymous_users_see_nothing_of_the_workspace(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """Every /editor route, GET or POST, sends an anonymous visitor to the login page."""
    make_editor(db)
    token = csrf_token(client.get("/editor/login").get_data(as_text=True))
    checked = 0
    for method, url in editor_routes(app):
        response = client.open(url, method=method, data={"csrf_token": token},
                               headers={"X-CSRFToken": token})
        assert response.status_code == 302, (method, url)
        assert response.location.startswith("/editor/login?next="), (method, url)
        assert b"admin@example.com" not in response.data
        checked += 1
    assert checked >= 20


def test_editors_cannot_manage_editors_or_settings(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """Every admin route answers 403 to an editor, whatever the method."""
    make_editor(db)
    make_editor(db, "writer@example.com", EditorRole.EDITOR)
    assert log_in(client, "writer@example.com").status_code == 302
    token = csrf_token(client.get("/editor/posts").get_data(as_text=True))
    admin_routes = list(editor_routes(app, "editor.admin."))
    assert len(admin_routes) >= 8
    for method, url in admin_routes:
        response = client.open(url, method=method, data={"csrf_token": token, "role": "editor", "active": "0"})
        assert response.status_code == 403, (method, url)
    assert b"Settings" not in client.get("/editor/").data  # not even offered in the navigation


def test_admin_reaches_admin_pages(client, db) -> None:  # type: ignore[no-untyped-def]
    """An admin opens the settings and the editor list."""
    make_editor(db)
    log_in(client, "admin@example.com")
    assert client.get("/editor/settings").status_code == 200
    assert b"admin@example.com" in client.get("/editor/editors").data


def test_wrong_password_and_unknown_address_look_the_same(client, db) -> None:  # type: ignore[no-untyped-def]
    """A failed login says the same thing for a known and an unknown address."""
    make_editor(db)
    known = log_in(client, "admin@example.com", "wrong password!")
    unknown = log_in(client, "nobody@example.com", "wrong password!")
    assert known.status_code == unknown.status_code == 200
    message = b"do not match an active editor account"
    assert message in known.data and message in unknown.data
    assert client.get("/editor/").status_code == 302


def test_login_is_case_insensitive_and_records_the_time(client, db) -> None:  # type: ignore[no-untyped-def]
    """An editor created with capitals logs in with any case; last login is kept."""
    editor = make_editor(db, "Ada.Lovelace@Example.com")
    response = log_in(client, "ada.lovelace@EXAMPLE.com")
    assert response.status_code == 302 and response.location == "/editor/"
    db.refresh(editor)
    assert editor.last_login_at is not None


@pytest.mark.parametrize(
    "target, expected",
    [
        ("/editor/posts?status=draft", "/editor/posts?status=draft"),
        ("https://evil.example/", "/editor/"),
        ("//evil.example/path", "/editor/"),
        ("/\\evil.example", "/editor/"),
        ("javascript:alert(1)", "/editor/"),
    ],
)
def test_redirect_after_login_stays_on_the_site(client, db, target, expected) -> None:  # type: ignore[no-untyped-def]
    """After login the editor goes back where they were, never to another site."""
    make_editor(db)
    response = log_in(client, "admin@example.com", next=target)
    assert response.status_code == 302
    assert response.location == expected


def test_anonymous_redirect_remembers_the_page(client, db) -> None:  # type: ignore[no-untyped-def]
    """Opening a workspace page logged out, then logging in, lands on that page."""
    make_editor(db)
    first = client.get("/editor/posts?status=draft")
    login_page = client.get(first.location).get_data(as_text=True)
    assert 'value="/editor/posts?status=draft"' in login_page
    response = client.post("/editor/login", data={
        "csrf_token": csrf_token(login_page), "email": "admin@example.com", "password": PASSWORD,
        "next": "/editor/posts?status=draft"})
    assert response.location == "/editor/posts?status=draft"


def test_session_cookie_is_secure_httponly_samesite(client, db) -> None:  # type: ignore[no-untyped-def]
    """The login cookie cannot be read by scripts, sent cross-site, or over plain HTTP."""
    make_editor(db)
    response = log_in(client, "admin@example.com", remember="on")
    cookies = response.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("session="))
    remember = next(c for c in cookies if c.startswith("remember_token="))
    for cookie in (session, remember):
        assert "Secure" in cookie and "HttpOnly" in cookie
    assert "SameSite=Lax" in session


def test_remember_me_is_optional(client, db) -> None:  # type: ignore[no-untyped-def]
    """Without "keep me logged in" no long-lived cookie is set."""
    make_editor(db)
    response = log_in(client, "admin@example.com")
    assert not any(c.startswith("remember_token=") for c in response.headers.getlist("Set-Cookie"))


def test_logout_needs_a_post_with_token(client, db) -> None:  # type: ignore[no-untyped-def]
    """A link cannot log an editor out; the button does."""
    make_editor(db)
    log_in(client, "admin@example.com")
    assert client.get("/editor/logout").status_code == 405
    assert client.post("/editor/logout").status_code == 400  # no CSRF token
    assert client.get("/editor/").status_code == 200
    token = csrf_token(client.get("/editor/").get_data(as_text=True))
    assert client.post("/editor/logout", data={"csrf_token": token}).status_code == 302
    assert client.get("/editor/").status_code == 302


def test_deactivated_editor_is_logged_out(client, db) -> None:  # type: ignore[no-untyped-def]
    """Deactivating an editor ends the session they have open."""
    make_editor(db)
    writer = make_editor(db, "writer@example.com", EditorRole.EDITOR)
    log_in(client, "writer@example.com")
    assert client.get("/editor/").status_code == 200
    writer.active = False
    db.commit()
    assert client.get("/editor/").status_code == 302
    assert log_in(client, "writer@example.com").status_code == 200  # refused


def test_form_post_without_csrf_token_is_refused(client, db) -> None:  # type: ignore[no-untyped-def]
    """A cross-site form post (no token) changes nothing."""
    from tests.support.workspace import demo_newsletter

    make_editor(db)
    newsletter = demo_newsletter(db)
    log_in(client, "admin@example.com")
    before = db.scalar(select(func.count()).select_from(Post))
    section_id = newsletter.sections[0].id
    db.rollback()  # end the read so the app may write (SQLite takes the lock at BEGIN)
    response = client.post("/editor/posts/new", data={
        "title": "Forged", "section_id": str(section_id), "body_md": "x"})
    assert response.status_code == 400
    assert b"This form has expired" in response.data
    assert db.scalar(select(func.count()).select_from(Post)) == before
    db.rollback()
    response = client.post("/editor/settings", data={"name": "Hijacked"})
    assert response.status_code == 400
    db.refresh(newsletter)
    assert newsletter.name == "The Weekly Model"


def test_login_limit_per_account(client, db) -> None:  # type: ignore[no-untyped-def]
    """After five failures on one account, that client waits, even with the right password."""
    make_editor(db)
    make_editor(db, "other@example.com", EditorRole.EDITOR)
    for _ in range(5):
        assert log_in(client, "admin@example.com", "wrong password!").status_code == 200
    limited = log_in(client, "admin@example.com")
    assert limited.status_code == 429
    assert b"Too many failed attempts" in limited.data
    assert log_in(client, "other@example.com").status_code == 302


def test_login_limit_reveals_no_accounts(client, db) -> None:  # type: ignore[no-untyped-def]
    """An unknown address is limited exactly like a known one."""
    make_editor(db)
    for address in ("admin@example.com", "ghost@example.com"):
        codes = [log_in(client, address, "wrong password!").status_code for _ in range(6)]
        assert codes == [200] * 5 + [429]


def test_login_limit_per_ip(client, db) -> None:  # type: ignore[no-untyped-def]
    """One address trying many accounts is stopped after twenty failures."""
    make_editor(db)
    for n in range(20):
        assert log_in(client, f"guess{n}@example.com", "wrong password!").status_code == 200
    assert log_in(client, "admin@example.com").status_code == 429


def test_successful_logins_do_not_count(client, db) -> None:  # type: ignore[no-untyped-def]
    """An editor who logs in and out many times is never limited."""
    make_editor(db)
    for _ in range(8):
        assert log_in(client, "admin@example.com").status_code == 302
        token = csrf_token(client.get("/editor/").get_data(as_text=True))
        client.post("/editor/logout", data={"csrf_token": token})


def test_change_own_password(client, db) -> None:  # type: ignore[no-untyped-def]
    """An editor changes their password with the current one; the new one works."""
    from tests.support.forms import submit

    make_editor(db)
    log_in(client, "admin@example.com")
    wrong = submit(client, "/editor/account", current_password="nope", new_password="a new long password",
                   confirm_password="a new long password")
    assert wrong.status_code == 400 and b"not your current password" in wrong.data
    ok = submit(client, "/editor/account", current_password=PASSWORD, new_password="a new long password",
                confirm_password="a new long password")
    assert ok.status_code == 302
    token = csrf_token(client.get("/editor/").get_data(as_text=True))
    client.post("/editor/logout", data={"csrf_token": token})
    assert log_in(client, "admin@example.com", "a new long password").status_code == 302


def test_password_reset_ends_other_sessions(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """When an admin resets an editor's password, the editor's open session ends."""
    from tests.support.forms import submit

    make_editor(db)
    writer = make_editor(db, "writer@example.com", EditorRole.EDITOR)
    writer_id = writer.id
    db.rollback()
    writer_client = app.test_client()
    log_in(writer_client, "writer@example.com")
    assert writer_client.get("/editor/posts").status_code == 200
    log_in(client, "admin@example.com")
    submit(client, "/editor/editors", f"/editor/editors/{writer_id}/password")
    ended = writer_client.get("/editor/posts")
    assert ended.status_code == 302 and ended.location == "/editor/login"
    assert b"You were signed out" in writer_client.get(ended.location).data
    assert client.get("/editor/editors").status_code == 200  # the admin's own session is untouched


def test_own_password_change_keeps_this_session(client, db) -> None:  # type: ignore[no-untyped-def]
    """Changing one's own password does not log this browser out."""
    from tests.support.forms import submit

    make_editor(db)
    log_in(client, "admin@example.com")
    submit(client, "/editor/account", current_password=PASSWORD, new_password="another long password",
           confirm_password="another long password")
    assert client.get("/editor/posts").status_code == 200


def test_every_editor_page_answers_no_store(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """No workspace answer (page, refusal, redirect, login) may be kept by a cache."""
    from tests.support.workspace import demo_newsletter

    make_editor(db)
    demo_newsletter(db)
    db.rollback()
    answers = [(m, u, client.open(u, method=m)) for m in ("GET", "POST")
               for u in ("/editor/login", "/editor/login/code")]
    answers += [(m, u, app.test_client().open(u, method=m)) for m, u in editor_routes(app)]  # anonymous
    log_in(client, "admin@example.com")
    for method, url in editor_routes(app):
        # A POST without its CSRF token is refused, so walking every route changes nothing.
        answers.append((method, url, client.open(url, method=method)))
    statuses = set()
    for method, url, response in answers:
        assert response.headers.get("Cache-Control") == "no-store", (method, url, response.status_code)
        statuses.add(response.status_code)
    assert {200, 302, 400}.issubset(statuses)


def remembered_device(app: Flask, client: FlaskClient) -> FlaskClient:
    """Return a new browser holding only client's remember cookie (a copy, or a restart)."""
    cookie = client.get_cookie("remember_token")
    assert cookie is not None, "the login set no remember cookie"
    device = app.test_client()
    device.set_cookie("remember_token", cookie.value)
    return device


def signed_out(device: FlaskClient) -> bool:
    """Return whether the workspace sends this browser to the login page."""
    response = device.get("/editor/posts")
    return response.status_code == 302 and response.location.startswith("/editor/login")


def test_remember_cookie_logs_in_a_new_browser(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """"Keep me logged in" works: the cookie alone opens the workspace (the tests below rely on it)."""
    make_editor(db)
    log_in(client, "admin@example.com", remember="on")
    assert not signed_out(remembered_device(app, client))


def test_logout_ends_the_remember_cookie(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """After logging out, neither this browser nor a copy of its remember cookie is logged in."""
    make_editor(db)
    log_in(client, "admin@example.com", remember="on")
    copy = remembered_device(app, client)
    token = csrf_token(client.get("/editor/").get_data(as_text=True))
    assert client.post("/editor/logout", data={"csrf_token": token}).status_code == 302
    assert signed_out(client)
    assert signed_out(copy)


def test_own_password_change_ends_every_other_session(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """A password change ends the editor's other sessions and remember cookies, and keeps this one."""
    from tests.support.forms import submit

    make_editor(db)
    log_in(client, "admin@example.com", remember="on")
    other_device = app.test_client()
    log_in(other_device, "admin@example.com", remember="on")
    restored = remembered_device(app, other_device)
    assert not signed_out(restored)  # a session rebuilt from the cookie before the change
    stolen = remembered_device(app, other_device)
    submit(client, "/editor/account", current_password=PASSWORD, new_password="a new long password",
           confirm_password="a new long password")
    assert signed_out(other_device) and signed_out(restored) and signed_out(stolen)
    assert not signed_out(client)
    assert not signed_out(remembered_device(app, client))  # this browser's cookie was renewed


def test_sign_out_everywhere_from_the_account_page(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """The account page's "Sign out everywhere" ends every session and remember cookie."""
    from tests.support.forms import submit

    make_editor(db)
    log_in(client, "admin@example.com", remember="on")
    laptop = app.test_client()
    log_in(laptop, "admin@example.com", remember="on")
    phone = remembered_device(app, laptop)
    page = client.get("/editor/account").get_data(as_text=True)
    assert "Sign out everywhere" in page
    response = submit(client, "/editor/account", "/editor/logout")
    assert response.status_code == 302
    assert signed_out(client) and signed_out(laptop) and signed_out(phone)
    assert log_in(laptop, "admin@example.com").status_code == 302  # the password still works


def _writer_with_devices(app: Flask, db):  # type: ignore[no-untyped-def]
    make_editor(db)
    writer_id = make_editor(db, "writer@example.com", EditorRole.EDITOR).id
    db.rollback()
    browser = app.test_client()
    log_in(browser, "writer@example.com", remember="on")
    return writer_id, browser, remembered_device(app, browser)


def test_admin_password_reset_ends_remember_cookies(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """An admin's password reset ends the editor's sessions and remember cookies."""
    from tests.support.forms import submit

    writer_id, browser, cookie_only = _writer_with_devices(app, db)
    log_in(client, "admin@example.com")
    submit(client, "/editor/editors", f"/editor/editors/{writer_id}/password")
    assert signed_out(browser) and signed_out(cookie_only)


def test_deactivation_ends_remember_cookies_for_good(app, client, db) -> None:  # type: ignore[no-untyped-def]
    """Deactivating an editor ends their remember cookies; reactivating does not revive them."""
    from tests.support.forms import submit

    writer_id, browser, cookie_only = _writer_with_devices(app, db)
    kept_copy = remembered_device(app, browser)
    log_in(client, "admin@example.com")
    submit(client, "/editor/editors", f"/editor/editors/{writer_id}/active", active="0")
    assert signed_out(cookie_only)
    submit(client, "/editor/editors", f"/editor/editors/{writer_id}/active", active="1")
    assert signed_out(browser) and signed_out(kept_copy)


def test_cli_reset_and_deactivation_end_sessions(app, runner, db) -> None:  # type: ignore[no-untyped-def]
    """`digest editor reset-password` and `deactivate` end the editor's remember cookies."""
    writer_id, browser, cookie_only = _writer_with_devices(app, db)
    result = runner.invoke(args=["editor", "reset-password", "writer@example.com", "--password-stdin"],
                           input="another long password\n")
    assert result.exit_code == 0, result.output
    assert signed_out(browser) and signed_out(cookie_only)
    log_in(browser, "writer@example.com", "another long password", remember="on")
    copy = remembered_device(app, browser)
    assert runner.invoke(args=["editor", "deactivate", "writer@example.com"]).exit_code == 0
    assert runner.invoke(args=["editor", "activate", "writer@example.com"]).exit_code == 0
    assert signed_out(browser) and signed_out(copy)


def browser_at(app: Flask, address: str) -> FlaskClient:
    """Return a new browser whose requests come from this IP address."""
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = address
    return browser


@pytest.mark.one_backend
def test_a_stranger_cannot_lock_the_owner_out(app, db) -> None:  # type: ignore[no-untyped-def]
    """An attacker flooding one account from one address is slowed; the owner, elsewhere, logs in."""
    make_editor(db)
    attacker = browser_at(app, "203.0.113.9")
    codes = [log_in(attacker, "admin@example.com", f"guess {n} password").status_code for n in range(30)]
    assert codes[:5] == [200] * 5 and set(codes[5:]) == {429}
    assert log_in(attacker, "admin@example.com").status_code == 429  # even a right guess waits there
    owner = browser_at(app, "198.51.100.7")
    assert log_in(owner, "admin@example.com").status_code == 302
    assert owner.get("/editor/posts").status_code == 200


@pytest.mark.one_backend
def test_guessing_from_many_addresses_meets_a_ceiling_the_owners_browser_passes(app, db) -> None:  # type: ignore[no-untyped-def]
    """Failures spread over many addresses stop new browsers at 100 an hour, not the owner's own."""
    make_editor(db)
    laptop = browser_at(app, "198.51.100.7")
    assert log_in(laptop, "admin@example.com").status_code == 302  # an earlier login from here
    laptop.post("/editor/logout", data={"csrf_token": csrf_token(laptop.get("/editor/").get_data(as_text=True))})
    device = laptop.get_cookie("digest_device", path="/editor/login")  # sent to the login page only
    assert device is not None and device.http_only and device.secure
    for n in range(100):
        bot = browser_at(app, f"203.0.113.{n // 4}")
        assert log_in(bot, "admin@example.com", "wrong password!").status_code == 200
    assert log_in(browser_at(app, "192.0.2.1"), "admin@example.com").status_code == 429
    assert log_in(laptop, "admin@example.com").status_code == 302
