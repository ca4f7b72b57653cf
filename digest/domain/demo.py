"""Demo content: a newsletter with sections, a week of posts, a draft issue, readers.

Loading is idempotent: the demo newsletter is recognised by its slug and never loaded
twice. `digest demo` also adds an admin editor and some history (last week's sent
issue with its delivery ledger, a few months of readers) so the dashboard and the
archive have something to show; `load_demo` alone, which tests use, adds neither.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    Consent,
    ConsentSource,
    Delivery,
    DeliveryState,
    Editor,
    EditorRole,
    Issue,
    IssuePost,
    IssueStatus,
    Media,
    Newsletter,
    Post,
    PostStatus,
    Section,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    SuppressionReason,
)
from digest.core.storage import MediaStorage
from digest.domain import demo_art, links, media
from digest.domain.editors import create_editor, find_editor, generate_password
from digest.domain.suppression import suppress

DEMO_SLUG = "weekly-model"

CONSENT_TEXT = (
    "Yes, send me The Weekly Model by email once a week. I can unsubscribe at any time "
    "with one click, and my address is never shared."
)

SECTIONS = [
    ("news", "News", "What happened in AI this week, and why it matters."),
    ("engineers", "Engineers", "Techniques, papers and tooling for people who build."),
    ("startups", "Startups", "Funding, launches and the companies worth watching."),
    ("tools", "Tools", "Libraries and products we tried, with honest verdicts."),
    ("careers", "Careers", "Roles, skills and how the job market is moving."),
]


@dataclass(frozen=True)
class DemoPost:
    section: str
    slug: str
    title: str
    summary: str
    body: str
    link: str | None = None


POSTS = [
    DemoPost(
        "news",
        "open-weights-reasoning-model",
        "An open-weights reasoning model closes the gap on math benchmarks",
        "A 70B open model now matches last spring's closed leaders on competition math, "
        "at a fraction of the inference cost.",
        """A research collective released the weights of a 70-billion-parameter model
trained with reinforcement learning on verifiable math and code problems. On the
competition-math sets we track it lands within two points of the best closed systems
from six months ago.

**Why it matters:** the distance between "frontier" and "downloadable" keeps shrinking.
Teams that ruled out self-hosting for cost or quality reasons should look again.

- Licence: permissive, commercial use allowed
- Context: 128k tokens
- Runs on: two 80 GB accelerators in 8-bit
""",
        "https://example.org/news/open-weights-reasoning",
    ),
    DemoPost(
        "news",
        "eu-ai-act-guidance",
        "New guidance explains what the EU AI Act expects from general-purpose models",
        "Regulators published a practical checklist for documentation, copyright policies "
        "and incident reporting.",
        """The guidance turns the Act's obligations into a checklist: a technical dossier,
a summary of training data sources, a copyright policy and a contact for incident
reports. Smaller providers get simplified templates.

> Most of this is good engineering hygiene written down. The hard part is the training
> data summary, and that is where most teams are least prepared.
""",
    ),
    DemoPost(
        "engineers",
        "evals-before-prompts",
        "Write the evals before you write the prompt",
        "A small, versioned evaluation set turns prompt engineering from guesswork into "
        "a measurable loop.",
        """Every team we interviewed that ships LLM features reliably had one habit in
common: a few hundred labelled examples, kept in the repository and run on every change.

1. Collect real inputs from logs (with consent), not invented ones.
2. Label the outcome you want, not the text you expect.
3. Track the score per commit, like test coverage.

A prompt change that moves the score by less than the noise between two runs is not a
change. Measure the noise first.
""",
    ),
    DemoPost(
        "engineers",
        "retrieval-chunking",
        "Chunk size is the retrieval setting nobody tunes",
        "Halving the chunk size lifted answer accuracy by nine points in our RAG benchmark; "
        "doubling it cost twelve.",
        """We re-ran a retrieval-augmented QA benchmark with chunk sizes from 128 to 2,048
tokens while holding the embedding model and the reranker fixed. Accuracy peaked at 384
tokens with a 64-token overlap.

Try this before you swap embedding models: it costs an afternoon and no money.
""",
    ),
    DemoPost(
        "startups",
        "inference-chip-seed-round",
        "An inference-chip startup raises a large seed round on a working prototype",
        "The company claims four times the tokens per watt of current accelerators for "
        "models under 20B parameters.",
        """Seed rounds for hardware are rare; this one came with silicon already running in
the lab. The pitch is narrow on purpose: small and medium models served at the edge,
where power budgets matter more than peak throughput.

Watch for independent benchmarks before believing the efficiency figure.
""",
        "https://example.org/startups/inference-chip",
    ),
    DemoPost(
        "tools",
        "local-model-runner",
        "Tried it: a local model runner that finally gets GPU sharing right",
        "Several models on one GPU, loaded and evicted on demand, with an API that speaks "
        "the common chat format.",
        """We ran three models side by side on a single 24 GB card for a week. Cold loads take
four to nine seconds; warm requests are indistinguishable from a dedicated server.

**Verdict:** worth it for development machines and small teams. Production traffic
still wants a dedicated serving stack.
""",
    ),
    DemoPost(
        "tools",
        "notebook-diffing",
        "Readable diffs for notebooks, in the code review you already use",
        "",  # no summary: the digest shows the whole post, pictures and all
        """A small extension renders notebook changes as cell-by-cell diffs instead of walls of
JSON. Outputs are hidden by default and metadata noise is dropped.

![A notebook diff in code review: the old cell on the left, the new one on the right](demo:notebook-diff-wide)

Charts a commit changes are compared side by side, before and after:

![The accuracy chart before the change](demo:chart-before)
![The accuracy chart after the change](demo:chart-after)

Setup is one configuration line in the repository.

![The settings panel, one line long](demo:settings-panel)
""",
    ),
    DemoPost(
        "careers",
        "ai-engineer-interviews",
        "What AI engineering interviews actually test in 2026",
        "Fewer puzzles, more system design for retrieval and evaluation, and at least one "
        "debugging exercise on a failing pipeline.",
        """We collected interview loops from forty companies hiring AI application engineers.
The most common stages:

- a take-home or live exercise building a small retrieval pipeline;
- system design: serving, caching and evaluating an LLM feature;
- debugging: a pipeline that returns wrong answers, with logs;
- a conversation about a project you shipped and what you measured.

Leetcode-style rounds appeared in fewer than a third of the loops.
""",
    ),
]

# The posts that get a lead image when the demo's pictures are drawn: their label on it.
LEAD_IMAGES = {
    "open-weights-reasoning-model": "Open weights, closer",
    "evals-before-prompts": "Evals first",
    "inference-chip-seed-round": "Tokens per watt",
    "local-model-runner": "One GPU, three models",
    "ai-engineer-interviews": "Interview loops",
}
# The pictures a demo post's Markdown shows as ![alt](demo:NAME), drawn on demand.
PICTURES: dict[str, Callable[[], bytes]] = {
    "notebook-diff-wide": demo_art.diff_screenshot,
    "chart-before": lambda: demo_art.chart((61, 66, 70, 64), "Accuracy by chunk size, before"),
    "chart-after": lambda: demo_art.chart((63, 68, 74, 69), "Accuracy by chunk size, after"),
    "settings-panel": demo_art.settings_panel,
}
_PICTURE = re.compile(r"!\[([^\]]*)\]\(demo:([a-z-]+)\)")
_PICTURE_LINE = re.compile(r"^!\[[^\]]*\]\(demo:[a-z-]+\)\n", re.MULTILINE)


def demo_body(body: str, picture_url: Callable[[str], str] | None = None) -> str:
    """Return a demo post's Markdown with its pictures at picture_url(NAME), or without
    them when there is no picture_url (the demo's pictures are not drawn)."""
    if picture_url is None:
        return re.sub(r"\n{3,}", "\n\n", _PICTURE_LINE.sub("", body)).strip() + "\n"
    return _PICTURE.sub(lambda m: f"![{m[1]}]({picture_url(m[2])})", body).strip() + "\n"


READERS = [
    ("ada@example.com", "Ada", []),
    ("grace@example.com", "Grace", ["engineers", "tools"]),
    ("alan@example.com", "", ["news", "startups"]),
    ("katherine@example.com", "Katherine", []),
]


def load_demo(session: Session, now: dt.datetime | None = None, language: str = "en") -> Newsletter | None:
    """Add the demo newsletter with posts, a draft issue and readers, its readers addressed
    in language (a code newsletters.check_language accepts); None if already there."""
    if session.scalar(select(Newsletter).where(Newsletter.slug == DEMO_SLUG)):
        return None
    now = now or utcnow()
    newsletter = Newsletter(
        slug=DEMO_SLUG,
        name="The Weekly Model",
        description=(
            "AI news, engineering, startups and tools: the week's most useful pieces, "
            "read and summarised for people who build. Every Monday morning."
        ),
        from_name="The Weekly Model",
        reply_to="editors@example.com",
        postal_address="The Weekly Model, 12 Example Street, 10115 Berlin, Germany",
        time_zone="Europe/Berlin",
        send_weekday=1,
        send_time="08:00",
        review_hours=24,
        consent_text=CONSENT_TEXT,
        consent_version="2026-11",
        language=language,
    )
    session.add(newsletter)
    sections = {
        slug: Section(
            newsletter=newsletter, slug=slug, name=name, description=description, position=i
        )
        for i, (slug, name, description) in enumerate(SECTIONS)
    }
    session.add_all(sections.values())
    posts = []
    for i, item in enumerate(POSTS):
        post = Post(
            slug=item.slug,
            title=item.title,
            summary=item.summary,
            body_md=demo_body(item.body),
            link_url=item.link,
            status=PostStatus.PUBLISHED,
            published_at=now - dt.timedelta(days=6, hours=-i * 12),
            section=sections[item.section],
            newsletter=newsletter,
        )
        posts.append(post)
    session.add_all(posts)
    issue = Issue(
        newsletter=newsletter,
        slug="open-weights-catch-up",
        subject="Open weights catch up, evals first, and a chip with a point to prove",
        preheader="",
        intro_md=(
            "Good morning! This week the open-weights world closed another gap, we measured "
            "the retrieval setting nobody tunes, and we asked forty companies how they "
            "interview AI engineers."
        ),
    )
    session.add(issue)
    session.flush()
    ordered = sorted(posts, key=lambda p: (p.section.position, p.published_at or now))
    issue.issue_posts = [IssuePost(post_id=p.id, position=i) for i, p in enumerate(ordered)]
    for email, name, chosen in READERS:
        subscriber = Subscriber(email=email, name=name, created_at=now - dt.timedelta(days=20))
        subscription = Subscription(
            subscriber=subscriber,
            newsletter=newsletter,
            status=SubscriptionStatus.CONFIRMED,
            created_at=now - dt.timedelta(days=20),
            confirmed_at=now - dt.timedelta(days=20),
            sections=[sections[s] for s in chosen],
        )
        subscription.consents.append(
            Consent(
                source=ConsentSource.IMPORT,
                consent_text=CONSENT_TEXT,
                consent_version=newsletter.consent_version,
                created_at=now - dt.timedelta(days=20),
                confirmed_at=now - dt.timedelta(days=20),
            )
        )
        session.add(subscription)
    session.flush()
    return newsletter


def load_demo_images(session: Session, config: Mapping[str, Any], storage: MediaStorage,
                     newsletter: Newsletter) -> list[Media]:
    """Draw the demo's pictures and store them as uploads are (re-encoded, in every size):
    lead images, the notebook post's pictures and the logo, shown by the digest; return
    them, or nothing when the demo already has its logo. Nothing is fetched."""
    if newsletter.logo_light_id is not None:
        return []
    limits = media.Limits.of(config)
    stored: list[Media] = []

    def store(data: bytes, filename: str, alt: str) -> Media:
        stored.append(media.upload(session, storage, data, filename, limits, alt=alt))
        return stored[-1]

    def url(item: Media) -> str:
        return links.absolute(config, media.path(item))

    posts = {p.slug: p for p in session.scalars(select(Post).where(Post.newsletter_id == newsletter.id))}
    names = {slug: name for slug, name, _ in SECTIONS}
    try:
        for seed, item in enumerate(POSTS):
            post = posts[item.slug]
            if item.slug in LEAD_IMAGES:
                label = LEAD_IMAGES[item.slug]
                post.lead_image = store(demo_art.lead(item.section, label, seed), f"{item.slug}.jpg",
                                        f"{names[item.section]} artwork: {label}")
            pictures = {name: store(PICTURES[name](), f"{name}.png", alt)
                        for alt, name in _PICTURE.findall(item.body)}
            if pictures:
                post.body_md = demo_body(item.body, {n: url(m) for n, m in pictures.items()}.__getitem__)
        newsletter.logo_light = store(demo_art.logo(newsletter.name, demo_art.INK), "logo.png",
                                      newsletter.name)
        newsletter.logo_dark = store(demo_art.logo(newsletter.name, demo_art.PAPER), "logo-dark.png",
                                     newsletter.name)
        # Thumbnails: full-width lead images set `height: auto`, which Yahoo Mail drops, and
        # the demo issue is meant to pass `digest templates check --issue` as it is.
        newsletter.image_display = "thumbnail"
        session.flush()
    except Exception:
        for image in stored:
            media.forget(storage, image.variants)
        raise
    return stored


DEMO_ADMIN = "admin@example.com"


def ensure_demo_admin(session: Session) -> tuple[Editor, str | None]:
    """Return the demo admin and, only when just created, its generated password."""
    existing = find_editor(session, DEMO_ADMIN)
    if existing is not None:
        return existing, None
    password = generate_password()
    editor = create_editor(session, DEMO_ADMIN, password, EditorRole.ADMIN, name="Demo admin")
    return editor, password


HISTORY_POSTS = [
    DemoPost(
        "news",
        "multimodal-benchmarks-saturate",
        "Multimodal benchmarks are saturating faster than they can be replaced",
        "Three popular vision-language benchmarks now sit above 90% for the top systems.",
        """Leaderboards for chart reading, document QA and diagram reasoning all crossed 90%
this month. The authors of two of them now recommend held-out, refreshed test sets.
""",
    ),
    DemoPost(
        "engineers",
        "structured-output-retries",
        "Structured output without the retry loop",
        "Constrained decoding removed 97% of our JSON parse failures, and the latency cost "
        "was smaller than the retries it replaced.",
        """Grammar-constrained decoding guarantees the shape of the output, not its truth:
keep validating the content. But the parse-retry-parse loop can go.
""",
    ),
    DemoPost(
        "tools",
        "prompt-diff-viewer",
        "A diff viewer for prompts and their outputs",
        "Compare two prompt versions over the same inputs, side by side, with the score change.",
        """Paste two prompts, pick an evaluation set, read the outputs that changed. It is the
tool we wanted when writing last week's piece on evals.
""",
    ),
]

# (weeks ago the reader confirmed, weeks ago they left or None) for the growth chart.
HISTORY_READERS = [(w, None) for w in (11, 10, 10, 9, 8, 8, 7, 6, 6, 5, 4, 4, 3, 3, 2, 1, 1)] + [
    (9, 6), (7, 2), (5, 1),
]


def load_demo_history(
    session: Session, config: Mapping[str, Any], newsletter: Newsletter, now: dt.datetime | None = None
) -> Issue | None:
    """Add last week's sent issue with its ledger and a few months of readers; None if there."""
    slug = "benchmarks-saturate"
    if session.scalar(select(Issue).where(Issue.newsletter_id == newsletter.id, Issue.slug == slug)):
        return None
    now = now or utcnow()
    sections = {s.slug: s for s in newsletter.sections}
    sent_at = now - dt.timedelta(days=7)
    posts = [
        Post(newsletter=newsletter, section=sections[item.section], slug=item.slug, title=item.title,
             summary=item.summary, body_md=item.body.strip() + "\n", link_url=item.link,
             status=PostStatus.PUBLISHED, published_at=sent_at - dt.timedelta(days=3, hours=i))
        for i, item in enumerate(HISTORY_POSTS)
    ]
    session.add_all(posts)
    for i, (joined, left) in enumerate(HISTORY_READERS):
        confirmed = now - dt.timedelta(weeks=joined, hours=i)
        subscription = Subscription(
            subscriber=Subscriber(email=f"reader{i + 1}@example.net", name="", created_at=confirmed),
            newsletter=newsletter,
            status=SubscriptionStatus.UNSUBSCRIBED if left else SubscriptionStatus.CONFIRMED,
            created_at=confirmed,
            confirmed_at=confirmed,
            unsubscribed_at=now - dt.timedelta(weeks=left, hours=i) if left else None,
        )
        subscription.consents.append(
            Consent(source=ConsentSource.FORM, consent_text=newsletter.consent_text,
                    consent_version=newsletter.consent_version, created_at=confirmed,
                    confirmed_at=confirmed)
        )
        session.add(subscription)
    issue = Issue(
        newsletter=newsletter, slug=slug, status=IssueStatus.SENT,
        subject="Benchmarks saturate, structured output grows up, and a prompt diff viewer",
        preheader="Three pieces from last week, in case you missed them.",
        intro_md="Good morning! A short issue this week: three pieces worth your coffee.",
        period_key=None, scheduled_at=sent_at, schedule_tz=newsletter.time_zone,
        fanned_out_at=sent_at, started_at=sent_at, sent_at=sent_at + dt.timedelta(minutes=2),
        created_at=sent_at - dt.timedelta(days=1),
    )
    session.add(issue)
    session.flush()
    issue.issue_posts = [IssuePost(post_id=p.id, position=i) for i, p in enumerate(posts)]
    readers = session.execute(
        select(Subscription.subscriber_id, Subscriber.email).join(Subscription.subscriber).where(
            Subscription.newsletter_id == newsletter.id, Subscription.confirmed_at < sent_at
        ).order_by(Subscription.id)
    ).all()
    for n, (subscriber_id, email) in enumerate(readers):
        # One bounce and one unclear outcome, so the dashboard shows what they look like.
        state = {3: DeliveryState.FAILED_PERM, 5: DeliveryState.UNKNOWN}.get(n, DeliveryState.SENT)
        replies = {DeliveryState.FAILED_PERM: (550, "5.1.1 mailbox unavailable"),
                   DeliveryState.UNKNOWN: (None, None), DeliveryState.SENT: (250, "2.0.0 queued")}
        code, reply = replies[state]
        if state is DeliveryState.FAILED_PERM:
            # As the sender does: a hard bounce puts the address on the suppression list.
            suppress(session, config, email, SuppressionReason.HARD_BOUNCE, f"{code} {reply}")
        session.add(Delivery(
            issue_id=issue.id, subscriber_id=subscriber_id, state=state, attempts=1,
            smtp_code=code, smtp_response=reply,
            sent_at=sent_at + dt.timedelta(seconds=n) if state is DeliveryState.SENT else None,
            created_at=sent_at, updated_at=sent_at + dt.timedelta(seconds=n),
        ))
    session.flush()
    return issue
