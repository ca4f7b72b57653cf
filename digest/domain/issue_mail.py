"""An issue as its email needs it: the rows read into digest.mail's plain data.

Contract: functions take a Session and the app's settings and only read. `load_issue`
returns an issue's IssueContent: every value of the database and the settings that its
shared rendering depends on (links already made), so two loads of an unchanged issue are
equal and an edit anywhere in it (subject, a post, the newsletter) makes them differ.
`prepare_issue` renders it with digest.mail; `preview_for_address` and `test_message`
add what a preview or a test send needs of the reader's rows.
"""

from __future__ import annotations

import datetime as dt
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
    IssuePost,
    Newsletter,
    Post,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.core.resources import resource_dir
from digest.domain import identity, links
from digest.domain.posts import issue_sections
from digest.domain.suppression import suppression_for
from digest.mail.dkim import signer_from_config
from digest.mail.render import (
    PREVIEW_UID,
    IssueContent,
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


def render_settings(config: Mapping[str, Any]) -> RenderSettings:
    """Return what digest.mail needs of the app's settings to render issues."""
    return RenderSettings(
        links.mail_domain(config), resource_dir("templates"), identity.SignedLinks(config)
    )


def _local_date(issue: Issue, time_zone: str) -> dt.datetime:
    when = issue.sent_at or issue.started_at or issue.scheduled_at or utcnow()
    try:
        return when.astimezone(ZoneInfo(time_zone))
    except (ZoneInfoNotFoundError, ValueError):
        return when


def _post(config: Mapping[str, Any], newsletter_slug: str, post: Post) -> PostContent:
    return PostContent(
        id=post.id,
        title=post.title,
        summary=post.summary,
        body_md=post.body_md,
        url=post.link_url or links.post_url(config, newsletter_slug, post.slug),
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
    )


def load_issue(session: Session, issue_id: int, config: Mapping[str, Any]) -> IssueContent:
    """Return what an issue's email shows, read in one go; raise NoResultFound for no issue."""
    issue = session.scalars(
        select(Issue)
        .where(Issue.id == issue_id)
        .options(
            selectinload(Issue.issue_posts).selectinload(IssuePost.post).selectinload(Post.section),
            selectinload(Issue.newsletter).selectinload(Newsletter.sections),
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
                tuple(_post(config, newsletter.slug, post) for post in group.posts),
            )
            for group in issue_sections(issue)
        ),
    )


def prepare_issue(session: Session, issue_id: int, config: Mapping[str, Any]) -> PreparedIssue:
    """Load an issue and render what every reader shares."""
    return PreparedIssue(load_issue(session, issue_id, config), render_settings(config))


@dataclass(frozen=True)
class Preview:
    """One address's message for an issue, and how it would differ from a real send."""

    outgoing: Outgoing
    notes: tuple[str, ...]
    size: SizeReport


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
    try:
        notes.append(check_sendable(prepared).message)
    except NotSendable as exc:
        notes += [f"Sending would refuse this issue: {reason}" for reason in exc.reasons]
    outgoing = prepared.message_for(reader, delivery_id)
    signer = signer_from_config(config)
    if signer is not None:
        outgoing = Outgoing(outgoing.envelope_from, outgoing.recipient, signer(outgoing.data))
    return Preview(outgoing, tuple(notes), size_report(prepared))


def test_message(
    session: Session, issue_id: int, address: str, config: Mapping[str, Any]
) -> Outgoing:
    """Return the (unsigned) message of a test send of an issue to address, "[Test]" before
    its subject (digest.mail.render.marked_as_test)."""
    return marked_as_test(prepare_issue(session, issue_id, config), address)
