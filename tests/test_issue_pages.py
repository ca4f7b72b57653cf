"""The editor's issue pages: building, editing, previewing, test sends, scheduling."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import func, select

from digest import create_app
from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    EditorRole,
    Issue,
    IssueStatus,
    Newsletter,
    Post,
    PostStatus,
    Section,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SubscriptionStatus,
)
from digest.domain import issues, links
from tests.support.apps import get_db_of
from tests.support.delivery import make_newsletter, reader_email
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token, submit


def _editor_client(app, db, role=EditorRole.EDITOR):  # type: ignore[no-untyped-def]
    make_editor(db, "editor@example.com", role)
    client = app.test_client()
    assert log_in(client, "editor@example.com").status_code == 302
    return client


def _followed(client, response):  # type: ignore[no-untyped-def]
    """Return the page a form's redirect leads to (with its flashed messages)."""
    assert response.status_code == 302, response.status_code
    return client.get(response.headers["Location"])


def _issue(app, issue_id: int) -> Issue:  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        issue = session.get(Issue, issue_id)
        assert issue is not None
        session.expunge(issue)
        return issue


def _post_titles(app, issue_id: int) -> list[str]:  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        return [item.post.title for item in issues.get_issue(session, issue_id).issue_posts]


def _publish(db, newsletter_id: int, section_id: int, title: str, at: dt.datetime) -> Post:  # type: ignore[no-untyped-def]
    post = Post(newsletter_id=newsletter_id, section_id=section_id, slug=title.lower().replace(" ", "-"),
                title=title, summary=f"About {title}.", status=PostStatus.PUBLISHED, published_at=at)
    db.add(post)
    db.commit()
    return post


def test_anonymous_visitors_see_nothing_and_change_nothing(app, db) -> None:  # type: ignore[no-untyped-def]
    """Every issue page sends a visitor without a session to the login page."""
    setup = make_newsletter(db)
    client = app.test_client()
    for path in ("/editor/issues", f"/editor/issues/{setup.issue_id}", f"/editor/issues/{setup.issue_id}/preview",
                 f"/editor/issues/{setup.issue_id}/preview/html"):
        response = client.get(path)
        assert response.status_code == 302 and "/editor/login" in response.headers["Location"], path
    assert client.post("/editor/issues/new").status_code in (302, 400)
    assert db.scalar(select(func.count()).select_from(Issue)) == 1


def test_new_issue_carries_the_posts_since_the_last_issue_in_section_order(app, db) -> None:  # type: ignore[no-untyped-def]
    """"New issue" gathers every post published since the last issue, sections in order."""
    setup = make_newsletter(db)
    news, tools = setup.section_ids
    hour_ago = utcnow() - dt.timedelta(hours=1)
    db.execute(Issue.__table__.update().values(created_at=hour_ago))
    _publish(db, setup.newsletter_id, tools, "Tool of the week", hour_ago + dt.timedelta(minutes=1))
    _publish(db, setup.newsletter_id, news, "Big news", hour_ago + dt.timedelta(minutes=2))
    client = _editor_client(app, db)

    response = submit(client, "/editor/issues", "/editor/issues/new")

    assert response.status_code == 302
    issue_id = int(response.headers["Location"].rsplit("/", 1)[1])
    assert _post_titles(app, issue_id) == ["Big news", "Tool of the week"]
    issue = _issue(app, issue_id)
    assert (issue.status, issue.subject, issue.preheader) == (IssueStatus.DRAFT, "Big news", "")
    page = client.get(f"/editor/issues/{issue_id}").get_data(as_text=True)
    assert "Posts (2)" in page and 'id="issue-form"' in page


def test_editing_subject_and_reordering_removing_adding_posts(app, db) -> None:  # type: ignore[no-untyped-def]
    """An editor changes the words, moves posts, takes one out and puts it back."""
    setup = make_newsletter(db)
    news, _tools = setup.section_ids
    _publish(db, setup.newsletter_id, news, "Second news", utcnow())
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"

    saved = submit(client, page, subject="Week  48: tools", preheader="Read on", intro_md="Hello *all*")
    assert saved.status_code == 302
    issue = _issue(app, setup.issue_id)
    assert (issue.subject, issue.preheader, issue.intro_md) == ("Week 48: tools", "Read on", "Hello *all*")
    facts = client.get(f"{page}/preview").get_data(as_text=True).split('id="message-facts"')[1]
    assert "Week 48: tools" in facts and "Read on" in facts and "Gmail clips near 100 KB" in facts

    second, tool = (db.scalar(select(Post.id).where(Post.title == t)) for t in ("Second news", "A tool"))
    db.rollback()  # every SQLite transaction takes the write lock: end the read
    assert submit(client, page, f"{page}/posts/add", post_id=second).status_code == 302
    assert _post_titles(app, setup.issue_id) == ["First news", "Second news", "A tool"]

    submit(client, page, f"{page}/posts/{second}/move", direction="up")
    assert _post_titles(app, setup.issue_id) == ["Second news", "First news", "A tool"]
    submit(client, page, f"{page}/posts/{tool}/move", direction="up")
    assert _post_titles(app, setup.issue_id) == ["A tool", "Second news", "First news"]
    email = client.get(f"{page}/preview/html").get_data(as_text=True)
    assert email.index("A tool") < email.index("Second news") < email.index("First news")

    submit(client, page, f"{page}/posts/{second}/remove")
    assert _post_titles(app, setup.issue_id) == ["A tool", "First news"]
    assert "Second news" in client.get(page).get_data(as_text=True)  # offered again under "Add"
    listed = client.get(page).get_data(as_text=True).split('<ol class="issue-posts"')[1].split("</ol>")[0]
    assert 'class="help post-summary">' in listed  # each post shows its summary under its title


def test_a_refused_edit_says_why_and_changes_nothing(app, db) -> None:  # type: ignore[no-untyped-def]
    """An empty subject is refused with a message tied to the field; nothing is saved."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"

    response = submit(client, page, subject="   ", preheader="Changed", intro_md="Changed")

    assert response.status_code == 400
    assert 'aria-invalid="true"' in response.get_data(as_text=True)
    issue = _issue(app, setup.issue_id)
    assert (issue.subject, issue.preheader) == ("Our first issue", "")


@pytest.mark.parametrize(
    ("preheader", "message"),
    [
        ("Hello {name}", "{name} is not a placeholder; use {count}, {headlines}, {sections}"),
        ("{count.real} pieces", "{count.real} is not a placeholder"),
        ("Only {count pieces", "A brace is not closed"),
    ],
    ids=["unknown", "attribute", "unclosed"],
)
def test_a_preheader_with_a_wrong_placeholder_is_refused_naming_the_right_ones(app, db, preheader, message) -> None:  # type: ignore[no-untyped-def]
    """A placeholder the email cannot fill is refused next to the field, listing those it can."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"

    response = submit(client, page, subject="Changed", preheader=preheader, intro_md="")

    assert response.status_code == 400
    body = response.get_data(as_text=True)
    assert message in body.split('id="preheader-error"')[1]
    assert (_issue(app, setup.issue_id).subject, _issue(app, setup.issue_id).preheader) == ("Our first issue", "")


def _choose(db, email: str, section_ids: list[int]) -> None:  # type: ignore[no-untyped-def]
    """Make the reader at email choose section_ids."""
    subscription = db.scalar(
        select(Subscription.id).join(Subscriber, Subscriber.id == Subscription.subscriber_id).where(Subscriber.email == email)
    )
    db.add_all(SubscriptionSection(subscription_id=subscription, section_id=s) for s in section_ids)
    db.commit()


def test_preview_lists_each_combination_of_sections_and_shows_any_in_one_click(app, db) -> None:  # type: ignore[no-untyped-def]
    """The preview counts the readers of each choice of sections, shows the largest first, and one click shows another."""
    setup = make_newsletter(db, readers=6)
    news, tools = setup.section_ids
    for n in (0, 1):
        _choose(db, reader_email(n), [tools])
    _choose(db, reader_email(2), [news, tools])
    # Not confirmed: not counted.
    db.execute(Subscription.__table__.update().where(Subscription.id == db.scalar(
        select(Subscription.id).join(Subscriber).where(Subscriber.email == reader_email(5))
    )).values(status=SubscriptionStatus.PENDING))
    db.commit()
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}/preview"

    html = client.get(page).get_data(as_text=True)

    rows = [
        " ".join(re.sub(r"<[^>]+>", " ", "<tr" + row).split())
        for row in html.split('id="combinations"')[1].split("</table>")[0].split("<tr")[2:]
    ]
    assert rows == [
        "Every section shown 2 2 pieces First news A tool",
        "Tools 2 1 piece A tool",
        "News, Tools 1 2 pieces First news A tool",
    ]
    assert "made-up" not in html
    assert "the <strong>2 readers</strong> who chose <strong>every section</strong>" in html
    frame = client.get(f"{page}/html?sections=all").get_data(as_text=True)
    assert "First news" in frame and "A tool" in frame

    link = re.search(r'href="([^"]+)">Tools</a>', html)
    assert link is not None
    tools_page = client.get(link.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "the <strong>2 readers</strong> who chose <strong>Tools</strong>" in tools_page
    src = re.search(r'<iframe[^>]+src="([^"]+)"', tools_page)
    assert src is not None
    frame = client.get(src.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "A tool" in frame and "First news" not in frame
    assert "1 piece this week: A tool" in frame
    assert client.get(f"{page}?sections=1-x").status_code == 404


def test_the_schedule_warns_of_readers_with_no_post_and_a_subject_they_will_not_get(app, db) -> None:  # type: ignore[no-untyped-def]
    """Readers whose sections are empty this week, and readers who miss the post the subject
    names, are counted beside the schedule and send buttons."""
    setup = make_newsletter(db, readers=5)
    news, _tools = setup.section_ids
    quiet = Section(newsletter_id=setup.newsletter_id, slug="quiet", name="Quiet", position=2)
    db.add(quiet)
    db.commit()
    _choose(db, reader_email(0), [quiet.id])
    _choose(db, reader_email(1), [quiet.id])
    _choose(db, reader_email(2), [news])
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    assert submit(client, page, subject="A tool worth a look", preheader="", intro_md="").status_code == 302

    html = client.get(page).get_data(as_text=True)

    schedule = html.split('id="schedule"')[1]
    warnings = [" ".join(re.sub(r"<[^>]+>", "", w).split()) for w in schedule.split('id="reach-warnings"')[1].split("</ul>")[0].split("<li>")[1:]]
    assert warnings == [
        "2 readers who chose Quiet get no post in this issue: they are skipped and get nothing (the sending page counts them).",
        "The subject names “A tool” (Tools), which 3 readers will not get: those who chose Quiet; News.",
    ]


def test_a_form_without_its_csrf_token_is_refused(app, db) -> None:  # type: ignore[no-untyped-def]
    """A cross-site POST cannot change, schedule or send an issue."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    base = f"/editor/issues/{setup.issue_id}"
    for path, data in ((base, {"subject": "Hijacked"}), (f"{base}/send-now", {}),
                       (f"{base}/schedule", {"at": "2031-01-01T08:00", "tz": "UTC"}),
                       (f"{base}/cancel", {}), ("/editor/issues/new", {})):
        assert client.post(path, data=data).status_code == 400, path
    issue = _issue(app, setup.issue_id)
    assert (issue.subject, issue.status) == ("Our first issue", IssueStatus.DRAFT)
    assert db.scalar(select(func.count()).select_from(Issue)) == 1


def test_an_issue_that_started_is_read_only(app, db) -> None:  # type: ignore[no-untyped-def]
    """Once sending began, the page shows the issue without forms and refuses changes."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    token = csrf_token(client.get(page).get_data(as_text=True))
    db.execute(Issue.__table__.update().values(status=IssueStatus.SENT.value, started_at=utcnow(), sent_at=utcnow()))
    db.commit()

    html = client.get(page).get_data(as_text=True)
    assert 'id="issue-form"' not in html and "can no longer change" in html
    assert f"/editor/issues/{setup.issue_id}/sending" in html
    response = client.post(page, data={"csrf_token": token, "subject": "Too late"}, follow_redirects=True)
    assert "sent" in response.get_data(as_text=True)
    assert _issue(app, setup.issue_id).subject == "Our first issue"


def _unsubscribe_links(html: str) -> set[str]:
    return set(re.findall(r'https?://[^"\s]*/unsubscribe/[^"\s<]+', html))


def _preference_links(html: str) -> set[str]:
    return set(re.findall(r'https?://[^"\s]*/preferences/[^"\s<]+', html))


def test_preview_as_a_chosen_reader_shows_their_name_and_link_only(app, db) -> None:  # type: ignore[no-untyped-def]
    """The preview is the reader's own message (their greeting, their sections) but none of
    its links acts for them: an editor cannot unsubscribe or erase a reader from a preview."""
    setup = make_newsletter(db, readers=2)
    client = _editor_client(app, db)
    subscriptions = list(db.scalars(select(Subscription).order_by(Subscription.id)))
    for subscription, name in zip(subscriptions, ("Ada Zero", "Bea One"), strict=True):
        subscription.subscriber.name = name
    db.commit()
    ids = [s.id for s in subscriptions]
    live = {
        link
        for s in subscriptions
        for link in (links.unsubscribe_url(app.config, s.uid), links.preferences_url(app.config, s.uid))
    }
    db.rollback()
    base = f"/editor/issues/{setup.issue_id}/preview"

    found = client.get(f"{base}?q={reader_email(1)}").get_data(as_text=True)
    assert f"reader={ids[1]}" in found
    first = client.get(f"{base}/html?reader={ids[0]}").get_data(as_text=True)
    second = client.get(f"{base}/html?reader={ids[1]}").get_data(as_text=True)
    page = client.get(f"{base}?reader={ids[1]}&view=phone").get_data(as_text=True)

    assert "Hi Ada," in first and "Bea" not in first
    assert "Hi Bea," in second and "Ada" not in second
    assert reader_email(1) in page and "preview-phone" in page
    for html in (first, second, page):
        assert _unsubscribe_links(html)
        assert not any(link in html for link in live)
    for link in _preference_links(second) | _unsubscribe_links(second):
        assert client.get(urlsplit(link).path).status_code == 404
    assert client.get(f"{base}?reader=999999").status_code == 404


def test_preview_warns_about_size_and_send_now_refuses_clipped_html(app, db) -> None:  # type: ignore[no-untyped-def]
    """HTML over Gmail's clipping limit is shown as unsendable, and Send now refuses it."""
    setup = make_newsletter(db)
    db.execute(Post.__table__.update().values(summary="A long summary sentence. " * 2500))
    db.commit()
    client = _editor_client(app, db)

    page = client.get(f"/editor/issues/{setup.issue_id}/preview").get_data(as_text=True)
    assert "Cannot be sent" in page and "Gmail clips" in page

    response = _followed(client, submit(client, f"/editor/issues/{setup.issue_id}", f"/editor/issues/{setup.issue_id}/send-now"))
    assert "cannot be sent" in response.get_data(as_text=True)
    assert _issue(app, setup.issue_id).status == IssueStatus.DRAFT


def test_preview_warns_near_the_limit_and_the_issue_may_still_go(app, db) -> None:  # type: ignore[no-untyped-def]
    """About 85 KB of HTML is sendable but the preview says it is close to the limit."""
    setup = make_newsletter(db)
    db.execute(Post.__table__.update().values(summary="A long summary sentence. " * 1500))
    db.commit()
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"

    preview = client.get(f"{page}/preview").get_data(as_text=True)
    assert "Close to the limit" in preview and "close to the 90 KB this service sends" in preview
    assert "Cannot be sent" not in preview

    assert submit(client, page, f"{page}/send-now").headers["Location"].endswith("/sending")
    assert _issue(app, setup.issue_id).status == IssueStatus.SCHEDULED


def test_a_test_send_reaches_the_editor_and_touches_no_ledger(smtp_app, smtp_server, db) -> None:  # type: ignore[no-untyped-def]
    """"Send me a test" mails the editor through SMTP, marked [Test]; nobody else, no delivery row."""
    with get_db_of(smtp_app).session() as session:
        setup = make_newsletter(session, readers=3)
        client = _editor_client(smtp_app, session)
    preview = f"/editor/issues/{setup.issue_id}/preview"

    response = _followed(client, submit(client, preview, f"/editor/issues/{setup.issue_id}/test"))

    assert "A test is on its way to editor@example.com" in response.get_data(as_text=True)
    received = smtp_server.to("editor@example.com")
    assert len(received) == 1 and len(smtp_server.received) == 1
    assert received[0].message["Subject"] == "[Test] Our first issue"
    with get_db_of(smtp_app).session() as session:
        assert session.scalar(select(func.count()).select_from(Delivery)) == 0
        assert session.get(Issue, setup.issue_id).status == IssueStatus.DRAFT

    for _ in range(4):  # five tests in ten minutes, then the editor waits
        submit(client, preview, f"/editor/issues/{setup.issue_id}/test")
    refused = _followed(client, submit(client, preview, f"/editor/issues/{setup.issue_id}/test"))
    assert "wait a little before the next" in refused.get_data(as_text=True)
    assert len(smtp_server.received) == 5


def test_without_smtp_a_test_send_lands_in_the_outbox(app, db) -> None:  # type: ignore[no-untyped-def]
    """With no SMTP server set, the test is the outbox's one message, to the admin only."""
    setup = make_newsletter(db, readers=2)
    client = _editor_client(app, db, EditorRole.ADMIN)
    preview = f"/editor/issues/{setup.issue_id}/preview"

    response = _followed(client, submit(client, preview, f"/editor/issues/{setup.issue_id}/test"))

    assert "find it in the Outbox" in response.get_data(as_text=True)
    [name] = [p.name for p in Path(app.config["OUTBOX_PATH"]).iterdir() if p.suffix == ".eml"]
    listing = client.get("/editor/outbox").get_data(as_text=True)
    assert "[Test] Our first issue" in listing and "editor@example.com" in listing
    assert reader_email(0) not in client.get(f"/editor/outbox/{name}").get_data(as_text=True)
    assert db.scalar(select(func.count()).select_from(Delivery)) == 0


def test_the_test_send_limit_is_a_setting(app_overrides) -> None:  # type: ignore[no-untyped-def]
    """DIGEST_TEST_SEND_RATE_LIMIT sets how many tests an editor may send: here two, then a wait."""
    app = create_app({**app_overrides, "TEST_SEND_RATE_LIMIT": "2 per 10 minutes"})
    with get_db_of(app).session() as session:
        setup = make_newsletter(session, readers=1)
        client = _editor_client(app, session)
    preview = f"/editor/issues/{setup.issue_id}/preview"
    pages = [_followed(client, submit(client, preview, f"/editor/issues/{setup.issue_id}/test"))
             .get_data(as_text=True) for _ in range(3)]
    assert ["wait a little before the next" in page for page in pages] == [False, False, True]
    assert len([p for p in Path(app.config["OUTBOX_PATH"]).iterdir() if p.suffix == ".eml"]) == 2
    get_db_of(app).dispose()


def test_scheduling_reads_the_time_in_the_chosen_zone(app, db) -> None:  # type: ignore[no-untyped-def]
    """08:00 in New York and 08:00 in Berlin are different instants, stored in UTC."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"

    submit(client, page, f"{page}/schedule", at="2031-01-15T08:00", tz="America/New_York")
    issue = _issue(app, setup.issue_id)
    assert (issue.status, issue.scheduled_at, issue.schedule_tz) == (
        IssueStatus.SCHEDULED, dt.datetime(2031, 1, 15, 13, 0, tzinfo=dt.UTC), "America/New_York")

    response = _followed(client, submit(client, page, f"{page}/schedule", at="2031-07-15T08:00", tz="Europe/Berlin"))
    html = response.get_data(as_text=True)
    assert "goes out at 2031-07-15 08:00 CEST (Europe/Berlin; 2031-07-15 06:00 UTC)" in html
    assert '<time datetime="2031-07-15T06:00:00Z" title="2031-07-15 06:00:00 UTC">2031-07-15 08:00 CEST</time>' in html
    assert _issue(app, setup.issue_id).scheduled_at == dt.datetime(2031, 7, 15, 6, 0, tzinfo=dt.UTC)

    submit(client, page, subject="Renamed while scheduled", preheader="", intro_md="")
    issue = _issue(app, setup.issue_id)
    assert (issue.subject, issue.status) == ("Renamed while scheduled", IssueStatus.SCHEDULED)
    assert issue.scheduled_at == dt.datetime(2031, 7, 15, 6, 0, tzinfo=dt.UTC)

    submit(client, page, f"{page}/unschedule")
    assert _issue(app, setup.issue_id).status == IssueStatus.DRAFT


def test_times_a_dst_change_skips_or_repeats_are_refused(app, db) -> None:  # type: ignore[no-untyped-def]
    """02:30 on the night clocks jump forward or back in Berlin is refused with the reason."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"

    answers = [submit(client, page, f"{page}/schedule", at=at, tz=tz) for at, tz in (
        ("2031-03-30T02:30", "Europe/Berlin"), ("2031-10-26T02:30", "Europe/Berlin"), ("2031-10-26T08:00", "Mars/Olympus"))]
    assert [a.status_code for a in answers] == [400, 400, 400]
    skipped, repeated, unknown = (a.get_data(as_text=True) for a in answers)

    assert re.search(r'id="at-error" role="alert">[^<]*does not exist in Europe/Berlin', skipped)
    assert re.search(r'id="at-error" role="alert">[^<]*happens twice in Europe/Berlin', repeated)
    assert re.search(r'id="tz-error" role="alert">[^<]*Mars/Olympus is not a time zone name', unknown)
    assert 'value="2031-10-26T08:00"' in unknown and 'value="Mars/Olympus"' in unknown  # the input is kept
    assert re.search(r'id="tz"[^>]*aria-invalid="true"[^>]*autofocus', unknown)  # the browser shows the field
    assert _issue(app, setup.issue_id).status == IssueStatus.DRAFT


def test_messages_stand_next_to_the_control_that_was_used(app, db) -> None:  # type: ignore[no-untyped-def]
    """A move comes back to the moved post with its message there; Send now on an issue without
    a subject is refused beside the button, and the page says so before any confirmation."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    second = _post_titles(app, setup.issue_id)
    post_id = db.scalar(select(Post.id).where(Post.title == second[1]))
    db.commit()  # on SQLite the test session's open transaction would hold the write lock

    moved = submit(client, page, f"{page}/posts/{post_id}/move", direction="up")
    assert moved.headers["Location"].endswith(f"{page}#notice-post-{post_id}")
    html = client.get(moved.headers["Location"]).get_data(as_text=True)
    item = html.split(f'<li id="post-{post_id}"')[1].split("</li>")[0]
    assert 'id="notice-post-{0}" role="status">Moved.</p>'.format(post_id) in item
    assert "Moved." not in html.split('<section class="card" id="posts"')[0]  # not at the top

    db.execute(Issue.__table__.update().values(subject=""))
    db.commit()
    html = client.get(page).get_data(as_text=True)
    assert 'data-blocked="This issue has no subject yet: write one above and save it, then send."' in html
    refused = submit(client, page, f"{page}/send-now")
    assert refused.headers["Location"].endswith(f"{page}#notice-send")
    html = client.get(refused.headers["Location"]).get_data(as_text=True)
    send = html.split('id="send"')[1]
    assert 'id="notice-send" role="alert">The issue has no subject yet.</p>' in send
    assert _issue(app, setup.issue_id).status == IssueStatus.DRAFT


def test_drafts_and_unstarted_cancelled_issues_can_be_deleted(app, db) -> None:  # type: ignore[no-untyped-def]
    """Deleting a draft frees its posts for a new issue; a sent issue cannot be deleted."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    titles = _post_titles(app, setup.issue_id)
    assert "Delete draft" in client.get(page).get_data(as_text=True)

    response = submit(client, page, f"{page}/delete")
    assert response.headers["Location"].endswith("/editor/issues")
    listing = client.get("/editor/issues").get_data(as_text=True)
    assert "“Our first issue” is deleted; its posts are free for another issue." in listing
    assert db.get(Issue, setup.issue_id) is None
    db.commit()

    fresh = submit(client, "/editor/issues", "/editor/issues/new").headers["Location"]
    new_id = int(fresh.rsplit("/", 1)[1])
    assert _post_titles(app, new_id) == titles
    submit(client, fresh, f"{fresh}/cancel")
    assert "Delete issue" in client.get(fresh).get_data(as_text=True)
    assert submit(client, fresh, f"{fresh}/delete").status_code == 302
    assert _issue_gone(app, new_id)


def test_a_started_issue_cannot_be_deleted(app, db) -> None:  # type: ignore[no-untyped-def]
    """An issue that went out (even cancelled part-way) keeps its record."""
    setup = make_newsletter(db, readers=2)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, {"SECRET_KEY": app.config["SECRET_KEY"]})
    issues.cancel_issue(db, setup.issue_id)
    db.commit()
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    assert "Delete issue" not in client.get(page).get_data(as_text=True)
    html = _followed(client, submit(client, page, f"{page}/delete")).get_data(as_text=True)
    assert "only drafts and cancelled issues that never started sending can be deleted" in html
    assert not _issue_gone(app, setup.issue_id)


def _issue_gone(app, issue_id: int) -> bool:  # type: ignore[no-untyped-def]
    with get_db_of(app).session() as session:
        return session.get(Issue, issue_id) is None


def test_send_now_hands_over_to_the_sending_page(app, db) -> None:  # type: ignore[no-untyped-def]
    """Send now makes the issue due at once and opens the page that follows its sending."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"

    response = submit(client, page, f"{page}/send-now")

    assert response.headers["Location"].endswith(f"/editor/issues/{setup.issue_id}/sending")
    issue = _issue(app, setup.issue_id)
    assert issue.status == IssueStatus.SCHEDULED and issue.scheduled_at <= utcnow()


def test_hold_release_and_cancel_before_the_start(app, db) -> None:  # type: ignore[no-untyped-def]
    """A scheduled issue can be held and released; cancelling frees its posts."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    submit(client, page, f"{page}/schedule", at="2031-01-15T08:00", tz="Europe/Berlin")

    submit(client, page, f"{page}/hold", held="1")
    assert _issue(app, setup.issue_id).held
    assert "held" in client.get("/editor/issues").get_data(as_text=True)
    submit(client, page, f"{page}/hold", held="0")
    assert not _issue(app, setup.issue_id).held

    submit(client, page, f"{page}/cancel")
    assert _issue(app, setup.issue_id).status == IssueStatus.CANCELLED
    new = submit(client, "/editor/issues", "/editor/issues/new")
    assert _post_titles(app, int(new.headers["Location"].rsplit("/", 1)[1])) == ["First news", "A tool"]


def test_the_list_shows_the_weekly_schedule_and_an_empty_week(app, db) -> None:  # type: ignore[no-untyped-def]
    """The weekly panel tells when the next issue is assembled and that an empty week sent nothing."""
    setup = make_newsletter(db)
    newsletter = db.get(Newsletter, setup.newsletter_id)
    newsletter.send_weekday, newsletter.send_time, newsletter.review_hours = 1, "08:00", 12
    db.commit()
    now = utcnow()
    # The only posts are in the draft issue, so this week's assembly finds nothing.
    slot = issues.weekly_slots(newsletter, now)[0]
    assert issues.materialise_week(db, app.config, newsletter, slot, slot.assemble_at).outcome == "empty"
    db.commit()
    client = _editor_client(app, db)

    html = client.get("/editor/issues").get_data(as_text=True)

    assert "Every <strong>Monday at 08:00</strong>" in html and "12 hours" in html
    assert "Next send" in html and "Europe/Berlin" in html
    assert f"{slot.period_key}</strong>" in html and "empty week: nothing was sent" in html
    assert "Our first issue" in html


def test_the_list_links_a_started_issue_to_its_sending_and_pages_back(app, db) -> None:  # type: ignore[no-untyped-def]
    """A started issue shows how many of its deliveries went out, linked to its sending page;
    the list shows the newest issues a page at a time."""
    from digest.web.editor.issues import PAGE

    setup = make_newsletter(db, readers=3)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, app.config)
    db.execute(Delivery.__table__.update().where(Delivery.id == db.scalar(select(func.min(Delivery.id))))
               .values(state=DeliveryState.SENT.value))
    db.add_all(Issue(newsletter_id=setup.newsletter_id, slug=f"draft-{n}", subject=f"Draft {n}")
               for n in range(PAGE))
    db.commit()
    client = _editor_client(app, db)

    newest = client.get("/editor/issues").get_data(as_text=True)
    assert f"Draft {PAGE - 1}<" in newest and "Our first issue" not in newest
    older = re.search(r'href="(/editor/issues\?before=\d+)"', newest)
    assert older is not None
    page = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "Our first issue" in page and "Draft 0<" not in page
    assert f'href="/editor/issues/{setup.issue_id}/sending">1 of 3</a>' in page



def test_the_picker_finds_posts_and_offers_those_in_another_draft(app, db) -> None:  # type: ignore[no-untyped-def]
    """Published posts are listed with section and date; one another draft carries is offered
    with that draft's name and moves here; search narrows by title or section."""
    setup = make_newsletter(db)
    news, _tools = setup.section_ids
    _publish(db, setup.newsletter_id, news, "Second news", utcnow())
    client = _editor_client(app, db)
    first = f"/editor/issues/{setup.issue_id}"
    assert submit(client, first, subject="Kept", preheader="", intro_md="").status_code == 302
    other = submit(client, "/editor/issues", "/editor/issues/new").headers["Location"]
    assert _post_titles(app, int(other.rsplit("/", 1)[1])) == ["Second news"]

    picker = client.get(first).get_data(as_text=True).split('id="picker-list"')[1].split("</ul>")[0]
    assert "Second news" in picker and "in draft “Second news”" in picker and "Move here" in picker
    assert "First news" not in picker  # this issue carries it already
    found = client.get(f"{first}?find=news").get_data(as_text=True).split('id="picker-list"')[1].split("</ul>")[0]
    assert "Second news" in found
    assert "No published post matches “zebra”." in client.get(f"{first}?find=zebra").get_data(as_text=True)

    second = db.scalar(select(Post.id).where(Post.title == "Second news"))
    db.rollback()
    moved = submit(client, first, f"{first}/posts/add", post_id=second)
    assert moved.headers["Location"].endswith("#notice-add")
    assert _post_titles(app, setup.issue_id) == ["First news", "Second news", "A tool"]
    assert _post_titles(app, int(other.rsplit("/", 1)[1])) == []


def test_a_new_order_is_stored_grouped_by_section_and_answered(app, db) -> None:  # type: ignore[no-untyped-def]
    """Drag and drop sends every post's id in the new order; the answer is the order stored,
    sections kept together; a list that is not the issue's posts is refused."""
    setup = make_newsletter(db)
    news, _tools = setup.section_ids
    _publish(db, setup.newsletter_id, news, "Second news", utcnow())
    client = _editor_client(app, db)
    page = f"/editor/issues/{setup.issue_id}"
    second = db.scalar(select(Post.id).where(Post.title == "Second news"))
    db.rollback()
    submit(client, page, f"{page}/posts/add", post_id=second)
    ids = {t: db.scalar(select(Post.id).where(Post.title == t)) for t in ("First news", "Second news", "A tool")}
    db.rollback()
    token = csrf_token(client.get(page).get_data(as_text=True))
    headers = {"X-CSRFToken": token}

    answer = client.post(f"{page}/posts/order", json={"post_ids": [ids["Second news"], ids["A tool"], ids["First news"]]},
                         headers=headers)
    assert answer.status_code == 200
    assert answer.get_json()["post_ids"] == [ids["Second news"], ids["First news"], ids["A tool"]]
    assert _post_titles(app, setup.issue_id) == ["Second news", "First news", "A tool"]

    moved = client.post(f"{page}/posts/{ids['A tool']}/move", data={"direction": "up", "csrf_token": token},
                        headers={"Accept": "application/json"})
    assert moved.get_json() == {"post_ids": [ids["A tool"], ids["Second news"], ids["First news"]], "message": "Moved."}

    refused = client.post(f"{page}/posts/order", json={"post_ids": [ids["A tool"]]}, headers=headers)
    assert refused.status_code == 409 and "changed meanwhile" in refused.get_json()["error"]
    assert client.post(f"{page}/posts/order", json={"post_ids": ["x"]}, headers=headers).status_code == 400
    assert _post_titles(app, setup.issue_id) == ["A tool", "Second news", "First news"]


def test_the_preview_frame_may_be_measured_but_runs_no_script(app, db) -> None:  # type: ignore[no-untyped-def]
    """The preview's frame is same-origin (the page grows it to the email's height) and
    nothing else: no script, no form, no popup, under a policy that allows no script."""
    setup = make_newsletter(db)
    client = _editor_client(app, db)
    page = client.get(f"/editor/issues/{setup.issue_id}/preview").get_data(as_text=True)
    assert re.search(r'<iframe class="mail-html [^"]*" sandbox="allow-same-origin" data-fit-height', page)
    policy = client.get(f"/editor/issues/{setup.issue_id}/preview/html").headers["Content-Security-Policy"]
    directives = dict((d.strip().split(" ", 1) + [""])[:2] for d in policy.split(";"))
    assert directives["sandbox"] == "allow-same-origin"
    assert directives["default-src"] == "'none'" and "script-src" not in directives
    assert directives["form-action"] == "'none'"
