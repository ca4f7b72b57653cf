"""Newsletters: settings an admin changes, and the sections readers choose from.

Contract: every setting is validated as a whole before anything changes (`Invalid`
names each bad field). Time zones are IANA names that zoneinfo knows. A weekly send
time is refused when, on the chosen weekday, it falls into a daylight-saving gap (the
time does not exist) or overlap (it happens twice) in that zone during the next years.
A language is one a catalogue is installed for (digest.mail.language;
`available_languages`). Changing the consent text bumps the consent version, so every Consent row keeps the
exact wording the reader agreed to. Sections keep a dense 0..n-1 order; a section is
removed only when no post uses it and no reader chose it. Functions flush; the caller
commits. `edits()` counts the commits of this process that changed a newsletter or a
section, so what is kept of them elsewhere (digest.web.signup) knows when it is out of date.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from sqlalchemy import bindparam, event, func, select
from sqlalchemy.orm import Session, UOWTransaction, selectinload

from digest.core.db import utcnow
from digest.core.models import Newsletter, NoPostChoice, Post, Section, SubscriptionSection
from digest.core.resources import translation_folders
from digest.core.validation import Invalid, optional_email, slugify, text, unique_slug
from digest.mail.language import SOURCE_LANGUAGE, Language, languages

WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
# How far ahead a weekly send time is checked against the zone's DST transitions.
SCHEDULE_CHECK_YEARS = 5


@dataclass(frozen=True)
class SettingsInput:
    """What the settings form carries (all text, as a browser sends it)."""

    name: str = ""
    description: str = ""
    from_name: str = ""
    from_address: str = ""
    reply_to: str = ""
    postal_address: str = ""
    time_zone: str = "UTC"
    send_weekday: str = ""
    send_time: str = ""
    review_hours: str = "24"
    consent_text: str = ""
    no_post: str = NoPostChoice.SKIP.value
    # Checkboxes: "on" when ticked, empty when not (a browser sends nothing for those).
    track_clicks: str = "on"
    track_opens: str = ""
    keep_reader_engagement: str = ""
    language: str = ""  # empty: unchanged (English for a new newsletter)


def find_newsletter(
    session: Session, slug: str | None = None, *, detached: bool = False
) -> Newsletter | None:
    """Return the newsletter with this slug (the first one when slug is empty), or None;
    detached loads what its pages show (sections and logos) for use after the session closes."""
    query = select(Newsletter)
    if detached:
        query = query.options(
            selectinload(Newsletter.sections),
            selectinload(Newsletter.logo_light),
            selectinload(Newsletter.logo_dark),
        )
    if not slug:
        return session.scalars(query.order_by(Newsletter.id).limit(1)).first()
    return session.scalar(query.where(Newsletter.slug == slug))


def default_language(session: Session) -> str | None:
    """Return the language of the instance's first newsletter (None: there is none yet)."""
    return session.scalar(select(Newsletter.language).order_by(Newsletter.id).limit(1))


def available_languages(config: Mapping[str, Any]) -> dict[str, Language]:
    """Return the languages a newsletter may choose (a catalogue is installed), by code."""
    return languages(*translation_folders(config))


def check_language(code: str, available: Collection[str]) -> str | None:
    """Return why code is not a language a newsletter may choose, or None."""
    if code in available:
        return None
    return (f"{code or 'An empty code'} is not a language this server has catalogues for; "
            f"choose one of {', '.join(sorted(available))}.")


def set_language(session: Session, newsletter: Newsletter, code: str, available: Collection[str]) -> None:
    """Make code the language readers get; raises Invalid (changing nothing) for an unknown one."""
    problem = check_language(code, available)
    if problem:
        raise Invalid({"language": problem})
    newsletter.language = code
    session.flush()


_EDITED = "digest.newsletter_edited"
_edit_counter = itertools.count(1)
_edits = 0


def edits() -> int:
    """Return how many commits of this process have changed a newsletter or its sections."""
    return _edits


@event.listens_for(Session, "after_flush")
def _note_edit(session: Session, _flush: UOWTransaction) -> None:
    # Every setting and section is changed through the ORM (no bulk UPDATE touches them).
    changed = itertools.chain(session.new, session.dirty, session.deleted)
    if any(isinstance(row, Newsletter | Section) for row in changed):
        session.info[_EDITED] = True


@event.listens_for(Session, "after_commit")
def _count_edit(session: Session) -> None:
    global _edits
    if session.info.pop(_EDITED, False):
        # next() is atomic, `_edits += 1` is not: two commits at once must both count, or a
        # newsletter read between them would be kept as if it had seen the second.
        _edits = next(_edit_counter)


@event.listens_for(Session, "after_rollback")
def _forget_edit(session: Session) -> None:
    session.info.pop(_EDITED, None)


# What checking and recording a signup reads of a newsletter and of its sections, by
# slug or of the first newsletter; built once, as every request of a burst runs one.
_SIGNUP_READ = (
    select(Newsletter.id, Newsletter.slug, Newsletter.name, Newsletter.consent_text,
           Newsletter.consent_version, Newsletter.language,
           Section.id, Section.slug, Section.name, Section.position)
    .outerjoin(Section, Section.newsletter_id == Newsletter.id)
    .order_by(Section.position, Section.id)
)
_SIGNUP_BY_SLUG = _SIGNUP_READ.where(Newsletter.slug == bindparam("slug"))
_SIGNUP_FIRST = _SIGNUP_READ.where(Newsletter.id == select(func.min(Newsletter.id)).scalar_subquery())


def newsletter_for_signup(session: Session, slug: str | None = None) -> Newsletter | None:
    """Return the newsletter a signup names (the first one when slug is empty), or None, as
    an object of no session holding only what a signup checks and records (id, slug, name,
    consent text and version, language, sections), never to be changed: one plain query and no ORM
    load, as every request of a burst reads it."""
    connection = session.connection()
    result = (connection.execute(_SIGNUP_BY_SLUG, {"slug": slug}) if slug
              else connection.execute(_SIGNUP_FIRST))
    rows = tuple(tuple(row) for row in result)
    return _signup_newsletter(rows) if rows else None


@lru_cache(maxsize=16)
def _signup_newsletter(rows: tuple[tuple[Any, ...], ...]) -> Newsletter:
    # Built once for the same rows: what costs is building ORM objects, not the query.
    newsletter_id, slug, name, consent_text, consent_version, language = rows[0][:6]
    newsletter = Newsletter(id=newsletter_id, slug=slug, name=name, consent_text=consent_text,
                            consent_version=consent_version, language=language)
    newsletter.sections = [
        Section(id=row[6], newsletter_id=newsletter_id, slug=row[7], name=row[8], position=row[9])
        for row in rows if row[6] is not None
    ]
    return newsletter


def list_newsletters(session: Session) -> list[Newsletter]:
    """Return every newsletter of the instance, the one the workspace manages first."""
    return list(session.scalars(select(Newsletter).order_by(Newsletter.id)))


@lru_cache(maxsize=1)
def time_zones() -> list[str]:
    """Return every IANA time zone name zoneinfo knows, sorted."""
    return sorted(available_timezones())


def check_time_zone(name: str) -> str | None:
    """Return an error message for an unknown time zone name, or None."""
    if not name or name not in time_zones():
        return f"{name or 'An empty name'} is not a time zone name such as Europe/Berlin."
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name} is not a time zone this server knows."
    return None


def check_send_time(zone: str, weekday: int, send_time: str,
                    today: dt.date | None = None) -> str | None:
    """Return why a weekly local send time is unsafe in zone (DST gap/overlap), or None."""
    match = _TIME.match(send_time)
    if not match:
        return "Use a 24-hour time such as 08:00."
    tz = ZoneInfo(zone)
    at = dt.time(int(match[1]), int(match[2]))
    day = today or utcnow().date()
    day += dt.timedelta(days=(weekday - day.isoweekday()) % 7)
    for _ in range(SCHEDULE_CHECK_YEARS * 53):
        local = dt.datetime.combine(day, at, tzinfo=tz)
        round_trip = local.astimezone(dt.UTC).astimezone(tz)
        if round_trip.replace(tzinfo=None) != local.replace(tzinfo=None):
            return (
                f"{send_time} does not exist in {zone} on {day:%A %d %B %Y} (the clocks "
                "skip that hour). Choose another time."
            )
        if local.utcoffset() != local.replace(fold=1).utcoffset():
            return (
                f"{send_time} happens twice in {zone} on {day:%A %d %B %Y} (the clocks go "
                "back). Choose another time."
            )
        day += dt.timedelta(days=7)
    return None


def next_consent_version(current_version: str, today: dt.date) -> str:
    """Return a new consent version: today's date, with a counter when used twice a day."""
    base = today.isoformat()
    if current_version == base:
        return f"{base}.2"
    if current_version.startswith(base + "."):
        counter = current_version.rpartition(".")[2]
        if counter.isdigit():
            return f"{base}.{int(counter) + 1}"
    return base


def _schedule(data: SettingsInput, zone: str, errors: dict[str, str]) -> tuple[int | None, str | None]:
    weekday_text = (data.send_weekday or "").strip()
    send_time = (data.send_time or "").strip()
    if not weekday_text:
        if send_time:
            errors["send_weekday"] = "Choose the weekday the issue goes out, or clear the time."
        return None, None
    if not weekday_text.isdigit() or not 1 <= int(weekday_text) <= 7:
        errors["send_weekday"] = "Choose a weekday."
        return None, None
    weekday = int(weekday_text)
    if not send_time:
        errors["send_time"] = "Give the local time the issue goes out, such as 08:00."
        return weekday, None
    if "time_zone" not in errors:
        problem = check_send_time(zone, weekday, send_time)
        if problem:
            errors["send_time"] = problem
    return weekday, send_time


def update_settings(session: Session, newsletter: Newsletter | None, data: SettingsInput,
                    today: dt.date | None = None,
                    available: Collection[str] = (SOURCE_LANGUAGE,)) -> Newsletter:
    """Apply the settings form (creating the newsletter when there is none yet); available:
    the language codes it may choose (available_languages)."""
    errors: dict[str, str] = {}
    language = (data.language or "").strip() or (newsletter.language if newsletter else SOURCE_LANGUAGE)
    language_problem = check_language(language, {*available, newsletter.language if newsletter else SOURCE_LANGUAGE})
    if language_problem:
        errors["language"] = language_problem
    name = text(data.name, "name", errors, required=True, max_length=200)
    description = text(data.description, "description", errors, max_length=5000, multiline=True)
    from_name = text(data.from_name, "from_name", errors, max_length=200, label="From name")
    from_address = optional_email(data.from_address, "from_address", errors)
    reply_to = optional_email(data.reply_to, "reply_to", errors)
    postal_address = text(data.postal_address, "postal_address", errors, max_length=1000,
                          multiline=True)
    zone = (data.time_zone or "").strip()
    zone_problem = check_time_zone(zone)
    if zone_problem:
        errors["time_zone"] = zone_problem
    weekday, send_time = _schedule(data, zone, errors)
    review = (data.review_hours or "").strip()
    if not review.isdigit() or not 0 <= int(review) <= 144:
        errors["review_hours"] = "The review window is a whole number of hours from 0 to 144."
    consent_text = text(data.consent_text, "consent_text", errors, required=True,
                        max_length=5000, label="Consent text", multiline=True)
    no_post = (data.no_post or NoPostChoice.SKIP.value).strip()
    if no_post not in NoPostChoice.__members__.values():
        errors["no_post"] = "Choose whether such readers are skipped or get a short note."
    if errors:
        raise Invalid(errors)
    if newsletter is None:
        newsletter = Newsletter(slug=slugify(name, max_length=64, fallback="newsletter"))
        session.add(newsletter)
    if consent_text != newsletter.consent_text:
        newsletter.consent_version = next_consent_version(
            newsletter.consent_version or "", today or utcnow().date()
        )
    newsletter.name = name
    newsletter.description = description
    newsletter.from_name = from_name
    newsletter.from_address = from_address
    newsletter.reply_to = reply_to
    newsletter.postal_address = postal_address
    newsletter.time_zone = zone
    newsletter.send_weekday = weekday
    newsletter.send_time = send_time
    newsletter.review_hours = int(review)
    newsletter.consent_text = consent_text
    newsletter.no_post = NoPostChoice(no_post)
    newsletter.track_clicks = bool(data.track_clicks)
    newsletter.track_opens = bool(data.track_opens)
    newsletter.keep_reader_engagement = bool(data.keep_reader_engagement)
    newsletter.language = language
    session.flush()
    return newsletter


def sections(session: Session, newsletter: Newsletter) -> list[Section]:
    """Return the newsletter's sections in their order."""
    return list(
        session.scalars(
            select(Section).where(Section.newsletter_id == newsletter.id).order_by(Section.position, Section.id)
        )
    )


def _section_fields(name: str, description: str) -> tuple[str, str]:
    errors: dict[str, str] = {}
    name = text(name, "name", errors, required=True, max_length=200, label="Section name")
    description = text(description, "description", errors, max_length=2000, multiline=True)
    if errors:
        raise Invalid(errors)
    return name, description


def _check_name_free(session: Session, newsletter: Newsletter, name: str, section_id: int | None) -> None:
    query = select(Section.id).where(
        Section.newsletter_id == newsletter.id, func.lower(Section.name) == name.lower()
    )
    if section_id is not None:
        query = query.where(Section.id != section_id)
    if session.scalar(query) is not None:
        raise Invalid({"name": f"There is already a section called {name}."})


def add_section(session: Session, newsletter: Newsletter, name: str, description: str = "") -> Section:
    """Add a section at the end, with a slug derived from its name."""
    name, description = _section_fields(name, description)
    _check_name_free(session, newsletter, name, None)

    def taken(slug: str) -> bool:
        return session.scalar(
            select(Section.id).where(Section.newsletter_id == newsletter.id, Section.slug == slug)
        ) is not None

    existing = sections(session, newsletter)
    section = Section(
        newsletter=newsletter,
        slug=unique_slug(slugify(name, max_length=64, fallback="section"), taken),
        name=name,
        description=description,
        position=len(existing),
    )
    session.add(section)
    session.flush()
    return section


def get_section(session: Session, newsletter: Newsletter, section_id: int) -> Section | None:
    """Return the newsletter's section with this id, or None."""
    section = session.get(Section, section_id)
    return section if section is not None and section.newsletter_id == newsletter.id else None


def rename_section(session: Session, section: Section, name: str, description: str) -> Section:
    """Change a section's name and description (its slug, used in links, stays)."""
    name, description = _section_fields(name, description)
    _check_name_free(session, section.newsletter, name, section.id)
    section.name = name
    section.description = description
    session.flush()
    return section


def move_section(session: Session, section: Section, offset: int) -> None:
    """Move a section up (offset -1) or down (+1) in the order readers see."""
    ordered = sections(session, section.newsletter)
    index = ordered.index(section)
    target = min(max(index + offset, 0), len(ordered) - 1)
    ordered.insert(target, ordered.pop(index))
    for position, item in enumerate(ordered):
        item.position = position
    session.flush()


def remove_section(session: Session, section: Section) -> None:
    """Delete a section no post uses and no reader chose; raises Invalid otherwise."""
    posts = session.scalar(select(func.count()).where(Post.section_id == section.id)) or 0
    if posts:
        raise Invalid({"section": f"{posts} post(s) use {section.name}: move them to another "
                                  "section first, or rename this one."})
    readers = session.scalar(
        select(func.count()).where(SubscriptionSection.section_id == section.id)
    ) or 0
    if readers:
        # Removing it would silently widen those readers' choice to every section.
        raise Invalid({"section": f"{readers} reader(s) chose {section.name}; rename it "
                                  "instead of removing it."})
    newsletter = section.newsletter
    session.delete(section)
    session.flush()
    for position, item in enumerate(sections(session, newsletter)):
        item.position = position
    session.flush()
