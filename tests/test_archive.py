"""The public archive: sent issues and published posts as pages, and the Atom feed."""

from __future__ import annotations

import datetime as dt
from xml.etree import ElementTree

import feedparser

from digest.core.models import Issue, IssueStatus
from digest.domain import posts
from tests.support.workspace import demo_newsletter, sent_issue

ATOM = "{http://www.w3.org/2005/Atom}"


def _setup(db):  # type: ignore[no-untyped-def]
    newsletter = demo_newsletter(db)
    by_slug = {p.slug: p for p in posts.list_posts(db, newsletter, status="published").posts}
    # The editor's order: a tools post first, then news, then another tools post.
    chosen = [by_slug["local-model-runner"], by_slug["eu-ai-act-guidance"], by_slug["notebook-diffing"]]
    first = sent_issue(db, newsletter, "first-issue", chosen, subject="First & foremost <issue>",
                       sent_at=dt.datetime(2026, 11, 16, 7, 0, tzinfo=dt.UTC))
    second = sent_issue(db, newsletter, "second-issue", [by_slug["evals-before-prompts"]], subject="Second",
                        sent_at=dt.datetime(2026, 11, 23, 7, 0, tzinfo=dt.UTC))
    return newsletter, first, second


def test_sent_issue_page_groups_posts_by_section_in_editor_order(client, db) -> None:  # type: ignore[no-untyped-def]
    """A sent issue shows its intro and posts grouped by section, sections in the editor's order."""
    newsletter, first, _ = _setup(db)
    response = client.get(f"/archive/{newsletter.slug}/first-issue")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "First &amp; foremost &lt;issue&gt;" in html
    assert '<time datetime="2026-11-16">November 16, 2026</time>' in html  # 08:00 in Berlin
    assert "Hello <strong>readers</strong>." in html
    tools, news = html.index("<h2>Tools</h2>"), html.index("<h2>News</h2>")
    runner, diffing, act = (html.index(t) for t in ("GPU sharing", "Readable diffs", "EU AI Act"))
    assert tools < runner < diffing < news < act
    assert 'href="/posts/weekly-model/local-model-runner"' in html


def test_unsent_issues_and_unpublished_posts_are_not_public(client, db) -> None:  # type: ignore[no-untyped-def]
    """Draft, scheduled, sending and cancelled issues are 404; so are drafts and retracted posts."""
    newsletter, first, _ = _setup(db)
    for status in (IssueStatus.DRAFT, IssueStatus.SCHEDULED, IssueStatus.SENDING, IssueStatus.CANCELLED):
        db.add(Issue(newsletter=newsletter, slug=f"issue-{status.value}", subject="x", status=status))
    db.commit()
    for status in ("draft", "scheduled", "sending", "cancelled"):
        assert client.get(f"/archive/{newsletter.slug}/issue-{status}").status_code == 404
    assert client.get(f"/archive/{newsletter.slug}/open-weights-catch-up").status_code == 404  # demo draft
    assert client.get("/archive/no-such-newsletter/").status_code == 404
    post = posts.published_post(db, newsletter, "eu-ai-act-guidance")
    assert post is not None
    posts.unpublish_post(db, post)
    db.commit()
    assert client.get(f"/posts/{newsletter.slug}/eu-ai-act-guidance").status_code == 404
    html = client.get(f"/archive/{newsletter.slug}/first-issue").get_data(as_text=True)
    assert "EU AI Act" not in html and "GPU sharing" in html
    draft = posts.create_post(db, newsletter, posts.PostInput(title="Secret draft", section_id=newsletter.sections[0].id))
    db.commit()
    assert client.get(f"/posts/{newsletter.slug}/{draft.slug}").status_code == 404


def test_published_post_page(client, db) -> None:  # type: ignore[no-untyped-def]
    """A published post has its own page with its section, text and source link."""
    newsletter = demo_newsletter(db)
    html = client.get(f"/posts/{newsletter.slug}/open-weights-reasoning-model").get_data(as_text=True)
    assert "<strong>Why it matters:</strong>" in html
    assert "https://example.org/news/open-weights-reasoning" in html and ">News<" in html


def test_archive_index_lists_sent_issues_newest_first(client, db) -> None:  # type: ignore[no-untyped-def]
    """The index links every sent issue, newest first, and advertises the feed."""
    newsletter, _, _ = _setup(db)
    html = client.get(f"/archive/{newsletter.slug}/").get_data(as_text=True)
    assert html.index("/archive/weekly-model/second-issue") < html.index("/archive/weekly-model/first-issue")
    assert "open-weights-catch-up" not in html
    assert 'type="application/atom+xml"' in html and 'href="/archive/weekly-model/feed.xml"' in html


def test_public_dates_are_the_day_in_the_newsletter_time_zone(client, db) -> None:  # type: ignore[no-untyped-def]
    """An issue sent and a post published late on 16 November UTC read 17 November in
    Auckland (ISO in the datetime attribute, written out in the newsletter's language) on the
    archive index, the issue's page, the post's page and the front page."""
    newsletter = demo_newsletter(db)
    newsletter.time_zone = "Pacific/Auckland"
    late = dt.datetime(2026, 11, 16, 23, 30, tzinfo=dt.UTC)  # 12:30 on the 17th in Auckland
    post = posts.list_posts(db, newsletter, status="published").posts[0]
    post.published_at = late
    sent_issue(db, newsletter, "late-issue", [post], subject="Late in UTC", sent_at=late)
    pages = {
        "index": f"/archive/{newsletter.slug}/", "issue": f"/archive/{newsletter.slug}/late-issue",
        "post": f"/posts/{newsletter.slug}/{post.slug}", "front": "/",
    }
    for name, path in pages.items():
        html = client.get(path).get_data(as_text=True)
        assert '<time datetime="2026-11-17"' in html and ">November 17, 2026</time>" in html, name
        assert "2026-11-16" not in html and "November 16" not in html, name


def test_feed_is_valid_atom(client, db) -> None:  # type: ignore[no-untyped-def]
    """The feed parses as Atom 1.0 with ids, titles, times and links to each issue."""
    newsletter, first, second = _setup(db)
    response = client.get(f"/archive/{newsletter.slug}/feed.xml")
    assert response.status_code == 200 and response.mimetype == "application/atom+xml"
    parsed = feedparser.parse(response.data)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.title == "The Weekly Model"
    assert parsed.feed.updated == "2026-11-23T07:00:00Z"
    links = {link.rel: link.href for link in parsed.feed.links}
    assert links == {"self": "https://news.example.org/archive/weekly-model/feed.xml",
                     "alternate": "https://news.example.org/archive/weekly-model/"}
    assert [e.title for e in parsed.entries] == ["Second", "First & foremost <issue>"]
    entry = parsed.entries[1]
    assert entry.link == "https://news.example.org/archive/weekly-model/first-issue"
    assert entry.id.startswith("tag:news.example.org,") and entry.id.endswith(f":issue/{first.id}")
    assert entry.published == entry.updated == "2026-11-16T07:00:00Z"
    assert entry.summary == "The preheader"  # the editor's words, to nobody in particular
    content = entry.content[0]
    assert content.type == "text/html"
    assert "<h2>Tools</h2>" in content.value
    assert 'href="https://news.example.org/posts/weekly-model/local-model-runner"' in content.value


def test_feed_is_well_formed_xml_in_the_atom_namespace(client, db) -> None:  # type: ignore[no-untyped-def]
    """A strict XML parser reads the feed; required Atom elements are where Atom wants them."""
    newsletter, _, _ = _setup(db)
    root = ElementTree.fromstring(client.get(f"/archive/{newsletter.slug}/feed.xml").data)
    assert root.tag == f"{ATOM}feed"
    for required in ("id", "title", "updated", "author/name"):
        assert root.find(f"{ATOM}{required.replace('/', '/' + ATOM)}") is not None, required
    entries = root.findall(f"{ATOM}entry")
    assert len(entries) == 2
    for entry in entries:
        for required in ("id", "title", "updated"):
            assert (entry.findtext(f"{ATOM}{required}") or "").strip(), required
        assert entry.find(f"{ATOM}link[@rel='alternate']") is not None


def test_feed_ids_are_stable(client, db) -> None:  # type: ignore[no-untyped-def]
    """Entry ids do not change between requests or when a later issue is sent."""
    newsletter, first, _ = _setup(db)
    before = {e.title: e.id for e in feedparser.parse(client.get("/archive/weekly-model/feed.xml").data).entries}
    published = posts.published_post(db, newsletter, "retrieval-chunking")
    sent_issue(db, newsletter, "third", [published], subject="Third")  # type: ignore[list-item]
    after = {e.title: e.id for e in feedparser.parse(client.get("/archive/weekly-model/feed.xml").data).entries}
    assert {k: after[k] for k in before} == before
    assert len(set(after.values())) == 3


def test_empty_feed_is_still_valid(client, db) -> None:  # type: ignore[no-untyped-def]
    """Before the first issue, the feed is valid Atom with no entries."""
    demo_newsletter(db)
    parsed = feedparser.parse(client.get("/archive/weekly-model/feed.xml").data)
    assert parsed.bozo == 0 and parsed.version == "atom10" and parsed.entries == []


def test_public_pages_show_no_placeholder_and_no_words_for_one_reader(client, db) -> None:  # type: ignore[no-untyped-def]
    """The archive, its feed and the front page summarise an issue for everyone: the
    placeholders are filled with every section's pieces, and a preheader written to "you"
    gives way to the plain count and headlines."""
    newsletter, first, second = _setup(db)
    first.preheader = "{count} this week, among them {headlines}"
    second.preheader = "Your pick of the week, just for you"
    db.commit()
    index = client.get(f"/archive/{newsletter.slug}/").get_data(as_text=True)
    feed = feedparser.parse(client.get(f"/archive/{newsletter.slug}/feed.xml").data)
    page = client.get(f"/archive/{newsletter.slug}/first-issue").get_data(as_text=True)
    front = client.get("/").get_data(as_text=True)
    for html in (index, page, front):
        assert "{count}" not in html and "{headlines}" not in html
    summaries = {e.title: e.summary for e in feed.entries}
    assert summaries["First & foremost <issue>"].startswith("3 pieces this week, among them ")
    assert "Readable diffs" in summaries["First & foremost <issue>"]
    # The post's own title may say "you"; the editor's words to one reader are gone.
    assert summaries["Second"] == "1 piece this week: Write the evals before you write the prompt"
    assert "Your pick" not in index and "Your pick" not in front
    assert '<meta name="description" content="3 pieces this week, among them' in page
