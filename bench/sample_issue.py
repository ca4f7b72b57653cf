"""A throwaway database holding a realistic 20-post issue and readers to render it for.

Shared by the benchmarks: `sample_app(folder)` makes an app on a fresh SQLite file in
folder with the demo newsletter and an issue of POSTS posts; `sample_readers(...)` makes
readers with varied names and section choices (as Reader values, not rows).
"""

from __future__ import annotations

import random
from pathlib import Path

from flask import Flask
from sqlalchemy import select

from digest import create_app
from digest.core.db import upgrade, utcnow
from digest.core.extensions import get_db
from digest.core.models import Issue, IssuePost, Post, PostStatus, Section
from digest.domain.demo import load_demo
from digest.mail.render import Reader

POSTS = 20

_BODY = """We compared {n} setups over two weeks and kept notes on what **actually** changed
the outcome. The short version: measure first, then tune the one setting that moves the
number, and write down the noise between two identical runs before you believe a result.

- Setup took about {n} minutes with the defaults.
- The [write-up](https://example.org/notes/{n}) has every figure and the scripts.
- Costs stayed flat; latency dropped by a third.

> The surprise was how little the model mattered next to the data around it.
"""


def sample_app(folder: Path, posts: int = POSTS) -> tuple[Flask, int]:
    """Return an app on a new SQLite database in folder and the id of an issue of `posts` posts."""
    app = create_app(
        {
            "DATABASE_URL": f"sqlite:///{folder / 'bench.sqlite3'}",
            "INSTANCE_PATH": str(folder / "instance"),
            "SECRET_KEY": "bench-secret-not-for-production",
            "BASE_URL": "https://news.example.org",
            "MAIL_FROM": "The Weekly Model <news@news.example.org>",
        }
    )
    with app.app_context():
        database = get_db()
        upgrade(database)
        with database.session() as session:
            newsletter = load_demo(session)
            assert newsletter is not None
            sections = list(session.scalars(select(Section).order_by(Section.position)))
            issue = session.scalars(select(Issue)).one()
            existing = [item.post for item in issue.issue_posts]
            extra = []
            for n in range(len(existing), posts):
                extra.append(
                    Post(
                        newsletter=newsletter,
                        section=sections[n % len(sections)],
                        slug=f"bench-post-{n}",
                        title=f"Field notes #{n}: what we measured when we tried setup {n} for real",
                        # Every fourth post has no summary: the digest shows its Markdown body.
                        summary=""
                        if n % 4 == 0
                        else "A short, honest summary of the piece: what was tried, what it cost, "
                        "and whether we would do it again next quarter.",
                        body_md=_BODY.format(n=n),
                        status=PostStatus.PUBLISHED,
                        published_at=utcnow(),
                    )
                )
            session.add_all(extra)
            session.flush()
            ordered = sorted(existing + extra, key=lambda p: (p.section.position, p.id))
            issue.issue_posts = [IssuePost(post_id=p.id, position=i) for i, p in enumerate(ordered)]
            issue_id = issue.id
        database.dispose()
    return app, issue_id


def sample_readers(count: int, section_ids: list[int], seed: int = 1) -> list[Reader]:
    """Return count readers: most want every section, the rest one of a few common choices."""
    rng = random.Random(seed)
    choices = [frozenset()] * 6 + [
        frozenset(rng.sample(section_ids, k)) for k in (1, 2, 2, 3) for _ in range(1)
    ]
    names = ["", "Ada", "Grace Hopper", "Jürgen Ñúñez", "山田 花子", "Katherine"]
    return [
        Reader(
            subscriber_id=i + 1,
            subscription_uid=f"{i:06d}" + "x" * 16,
            email=f"reader{i:06d}@example.com",
            name=names[i % len(names)],
            section_ids=choices[rng.randrange(len(choices))],
        )
        for i in range(count)
    ]
