"""An issue as its email needs it: the rows read into digest.mail's plain data.

Contract: functions take a Session and the app's settings and only read. `load_issue`
returns an issue's IssueContent: every value of the database and the settings that its
shared rendering depends on (links already made), so two loads of an unchanged issue are
equal and an edit anywhere in it (subject, a post, the newsletter) makes them differ.
`prepare_issue` renders it with digest.mail; `preview_for_address` and `test_message`
add what a preview or a test send needs of the reader's rows. `section_combinations`
groups an issue's confirmed readers (suppressed addresses left out, as the sender leaves
them out) by the sections they chose, and says what each group
gets; `preview_for_sections` shows the message of one such group.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from email_validator import EmailNotValidError, validate_email
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    Issue,
    IssueLink,
    IssuePost,
    Media,
    Newsletter,
    NoPostChoice,
    Post,
    Subscriber,
    Subscription,
    SubscriptionSection,
    SubscriptionStatus,
    Suppression,
)
from digest.core.resources import template_folders, translation_folders
from digest.core.tokens import keyed_hasher
from digest.domain import identity, links, media
from digest.domain.look import look_of
from digest.domain.posts import issue_sections
from digest.domain.suppression import HASH_PURPOSE, suppression_for
from digest.mail.dkim import signer_from_config
from digest.mail.render import (
    PREVIEW_UID,
    ImageView,
    IssueContent,
    Logo,
    NewsletterView,
    NotSendable,
    Outgoing,
    PostContent,
    PreparedIssue,
    Reader,
    RenderSettings,
    SectionContent,
    SizeReport,
    check_sendable,
    marked_as_test,
    size_report,
)
from digest.mail.tracking import Tracking


def render_settings(config: Mapping[str, Any]) -> RenderSettings:
    """Return what digest.mail needs of the app's settings to render issues."""
    return RenderSettings(
        links.mail_domain(config), template_folders(config), identity.SignedLinks(config),
        translation_folders(config),
    )


def _local_date(issue: Issue, time_zone: str) -> dt.datetime:
    when = issue.sent_at or issue.started_at or issue.scheduled_at or utcnow()
    try:
        return when.astimezone(ZoneInfo(time_zone))
    except (ZoneInfoNotFoundError, ValueError):
        return when


# A lead image is drawn the column's width from the 2x email size; a thumbnail and a logo
# from the small size (twice their box): each is sharp on high-density screens.
def _image(config: Mapping[str, Any], item: Media, stored: Mapping[str, Any], width: int,
           height: int | None = None) -> ImageView:
    scale = min(width / stored["width"], (height or stored["height"]) / stored["height"], 1.0)
    drawn_width = max(1, round(stored["width"] * scale))
    return ImageView(src=links.absolute(config, f"/media/{stored['key']}"), width=drawn_width,
                     height=max(1, round(stored["height"] * drawn_width / stored["width"])),
                     alt=item.alt)


def _lead(config: Mapping[str, Any], newsletter: Newsletter, post: Post) -> ImageView | None:
    if post.lead_image is None or newsletter.image_display not in ("lead", "thumbnail"):
        return None
    if newsletter.image_display == "lead":
        return _image(config, post.lead_image, media.variant(post.lead_image, "email2x"), media.EMAIL_WIDTH)
    return _image(config, post.lead_image, media.small_variant(post.lead_image), media.THUMBNAIL_WIDTH)


def logo(config: Mapping[str, Any], newsletter: Newsletter) -> Logo | None:
    """Return the newsletter's logo as emails and pages show it, or None without one."""
    light = newsletter.logo_light or newsletter.logo_dark
    if light is None:
        return None
    dark = newsletter.logo_dark if newsletter.logo_dark is not light else None
    box = media.LOGO_BOX
    return Logo(_image(config, light, media.small_variant(light), *box),
                _image(config, dark, media.small_variant(dark), *box) if dark else None)


def _image_bytes(session: Session, newsletter: Newsletter, posts: list[Post]) -> int:
    shown: dict[str, int] = {}  # by stored file: a file shown twice is fetched once

    def add(stored: Mapping[str, Any]) -> None:
        shown[str(stored["key"])] = int(stored["bytes"])

    for item in (newsletter.logo_light, newsletter.logo_dark):
        if item is not None:
            add(media.small_variant(item))
    uids: set[str] = set()
    for post in posts:
        if post.lead_image is not None and newsletter.image_display == "lead":
            add(media.variant(post.lead_image, "email2x"))
        elif post.lead_image is not None and newsletter.image_display == "thumbnail":
            add(media.small_variant(post.lead_image))
        if not post.summary.strip():
            uids.update(media.linked_uids(post.body_md))
    if uids:
        for item in session.scalars(select(Media).where(Media.uid.in_(uids))):
            add(media.variant(item, "email2x"))
    return sum(shown.values())


def _post(config: Mapping[str, Any], newsletter: Newsletter, post: Post) -> PostContent:
    return PostContent(
        id=post.id,
        title=post.title,
        summary=post.summary,
        body_md=media.email_sized(post.body_md),
        url=post.link_url or links.post_url(config, newsletter.slug, post.slug),
        image=_lead(config, newsletter, post),
    )


def _newsletter(config: Mapping[str, Any], newsletter: Newsletter) -> NewsletterView:
    return NewsletterView(
        id=newsletter.id,
        slug=newsletter.slug,
        name=newsletter.name,
        postal_address=newsletter.postal_address.strip(),
        reply_to=newsletter.reply_to or None,
        from_header=identity.from_header(config, newsletter),
        list_id=identity.list_id(config, newsletter),
        sections=tuple((s.id, s.name) for s in newsletter.sections),
        note_when_no_post=newsletter.no_post is NoPostChoice.NOTE,
        logo=logo(config, newsletter),
        image_display=newsletter.image_display,
        look=look_of(newsletter),
        language=newsletter.language,
    )


def load_issue(session: Session, issue_id: int, config: Mapping[str, Any]) -> IssueContent:
    """Return what an issue's email shows, read in one go; raise NoResultFound for no issue."""
    issue = session.scalars(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(
            selectinload(Issue.issue_posts).selectinload(IssuePost.post).selectinload(Post.section),
            selectinload(Issue.issue_posts).selectinload(IssuePost.post).selectinload(Post.lead_image),
            selectinload(Issue.newsletter).selectinload(Newsletter.sections),
            selectinload(Issue.newsletter).selectinload(Newsletter.logo_light),
            selectinload(Issue.newsletter).selectinload(Newsletter.logo_dark),
        )
    ).one()
    newsletter = issue.newsletter
    return IssueContent(
        id=issue.id,
        subject=issue.subject,
        preheader=issue.preheader,
        intro_md=issue.intro_md,
        web_url=links.issue_url(config, newsletter.slug, issue.slug),
        date=_local_date(issue, newsletter.time_zone),
        feedback_id=identity.feedback_id(config, f"issue{issue.id}", newsletter, "digest"),
        newsletter=_newsletter(config, newsletter),
        sections=tuple(
            SectionContent(
                group.section.id,
                group.section.name,
                tuple(_post(config, newsletter, post) for post in group.posts),
            )
            for group in issue_sections(issue)
        ),
        tracking=Tracking(
            clicks=newsletter.track_clicks,
            opens=newsletter.track_opens,
            known_links=tuple(
                session.scalars(
                    select(IssueLink.url).where(IssueLink.issue_id == issue.id).order_by(IssueLink.idx)
                )
            ),
        ),
        image_bytes=_image_bytes(session, newsletter, [item.post for item in issue.issue_posts]),
    )


def prepare_issue(session: Session, issue_id: int, config: Mapping[str, Any]) -> PreparedIssue:
    """Load an issue and render what every reader shares."""
    return PreparedIssue(load_issue(session, issue_id, config), render_settings(config))


@dataclass(frozen=True)
class Combination:
    """The confirmed readers who chose the same sections, and what of an issue they get."""

    section_ids: frozenset[int]  # empty: every section
    names: tuple[str, ...]  # the chosen sections, in the newsletter's order (empty: every one)
    readers: int
    headlines: tuple[str, ...]  # the titles of the pieces they get, in the issue's order

    @property
    def key(self) -> str:
        """Return the combination as a preview's address names it: "all" or ids joined by "-"."""
        return "-".join(map(str, sorted(self.section_ids))) or "all"


def parse_combination(key: str) -> frozenset[int] | None:
    """Return the section ids a Combination.key names, or None when it is malformed."""
    if key == "all":
        return frozenset()
    parts = key.split("-")
    if not all(part.isdigit() and len(part) < 10 for part in parts):
        return None
    return frozenset(int(part) for part in parts)


def section_combinations(
    session: Session, issue_id: int, config: Mapping[str, Any]
) -> list[Combination]:
    """Return each distinct choice of sections among the issue's newsletter's confirmed
    readers, most readers first, with what of the issue it gets."""
    return _combinations(session, load_issue(session, issue_id, config), config)


def _combinations(
    session: Session, content: IssueContent, config: Mapping[str, Any]
) -> list[Combination]:
    order = [sid for sid, _name in content.newsletter.sections]
    names = dict(content.newsletter.sections)
    chosen: dict[int, set[int]] = {}
    rows = session.execute(
        select(Subscription.id, SubscriptionSection.section_id, Subscriber.email)
        .join(Subscriber, Subscriber.id == Subscription.subscriber_id)
        .outerjoin(SubscriptionSection, SubscriptionSection.subscription_id == Subscription.id)
        .where(
            Subscription.newsletter_id == content.newsletter.id,
            Subscription.status == SubscriptionStatus.CONFIRMED,
        )
    )
    # The sender never mails suppressed addresses: they count in no combination. The list
    # holds keyed hashes only, so addresses are hashed here, and only when it has entries.
    suppressed = frozenset(session.scalars(select(Suppression.email_hash)))
    hash_of = keyed_hasher(config["SECRET_KEY"], HASH_PURPOSE)
    for subscription_id, section_id, email in rows:
        if suppressed and hash_of(email) in suppressed:
            continue
        # Sections deleted since the reader chose them are ignored, as the email ignores them.
        picked = chosen.setdefault(subscription_id, set())
        if section_id in names:
            picked.add(section_id)
    counts = Counter(frozenset(picked) for picked in chosen.values())
    return sorted(
        (
            Combination(
                section_ids=ids,
                names=tuple(names[sid] for sid in order if sid in ids),
                readers=readers,
                headlines=tuple(
                    post.title
                    for section in content.sections
                    if not ids or section.id in ids
                    for post in section.posts
                ),
            )
            for ids, readers in counts.items()
        ),
        key=lambda c: (-c.readers, len(c.section_ids), c.names),
    )


def _readers(count: int) -> str:
    return f"{count:,} reader" if count == 1 else f"{count:,} readers"


def reach_warnings(session: Session, issue_id: int, config: Mapping[str, Any]) -> list[str]:
    """Return what the editor should know before sending an issue: readers whose sections
    get no post, and posts the subject names that some readers will not get."""
    content = load_issue(session, issue_id, config)
    if not content.sections:
        return []  # an issue without posts cannot be sent at all, and says so at Send now
    combinations = _combinations(session, content, config)
    what_they_get = (
        "they receive a short note that nothing is new in their sections"
        if content.newsletter.note_when_no_post
        else "they are skipped and get nothing (the sending page counts them)"
    )
    warnings = [
        f"{_readers(c.readers)} who chose {', '.join(c.names) or 'every section'} get no post "
        f"in this issue: {what_they_get}."
        for c in combinations
        if not c.headlines
    ]
    subject = content.subject.casefold()
    for section in content.sections:
        for post in section.posts:
            if len(post.title) < 4 or post.title.casefold() not in subject:
                continue
            missing = [c for c in combinations if post.title not in c.headlines]
            if missing:
                warnings.append(
                    f"The subject names “{post.title}” ({section.name}), which "
                    f"{_readers(sum(c.readers for c in missing))} will not get: those who chose "
                    f"{'; '.join(', '.join(c.names) for c in missing)}."
                )
    return warnings


@dataclass(frozen=True)
class Preview:
    """One address's message for an issue, and how it would differ from a real send."""

    outgoing: Outgoing
    notes: tuple[str, ...]
    size: SizeReport
    preheader: str  # as this reader's inbox shows it


def preview_for_address(
    session: Session,
    issue_id: int,
    address: str,
    config: Mapping[str, Any],
    live_links: bool = False,
) -> Preview:
    """Return the message address would get for an issue (signed, when DKIM is set).

    A subscriber gets their name, sections and delivery; any other address gets the
    message of a new reader who chose every section. Unless live_links (the operator's
    exact bytes), the unsubscribe and preference links name no subscription, so whoever
    sees a preview cannot act for the reader. Raises LookupError for an unknown issue and
    ValueError for a malformed address.
    """
    try:
        email = validate_email(address, check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise ValueError(f"{address!r} is not an email address: {exc}") from None
    newsletter_id = session.scalar(select(Issue.newsletter_id).where(Issue.id == issue_id))
    if newsletter_id is None:
        raise LookupError(f"There is no issue {issue_id}.")
    prepared = prepare_issue(session, issue_id, config)
    notes: list[str] = []
    row = session.execute(
        select(Subscriber, Subscription)
        .join(Subscription, Subscription.subscriber_id == Subscriber.id)
        .where(func.lower(Subscriber.email) == email.lower())
        .where(Subscription.newsletter_id == newsletter_id)
        .options(selectinload(Subscription.sections))
    ).first()
    delivery_id = None
    if row is None:
        reader = Reader(None, PREVIEW_UID, email)
        notes.append(
            f"{email} is not subscribed to {prepared.newsletter.name}: this is the message "
            "of a reader who chose every section and gave no name."
        )
    else:
        subscriber, subscription = row
        reader = Reader(
            subscriber.id,
            subscription.uid if live_links else PREVIEW_UID,
            subscriber.email,
            subscriber.name,
            frozenset(section.id for section in subscription.sections),
        )
        # The delivery's bounce address is as live as the links: only the operator's copy has it.
        delivery_id = session.scalar(
            select(Delivery.id).where(
                Delivery.issue_id == issue_id, Delivery.subscriber_id == subscriber.id
            )
        ) if live_links else None
        if subscription.status is not SubscriptionStatus.CONFIRMED:
            notes.append(f"This subscription is {subscription.status}: the sender skips it.")
        entry = suppression_for(session, config, subscriber.email)
        if entry is not None:
            reason = entry.reason.replace("_", " ")
            notes.append(
                f"{subscriber.email} is on the suppression list ({reason}): the sender skips it."
            )
    return _preview(prepared, reader, delivery_id, notes, config)


def preview_for_sections(
    session: Session,
    issue_id: int,
    section_ids: frozenset[int],
    address: str,
    config: Mapping[str, Any],
) -> Preview:
    """Return the message of a reader at address who chose section_ids (empty: every
    section) and gave no name; its links act on nobody. Raises NoResultFound for no issue."""
    prepared = prepare_issue(session, issue_id, config)
    return _preview(prepared, Reader(None, PREVIEW_UID, address, "", section_ids), None, [], config)


def _preview(
    prepared: PreparedIssue,
    reader: Reader,
    delivery_id: int | None,
    notes: list[str],
    config: Mapping[str, Any],
) -> Preview:
    if not prepared.newsletter.note_when_no_post and not prepared.sections_for(reader):
        notes.append(
            "None of this reader's sections has a post in this issue: the sender skips them and "
            "they get nothing (the newsletter's setting). Shown: the short note the other setting sends."
        )
    try:
        notes.append(check_sendable(prepared).message)
    except NotSendable as exc:
        notes += [f"Sending would refuse this issue: {reason}" for reason in exc.reasons]
    outgoing = prepared.message_for(reader, delivery_id)
    signer = signer_from_config(config)
    if signer is not None:
        outgoing = Outgoing(outgoing.envelope_from, outgoing.recipient, signer(outgoing.data))
    return Preview(outgoing, tuple(notes), size_report(prepared), prepared.preheader_for(reader))


def test_message(
    session: Session,
    issue_id: int,
    address: str,
    config: Mapping[str, Any],
    section_ids: frozenset[int] = frozenset(),
) -> Outgoing:
    """Return the (unsigned) message of a test send of an issue to address as a reader of
    section_ids gets it, "[Test]" before its subject (digest.mail.render.marked_as_test)."""
    return marked_as_test(prepare_issue(session, issue_id, config), address, section_ids)
