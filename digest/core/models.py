"""Typed models and the status enums of every lifecycle.

Uniqueness lives in the schema: one subscription per (subscriber, newsletter), one
delivery per (issue, subscriber), one weekly issue per (newsletter, period).
"""

from __future__ import annotations

import datetime as dt
import enum
import secrets

from sqlalchemy import (
    JSON,
    Boolean,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from digest.core.db import Base, UTCDateTime, utcnow


def new_uid() -> str:
    """Return a random opaque identifier for public links (128 bits, URL-safe)."""
    return secrets.token_urlsafe(16)


def new_mail_ref() -> str:
    """Return a fresh random reference for one email (lowercase hex, fits a VERP address)."""
    return secrets.token_hex(10)


def _enum(cls: type[enum.Enum]) -> Enum:
    return Enum(
        cls,
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
    )


class SubscriptionStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    PAUSED = "paused"
    UNSUBSCRIBED = "unsubscribed"


class ConsentSource(enum.StrEnum):
    FORM = "form"
    API = "api"
    IMPORT = "import"
    EDITOR = "editor"


class SuppressionReason(enum.StrEnum):
    ERASURE = "erasure"
    HARD_BOUNCE = "hard_bounce"
    SOFT_BOUNCE = "soft_bounce"
    COMPLAINT = "complaint"
    MANUAL = "manual"


class EditorRole(enum.StrEnum):
    ADMIN = "admin"
    EDITOR = "editor"


class PostStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"


class IssueStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    PAUSED = "paused"
    SENT = "sent"
    CANCELLED = "cancelled"


class DeliveryState(enum.StrEnum):
    PENDING = "pending"
    CLAIMED = "claimed"
    SENDING = "sending"
    SENT = "sent"
    FAILED_TEMP = "failed_temp"
    FAILED_PERM = "failed_perm"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


class NoPostChoice(enum.StrEnum):
    """What readers get when none of their sections has a post in an issue."""

    SKIP = "skip"  # nothing: their delivery is recorded as skipped
    NOTE = "note"  # a short note that nothing is new in their sections


class BounceKind(enum.StrEnum):
    """What a report that came back about a sent delivery said."""

    HARD = "hard"  # the address does not exist (5.1.x, 5.2.1)
    SOFT = "soft"  # failed for now (mailbox full, gave up after retries)
    COMPLAINT = "complaint"  # the reader marked it as spam (ARF)
    SENDER = "sender"  # refused for our sake (policy 5.7.x, content, size): no reader's fault


class Newsletter(Base):
    """One publication; an instance can host several."""

    __tablename__ = "newsletter"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    from_name: Mapped[str] = mapped_column(String(200), default="")
    from_address: Mapped[str | None] = mapped_column(String(320))
    reply_to: Mapped[str | None] = mapped_column(String(320))
    postal_address: Mapped[str] = mapped_column(Text, default="")
    time_zone: Mapped[str] = mapped_column(String(64), default="UTC")
    # What readers read: a Babel locale code with a catalogue (digest.mail.language).
    language: Mapped[str] = mapped_column(String(16), default="en", server_default="en")
    # Weekly schedule: ISO weekday (1 = Monday) and local "HH:MM"; None = no schedule.
    send_weekday: Mapped[int | None] = mapped_column(SmallInteger)
    send_time: Mapped[str | None] = mapped_column(String(5))
    review_hours: Mapped[int] = mapped_column(Integer, default=24)
    consent_text: Mapped[str] = mapped_column(Text, default="")
    consent_version: Mapped[str] = mapped_column(String(32), default="1")
    no_post: Mapped[NoPostChoice] = mapped_column(
        _enum(NoPostChoice), default=NoPostChoice.SKIP, server_default=NoPostChoice.SKIP.value
    )
    # The weekly assembly publishes the drafts accepted from the inbox and carries them.
    include_accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    # Engagement (digest/domain/engagement.py): clicks counted unless turned off, the open
    # pixel only when turned on, per-reader rows only when the editor asks for them.
    track_clicks: Mapped[bool] = mapped_column(Boolean, default=True, server_default=text("true"))
    track_opens: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    keep_reader_engagement: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=text("false")
    )
    # How the digest shows each post's lead image: "none", "lead" (full width) or "thumbnail".
    image_display: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    logo_light_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    logo_dark_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    # The look (digest.domain.look): accent colours as #rrggbb, fonts as keys of
    # digest.mail.look.FONTS, a line or two of footer text.
    accent_color: Mapped[str] = mapped_column(String(7), default="#2c5cc5")
    accent_color_dark: Mapped[str] = mapped_column(String(7), default="#93b2ff")
    heading_font: Mapped[str] = mapped_column(String(32), default="georgia")
    body_font: Mapped[str] = mapped_column(String(32), default="system")
    footer_text: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    logo_light: Mapped[Media | None] = relationship(foreign_keys=[logo_light_id])
    logo_dark: Mapped[Media | None] = relationship(foreign_keys=[logo_dark_id])
    sections: Mapped[list[Section]] = relationship(
        back_populates="newsletter", order_by="Section.position"
    )


class Section(Base):
    """A named part of a newsletter that readers can choose."""

    __tablename__ = "section"
    __table_args__ = (UniqueConstraint("newsletter_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    position: Mapped[int] = mapped_column(Integer, default=0)

    newsletter: Mapped[Newsletter] = relationship(back_populates="sections")


class Subscriber(Base):
    """A reader, identified by a normalized email address."""

    __tablename__ = "subscriber"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    subscriptions: Mapped[list[Subscription]] = relationship(
        back_populates="subscriber", cascade="all, delete-orphan", passive_deletes=True
    )


class SubscriptionSection(Base):
    """A section a reader chose; a subscription without any receives every section."""

    __tablename__ = "subscription_section"

    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscription.id", ondelete="CASCADE"), primary_key=True
    )
    section_id: Mapped[int] = mapped_column(
        ForeignKey("section.id", ondelete="CASCADE"), primary_key=True
    )


class Subscription(Base):
    """A reader's membership of one newsletter, with its lifecycle timestamps."""

    __tablename__ = "subscription"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "newsletter_id"),
        Index("ix_subscription_newsletter_status", "newsletter_id", "status"),
        # The editor pages readers newest first by keyset (id) within a newsletter.
        Index("ix_subscription_newsletter_id_id", "newsletter_id", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscriber.id", ondelete="CASCADE"))
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    status: Mapped[SubscriptionStatus] = mapped_column(
        _enum(SubscriptionStatus), default=SubscriptionStatus.PENDING
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmation_sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    paused_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    unsubscribed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The reader's "don't track me": their links are not rewritten, no pixel is added.
    no_tracking: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))

    subscriber: Mapped[Subscriber] = relationship(back_populates="subscriptions")
    newsletter: Mapped[Newsletter] = relationship()
    sections: Mapped[list[Section]] = relationship(
        secondary="subscription_section", order_by="Section.position"
    )
    consents: Mapped[list[Consent]] = relationship(
        back_populates="subscription",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Consent.id",
    )


class Consent(Base):
    """Proof of one opt-in: how and when it was given, confirmed and withdrawn."""

    __tablename__ = "consent"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscription.id", ondelete="CASCADE"), index=True
    )
    source: Mapped[ConsentSource] = mapped_column(_enum(ConsentSource))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    consent_text: Mapped[str] = mapped_column(Text, default="")
    consent_version: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawn_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    withdrawal_channel: Mapped[str | None] = mapped_column(String(32))
    # Who clicked Confirm: evidence that the mailbox owner, not only the form, agreed.
    confirmed_ip: Mapped[str | None] = mapped_column(String(64))
    confirmed_user_agent: Mapped[str | None] = mapped_column(String(512))
    # An editor's entry: who recorded it, and (when consent was obtained elsewhere) how.
    recorded_by: Mapped[str | None] = mapped_column(String(320))
    note: Mapped[str] = mapped_column(Text, default="")
    # What a signup to an existing subscription asked to change (name; chosen section ids,
    # empty for every section): applied only when its own confirmation link is used.
    asked_name: Mapped[str | None] = mapped_column(String(200))
    asked_section_ids: Mapped[list[int] | None] = mapped_column(JSON)

    subscription: Mapped[Subscription] = relationship(back_populates="consents")


class SignupRequest(Base):
    """A checked signup as the reader sent it, waiting for the engine to act on it.

    The request records only this row, whatever the address's state; the engine
    (digest.engine.signups) looks the address up, records the consent and the mail it
    calls for, and deletes the row.
    """

    __tablename__ = "signup_request"

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(320))
    name: Mapped[str] = mapped_column(String(200), default="")
    # Ids of the sections chosen; empty means every section.
    section_ids: Mapped[list[int]] = mapped_column(JSON, default=list)
    source: Mapped[ConsentSource] = mapped_column(_enum(ConsentSource))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    consent_text: Mapped[str] = mapped_column(Text, default="")
    consent_version: Mapped[str] = mapped_column(String(32), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Set when the engine could not act on it (kept for the operator, not retried).
    error: Mapped[str | None] = mapped_column(Text)


class Suppression(Base):
    """An address never to be mailed, kept only as a keyed hash."""

    __tablename__ = "suppression"

    id: Mapped[int] = mapped_column(primary_key=True)
    email_hash: Mapped[str] = mapped_column(String(64), unique=True)
    reason: Mapped[SuppressionReason] = mapped_column(_enum(SuppressionReason))
    detail: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The editor who suppressed the address by hand (reason manual).
    recorded_by: Mapped[str | None] = mapped_column(String(320))


class Editor(Base):
    """A person who writes posts and sends issues; admins also manage settings."""

    __tablename__ = "editor"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(320), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[EditorRole] = mapped_column(_enum(EditorRole), default=EditorRole.EDITOR)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_login_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # Part of every session's and remember cookie's id: replacing it ends them all.
    session_token: Mapped[str] = mapped_column(String(32), default=new_uid)
    # Two-factor sign-in (domain/two_factor.py): the TOTP secret, encrypted; on once confirmed.
    totp_secret: Mapped[str | None] = mapped_column(Text)
    totp_enabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    totp_last_step: Mapped[int | None] = mapped_column(Integer)

    # Flask-Login's user protocol.
    is_authenticated = True
    is_anonymous = False

    @property
    def is_active(self) -> bool:
        """Return whether the editor may log in."""
        return self.active

    def get_id(self) -> str:
        """Return the id Flask-Login keeps in the session and the remember cookie."""
        return f"{self.id}.{self.session_token}"

    @property
    def is_admin(self) -> bool:
        """Return whether the editor manages editors and settings."""
        return self.role is EditorRole.ADMIN


class RecoveryCode(Base):
    """A one-time code that signs an editor in without their authenticator, stored hashed."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editor.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Workspace(Base):
    """Settings of the editor workspace as a whole (one row)."""

    __tablename__ = "workspace"

    id: Mapped[int] = mapped_column(primary_key=True)
    require_two_factor: Mapped[bool] = mapped_column(Boolean, default=False)


class ApiToken(Base):
    """A bearer token for /api/v1, stored hashed."""

    __tablename__ = "api_token"

    id: Mapped[int] = mapped_column(primary_key=True)
    editor_id: Mapped[int] = mapped_column(ForeignKey("editor.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    editor: Mapped[Editor] = relationship()


class Post(Base):
    """A piece written during the week; published posts go into the next issue."""

    __tablename__ = "post"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "slug"),
        Index("ix_post_newsletter_status_published", "newsletter_id", "status", "published_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    section_id: Mapped[int] = mapped_column(ForeignKey("section.id", ondelete="RESTRICT"))
    author_id: Mapped[int | None] = mapped_column(ForeignKey("editor.id", ondelete="SET NULL"))
    slug: Mapped[str] = mapped_column(String(200))
    title: Mapped[str] = mapped_column(String(300))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_md: Mapped[str] = mapped_column(Text, default="")
    link_url: Mapped[str | None] = mapped_column(String(2000))
    lead_image_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    status: Mapped[PostStatus] = mapped_column(_enum(PostStatus), default=PostStatus.DRAFT)
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    newsletter: Mapped[Newsletter] = relationship()
    section: Mapped[Section] = relationship()
    lead_image: Mapped[Media | None] = relationship()


class Media(Base):
    """An uploaded image, decoded and re-encoded: its stored sizes and what they weigh.

    `variants` maps a size name ("email", "email2x", "small" since it was made, "web") to
    {"key", "width", "height", "bytes"}; every key lives in the media storage under `uid`.
    """

    __tablename__ = "media"

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(32), unique=True, default=new_uid)
    filename: Mapped[str] = mapped_column(String(200), default="")
    alt: Mapped[str] = mapped_column(Text, default="")
    content_type: Mapped[str] = mapped_column(String(32))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    frames: Mapped[int] = mapped_column(Integer, default=1)
    variants: Mapped[dict[str, dict[str, object]]] = mapped_column(JSON)
    uploaded_by_id: Mapped[int | None] = mapped_column(ForeignKey("editor.id", ondelete="SET NULL"))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class PostAddress(Base):
    """A slug a published post had before an editor changed it: its old links redirect."""

    __tablename__ = "post_address"
    __table_args__ = (UniqueConstraint("newsletter_id", "slug"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(200))
    post_id: Mapped[int] = mapped_column(ForeignKey("post.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class IssuePost(Base):
    """A post carried by an issue, at a position the editor chose."""

    __tablename__ = "issue_post"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    post_id: Mapped[int] = mapped_column(
        ForeignKey("post.id", ondelete="RESTRICT"), primary_key=True
    )
    position: Mapped[int] = mapped_column(Integer, default=0)

    post: Mapped[Post] = relationship()


class Issue(Base):
    """One edition of a newsletter and its sending lifecycle."""

    __tablename__ = "issue"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "period_key"),
        UniqueConstraint("newsletter_id", "slug"),
        Index("ix_issue_status_scheduled_at", "status", "scheduled_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    slug: Mapped[str] = mapped_column(String(200))
    subject: Mapped[str] = mapped_column(String(300))
    preheader: Mapped[str] = mapped_column(String(300), default="")
    intro_md: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[IssueStatus] = mapped_column(_enum(IssueStatus), default=IssueStatus.DRAFT)
    # Local ISO week ("2026-W48") of an issue the weekly schedule assembled.
    period_key: Mapped[str | None] = mapped_column(String(16))
    held: Mapped[bool] = mapped_column(Boolean, default=False)
    scheduled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    schedule_tz: Mapped[str | None] = mapped_column(String(64))
    pause_reason: Mapped[str | None] = mapped_column(Text)
    fanned_out_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    started_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    newsletter: Mapped[Newsletter] = relationship()
    issue_posts: Mapped[list[IssuePost]] = relationship(
        order_by="IssuePost.position", cascade="all, delete-orphan", passive_deletes=True
    )


class Delivery(Base):
    """The ledger: one row per (issue, subscriber), the truth about who got what."""

    __tablename__ = "delivery"
    __table_args__ = (
        UniqueConstraint("issue_id", "subscriber_id"),
        # Claims read pending rows of an issue in id order straight off this index (no
        # sort however large the ledger); counts per state are index-only scans of it.
        Index("ix_delivery_claim", "issue_id", "state", "id"),
        # The reaper and the retry queue look only at the few rows in flight or waiting:
        # partial indexes cost nothing when a fan-out inserts a million pending rows.
        Index(
            "ix_delivery_lease",
            "lease_until",
            postgresql_where=text("state IN ('claimed', 'sending')"),
            sqlite_where=text("state IN ('claimed', 'sending')"),
        ),
        Index(
            "ix_delivery_retry",
            "next_attempt_at",
            postgresql_where=text("state = 'failed_temp'"),
            sqlite_where=text("state = 'failed_temp'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(ForeignKey("issue.id", ondelete="CASCADE"))
    # Erasing a reader keeps the row (issue figures stay true) without the person.
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriber.id", ondelete="SET NULL"), index=True
    )
    state: Mapped[DeliveryState] = mapped_column(
        _enum(DeliveryState), default=DeliveryState.PENDING
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # The sender process that claimed the row last (sender.id). No foreign key: pruning a
    # dead sender must never scan the ledger; a takeover reads only rows in flight.
    sender_id: Mapped[int | None] = mapped_column(Integer)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    smtp_response: Mapped[str | None] = mapped_column(Text)
    queue_id: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # What came back after sending (digest/bounces.py): a DSN or a complaint.
    bounce: Mapped[BounceKind | None] = mapped_column(_enum(BounceKind))
    bounce_detail: Mapped[str | None] = mapped_column(Text)
    bounced_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class IssueLink(Base):
    """A link of a sent issue, by the index its click tokens name; append-only."""

    __tablename__ = "issue_link"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    url: Mapped[str] = mapped_column(Text)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("post.id", ondelete="SET NULL"))
    section_id: Mapped[int | None] = mapped_column(ForeignKey("section.id", ondelete="SET NULL"))


class ClickEvent(Base):
    """A click or open waiting to be classified and counted (kept seconds, not days)."""

    __tablename__ = "click_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    issue_id: Mapped[int] = mapped_column(Integer)
    delivery_id: Mapped[int] = mapped_column(Integer, index=True)
    link: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    # What the request alone showed to be a machine (HEAD, a scanner's agent, Apple's proxy).
    machine: Mapped[str | None] = mapped_column(String(16))


class ClickTally(Base):
    """Counted clicks of one issue's link in one hour after the send, by kind (human or
    the machine rule that matched): aggregates, naming no reader."""

    __tablename__ = "click_tally"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    link: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    hour: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), primary_key=True)
    clicks: Mapped[int] = mapped_column(Integer, default=0)
    uniques: Mapped[int] = mapped_column(Integer, default=0)


class ClickReach(Base):
    """How many readers of an issue clicked a human click in a section (0: anywhere), and
    how many had the section in their message (recorded as the issue finished sending)."""

    __tablename__ = "click_reach"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    section_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    readers: Mapped[int] = mapped_column(Integer, default=0)
    # None: the issue has not finished sending; its readers' sections are read as they are.
    readers_got: Mapped[int | None] = mapped_column(Integer)


class ClickSeen(Base):
    """A keyed hash of (delivery, link or section) that has clicked, to count each once."""

    __tablename__ = "click_seen"

    issue_id: Mapped[int] = mapped_column(
        ForeignKey("issue.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(32), primary_key=True)


class ReaderClick(Base):
    """Who clicked what: kept only for newsletters that keep per-reader engagement."""

    __tablename__ = "reader_click"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("delivery.id", ondelete="CASCADE"), index=True
    )
    link: Mapped[int] = mapped_column(Integer)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    machine: Mapped[str | None] = mapped_column(String(16))


class Sender(Base):
    """A process that sends (`digest run`, `digest worker`, a Celery worker process, `digest
    issue send --now`): it beats every few seconds while alive and says what stops it."""

    __tablename__ = "sender"

    id: Mapped[int] = mapped_column(primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    heartbeat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The obstacle this process meets now (SMTP server unreachable, refusing, hanging),
    # since when, and when it tries again; NULL while all is well.
    obstacle: Mapped[str | None] = mapped_column(Text)
    obstacle_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    retry_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class ScheduleOutcome(enum.StrEnum):
    CREATED = "created"
    EMPTY = "empty"


class ScheduleRun(Base):
    """What the weekly schedule did for one period: assembled an issue, or found no posts."""

    __tablename__ = "schedule_run"
    __table_args__ = (UniqueConstraint("newsletter_id", "period_key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    period_key: Mapped[str] = mapped_column(String(16))
    outcome: Mapped[ScheduleOutcome] = mapped_column(_enum(ScheduleOutcome))
    issue_id: Mapped[int | None] = mapped_column(ForeignKey("issue.id", ondelete="SET NULL"))
    note: Mapped[str] = mapped_column(Text, default="")
    send_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    checked_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class SendRate(Base):
    """The shared token bucket behind DIGEST_SEND_RATE; times are database-clock seconds."""

    __tablename__ = "send_rate"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    stamp: Mapped[float] = mapped_column(Float)
    # Share of the configured rate in use: halved on 421/454, recovering over a minute.
    factor: Mapped[float] = mapped_column(Float, default=1.0)
    slowed_at: Mapped[float] = mapped_column(Float, default=0.0)


class Heartbeat(Base):
    """The last tick of a long-running part (the clock), seen by every process through the
    database: /healthz and /metrics read it wherever the scheduler runs."""

    __tablename__ = "heartbeat"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    beat_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    interval_seconds: Mapped[float] = mapped_column(Float)
    host: Mapped[str] = mapped_column(String(255), default="")
    errors: Mapped[int] = mapped_column(Integer, default=0)


class TransactionalKind(enum.StrEnum):
    CONFIRM = "confirm"
    WELCOME = "welcome"
    # A signup for an address that is already subscribed: a note with its preferences link.
    ALREADY = "already"


class TransactionalState(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    SKIPPED = "skipped"
    FAILED = "failed"


class TransactionalMail(Base):
    """A confirmation or welcome email a request asked for; the sender marks it once sent."""

    __tablename__ = "transactional_mail"
    __table_args__ = (
        Index("ix_transactional_mail_due", "state", "due_at"),
        Index("ix_transactional_mail_subscription_kind", "subscription_id", "kind", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Names this email in its bounce address: random, so a reference is never reused even
    # where the database reuses the ids of deleted rows (SQLite without AUTOINCREMENT).
    ref: Mapped[str] = mapped_column(String(32), unique=True, default=new_mail_ref)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscription.id", ondelete="CASCADE")
    )
    kind: Mapped[TransactionalKind] = mapped_column(_enum(TransactionalKind))
    state: Mapped[TransactionalState] = mapped_column(
        _enum(TransactionalState), default=TransactionalState.PENDING
    )
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    due_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    sent_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    smtp_code: Mapped[int | None] = mapped_column(Integer)
    queue_id: Mapped[str | None] = mapped_column(String(200))
    last_error: Mapped[str | None] = mapped_column(Text)

    subscription: Mapped[Subscription] = relationship()


class ImportState(enum.StrEnum):
    CHECKING = "checking"  # every row is being validated
    CHECKED = "checked"  # some rows are broken: waiting for the editor's choice
    IMPORTING = "importing"
    DONE = "done"
    FAILED = "failed"  # the file as a whole is unusable
    CANCELLED = "cancelled"


class ImportJob(Base):
    """A CSV upload being checked and imported in the background, with its progress."""

    __tablename__ = "import_job"

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("editor.id", ondelete="SET NULL"))
    filename: Mapped[str] = mapped_column(String(255))
    source: Mapped[ConsentSource] = mapped_column(_enum(ConsentSource))
    state: Mapped[ImportState] = mapped_column(_enum(ImportState), default=ImportState.CHECKING)
    skip_invalid: Mapped[bool] = mapped_column(Boolean, default=False)
    # Confirmed rows come in pending and get a confirmation email (double opt-in).
    ask_to_confirm: Mapped[bool] = mapped_column(Boolean, default=False)
    # The uploaded bytes (personal data): kept in the database so any process can resume
    # the job, and dropped as soon as it ends.
    data: Mapped[bytes | None] = mapped_column(LargeBinary, deferred=True)
    size: Mapped[int] = mapped_column(Integer, default=0)
    checked_bytes: Mapped[int] = mapped_column(Integer, default=0)
    valid_rows: Mapped[int] = mapped_column(Integer, default=0)
    invalid_rows: Mapped[int] = mapped_column(Integer, default=0)
    # "line N: problem" per line, every broken row.
    problems: Mapped[str] = mapped_column(Text, default="", deferred=True)
    error: Mapped[str | None] = mapped_column(Text)
    # Import checkpoint: rows written so far and the CSV line of the last one.
    done_rows: Mapped[int] = mapped_column(Integer, default=0)
    last_line: Mapped[int] = mapped_column(Integer, default=0)
    imported: Mapped[int] = mapped_column(Integer, default=0)
    existing: Mapped[int] = mapped_column(Integer, default=0)
    suppressed: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    newsletter: Mapped[Newsletter] = relationship()
    editor: Mapped[Editor | None] = relationship()


class WebhookState(enum.StrEnum):
    PENDING = "pending"  # due at next_attempt_at (a first try or a retry)
    SENDING = "sending"  # leased by a deliverer until lease_until
    DELIVERED = "delivered"  # the receiver answered 2xx
    FAILED = "failed"  # retried for the whole window, or the endpoint was removed


class WebhookEndpoint(Base):
    """A URL an admin registered to receive events, signed with its own secret."""

    __tablename__ = "webhook_endpoint"

    id: Mapped[int] = mapped_column(primary_key=True)
    url: Mapped[str] = mapped_column(String(2000))
    description: Mapped[str] = mapped_column(String(200), default="")
    events: Mapped[list[str]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(100))
    # After a rotation both secrets sign every message until previous_secret_until.
    previous_secret: Mapped[str | None] = mapped_column(String(100))
    previous_secret_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    # Start of the current run of failed attempts (NULL once one succeeds).
    failing_since: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEvent(Base):
    """The outbox: an event written in the transaction of the change that caused it."""

    __tablename__ = "webhook_event"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The Standard Webhooks message id: the same on every attempt, for deduplication.
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    type: Mapped[str] = mapped_column(String(40))
    # Events of one subject (a reader, an issue, a post) reach an endpoint in order.
    subject: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, object]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(Base):
    """One event for one endpoint: its state, retries and lease (a ledger like delivery)."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id"),
        Index("ix_webhook_delivery_due", "state", "next_attempt_at"),
        Index("ix_webhook_delivery_subject", "endpoint_id", "subject", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_endpoint.id", ondelete="CASCADE")
    )
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_event.id", ondelete="CASCADE"))
    subject: Mapped[str] = mapped_column(String(64))
    state: Mapped[WebhookState] = mapped_column(_enum(WebhookState), default=WebhookState.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Retries stop after this (a day after the event, or after a resend).
    retry_until: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    endpoint: Mapped[WebhookEndpoint] = relationship()
    event: Mapped[WebhookEvent] = relationship()


class WebhookAttempt(Base):
    """One request made to an endpoint, as the admin sees it in the attempt list."""

    __tablename__ = "webhook_attempt"

    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(
        ForeignKey("webhook_delivery.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    status: Mapped[int | None] = mapped_column(Integer)  # NULL: no HTTP answer
    elapsed_ms: Mapped[int] = mapped_column(Integer, default=0)
    excerpt: Mapped[str] = mapped_column(String(500), default="")
    error: Mapped[str | None] = mapped_column(String(300))


class Source(Base):
    """An RSS, Atom or JSON Feed the clock reads into a newsletter's inbox, for one section.

    Fetching is a lifecycle like any other: due at `next_fetch_at`, claimed by a lease,
    and on failure retried later and later (`failures`), with the last error kept."""

    __tablename__ = "source"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "url_hash"),
        Index("ix_source_next_fetch_at", "next_fetch_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    section_id: Mapped[int] = mapped_column(ForeignKey("section.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2000))
    # sha256 of url: a unique index on the URL itself would outgrow PostgreSQL's btree rows.
    url_hash: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300), default="")
    # The validators of the last answer, sent back as If-None-Match / If-Modified-Since.
    etag: Mapped[str | None] = mapped_column(String(500))
    last_modified: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_fetch_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_status: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    next_fetch_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    newsletter: Mapped[Newsletter] = relationship()
    section: Mapped[Section] = relationship()


class InboxState(enum.StrEnum):
    NEW = "new"
    ACCEPTED = "accepted"
    DISMISSED = "dismissed"


class InboxItem(Base):
    """A link waiting for an editor's choice: from a source, or saved by hand.

    One per canonical URL and one per GUID in a newsletter, whatever its state, so an
    item seen again (in a feed, or saved twice) never comes back."""

    __tablename__ = "inbox_item"
    __table_args__ = (
        UniqueConstraint("newsletter_id", "url_hash"),
        UniqueConstraint("newsletter_id", "guid_hash"),
        Index("ix_inbox_item_newsletter_state_id", "newsletter_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    newsletter_id: Mapped[int] = mapped_column(ForeignKey("newsletter.id", ondelete="CASCADE"))
    source_id: Mapped[int | None] = mapped_column(
        ForeignKey("source.id", ondelete="SET NULL"), index=True
    )
    # The source's section, kept when the source goes; chosen on accepting a saved link.
    section_id: Mapped[int | None] = mapped_column(ForeignKey("section.id", ondelete="SET NULL"))
    url: Mapped[str] = mapped_column(String(2000))
    # sha256 of the canonical URL (tracking parameters removed) and of the feed's GUID.
    url_hash: Mapped[str] = mapped_column(String(64))
    guid_hash: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(300))
    # Plain text: the feed's HTML with every tag (and script and style content) removed.
    summary: Mapped[str] = mapped_column(Text, default="")
    # Where it came from, as shown with the item and in the post's attribution.
    source_name: Mapped[str] = mapped_column(String(300), default="")
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    # A saved link whose page the clock has yet to read for its title and description.
    page_pending: Mapped[bool] = mapped_column(Boolean, default=False)
    state: Mapped[InboxState] = mapped_column(_enum(InboxState), default=InboxState.NEW)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    post_id: Mapped[int | None] = mapped_column(ForeignKey("post.id", ondelete="SET NULL"))

    source: Mapped[Source | None] = relationship()
    section: Mapped[Section | None] = relationship()
    post: Mapped[Post | None] = relationship()
