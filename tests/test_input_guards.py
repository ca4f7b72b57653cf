"""Input the database cannot hold never reaches it: ids beyond 32 bits, NUL characters."""

from __future__ import annotations

import io

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from digest.core.models import ImportJob, Post, Subscriber
from digest.domain.links import preferences_url
from tests.support.api import make_token
from tests.support.apps import get_db_of
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token, submit
from tests.support.readers import (
    NEWSLETTER,
    fresh_ip,
    load_newsletter,
    signed_path,
    signup,
    subscription,
)

TOO_BIG = ["2147483648", "99999999999", "9" * 30]


def _workspace(app: Flask, client: FlaskClient) -> None:
    load_newsletter(app)
    with get_db_of(app).session() as session:
        make_editor(session)
    log_in(client, "admin@example.com")


def _count(app: Flask, model: type) -> int:
    with get_db_of(app).session() as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def _first_post_id(app: Flask) -> int:
    with get_db_of(app).session() as session:
        return session.scalars(select(Post.id).order_by(Post.id)).first()  # type: ignore[return-value]


@pytest.mark.parametrize("number", TOO_BIG)
def test_ids_beyond_the_database_range_are_404_in_the_workspace(app, client, number: str) -> None:  # type: ignore[no-untyped-def]
    """An id no row can have is a 404 page on a GET and on a POST, not a server error."""
    _workspace(app, client)
    for path in (f"/editor/posts/{number}", f"/editor/subscribers/{number}",
                 f"/editor/subscribers/import/{number}", f"/editor/subscribers/{number}/data.json"):
        response = client.get(path)
        assert response.status_code == 404, path
        assert "Not Found" in response.get_data(as_text=True)
    token = csrf_token(client.get("/editor/posts").get_data(as_text=True))
    assert client.post(f"/editor/posts/{number}/delete", data={"csrf_token": token}).status_code == 404
    # The largest id still reaches its view, which finds no row.
    assert client.get("/editor/posts/2147483647").status_code == 404
    assert client.get(f"/editor/posts/{_first_post_id(app)}").status_code == 200


@pytest.mark.parametrize("number", TOO_BIG)
def test_out_of_range_filters_are_ignored(app, client, number: str) -> None:  # type: ignore[no-untyped-def]
    """A section or page cursor no id can have filters nothing instead of failing."""
    _workspace(app, client)
    for path in (f"/editor/posts?section={number}", f"/editor/posts?page={number}",
                 f"/editor/subscribers?before={number}", f"/editor/subscribers?section={number}"):
        assert client.get(path).status_code == 200, path


@pytest.mark.parametrize("number", TOO_BIG)
def test_ids_beyond_the_database_range_are_404_on_the_api(app, client, number: str) -> None:  # type: ignore[no-untyped-def]
    """The API answers a JSON 404 to such ids, for reads and for changes."""
    load_newsletter(app)
    auth = {"Authorization": f"Bearer {make_token(app)}"}
    for method, path in (("GET", f"/api/v1/posts/{number}"), ("PATCH", f"/api/v1/posts/{number}"),
                         ("GET", f"/api/v1/subscribers/{number}"),
                         ("POST", f"/api/v1/subscribers/{number}/suppress")):
        response = client.open(path, method=method, headers=auth, json={"title": "x"})
        assert response.status_code == 404, (method, path)
        assert "error" in response.get_json()


def test_nul_in_a_path_is_404(app, client) -> None:  # type: ignore[no-untyped-def]
    """A NUL in a slug, token or file name of a path names nothing."""
    _workspace(app, client)
    for path in (f"/{NEWSLETTER}/archive%00", f"/{NEWSLETTER}/archive/week%00one",
                 "/confirm/abc%00def", "/preferences/a%00b", "/editor/outbox/x%00.eml"):
        assert client.get(path).status_code == 404, path
    auth = {"Authorization": f"Bearer {make_token(app)}"}
    assert client.get(f"/api/v1/newsletters/{NEWSLETTER}%00", headers=auth).status_code == 404


def test_nul_in_the_signup_form_is_a_clear_400(app, client) -> None:  # type: ignore[no-untyped-def]
    """A NUL in any field of the front page's form is refused with a page saying so; nobody is added."""
    load_newsletter(app)
    before = _count(app, Subscriber)
    for field in ({"name": "Ada\x00"}, {"email": "ada\x00@example.org"}, {"website": "\x00"}):
        response = signup(client, field.get("email", "new@example.org"),
                          **{k: v for k, v in field.items() if k != "email"})
        assert response.status_code == 400
        html = response.get_data(as_text=True)
        assert "NUL character" in html and "remove it and try again" in html
    html = client.get("/").get_data(as_text=True)
    odd_agent = client.post("/subscribe", data={
        "csrf_token": csrf_token(html), "newsletter": NEWSLETTER, "email": "agent@example.org",
        "consent": "yes"}, headers={"User-Agent": "Bot\x00"}, environ_base={"REMOTE_ADDR": fresh_ip()})
    assert odd_agent.status_code == 400
    assert _count(app, Subscriber) == before


def test_nul_in_preferences_changes_nothing(app, client) -> None:  # type: ignore[no-untyped-def]
    """Saving a name with a NUL on the preference page is refused and the name stays."""
    load_newsletter(app)
    path = signed_path(app, "grace@example.com", preferences_url)
    token = csrf_token(client.get(path).get_data(as_text=True))
    response = client.post(path, data={"csrf_token": token, "action": "save", "name": "G\x00",
                                       "sections": ["news"]})
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
    assert subscription(app, "grace@example.com").subscriber.name == "Grace"  # type: ignore[union-attr]


def test_nul_in_workspace_forms_and_searches_is_a_clear_400(app, client) -> None:  # type: ignore[no-untyped-def]
    """A post title or a search with a NUL is refused with a page saying so; no post is added."""
    _workspace(app, client)
    before = _count(app, Post)
    response = submit(client, "/editor/posts/new", title="Title\x00", section_id="1", body_md="Body")
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
    assert _count(app, Post) == before
    for path in ("/editor/subscribers?q=a%00", "/editor/posts?q=%00"):
        response = client.get(path)
        assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)


def test_nul_in_an_uploaded_file_name_is_refused(app, client) -> None:  # type: ignore[no-untyped-def]
    """An upload whose file name holds a NUL is refused before any import job exists."""
    _workspace(app, client)
    page = client.get("/editor/subscribers/import").get_data(as_text=True)
    response = client.post("/editor/subscribers/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(page), "source": "import", "statuses": "keep",
        "file": (io.BytesIO(b"email\nx@example.org\n"), "readers\x00.csv"),
    })
    assert response.status_code == 400 and "NUL character" in response.get_data(as_text=True)
    assert _count(app, ImportJob) == 0


def test_nul_in_json_is_refused_with_the_field_named(app, client) -> None:  # type: ignore[no-untyped-def]
    """The public signup answers 400 and the editors' API 422, naming the field; nothing is stored."""
    load_newsletter(app)
    before = _count(app, Subscriber)
    public = client.post("/api/v1/subscribe", json={
        "email": "x@example.org", "name": "X\x00", "consent": True, "newsletter": NEWSLETTER,
    }, environ_base={"REMOTE_ADDR": fresh_ip()})
    assert public.status_code == 400 and "name" in public.get_json()["fields"]
    nested = client.post("/api/v1/subscribe", json={
        "email": "x@example.org", "consent": True, "sections": ["news", "to\x00ols"],
    }, environ_base={"REMOTE_ADDR": fresh_ip()})
    assert nested.status_code == 400 and "sections" in nested.get_json()["fields"]
    auth = {"Authorization": f"Bearer {make_token(app)}"}
    readers = f"/api/v1/newsletters/{NEWSLETTER}/subscribers"
    editor = client.post(readers, headers=auth, json={"email": "y@example.org", "name": "Y\x00",
                                                      "consent": True})
    assert editor.status_code == 422 and "name" in editor.get_json()["fields"]
    search = client.get(f"{readers}?search=%00", headers=auth)
    assert search.status_code == 422 and "search" in search.get_json()["fields"]
    # Without a token the API says so first, whatever the body holds.
    assert client.post(readers, json={"email": "z\x00@example.org"}).status_code == 401
    assert _count(app, Subscriber) == before


LONG_LOCAL = "a" * 65 + "@example.org"  # RFC 5321 allows 64 characters before the @


def test_local_parts_over_64_characters_are_refused_at_every_entry(app, client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """An address with more than 64 characters before the @ (which mail servers refuse) is
    refused with a clear message on the signup form, by the signup API and in a CSV import,
    and nobody is added; 64 characters are fine."""
    load_newsletter(app)
    before = _count(app, Subscriber)
    form = signup(client, LONG_LOCAL)
    assert form.status_code == 400 and "too long before the @-sign" in form.get_data(as_text=True)
    api = client.post("/api/v1/subscribe", json={"email": LONG_LOCAL, "consent": True},
                      environ_base={"REMOTE_ADDR": fresh_ip()})
    assert api.status_code == 400 and "too long before the @-sign" in api.get_json()["fields"]["email"]
    path = tmp_path / "long.csv"
    path.write_text(f"email\n{LONG_LOCAL}\n")
    imported = app.test_cli_runner().invoke(args=["subscribers", "import", str(path)])
    assert imported.exit_code == 1 and "line 2" in imported.output and "too long before the @-sign" in imported.output
    assert _count(app, Subscriber) == before
    assert signup(client, "a" * 64 + "@example.org").status_code == 200
    assert subscription(app, "a" * 64 + "@example.org") is not None


BIG_FORM = {"field": "x" * (2 * 2**20)}  # 2 MB: far more than any form or JSON body here


@pytest.mark.parametrize("path", ["/healthz", "/", "/subscribe", "/editor/login", "/editor/posts/new",
                                  "/api/v1/subscribe", "/unsubscribe/x"])
def test_large_bodies_are_refused_before_anything_reads_them(app, client, path: str) -> None:  # type: ignore[no-untyped-def]
    """A body over 1 MB to any route but the CSV upload is answered 413 before the form or
    its CSRF token is parsed (a 400 "form expired" would mean it was read)."""
    load_newsletter(app)
    response = client.post(path, data=BIG_FORM, environ_base={"REMOTE_ADDR": fresh_ip()})
    assert response.status_code == 413, response.status_code
    chunked = client.post(path, input_stream=io.BytesIO(b"field=" + b"x" * 2 * 2**20),
                          content_type="application/x-www-form-urlencoded",
                          environ_base={"REMOTE_ADDR": fresh_ip(), "wsgi.input_terminated": True})
    assert chunked.status_code == 413, chunked.status_code


def test_the_csv_upload_still_takes_large_files(app, client) -> None:  # type: ignore[no-untyped-def]
    """Only the CSV upload accepts a large body: a 4.8 MB file becomes an import job."""
    _workspace(app, client)
    rows = "email\n" + "".join(f"reader{n:06d}@example.org\n" for n in range(200_000))
    assert len(rows) > 4 * 2**20
    page = client.get("/editor/subscribers/import").get_data(as_text=True)
    response = client.post("/editor/subscribers/import", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(page), "source": "import", "statuses": "confirm",
        "file": (io.BytesIO(rows.encode()), "big.csv")})
    assert response.status_code == 302 and "/editor/subscribers/import/" in response.headers["Location"]
    assert _count(app, ImportJob) == 1


# The audit's body: 100,000 nested arrays, far past Python's recursion limit.
DEEP = "[" * 100_000 + "]" * 100_000


def test_deeply_nested_json_is_a_clear_400_on_any_url(app, client) -> None:  # type: ignore[no-untyped-def]
    """JSON nested 100,000 deep answers 400 saying why (JSON under /api/v1), never a 500."""
    _workspace(app, client)
    posts, readers = _count(app, Post), _count(app, Subscriber)
    auth = {"Authorization": f"Bearer {make_token(app)}"}
    for path, headers in (("/api/v1/subscribe", {}),
                          (f"/api/v1/newsletters/{NEWSLETTER}/posts", auth),
                          (f"/api/v1/newsletters/{NEWSLETTER}/subscribers", auth)):
        response = client.post(path, data=DEEP, content_type="application/json", headers=headers,
                               environ_base={"REMOTE_ADDR": fresh_ip()})
        assert response.status_code == 400, path
        assert response.get_json() == {"error": "The JSON body nests arrays and objects deeper "
                                                "than 32 levels; no request here needs that."}
    csrf = {"X-CSRFToken": csrf_token(client.get("/editor/posts/new").get_data(as_text=True))}
    for path in ("/healthz", "/", "/editor/preview"):
        response = client.post(path, data=DEEP, content_type="application/json", headers=csrf)
        assert response.status_code == 400, path
        assert "deeper than 32 levels" in response.get_data(as_text=True), path
    assert (_count(app, Post), _count(app, Subscriber)) == (posts, readers)
    assert client.get("/healthz").status_code == 200


def test_json_up_to_32_levels_still_parses(app, client) -> None:  # type: ignore[no-untyped-def]
    """The cap counts brackets, not brackets inside strings: 32 levels pass, 33 do not."""
    _workspace(app, client)
    token = csrf_token(client.get("/editor/posts/new").get_data(as_text=True))
    headers = {"X-CSRFToken": token}
    deep_31 = "[" * 31 + "]" * 31
    body = '{"markdown": "[[[[ **bold** ]]]]' + "{" * 40 + '", "extra": ' + deep_31 + "}"
    response = client.post("/editor/preview", data=body, content_type="application/json",
                           headers=headers)
    assert response.status_code == 200 and "<strong>bold</strong>" in response.get_json()["html"]
    deeper = body.replace(deep_31, "[" + deep_31 + "]")
    response = client.post("/editor/preview", data=deeper, content_type="application/json",
                           headers=headers)
    assert response.status_code == 400


def test_the_preview_refuses_json_that_is_not_an_object(app, client) -> None:  # type: ignore[no-untyped-def]
    """The live preview answers 400 with a JSON message to a list, number, string or null."""
    _workspace(app, client)
    headers = {"X-CSRFToken": csrf_token(client.get("/editor/posts/new").get_data(as_text=True))}
    for body in ("[1]", "1", '"text"', "null", '{"markdown": 5}', '{"markdown": ["a"]}'):
        response = client.post("/editor/preview", data=body, content_type="application/json",
                               headers=headers)
        assert response.status_code == 400, body
        assert response.get_json() == {"error": 'Send a JSON object such as {"markdown": "text"}.'}
    ok = client.post("/editor/preview", json={"markdown": "*hi*"}, headers=headers)
    assert ok.status_code == 200 and ok.get_json() == {"html": "<p><em>hi</em></p>\n"}
