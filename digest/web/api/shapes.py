"""What /api/v1 answers: each JSON shape as a function, with its JSON Schema beside it.

`SCHEMAS` goes into the OpenAPI document's components; the endpoint tests validate real
answers against it, so a field added here without its schema (or the other way round)
fails a test. Times are ISO 8601 in UTC; Markdown comes with its sanitized HTML.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from digest.core.models import (
    ApiToken,
    Consent,
    ConsentSource,
    DeliveryState,
    EditorRole,
    InboxItem,
    InboxState,
    Issue,
    Media,
    Newsletter,
    Post,
    PostStatus,
    Section,
    Source,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookState,
)
from digest.domain import links
from digest.domain.issues import status_label, unclear_action
from digest.domain.posts import IssueSection
from digest.domain.reports import DeliveryLine, SubscriberRecord, SubscriberRow
from digest.domain.subscribers.signup import consent_text
from digest.mail.look import FONTS
from digest.mail.markdown import render_markdown

SCHEMAS: dict[str, dict[str, Any]] = {}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    return {**schema, "type": [schema["type"], "null"]}


STRING: dict[str, Any] = {"type": "string"}
INTEGER: dict[str, Any] = {"type": "integer"}
TIME: dict[str, Any] = {"type": "string", "format": "date-time"}
URL: dict[str, Any] = {"type": "string", "format": "uri"}
# A post's external link as its editor gave it: http(s), but maybe not ASCII (an IRI).
LINK: dict[str, Any] = {"type": ["string", "null"],
                        "description": "The external http(s) link, as given, or null."}


def _enum(values: type[Any]) -> dict[str, Any]:
    return {"type": "string", "enum": [member.value for member in values]}


def _object(name: str, description: str, properties: Mapping[str, dict[str, Any]]) -> None:
    """Declare a component schema whose properties are all present in every answer."""
    SCHEMAS[name] = {
        "type": "object",
        "description": description,
        "properties": dict(properties),
        "required": list(properties),
        "additionalProperties": False,
    }


def _time(value: dt.datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


SCHEMAS["OpenApiDocument"] = {"type": "object", "description": "An OpenAPI 3.1 document."}
SCHEMAS["Error"] = {
    "type": "object",
    "description": "Why a request failed; `fields` names each refused input.",
    "properties": {
        "error": STRING,
        "fields": {"type": "object", "additionalProperties": STRING},
    },
    "required": ["error"],
    "additionalProperties": False,
}

_object("Me", "The editor a token acts for, and the token.", {
    "email": STRING,
    "name": STRING,
    "role": _enum(EditorRole),
    "token": {
        "type": "object",
        "properties": {"id": INTEGER, "name": STRING, "created_at": TIME,
                       "last_used_at": _nullable(TIME)},
        "required": ["id", "name", "created_at", "last_used_at"],
        "additionalProperties": False,
    },
})


def me(token: ApiToken) -> dict[str, Any]:
    """Return the token and its editor."""
    editor = token.editor
    return {
        "email": editor.email,
        "name": editor.name,
        "role": editor.role.value,
        "token": {"id": token.id, "name": token.name, "created_at": _time(token.created_at),
                  "last_used_at": _time(token.last_used_at)},
    }


_object("Newsletter", "A newsletter: sender identity, weekly schedule and consent wording.", {
    "slug": STRING,
    "name": STRING,
    "description": STRING,
    "from_name": STRING,
    "from_address": _nullable(STRING),
    "reply_to": _nullable(STRING),
    "postal_address": STRING,
    "time_zone": STRING,
    "language": {**STRING, "description": "What readers read (emails, the digest's own words and "
                                           "dates, reader pages): a language code such as de or "
                                           "pt_BR, one of NewsletterChanges.language's."},
    "send_weekday": {**_nullable(INTEGER), "minimum": 1, "maximum": 7,
                     "description": "ISO weekday of the weekly issue (1 = Monday), or null."},
    "send_time": {**_nullable(STRING), "description": "Local time of the weekly issue, HH:MM."},
    "review_hours": INTEGER,
    "no_post": {"type": "string", "enum": ["skip", "note"],
                "description": "What readers get when none of their sections has a post in an "
                               "issue: nothing (skip; counted as skipped) or a short note."},
    "consent_text": STRING,
    "consent_version": STRING,
    "created_at": TIME,
    "archive_url": URL,
    "look": _ref("Look"),
})
_COLOUR: dict[str, Any] = {"type": "string", "pattern": "^#[0-9a-f]{6}$"}
_object("Look", "The newsletter's look in its emails and pages (changed in the workspace).", {
    "accent_color": {**_COLOUR, "description": "Links, name and buttons in light mode."},
    "accent_color_dark": {**_COLOUR, "description": "The same in dark mode."},
    "heading_font": {"type": "string", "enum": list(FONTS)},
    "body_font": {"type": "string", "enum": list(FONTS)},
    "footer_text": {**STRING, "description": "Printed above the postal address."},
})


def newsletter(item: Newsletter, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a newsletter's settings."""
    return {
        "slug": item.slug,
        "name": item.name,
        "description": item.description,
        "from_name": item.from_name,
        "from_address": item.from_address,
        "reply_to": item.reply_to,
        "postal_address": item.postal_address,
        "time_zone": item.time_zone,
        "language": item.language,
        "send_weekday": item.send_weekday,
        "send_time": item.send_time,
        "review_hours": item.review_hours,
        "no_post": item.no_post.value,
        "consent_text": consent_text(config, item),
        "consent_version": item.consent_version,
        "created_at": _time(item.created_at),
        "archive_url": links.absolute(config, links.ARCHIVE_PATH.format(newsletter=item.slug)),
        "look": {
            "accent_color": item.accent_color,
            "accent_color_dark": item.accent_color_dark,
            "heading_font": item.heading_font,
            "body_font": item.body_font,
            "footer_text": item.footer_text,
        },
    }


_object("NewsletterList", "Every newsletter of this instance.", {
    "newsletters": {"type": "array", "items": _ref("Newsletter")},
})
_object("Section", "A part of a newsletter that readers can choose.", {
    "id": INTEGER,
    "slug": STRING,
    "name": STRING,
    "description": STRING,
    "position": INTEGER,
})
_object("SectionList", "A newsletter's sections in the order readers see them.", {
    "sections": {"type": "array", "items": _ref("Section")},
})


def section(item: Section) -> dict[str, Any]:
    """Return a section."""
    return {"id": item.id, "slug": item.slug, "name": item.name,
            "description": item.description, "position": item.position}


_SLUGS: dict[str, Any] = {
    "type": "array",
    "items": STRING,
    "description": "Slugs of the sections chosen; empty means every section.",
}
_object("SubscriptionSummary", "A reader's subscription to the newsletter listed.", {
    "newsletter": STRING,
    "status": _enum(SubscriptionStatus),
    "sections": _SLUGS,
    "created_at": TIME,
    "confirmed_at": _nullable(TIME),
    "paused_at": _nullable(TIME),
    "unsubscribed_at": _nullable(TIME),
})
_object("SubscriberSummary", "A line of the subscriber list.", {
    "id": INTEGER,
    "email": STRING,
    "name": STRING,
    "created_at": TIME,
    "subscription": _ref("SubscriptionSummary"),
})
_object("SubscriberPage", "A page of readers, newest first; follow `next` for older ones.", {
    "subscribers": {"type": "array", "items": _ref("SubscriberSummary")},
    "total": {**INTEGER, "description": "Readers matching the filters, on every page."},
    "next": {**_nullable(URL), "description": "URL of the next (older) page, or null."},
    "previous": {**_nullable(URL), "description": "URL of the previous (newer) page, or null."},
})


def _subscription_summary(item: Subscription) -> dict[str, Any]:
    return {
        "newsletter": item.newsletter.slug,
        "status": item.status.value,
        "sections": [s.slug for s in item.sections],
        "created_at": _time(item.created_at),
        "confirmed_at": _time(item.confirmed_at),
        "paused_at": _time(item.paused_at),
        "unsubscribed_at": _time(item.unsubscribed_at),
    }


def subscriber_row(row: SubscriberRow) -> dict[str, Any]:
    """Return a line of the subscriber list."""
    return {
        "id": row.subscriber.id,
        "email": row.subscriber.email,
        "name": row.subscriber.name,
        "created_at": _time(row.subscriber.created_at),
        "subscription": _subscription_summary(row.subscription),
    }


_object("Consent", "Proof of one opt-in: how and when it was given, confirmed, withdrawn.", {
    "source": _enum(ConsentSource),
    "given_at": TIME,
    "ip": _nullable(STRING),
    "user_agent": _nullable(STRING),
    "consent_text": STRING,
    "consent_version": STRING,
    "confirmed_at": _nullable(TIME),
    "confirmed_ip": _nullable(STRING),
    "confirmed_user_agent": _nullable(STRING),
    "withdrawn_at": _nullable(TIME),
    "withdrawal_channel": _nullable(STRING),
})
_object("Subscription", "A reader's subscription with its consent records.", {
    **SCHEMAS["SubscriptionSummary"]["properties"],
    "confirmation_sent_at": _nullable(TIME),
    "consents": {"type": "array", "items": _ref("Consent")},
})
_object("Delivery", "One issue sent (or being sent) to the reader.", {
    "issue_id": INTEGER,
    "issue_subject": STRING,
    "state": _enum(DeliveryState),
    "attempts": INTEGER,
    "sent_at": _nullable(TIME),
    "smtp_code": _nullable(INTEGER),
    "bounce": _nullable(STRING),
})
_object("SuppressionEntry", "Why the reader's address is never mailed.", {
    "reason": _enum(SuppressionReason),
    "detail": STRING,
    "since": TIME,
})
_object("Subscriber", "A reader: subscriptions, consent records, deliveries, suppression.", {
    "id": INTEGER,
    "email": STRING,
    "name": STRING,
    "created_at": TIME,
    "suppression": _nullable(_ref("SuppressionEntry")),
    "subscriptions": {"type": "array", "items": _ref("Subscription")},
    "deliveries": {"type": "array", "items": _ref("Delivery"),
                   "description": "The latest deliveries, newest first."},
})


def _consent(item: Consent) -> dict[str, Any]:
    return {
        "source": item.source.value,
        "given_at": _time(item.created_at),
        "ip": item.ip,
        "user_agent": item.user_agent,
        "consent_text": item.consent_text,
        "consent_version": item.consent_version,
        "confirmed_at": _time(item.confirmed_at),
        "confirmed_ip": item.confirmed_ip,
        "confirmed_user_agent": item.confirmed_user_agent,
        "withdrawn_at": _time(item.withdrawn_at),
        "withdrawal_channel": item.withdrawal_channel,
    }


def _delivery(line: DeliveryLine) -> dict[str, Any]:
    delivery = line.delivery
    return {
        "issue_id": line.issue.id,
        "issue_subject": line.issue.subject,
        "state": delivery.state.value,
        "attempts": delivery.attempts,
        "sent_at": _time(delivery.sent_at),
        "smtp_code": delivery.smtp_code,
        "bounce": delivery.bounce.value if delivery.bounce else None,
    }


def subscriber(record: SubscriberRecord, suppression: Suppression | None) -> dict[str, Any]:
    """Return a reader's whole record."""
    return {
        "id": record.subscriber.id,
        "email": record.subscriber.email,
        "name": record.subscriber.name,
        "created_at": _time(record.subscriber.created_at),
        "suppression": None if suppression is None else {
            "reason": suppression.reason.value,
            "detail": suppression.detail,
            "since": _time(suppression.created_at),
        },
        "subscriptions": [
            {
                **_subscription_summary(item),
                "confirmation_sent_at": _time(item.confirmation_sent_at),
                "consents": [_consent(c) for c in item.consents],
            }
            for item in record.subscriptions
        ],
        "deliveries": [_delivery(line) for line in record.deliveries],
    }


_object("AddedSubscriber", "What adding a reader did, and the reader.", {
    "outcome": {
        "type": "string",
        "enum": ["created", "still-pending", "already-subscribed", "rejoining"],
        "description": (
            "created: a new pending subscription, a confirmation email is on its way; "
            "still-pending: signed up before and not confirmed yet (a new confirmation "
            "email goes out at most once a day); already-subscribed: nothing changed; "
            "rejoining: unsubscribed before, pending again until confirmed."
        ),
    },
    "subscriber": _ref("Subscriber"),
})


def added(outcome: str, record: SubscriberRecord, suppression: Suppression | None) -> dict[str, Any]:
    """Return what adding a reader did."""
    return {"outcome": outcome, "subscriber": subscriber(record, suppression)}


_object("Post", "A post; `body_html` is the sanitized rendering of `body_md`.", {
    "id": INTEGER,
    "newsletter": STRING,
    "slug": STRING,
    "title": STRING,
    "summary": STRING,
    "body_md": STRING,
    "body_html": STRING,
    "link_url": LINK,
    "lead_image_id": {**_nullable(INTEGER), "description": "The id of the post's lead image, or null."},
    "status": _enum(PostStatus),
    "section": _ref("Section"),
    "published_at": _nullable(TIME),
    "created_at": TIME,
    "updated_at": TIME,
    "url": {**_nullable(URL), "description": "The public page while published, else null."},
})
_object("PostPage", "A page of posts, most recently changed first.", {
    "posts": {"type": "array", "items": _ref("Post")},
    "page": INTEGER,
    "pages": INTEGER,
    "total": INTEGER,
})


def _post_url(item: Post, config: Mapping[str, Any]) -> str | None:
    if item.status is not PostStatus.PUBLISHED:
        return None
    return links.post_url(config, item.newsletter.slug, item.slug)


def post(item: Post, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a post with its rendered body."""
    return {
        "id": item.id,
        "newsletter": item.newsletter.slug,
        "slug": item.slug,
        "title": item.title,
        "summary": item.summary,
        "body_md": item.body_md,
        "body_html": render_markdown(item.body_md or ""),
        "link_url": item.link_url,
        "lead_image_id": item.lead_image_id,
        "status": item.status.value,
        "section": section(item.section),
        "published_at": _time(item.published_at),
        "created_at": _time(item.created_at),
        "updated_at": _time(item.updated_at),
        "url": _post_url(item, config),
    }


_object("MediaSize", "One stored size of an image.", {
    "url": URL,
    "width": INTEGER,
    "height": INTEGER,
    "bytes": INTEGER,
})
_object("Media", "An uploaded image: its original size and each stored size.", {
    "id": INTEGER,
    "url": {**URL, "description": "The web size, for Markdown: `![alt](url)`."},
    "alt": STRING,
    "content_type": {"type": "string", "enum": ["image/png", "image/jpeg", "image/gif"]},
    "width": INTEGER,
    "height": INTEGER,
    "frames": INTEGER,
    "sizes": {"type": "object", "description": "`email` (the email column), `email2x` (twice "
              "that, for sharp screens), `small` (twice the digest's thumbnail and logo box; "
              "absent for images uploaded before it was made) and `web`; none larger than the original.",
              "properties": {name: _ref("MediaSize") for name in ("email", "email2x", "small", "web")},
              "required": ["email", "email2x", "web"], "additionalProperties": False},
    "created_at": TIME,
})


_object("MediaPage", "A page of the media library, newest first.", {
    "media": {"type": "array", "items": _ref("Media")},
    "page": INTEGER,
    "pages": INTEGER,
    "total": INTEGER,
})


def media_item(item: Media, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return an uploaded image and its sizes."""
    def size(name: str) -> dict[str, Any]:
        stored = item.variants[name]
        return {"url": links.absolute(config, f"/media/{stored['key']}"), "width": stored["width"],
                "height": stored["height"], "bytes": stored["bytes"]}

    return {
        "id": item.id,
        "url": size("web")["url"],
        "alt": item.alt,
        "content_type": item.content_type,
        "width": item.width,
        "height": item.height,
        "frames": item.frames,
        "sizes": {name: size(name) for name in ("email", "email2x", "small", "web") if name in item.variants},
        "created_at": _time(item.created_at),
    }


_object("IssueSummary", "A sent issue as the archive lists it.", {
    "id": INTEGER,
    "slug": STRING,
    "subject": STRING,
    "preheader": STRING,
    "sent_at": _nullable(TIME),
    "url": URL,
    "status": {**STRING, "description": "Always \"sent\" here: the API lists sent issues."},
    "status_label": {**STRING, "description":
                     "How the status reads: \"sent\", or \"sent — N unclear\" when N deliveries "
                     "are unclear (the end of the message went out, no reply came back)."},
    "unclear": {**INTEGER, "description": "Deliveries whose outcome is unclear (held, never sent twice)."},
    "unclear_action": {**_nullable(STRING), "description":
                       "What to do about the unclear deliveries, or null when there are none."},
})
_object("IssuePage", "A page of sent issues, newest first.", {
    "issues": {"type": "array", "items": _ref("IssueSummary")},
    "page": INTEGER,
    "pages": INTEGER,
    "total": INTEGER,
})
_object("IssuePost", "A post as an issue carries it.", {
    "id": INTEGER,
    "slug": STRING,
    "title": STRING,
    "summary": STRING,
    "link_url": LINK,
    "url": URL,
})
_object("IssueSection", "A section of an issue with its posts, in the editor's order.", {
    "section": _ref("Section"),
    "posts": {"type": "array", "items": _ref("IssuePost")},
})
_object("Issue", "A sent issue as the archive shows it (published posts only).", {
    **SCHEMAS["IssueSummary"]["properties"],
    "newsletter": STRING,
    "intro_md": STRING,
    "intro_html": STRING,
    "sections": {"type": "array", "items": _ref("IssueSection")},
})

_RATE: dict[str, Any] = {"type": ["number", "null"], "minimum": 0, "maximum": 1}
_COUNTS: dict[str, Any] = {"type": "object", "additionalProperties": INTEGER}
_object("EngagementLink", "One link of an issue and its clicks.", {
    "index": INTEGER,
    "url": STRING,
    "post_id": _nullable(INTEGER),
    "post_title": _nullable(STRING),
    "section": _nullable(STRING),
    "unique_human": {**INTEGER, "description": "Readers who clicked it (humans, each once)."},
    "human": {**INTEGER, "description": "Human clicks, repeats included."},
    "machine": {**INTEGER, "description": "Clicks by scanners, prefetchers and proxies."},
})
_object("EngagementSection", "Readers who clicked in a section, of those whose email had it.", {
    "section_id": INTEGER,
    "name": STRING,
    "readers_clicked": INTEGER,
    "readers_got": INTEGER,
    "rate": _RATE,
})
_object("EngagementHour", "Clicks in one hour after the issue started sending.", {
    "hour": INTEGER,
    "human": INTEGER,
    "machine": INTEGER,
})
_object("EngagementReader", "A reader who clicked (only where per-reader engagement is kept).", {
    "email": STRING,
    "links": {"type": "array", "items": INTEGER},
})
_object("IssueEngagement", "What an issue's readers did: human and machine clicks apart.", {
    "issue_id": INTEGER,
    "subject": STRING,
    "tracks_clicks": {"type": "boolean"},
    "tracks_opens": {"type": "boolean"},
    "delivered": INTEGER,
    "readers_clicked": {**INTEGER, "description": "Readers with at least one human click."},
    "click_rate": {**_RATE, "description": "readers_clicked / delivered, or null before any delivery."},
    "human_clicks": INTEGER,
    "machine_clicks": INTEGER,
    "machine_share": {**_RATE, "description": "Machine clicks of all clicks, or null with none."},
    "machine_by_rule": {**_COUNTS, "description": "Machine clicks per rule (see `rules`)."},
    "rules": {"type": "object", "additionalProperties": STRING,
              "description": "How each machine rule draws the line, in words."},
    "links": {"type": "array", "items": _ref("EngagementLink")},
    "sections": {"type": "array", "items": _ref("EngagementSection")},
    "timeline": {"type": "array", "items": _ref("EngagementHour")},
    "opens": {**_nullable(INTEGER), "description":
              "Readers who opened it, Apple's proxy excluded (null: opens are not counted). "
              "A floor: readers who block images are not counted."},
    "machine_opens": _nullable(INTEGER),
    "readers": {"anyOf": [{"type": "array", "items": _ref("EngagementReader")}, {"type": "null"}]},
})


def issue_summary(item: Issue, unclear: int, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return a sent issue's headline, with how many of its deliveries are unclear."""
    return {
        "id": item.id,
        "slug": item.slug,
        "subject": item.subject,
        "preheader": item.preheader,
        "sent_at": _time(item.sent_at),
        "url": links.issue_url(config, item.newsletter.slug, item.slug),
        "status": item.status.value,
        "status_label": status_label(item.status, unclear),
        "unclear": unclear,
        "unclear_action": unclear_action(item.id) if unclear else None,
    }


def issue(
    item: Issue, sections: list[IssueSection], unclear: int, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Return a sent issue with its posts grouped by section."""
    slug = item.newsletter.slug
    return {
        **issue_summary(item, unclear, config),
        "newsletter": slug,
        "intro_md": item.intro_md,
        "intro_html": render_markdown(item.intro_md or ""),
        "sections": [
            {
                "section": section(group.section),
                "posts": [
                    {"id": p.id, "slug": p.slug, "title": p.title, "summary": p.summary,
                     "link_url": p.link_url, "url": links.post_url(config, slug, p.slug)}
                    for p in group.posts
                ],
            }
            for group in sections
        ],
    }



_object("SignupForm", "What a signup form for the newsletter must show.", {
    "newsletter": {
        "type": "object",
        "properties": {"slug": STRING, "name": STRING, "description": STRING},
        "required": ["slug", "name", "description"],
        "additionalProperties": False,
    },
    "consent_text": STRING,
    "consent_version": STRING,
    "sections": {"type": "array", "items": {
        "type": "object",
        "properties": {"slug": STRING, "name": STRING, "description": STRING},
        "required": ["slug", "name", "description"],
        "additionalProperties": False,
    }},
})
_object("SignupAccepted", "The one answer to every valid signup: check your inbox.", {
    "status": {"type": "string", "const": "check-your-inbox"},
    "message": STRING,
})


def signup_form(item: Newsletter, config: Mapping[str, Any]) -> dict[str, Any]:
    """Return what a signup form must show: newsletter, consent wording, sections."""
    return {
        "newsletter": {"slug": item.slug, "name": item.name, "description": item.description},
        "consent_text": consent_text(config, item),
        "consent_version": item.consent_version,
        "sections": [
            {"slug": s.slug, "name": s.name, "description": s.description} for s in item.sections
        ],
    }


_WEBHOOK = {
    "id": INTEGER,
    "url": {**STRING, "description": "Where events are POSTed, as given (it may hold non-ASCII characters)."},
    "description": STRING,
    "events": {"type": "array", "items": STRING},
    "enabled": {"type": "boolean"},
    "failing_since": {**_nullable(TIME), "description": "Start of the current run of failed "
                                                       "attempts, or null."},
    "disabled_at": _nullable(TIME),
    "disabled_reason": _nullable(STRING),
    "created_at": TIME,
}
_object("Webhook", "An endpoint that receives events, signed per Standard Webhooks.", _WEBHOOK)
_object("NewWebhookSecret", "A registered endpoint with its signing secret, shown this once.", {
    **_WEBHOOK,
    "secret": {**STRING, "description": "whsec_… : verify `webhook-signature` with it."},
})
_object("WebhookList", "Every endpoint, oldest first.", {
    "webhooks": {"type": "array", "items": _ref("Webhook")},
})
_object("WebhookSecret", "A new signing secret, shown this once; the old one also signs "
                         "until `previous_secret_until`.", {
    "secret": STRING,
    "previous_secret_until": TIME,
})
_object("WebhookAttempt", "One request made to the endpoint.", {
    "at": TIME,
    "status": {**_nullable(INTEGER), "description": "The HTTP status, or null with no answer."},
    "elapsed_ms": INTEGER,
    "excerpt": {**STRING, "description": "The start of the answer's body."},
    "error": {**_nullable(STRING), "description": "Why no answer came (refused address, "
                                                  "timeout, …), or null."},
})
_object("WebhookDelivery", "One event for the endpoint, with every attempt, newest first.", {
    "id": INTEGER,
    "webhook_id": {**STRING, "description": "The `webhook-id` header: the same on every try."},
    "type": STRING,
    "state": {"type": "string", "enum": ["pending", "sending", "delivered", "failed"]},
    "attempt_count": INTEGER,
    "next_attempt_at": _nullable(TIME),
    "delivered_at": _nullable(TIME),
    "created_at": TIME,
    "attempts": {"type": "array", "items": _ref("WebhookAttempt")},
})
_object("WebhookDeliveryList", "The endpoint's latest deliveries, newest first.", {
    "deliveries": {"type": "array", "items": _ref("WebhookDelivery")},
})


def webhook(item: WebhookEndpoint, secret: bool = False) -> dict[str, Any]:
    """Return an endpoint; with secret, its signing secret too (at registration only)."""
    shape = {
        "id": item.id,
        "url": item.url,
        "description": item.description,
        "events": list(item.events),
        "enabled": item.enabled,
        "failing_since": _time(item.failing_since),
        "disabled_at": _time(item.disabled_at),
        "disabled_reason": item.disabled_reason,
        "created_at": _time(item.created_at),
    }
    if secret:
        shape["secret"] = item.secret
    return shape


def webhook_secret(item: WebhookEndpoint, secret: str) -> dict[str, Any]:
    """Return a freshly rotated secret and the end of the old one's overlap."""
    return {"secret": secret, "previous_secret_until": _time(item.previous_secret_until)}


def webhook_delivery(item: WebhookDelivery, attempts: list[WebhookAttempt]) -> dict[str, Any]:
    """Return a delivery with its attempts."""
    waiting = item.state in (WebhookState.PENDING, WebhookState.SENDING)
    return {
        "id": item.id,
        "webhook_id": item.event.uid,
        "type": item.event.type,
        "state": item.state.value,
        "attempt_count": item.attempts,
        "next_attempt_at": _time(item.next_attempt_at) if waiting else None,
        "delivered_at": _time(item.delivered_at),
        "created_at": _time(item.event.created_at),
        "attempts": [{"at": _time(a.at), "status": a.status, "elapsed_ms": a.elapsed_ms,
                      "excerpt": a.excerpt, "error": a.error} for a in attempts],
    }


_object("Source", "A feed read into the inbox for one section, with its health.", {
    "id": INTEGER,
    "newsletter": STRING,
    "url": {**STRING, "description": "The feed's address (RSS, Atom or JSON Feed)."},
    "title": {**STRING, "description": "The feed's own title, once read; empty before."},
    "section": _ref("Section"),
    "created_at": TIME,
    "last_fetch_at": _nullable(TIME),
    "last_status": {**_nullable(INTEGER), "description": "HTTP status of the last fetch."},
    "last_error": {**_nullable(STRING), "description": "Why the last fetch failed; null if it "
                                                         "worked."},
    "failures": {**INTEGER, "description": "Failed fetches in a row (each doubles the wait)."},
    "next_fetch_at": TIME,
})
_object("SourceList", "A newsletter's sources, oldest first.", {
    "sources": {"type": "array", "items": _ref("Source")},
})


def source(item: Source) -> dict[str, Any]:
    """Return a source and its health."""
    return {
        "id": item.id,
        "newsletter": item.newsletter.slug,
        "url": item.url,
        "title": item.title,
        "section": section(item.section),
        "created_at": _time(item.created_at),
        "last_fetch_at": _time(item.last_fetch_at),
        "last_status": item.last_status,
        "last_error": item.last_error,
        "failures": item.failures,
        "next_fetch_at": _time(item.next_fetch_at),
    }


_object("InboxItem", "A link waiting in the inbox; `summary` is plain text, tags removed.", {
    "id": INTEGER,
    "url": STRING,
    "title": STRING,
    "summary": STRING,
    "source": {**STRING, "description": "The feed's title, or \"Saved link\"."},
    "source_id": {**_nullable(INTEGER), "description": "The source it came from; null for a "
                                                       "saved link or a removed source."},
    "section": {**_nullable(_ref("Section")), "description": "The section an accepted post "
                                                             "goes to by default."},
    "published_at": _nullable(TIME),
    "state": _enum(InboxState),
    "page_pending": {"type": "boolean", "description": "A saved link whose title and "
                                                       "description are still to be read."},
    "created_at": TIME,
    "decided_at": _nullable(TIME),
    "post_id": {**_nullable(INTEGER), "description": "The draft post made by accepting it."},
})
_object("InboxPage", "A page of inbox items, newest first.", {
    "items": {"type": "array", "items": _ref("InboxItem")},
    "page": INTEGER,
    "pages": INTEGER,
    "total": INTEGER,
})
_object("AcceptedItem", "An accepted inbox item and the draft post it became.", {
    "item": _ref("InboxItem"),
    "post": _ref("Post"),
})


def inbox_item(item: InboxItem) -> dict[str, Any]:
    """Return an inbox item."""
    return {
        "id": item.id,
        "url": item.url,
        "title": item.title,
        "summary": item.summary,
        "source": item.source_name,
        "source_id": item.source_id,
        "section": section(item.section) if item.section is not None else None,
        "published_at": _time(item.published_at),
        "state": item.state.value,
        "page_pending": item.page_pending,
        "created_at": _time(item.created_at),
        "decided_at": _time(item.decided_at),
        "post_id": item.post_id,
    }
