"""/api/v1 content: newsletters and sections, posts (write, publish, sanitize), sent issues."""

from __future__ import annotations

import datetime as dt
import json
import re

import pytest
from flask import Flask
from sqlalchemy import select

from digest.core.db import utcnow
from digest.core.models import EditorRole, Issue, Post, PostStatus, Section
from tests.support.api import ApiClient, make_token
from tests.support.apps import get_db_of
from tests.support.readers import load_newsletter
from tests.support.workspace import sent_issue

POSTS = "/api/v1/newsletters/weekly-model/posts"


@pytest.fixture
def api(app: Flask) -> ApiClient:
    """An editor's (not an admin's) API client on the demo newsletter."""
    load_newsletter(app)
    return ApiClient(app.test_client(), make_token(app, "pen@example.com", EditorRole.EDITOR))


def _section(app: Flask, slug: str) -> int:
    with get_db_of(app).session() as session:
        return session.scalars(select(Section.id).where(Section.slug == slug)).one()


def test_newsletters_and_sections(app, api) -> None:  # type: ignore[no-untyped-def]
    """The newsletter's settings and its sections in the readers' order; unknown slugs are 404."""
    (listed,) = api.get("/api/v1/newsletters").get_json()["newsletters"]
    one = api.get("/api/v1/newsletters/weekly-model").get_json()
    assert listed == one
    assert one["name"] == "The Weekly Model" and one["time_zone"] == "Europe/Berlin"
    assert (one["send_weekday"], one["send_time"]) == (1, "08:00")
    assert one["archive_url"] == "https://news.example.org/archive/weekly-model/"
    sections = api.get("/api/v1/newsletters/weekly-model/sections").get_json()["sections"]
    assert [s["slug"] for s in sections] == ["news", "engineers", "startups", "tools", "careers"]
    assert [s["position"] for s in sections] == [0, 1, 2, 3, 4]
    missing = api.get("/api/v1/newsletters/no-such-thing")
    assert missing.status_code == 404 and "no-such-thing" in missing.get_json()["error"]
    assert api.get("/api/v1/newsletters/x%00y/sections").status_code == 404


def test_write_publish_and_unpublish_a_post(app, api) -> None:  # type: ignore[no-untyped-def]
    """A post is created as a draft, published (public URL appears), unpublished (it goes)."""
    created = api.post(POSTS, json={
        "title": "Tokenizers, réexaminés", "section_id": _section(app, "tools"),
        "summary": "Short.", "body_md": "Some **bold** text.", "link_url": "https://example.org/t",
    })
    assert created.status_code == 201
    post = created.get_json()
    assert created.headers["Location"].endswith(f"/api/v1/posts/{post['id']}")
    assert post["status"] == "draft" and post["url"] is None and post["published_at"] is None
    assert post["slug"] == "tokenizers-reexamines"
    assert post["section"]["slug"] == "tools"
    assert post["body_html"] == "<p>Some <strong>bold</strong> text.</p>\n"
    with get_db_of(app).session() as session:
        author = session.get(Post, post["id"]).author_id
    assert author is not None

    published = api.post(f"/api/v1/posts/{post['id']}/publish").get_json()
    assert published["status"] == "published" and published["published_at"] is not None
    assert published["url"] == "https://news.example.org/posts/weekly-model/tokenizers-reexamines"
    assert app.test_client().get("/posts/weekly-model/tokenizers-reexamines").status_code == 200
    twice = api.post(f"/api/v1/posts/{post['id']}/publish")
    assert twice.status_code == 409 and "already published" in twice.get_json()["fields"]["status"]

    draft = api.post(f"/api/v1/posts/{post['id']}/unpublish").get_json()
    assert draft["status"] == "draft" and draft["url"] is None
    assert app.test_client().get("/posts/weekly-model/tokenizers-reexamines").status_code == 404
    assert api.post(f"/api/v1/posts/{post['id']}/unpublish").status_code == 409
    assert api.get(f"/api/v1/posts/{post['id']}").get_json()["title"] == "Tokenizers, réexaminés"


def test_markdown_is_sanitized(app, api) -> None:  # type: ignore[no-untyped-def]
    """Script, event handlers and javascript: links in Markdown never reach body_html."""
    body = ('Hi <script>alert(1)</script> <img src=x onerror="alert(2)"> '
            '[click](javascript:alert(3)) [fine](https://example.org)')
    post = api.post(POSTS, json={"title": "XSS", "section_id": _section(app, "news"),
                                 "body_md": body, "publish": True}).get_json()
    html = post["body_html"]
    assert post["status"] == "published"
    for bad in ("<script", "<img", 'href="javascript:'):
        assert bad not in html
    assert "&lt;script&gt;" in html
    assert 'href="https://example.org"' in html
    assert post["body_md"] == body


def test_change_some_fields(app, api) -> None:  # type: ignore[no-untyped-def]
    """PATCH changes only the fields given; a draft's slug follows its title, a published one's stays."""
    post = api.post(POSTS, json={"title": "First title", "section_id": _section(app, "news"),
                                 "summary": "Keep me", "link_url": "https://example.org/a"}).get_json()
    path = f"/api/v1/posts/{post['id']}"
    changed = api.patch(path, json={"title": "Second title", "link_url": None}).get_json()
    assert (changed["title"], changed["slug"], changed["summary"]) == (
        "Second title", "second-title", "Keep me")
    assert changed["link_url"] is None and changed["section"]["slug"] == "news"
    api.post(f"{path}/publish")
    frozen = api.patch(path, json={"title": "Third title", "section_id": _section(app, "tools")})
    assert frozen.get_json()["slug"] == "second-title"
    assert frozen.get_json()["section"]["slug"] == "tools"
    assert api.patch("/api/v1/posts/999999", json={"title": "x"}).status_code == 404


@pytest.mark.parametrize("payload, fields", [
    ({}, {"title", "section_id"}),
    ({"title": "  ", "section_id": 1}, {"title"}),
    ({"title": "T", "section_id": "1"}, {"section_id"}),
    ({"title": "T", "section_id": True}, {"section_id"}),
    ({"title": "T", "section_id": 2**40}, {"section_id"}),
    ({"title": 5, "section_id": 1}, {"title"}),
    ({"title": "T\x00", "section_id": 1}, {"title"}),
    ({"title": "T", "section_id": 1, "link_url": "ftp://example.org"}, {"link_url"}),
    ({"title": "T", "section_id": 1, "status": "published"}, {"status"}),
    ({"title": "T" * 301, "section_id": 1}, {"title"}),
    ({"title": "T", "section_id": 1, "link_url": "http://user@host/"}, {"link_url"}),
])
def test_bad_posts_are_422_and_change_nothing(app, api, payload, fields) -> None:  # type: ignore[no-untyped-def]
    """Every refused field is named, and no post is created."""
    response = api.post(POSTS, json=payload)
    assert response.status_code == 422
    assert set(response.get_json()["fields"]) == fields
    assert api.get(f"{POSTS}?status=draft").get_json()["total"] == 0


def test_the_longest_post_the_rules_allow_is_read_and_a_larger_body_is_413(app, api) -> None:  # type: ignore[no-untyped-def]
    """Every field at its longest in emoji (12 bytes each as JSON escapes them, 2.4 MB in all)
    is a post like any other; past the byte limit the document states, the answer is 413."""
    rules = api.doc["components"]["schemas"]["NewPost"]["properties"]
    post = {"title": "\N{GRINNING FACE}" * rules["title"]["maxLength"],
            "section_id": _section(app, "tools"),
            "summary": "\N{GRINNING FACE}" * rules["summary"]["maxLength"],
            "body_md": "\N{GRINNING FACE}" * rules["body_md"]["maxLength"],
            "link_url": "https://example.org/" + "a" * (rules["link_url"]["maxLength"] - 20)}
    body = json.dumps(post)
    assert len(body) > 2_400_000
    created = api.post(POSTS, data=body, content_type="application/json")
    assert created.status_code == 201
    assert created.get_json()["body_md"] == post["body_md"]
    limit = re.search(r"over ([0-9,]+) bytes", api.doc["paths"]["/api/v1/newsletters/{newsletter}/posts"]
                      ["post"]["responses"]["413"]["description"])
    assert limit and int(limit[1].replace(",", "")) >= len(body)
    too_large = api.post(POSTS, data=" " * (int(limit[1].replace(",", "")) + 1) + body,
                         content_type="application/json")
    assert too_large.status_code == 413 and too_large.mimetype == "application/json"


def test_a_whole_number_written_as_a_float_is_an_id(app, api) -> None:  # type: ignore[no-untyped-def]
    """JSON Schema counts 2.0 as an integer, so `section_id: 2.0` files the post under section 2."""
    news = _section(app, "news")
    created = api.post(POSTS, json={"title": "Float id", "section_id": float(news)})
    assert created.status_code == 201 and created.get_json()["section"]["id"] == news
    assert api.post(POSTS, json={"title": "T", "section_id": news + 0.5}).status_code == 422


def test_bad_changes_are_422_and_change_nothing(app, api) -> None:  # type: ignore[no-untyped-def]
    """An empty PATCH (422), or one naming a section that does not exist (409), changes nothing."""
    post = api.post(POSTS, json={"title": "Stays", "section_id": _section(app, "news")}).get_json()
    path = f"/api/v1/posts/{post['id']}"
    assert api.patch(path, json={}).status_code == 422
    bad = api.patch(path, json={"title": "Gone", "section_id": 999999})
    assert bad.status_code == 409 and set(bad.get_json()["fields"]) == {"section_id"}
    assert api.get(path).get_json()["title"] == "Stays"


def test_a_section_of_another_newsletter_is_refused(app, api) -> None:  # type: ignore[no-untyped-def]
    """A post cannot be filed under another newsletter's section (409: the id is well formed)."""
    with get_db_of(app).session() as session:
        from digest.core.models import Newsletter

        other = Newsletter(slug="other", name="Other")
        section = Section(newsletter=other, slug="misc", name="Misc")
        session.add_all([other, section])
        session.flush()
        foreign = section.id
    response = api.post(POSTS, json={"title": "T", "section_id": foreign})
    assert response.status_code == 409 and "section_id" in response.get_json()["fields"]


def test_list_posts_with_filters_and_pages(app, api) -> None:  # type: ignore[no-untyped-def]
    """Posts filter by status, section and words, 25 a page."""
    everything = api.get(POSTS).get_json()
    assert everything["total"] == 8 and everything["pages"] == 1
    news = _section(app, "news")
    for n in range(26):
        api.post(POSTS, json={"title": f"Draft number {n}", "section_id": news})
    drafts = api.get(f"{POSTS}?status=draft").get_json()
    assert (drafts["total"], drafts["pages"], len(drafts["posts"])) == (26, 2, 25)
    assert len(api.get(f"{POSTS}?status=draft&page=2").get_json()["posts"]) == 1
    assert api.get(f"{POSTS}?search=number%2025").get_json()["posts"][0]["title"] == "Draft number 25"
    in_news = api.get(f"{POSTS}?section_id={news}&status=published").get_json()
    assert in_news["total"] >= 1 and all(p["section"]["slug"] == "news" for p in in_news["posts"])
    assert api.get(f"{POSTS}?page=0").status_code == 422
    assert api.get(f"{POSTS}?page=").status_code == 422
    assert api.get(f"{POSTS}?section_id=").status_code == 422
    assert api.get(f"{POSTS}?section_id=news").status_code == 422
    assert api.get(f"{POSTS}?status=").status_code == 422
    assert api.get(f"{POSTS}?status=archived").status_code == 422


def test_delete_only_drafts(app, api) -> None:  # type: ignore[no-untyped-def]
    """A draft is deleted (204); a published post must be unpublished first (409)."""
    draft = api.post(POSTS, json={"title": "Delete me", "section_id": _section(app, "news")}).get_json()
    response = api.delete(f"/api/v1/posts/{draft['id']}")
    assert response.status_code == 204 and response.get_data() == b""
    assert api.get(f"/api/v1/posts/{draft['id']}").status_code == 404
    live = api.get(f"{POSTS}?status=published").get_json()["posts"][0]
    refused = api.delete(f"/api/v1/posts/{live['id']}")
    assert refused.status_code == 409 and "Unpublish" in refused.get_json()["fields"]["status"]


def test_sent_issues_as_the_archive_shows_them(app, api) -> None:  # type: ignore[no-untyped-def]
    """Only sent issues are listed, newest first; one shows its published posts by section."""
    with get_db_of(app).session() as session:
        from digest.domain.newsletters import find_newsletter

        newsletter = find_newsletter(session, "weekly-model")
        posts = list(session.scalars(select(Post).order_by(Post.id)))
        older = sent_issue(session, newsletter, "older", posts[:2], utcnow() - dt.timedelta(days=7),
                           subject="Older")
        newer = sent_issue(session, newsletter, "newer", posts[2:5], subject="Newer")
        posts[3].status = PostStatus.DRAFT
        draft_issue = session.scalars(select(Issue).where(Issue.slug == "open-weights-catch-up")).one()
        ids = (older.id, newer.id, draft_issue.id, posts[3].id)
        session.commit()
    listing = api.get("/api/v1/newsletters/weekly-model/issues").get_json()
    assert [i["slug"] for i in listing["issues"]] == ["newer", "older"]
    assert listing["total"] == 2 and listing["pages"] == 1
    assert listing["issues"][0]["url"] == "https://news.example.org/archive/weekly-model/newer"

    issue = api.get(f"/api/v1/issues/{ids[1]}").get_json()
    assert issue["subject"] == "Newer" and issue["intro_html"] == "<p>Hello <strong>readers</strong>.</p>\n"
    carried = [p["id"] for group in issue["sections"] for p in group["posts"]]
    assert ids[3] not in carried and len(carried) == 2
    assert api.get(f"/api/v1/issues/{ids[2]}").status_code == 404
    assert api.get("/api/v1/issues/999999").status_code == 404
    assert api.get("/api/v1/newsletters/weekly-model/issues?page=2").get_json()["issues"] == []
