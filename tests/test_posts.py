"""Posts: slugs, validation, the editor's post pages, live preview, publishing, sanitizing."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from xml.etree import ElementTree

import pytest
from sqlalchemy import select

from digest.core.models import EditorRole, Post, PostStatus
from digest.core.validation import Invalid, slugify
from digest.domain import posts
from tests.support.apps import BASE_URL
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token, submit
from tests.support.workspace import demo_newsletter, sent_issue


class _Elements(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and not dict(attrs).get("src", "").startswith("/static/"):
            self.found.append("inline <script>")
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}>")
            if name in {"href", "src"} and (value or "").strip().lower().startswith("javascript:"):
                self.found.append(f"<{tag} {name}=javascript:>")


def active_content(html: str) -> list[str]:
    """Return every element of html that would run script: inline scripts, handlers, js: links."""
    parser = _Elements()
    parser.feed(html)
    return parser.found


SCRIPT_MD = 'Hello <script>alert("owned")</script> [click](javascript:alert(1)) <img src=x onerror=alert(2)>'


def _input(section: int, **changes: str) -> posts.PostInput:
    values = {"title": "A title", "section_id": section, "summary": "", "body_md": "Body", "link_url": ""}
    values.update(changes)
    return posts.PostInput(**values)  # type: ignore[arg-type]


def test_slugify_makes_readable_ascii() -> None:
    """Titles become short readable slugs, whatever their script or punctuation."""
    assert slugify("Ünïcode & more: it's “here”!") == "unicode-more-it-s-here"
    assert slugify("¿¡!?", fallback="post") == "post"
    assert len(slugify("word " * 100)) <= 80


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("The quick brown fox jumps over the lazy dog", "the-quick-brown"),  # not "the-quick-brown-f"
        ("The quick brown fox", "the-quick-brown"),  # cut exactly at a word's end
        ("Supercalifragilisticexpialidocious", "supercalifragili"),  # one long word: cut it
    ],
)
def test_slugify_cuts_at_the_end_of_a_word(title: str, slug: str) -> None:
    """A long title's address ends with a whole word."""
    assert slugify(title, max_length=16) == slug


def test_slugs_are_unique_per_newsletter(db) -> None:  # type: ignore[no-untyped-def]
    """Two posts with the same title get different slugs."""
    newsletter = demo_newsletter(db)
    section = newsletter.sections[0].id
    first = posts.create_post(db, newsletter, _input(section, title="Same title"))
    second = posts.create_post(db, newsletter, _input(section, title="Same title"))
    assert (first.slug, second.slug) == ("same-title", "same-title-2")


def test_slug_follows_title_until_published(db) -> None:  # type: ignore[no-untyped-def]
    """A draft's slug follows its title; after publishing, the public URL never changes."""
    newsletter = demo_newsletter(db)
    section = newsletter.sections[0].id
    post = posts.create_post(db, newsletter, _input(section, title="First idea"))
    posts.update_post(db, post, _input(section, title="Better idea"))
    assert post.slug == "better-idea"
    posts.publish_post(db, {"BASE_URL": BASE_URL}, post)
    posts.update_post(db, post, _input(section, title="Final wording"))
    assert post.slug == "better-idea"
    posts.unpublish_post(db, post)
    posts.update_post(db, post, _input(section, title="Even later"))
    assert post.slug == "better-idea"


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"title": "  "}, "title"),
        ({"title": "x" * 301}, "title"),
        ({"link_url": "javascript:alert(1)"}, "link_url"),
        ({"link_url": "ftp://example.org/file"}, "link_url"),
        ({"link_url": "example.org/no-scheme"}, "link_url"),
        ({"link_url": "https://exa mple.org"}, "link_url"),
        ({"section_id": "999999"}, "section_id"),
        ({"section_id": "abc"}, "section_id"),
    ],
)
def test_bad_post_input_is_refused(db, changes, field) -> None:  # type: ignore[no-untyped-def]
    """A missing title, a bad link or a foreign section is refused and nothing is saved."""
    newsletter = demo_newsletter(db)
    count = len(db.scalars(select(Post)).all())
    with pytest.raises(Invalid) as raised:
        posts.create_post(db, newsletter, _input(newsletter.sections[0].id, **changes))
    assert field in raised.value.errors
    assert len(db.scalars(select(Post)).all()) == count


def test_link_accepts_http_and_https(db) -> None:  # type: ignore[no-untyped-def]
    """An external link may be http or https."""
    newsletter = demo_newsletter(db)
    post = posts.create_post(db, newsletter, _input(newsletter.sections[0].id, link_url="HTTP://example.org/a?b=c"))
    assert post.link_url == "HTTP://example.org/a?b=c"


def test_only_unused_drafts_can_be_deleted(db) -> None:  # type: ignore[no-untyped-def]
    """Published posts and posts an issue carries are never deleted."""
    newsletter = demo_newsletter(db)
    section = newsletter.sections[0].id
    published = posts.create_post(db, newsletter, _input(section, title="Live"))
    posts.publish_post(db, {"BASE_URL": BASE_URL}, published)
    with pytest.raises(Invalid):
        posts.delete_post(db, published)
    carried = posts.create_post(db, newsletter, _input(section, title="Carried"))
    db.commit()
    sent_issue(db, newsletter, "issue-1", [carried])
    with pytest.raises(Invalid):
        posts.delete_post(db, carried)
    draft = posts.create_post(db, newsletter, _input(section, title="Scratch"))
    posts.delete_post(db, draft)
    assert posts.get_post(db, newsletter, draft.id) is None


def test_list_filters_and_searches(db) -> None:  # type: ignore[no-untyped-def]
    """The post list filters by status and section and finds words in title or text."""
    newsletter = demo_newsletter(db)
    tools = next(s for s in newsletter.sections if s.slug == "tools")
    posts.create_post(db, newsletter, _input(tools.id, title="Draft about 100% coverage", body_md="zebra"))
    assert posts.list_posts(db, newsletter, status="draft").total == 1
    assert posts.list_posts(db, newsletter, status="published").total == 8
    assert posts.list_posts(db, newsletter, section_id=tools.id).total == 3
    assert posts.list_posts(db, newsletter, search="ZEBRA").total == 1
    assert posts.list_posts(db, newsletter, search="100%").total == 1
    assert posts.list_posts(db, newsletter, search="_").total == 0


def test_write_and_publish_a_post_in_the_browser_form(client, db) -> None:  # type: ignore[no-untyped-def]
    """An editor writes a post, saves it as a draft, then publishes it."""
    newsletter = demo_newsletter(db)
    section = newsletter.sections[1]
    section_id, slug = section.id, newsletter.slug
    make_editor(db, "writer@example.com", EditorRole.EDITOR)
    log_in(client, "writer@example.com")
    response = submit(client, "/editor/posts/new", title="Measured, not guessed", section_id=str(section_id),
                      summary="Why evals matter.", body_md="Some **bold** text.", link_url="")
    assert response.status_code == 302
    post = db.scalar(select(Post).where(Post.slug == "measured-not-guessed"))
    assert post is not None and post.status is PostStatus.DRAFT
    post_id = post.id
    db.rollback()
    assert client.get(f"/posts/{slug}/measured-not-guessed").status_code == 404
    page = client.get(f"/editor/posts/{post_id}").get_data(as_text=True)
    assert "<strong>bold</strong>" in page  # the preview, rendered on the server first
    response = client.post(f"/editor/posts/{post_id}/publish", data={"csrf_token": csrf_token(page)})
    assert response.status_code == 302
    db.expire_all()
    assert db.get(Post, post_id).status is PostStatus.PUBLISHED  # type: ignore[union-attr]
    db.rollback()
    public = client.get(f"/posts/{slug}/measured-not-guessed")
    assert public.status_code == 200 and b"Measured, not guessed" in public.data
    page = client.get(f"/editor/posts/{post_id}").get_data(as_text=True)
    client.post(f"/editor/posts/{post_id}/unpublish", data={"csrf_token": csrf_token(page)})
    assert client.get(f"/posts/{slug}/measured-not-guessed").status_code == 404


def test_invalid_form_keeps_what_was_typed(client, db) -> None:  # type: ignore[no-untyped-def]
    """A refused post shows every error next to its field and keeps the text."""
    newsletter = demo_newsletter(db)
    section_id = newsletter.sections[0].id
    make_editor(db)
    log_in(client, "admin@example.com")
    response = submit(client, "/editor/posts/new", title="", section_id=str(section_id),
                      body_md="Long text I must not lose", link_url="not a url")
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Title is required." in html and "full web address" in html
    assert "Long text I must not lose" in html
    assert 'aria-invalid="true"' in html


def test_delete_a_draft_from_the_editor(client, db) -> None:  # type: ignore[no-untyped-def]
    """The delete button removes a draft; a published post refuses with a message."""
    newsletter = demo_newsletter(db)
    section_id = newsletter.sections[0].id
    published_id = newsletter_post_id = db.scalar(select(Post.id).where(Post.status == PostStatus.PUBLISHED))
    make_editor(db)
    draft = posts.create_post(db, newsletter, _input(section_id, title="Scratch"))
    db.commit()
    draft_id = draft.id
    log_in(client, "admin@example.com")
    page = client.get(f"/editor/posts/{draft_id}").get_data(as_text=True)
    assert client.post(f"/editor/posts/{draft_id}/delete", data={"csrf_token": csrf_token(page)}).status_code == 302
    assert client.get(f"/editor/posts/{draft_id}").status_code == 404
    refused = client.post(f"/editor/posts/{published_id}/delete", data={"csrf_token": csrf_token(page)},
                          follow_redirects=True)
    assert b"Unpublish this post before deleting it." in refused.data
    assert client.get(f"/editor/posts/{newsletter_post_id}").status_code == 200


def test_preview_renders_sanitized_markdown(client, db) -> None:  # type: ignore[no-untyped-def]
    """The live preview returns the same sanitized HTML readers get: no script, no handler."""
    demo_newsletter(db)
    make_editor(db)
    log_in(client, "admin@example.com")
    token = csrf_token(client.get("/editor/posts/new").get_data(as_text=True))
    response = client.post("/editor/preview", json={"markdown": "# Title\n\n" + SCRIPT_MD},
                           headers={"X-CSRFToken": token})
    html = response.get_json()["html"]
    assert "<h1>Title</h1>" in html
    assert active_content(html) == []
    assert "&lt;script&gt;" in html  # shown as text


def test_preview_needs_the_csrf_header(client, db) -> None:  # type: ignore[no-untyped-def]
    """Another site cannot use a logged-in editor's browser to call the preview."""
    demo_newsletter(db)
    make_editor(db)
    log_in(client, "admin@example.com")
    assert client.post("/editor/preview", json={"markdown": "x"}).status_code == 400


def test_preview_refuses_huge_input(client, db) -> None:  # type: ignore[no-untyped-def]
    """A body too long to preview gets a clear answer, not a hung request."""
    make_editor(db)
    log_in(client, "admin@example.com")
    token = csrf_token(client.get("/editor/").get_data(as_text=True))
    response = client.post("/editor/preview", json={"markdown": "x" * 200_001}, headers={"X-CSRFToken": token})
    assert response.status_code == 400 and "too long" in response.get_json()["error"]


def test_script_in_markdown_never_reaches_a_page(client, db) -> None:  # type: ignore[no-untyped-def]
    """A post whose Markdown holds script shows it as text on every page that renders it."""
    newsletter = demo_newsletter(db)
    post = posts.create_post(db, newsletter, _input(newsletter.sections[0].id, title="Sneaky", body_md=SCRIPT_MD))
    posts.publish_post(db, {"BASE_URL": BASE_URL}, post, now=dt.datetime(2026, 11, 20, tzinfo=dt.UTC))
    db.commit()
    sent_issue(db, newsletter, "sneaky-issue", [post])
    make_editor(db)
    log_in(client, "admin@example.com")
    for url in (f"/posts/{newsletter.slug}/sneaky", f"/archive/{newsletter.slug}/sneaky-issue",
                f"/editor/posts/{post.id}"):
        assert active_content(client.get(url).get_data(as_text=True)) == [], url
    feed = ElementTree.fromstring(client.get(f"/archive/{newsletter.slug}/feed.xml").data)
    content = feed.find("{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}content")
    assert content is not None and "Hello" in (content.text or "")
    assert active_content(content.text or "") == []


def test_an_editor_sets_a_posts_web_address_and_old_links_redirect(client, db) -> None:  # type: ignore[no-untyped-def]
    """A published post's address can change: the old one (in sent emails, in the archive)
    redirects to the new one; an address another post has, or had, is refused."""
    newsletter = demo_newsletter(db)
    section = newsletter.sections[0].id
    first = posts.create_post(db, newsletter, _input(section, title="First light"))
    other = posts.create_post(db, newsletter, _input(section, title="Other"))
    posts.publish_post(db, {"BASE_URL": BASE_URL}, first)
    posts.publish_post(db, {"BASE_URL": BASE_URL}, other)
    db.commit()
    make_editor(db, "editor@example.com", EditorRole.EDITOR)
    log_in(client, "editor@example.com")
    page = f"/editor/posts/{first.id}"
    assert 'id="slug" name="slug" value="first-light"' in client.get(page).get_data(as_text=True)
    form = {"title": "First light", "section_id": str(section), "summary": "", "body_md": "Body", "link_url": ""}

    response = submit(client, page, **form, slug="Dawn notes!")
    assert response.status_code == 302
    base = f"/posts/{newsletter.slug}"
    old = client.get(f"{base}/first-light")
    assert old.status_code == 301 and old.headers["Location"].endswith(f"{base}/dawn-notes")
    assert client.get(f"{base}/dawn-notes").status_code == 200

    taken = submit(client, page, **form, slug="other")
    assert taken.status_code == 400
    assert "Another post has the web address other: choose another." in taken.get_data(as_text=True)
    # The post's own old address is its to take back; another post cannot have it.
    assert submit(client, f"/editor/posts/{other.id}", **{**form, "title": "Other"}, slug="first-light").status_code == 400
    assert submit(client, page, **form, slug="first-light").status_code == 302
    assert client.get(f"{base}/first-light").status_code == 200
    assert client.get(f"{base}/dawn-notes").headers["Location"].endswith(f"{base}/first-light")


def test_a_draft_slug_follows_its_title_until_an_editor_sets_one(db) -> None:  # type: ignore[no-untyped-def]
    """Renaming a never-published post moves its address with it; a typed one sticks."""
    newsletter = demo_newsletter(db)
    section = newsletter.sections[0].id
    post = posts.create_post(db, newsletter, _input(section, title="Draft one"))
    posts.update_post(db, post, _input(section, title="Draft renamed", slug="draft-one"))
    assert post.slug == "draft-renamed"
    posts.update_post(db, post, _input(section, title="Draft again", slug="my-own"))
    assert post.slug == "my-own"
