"""Newsletter settings, sections and editor management by admins."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select

from digest.core.models import Editor, EditorRole, Newsletter, Section, Subscription
from digest.core.validation import Invalid
from digest.domain import editors, newsletters, posts
from tests.support.editor import log_in, make_editor
from tests.support.forms import csrf_token, submit
from tests.support.workspace import demo_newsletter

SETTINGS = {
    "name": "The Weekly Model",
    "description": "About models.",
    "from_name": "Weekly Model",
    "from_address": "news@example.org",
    "reply_to": "editors@example.org",
    "postal_address": "1 Example Street, Berlin",
    "time_zone": "Europe/Berlin",
    "send_weekday": "1",
    "send_time": "08:00",
    "review_hours": "24",
    "consent_text": "Yes, send me the newsletter.",
}


def _settings(**changes: str) -> newsletters.SettingsInput:
    return newsletters.SettingsInput(**{**SETTINGS, **changes})


@pytest.mark.parametrize("zone", ["Mars/Olympus", "europe/berlin", "", "../../etc/passwd", "CEST"])
def test_unknown_time_zone_is_refused(db, zone) -> None:  # type: ignore[no-untyped-def]
    """Only IANA zone names are accepted, spelled exactly."""
    newsletter = demo_newsletter(db)
    with pytest.raises(Invalid) as raised:
        newsletters.update_settings(db, newsletter, _settings(time_zone=zone))
    assert "time_zone" in raised.value.errors


def test_zone_with_spaces_around_is_fine(db) -> None:  # type: ignore[no-untyped-def]
    """A zone pasted with stray spaces is trimmed, not refused."""
    newsletter = demo_newsletter(db)
    newsletters.update_settings(db, newsletter, _settings(time_zone=" America/New_York "))
    assert newsletter.time_zone == "America/New_York"


@pytest.mark.parametrize(
    "zone, weekday, time, words",
    [
        ("Europe/Berlin", "7", "02:30", "does not exist"),  # last Sunday of March
        ("America/New_York", "7", "02:15", "does not exist"),  # second Sunday of March
        ("America/New_York", "7", "01:30", "happens twice"),  # first Sunday of November
        ("Europe/Berlin", "1", "8:00", "24-hour time"),
        ("Europe/Berlin", "1", "24:00", "24-hour time"),
    ],
)
def test_weekly_time_in_a_dst_gap_or_overlap_is_refused(db, zone, weekday, time, words) -> None:  # type: ignore[no-untyped-def]
    """A weekly send time that some week skips or repeats is refused, naming the date."""
    newsletter = demo_newsletter(db)
    with pytest.raises(Invalid) as raised:
        newsletters.update_settings(db, newsletter, _settings(time_zone=zone, send_weekday=weekday, send_time=time))
    assert words in raised.value.errors["send_time"]
    db.rollback()
    assert db.get(Newsletter, newsletter.id).send_time == "08:00"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "zone, weekday, time",
    [
        ("Europe/Berlin", "1", "02:30"),  # the change is on Sundays
        ("Europe/Berlin", "7", "03:30"),
        ("America/New_York", "7", "04:00"),
        ("Asia/Kolkata", "7", "02:30"),  # no DST at all
        ("Australia/Lord_Howe", "7", "08:00"),  # half-hour DST
    ],
)
def test_weekly_time_outside_transitions_is_accepted(db, zone, weekday, time) -> None:  # type: ignore[no-untyped-def]
    """Times that exist exactly once every week are kept."""
    newsletter = demo_newsletter(db)
    newsletters.update_settings(db, newsletter, _settings(time_zone=zone, send_weekday=weekday, send_time=time))
    assert (newsletter.time_zone, newsletter.send_weekday, newsletter.send_time) == (zone, int(weekday), time)


def test_gap_check_names_the_date() -> None:
    """The refusal says which day is affected, so the editor understands why."""
    message = newsletters.check_send_time("Europe/Berlin", 7, "02:30", today=dt.date(2027, 1, 1))
    assert message is not None and "28 March 2027" in message


def test_schedule_can_be_switched_off(db) -> None:  # type: ignore[no-untyped-def]
    """No weekday means no weekly schedule."""
    newsletter = demo_newsletter(db)
    newsletters.update_settings(db, newsletter, _settings(send_weekday="", send_time=""))
    assert newsletter.send_weekday is None and newsletter.send_time is None


@pytest.mark.parametrize(
    "changes, field",
    [
        ({"name": ""}, "name"),
        ({"from_address": "not-an-address"}, "from_address"),
        ({"reply_to": "a@b@c"}, "reply_to"),
        ({"review_hours": "-1"}, "review_hours"),
        ({"review_hours": "200"}, "review_hours"),
        ({"send_weekday": "9"}, "send_weekday"),
        ({"send_weekday": "1", "send_time": ""}, "send_time"),
        ({"consent_text": " "}, "consent_text"),
    ],
)
def test_bad_settings_change_nothing(db, changes, field) -> None:  # type: ignore[no-untyped-def]
    """Each malformed setting is named, and no other setting is saved with it."""
    newsletter = demo_newsletter(db)
    with pytest.raises(Invalid) as raised:
        newsletters.update_settings(db, newsletter, _settings(description="changed", **changes))
    assert field in raised.value.errors
    db.rollback()
    assert db.get(Newsletter, newsletter.id).description != "changed"  # type: ignore[union-attr]


def test_editing_consent_text_bumps_the_version(db) -> None:  # type: ignore[no-untyped-def]
    """A new consent wording gets a new version; saving the same wording keeps it."""
    newsletter = demo_newsletter(db)
    newsletters.update_settings(db, newsletter, _settings(consent_text=newsletter.consent_text),
                                today=dt.date(2026, 12, 1))
    assert newsletter.consent_version == "2026-11"
    newsletters.update_settings(db, newsletter, _settings(), today=dt.date(2026, 12, 1))
    assert newsletter.consent_version == "2026-12-01"
    newsletters.update_settings(db, newsletter, _settings(consent_text="Other words."), today=dt.date(2026, 12, 1))
    assert newsletter.consent_version == "2026-12-01.2"
    newsletters.update_settings(db, newsletter, _settings(consent_text="Third."), today=dt.date(2026, 12, 1))
    assert newsletter.consent_version == "2026-12-01.3"


def test_settings_page_saves_and_warns_without_postal_address(client, db) -> None:  # type: ignore[no-untyped-def]
    """Saving without a postal address works but warns, and every page says sending is blocked."""
    demo_newsletter(db)
    make_editor(db)
    log_in(client, "admin@example.com")
    response = submit(client, "/editor/settings", **{**SETTINGS, "postal_address": ""})
    assert response.status_code == 302
    page = client.get(response.location).get_data(as_text=True)
    assert "No postal address yet: issues cannot be sent" in page
    assert 'id="postal-warning"' in page
    assert "No postal address." in client.get("/editor/posts").get_data(as_text=True)
    response = submit(client, "/editor/settings", **SETTINGS)
    assert "No postal address" not in client.get("/editor/posts").get_data(as_text=True)


def test_settings_page_shows_errors_next_to_fields(client, db) -> None:  # type: ignore[no-untyped-def]
    """A bad time zone and a DST-gap time are reported on the page, with the input kept."""
    demo_newsletter(db)
    make_editor(db)
    log_in(client, "admin@example.com")
    response = submit(client, "/editor/settings", **{**SETTINGS, "time_zone": "Moon/Base", "description": "kept"})
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Moon/Base is not a time zone name" in html and "kept" in html
    response = submit(client, "/editor/settings", **{**SETTINGS, "send_weekday": "7", "send_time": "02:30"})
    assert response.status_code == 400 and "does not exist in Europe/Berlin" in response.get_data(as_text=True)


def test_first_admin_creates_the_newsletter(client, db) -> None:  # type: ignore[no-untyped-def]
    """On a fresh install, saving the settings creates the newsletter; then sections."""
    make_editor(db)
    log_in(client, "admin@example.com")
    assert b"There is no newsletter yet" in client.get("/editor/posts").data
    assert submit(client, "/editor/settings", **{**SETTINGS, "name": "Fresh Digest"}).status_code == 302
    assert submit(client, "/editor/settings", "/editor/sections", name="News").status_code == 302
    created = db.scalar(select(Newsletter))
    assert created is not None and created.slug == "fresh-digest"
    assert [s.name for s in created.sections] == ["News"]


def test_sections_add_rename_reorder(db) -> None:  # type: ignore[no-untyped-def]
    """Sections are added at the end, renamed without changing slug, and reordered."""
    newsletter = demo_newsletter(db)
    added = newsletters.add_section(db, newsletter, "Research & Papers")
    assert (added.slug, added.position) == ("research-papers", 5)
    with pytest.raises(Invalid):
        newsletters.add_section(db, newsletter, "news")  # the name is taken (any case)
    newsletters.rename_section(db, added, "Research", "Papers we read")
    assert (added.slug, added.name) == ("research-papers", "Research")
    newsletters.move_section(db, added, -1)
    names = [s.name for s in newsletters.sections(db, newsletter)]
    assert names[-2:] == ["Research", "Careers"]
    newsletters.move_section(db, newsletters.sections(db, newsletter)[0], -1)  # already first
    assert [s.position for s in newsletters.sections(db, newsletter)] == list(range(6))


def test_section_in_use_cannot_be_removed(db) -> None:  # type: ignore[no-untyped-def]
    """A section with posts, or chosen by readers, stays; an unused one goes."""
    newsletter = demo_newsletter(db)
    news = next(s for s in newsletter.sections if s.slug == "news")
    with pytest.raises(Invalid, match="post"):
        newsletters.remove_section(db, news)
    engineers = next(s for s in newsletter.sections if s.slug == "engineers")
    for post in posts.list_posts(db, newsletter, section_id=engineers.id).posts:
        post.section = news
    db.flush()
    with pytest.raises(Invalid, match="reader"):  # Grace chose Engineers
        newsletters.remove_section(db, engineers)
    spare = newsletters.add_section(db, newsletter, "Spare")
    newsletters.remove_section(db, spare)
    assert [s.position for s in newsletters.sections(db, newsletter)] == list(range(5))
    assert db.scalar(select(Subscription).where(Subscription.sections.any(Section.id == engineers.id)))


def test_section_management_pages(client, db) -> None:  # type: ignore[no-untyped-def]
    """An admin adds, renames, moves and removes sections from the settings page."""
    newsletter = demo_newsletter(db)
    newsletter_id = newsletter.id
    make_editor(db)
    log_in(client, "admin@example.com")
    submit(client, "/editor/settings", "/editor/sections", name="Opinion", description="Our views")
    section = db.scalar(select(Section).where(Section.name == "Opinion"))
    assert section is not None
    section_id = section.id
    db.rollback()
    submit(client, "/editor/settings", f"/editor/sections/{section_id}", name="Opinions", description="")
    submit(client, "/editor/settings", f"/editor/sections/{section_id}/move", direction="up")
    names = [s.name for s in newsletters.sections(db, db.get(Newsletter, newsletter_id))]  # type: ignore[arg-type]
    assert names[-2:] == ["Opinions", "Careers"]
    db.rollback()
    news_id = names and db.scalar(select(Section.id).where(Section.slug == "news"))
    db.rollback()
    refused = submit(client, "/editor/settings", f"/editor/sections/{news_id}/delete")
    assert refused.location == "/editor/settings#sections"
    assert "use News" in client.get(refused.location).get_data(as_text=True)
    submit(client, "/editor/settings", f"/editor/sections/{section_id}/delete")
    assert db.get(Section, section_id) is None


def test_last_admin_cannot_be_demoted_or_deactivated(db) -> None:  # type: ignore[no-untyped-def]
    """The workspace always keeps one active admin."""
    admin = make_editor(db)
    with pytest.raises(editors.EditorError, match="last active admin"):
        editors.set_role(db, admin, EditorRole.EDITOR)
    with pytest.raises(editors.EditorError, match="last active admin"):
        editors.set_active(db, admin, False)
    second = make_editor(db, "second@example.com")
    editors.set_active(db, admin, False)
    with pytest.raises(editors.EditorError):
        editors.set_role(db, second, EditorRole.EDITOR)
    assert admin.active is False and second.is_admin


def test_admin_manages_editors_in_the_browser(client, db) -> None:  # type: ignore[no-untyped-def]
    """An admin adds an editor (password shown once), who can log in; roles and status change."""
    make_editor(db)
    log_in(client, "admin@example.com")
    response = submit(client, "/editor/editors", email="New.Writer@Example.com", role="editor", name="New")
    html = response.get_data(as_text=True)
    assert response.status_code == 201
    password = html.split('id="new-password">')[1].split("<")[0]
    assert len(password) >= 12
    assert password not in client.get("/editor/editors").get_data(as_text=True)  # shown once
    writer = db.scalar(select(Editor).where(Editor.email == "new.writer@example.com"))
    assert writer is not None and writer.role is EditorRole.EDITOR
    writer_id = writer.id
    db.rollback()
    duplicate = submit(client, "/editor/editors", email="new.writer@example.com", role="editor")
    assert duplicate.status_code == 400 and "already exists" in duplicate.get_data(as_text=True)
    submit(client, "/editor/editors", f"/editor/editors/{writer_id}/role", role="admin")
    assert db.get(Editor, writer_id).role is EditorRole.ADMIN  # type: ignore[union-attr]
    db.rollback()
    admin_id = db.scalar(select(Editor.id).where(Editor.email == "admin@example.com"))
    db.rollback()
    submit(client, "/editor/editors", f"/editor/editors/{writer_id}/active", active="0")
    refused = submit(client, "/editor/editors", f"/editor/editors/{admin_id}/active", active="0")
    assert refused.location == "/editor/editors"  # back where the admin was
    assert "last active admin" in client.get(refused.location).get_data(as_text=True)
    other = client.application.test_client()
    assert log_in(other, "new.writer@example.com", password).status_code == 200  # deactivated
    submit(client, "/editor/editors", f"/editor/editors/{writer_id}/active", active="1")
    reset = submit(client, "/editor/editors", f"/editor/editors/{writer_id}/password")
    new_password = reset.get_data(as_text=True).split('id="new-password">')[1].split("<")[0]
    assert log_in(other, "new.writer@example.com", password).status_code == 200
    assert log_in(other, "new.writer@example.com", new_password).status_code == 302
    assert csrf_token(other.get("/editor/").get_data(as_text=True))


@pytest.mark.parametrize("field", ["name", "from_name"])
@pytest.mark.parametrize("value", ["Weekly\r\nBcc: everyone@example.org", "Weekly\nX-Evil: 1", "Week\x0bly"])
def test_header_values_with_line_breaks_are_refused(client, db, field: str, value: str) -> None:  # type: ignore[no-untyped-def]
    """A newsletter or From name ends up in email headers: a line break or control character
    in it is refused on the settings page, naming the field, and nothing is saved."""
    newsletter = demo_newsletter(db)
    make_editor(db)
    log_in(client, "admin@example.com")
    response = submit(client, "/editor/settings", **{**SETTINGS, field: value, "description": "changed"})
    assert response.status_code == 400
    assert "must not contain control characters" in response.get_data(as_text=True)
    db.expire_all()
    assert db.get(Newsletter, newsletter.id).description != "changed"  # type: ignore[union-attr]
