"""Helpers for delivery tests: a newsletter with N readers and an issue, and real `digest`
processes against the test database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from digest.core.db import utcnow
from digest.core.models import (
    Delivery,
    DeliveryState,
    Issue,
    IssuePost,
    Newsletter,
    Post,
    PostStatus,
    Section,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from tests.support.apps import SECRET
from tests.support.smtp import SMTPServer

CONFIG = {"SECRET_KEY": SECRET}  # what the ledger needs of the test app's settings
DIGEST = str(Path(sys.executable).with_name("digest"))


@dataclass(frozen=True)
class Setup:
    """A newsletter with readers and one draft issue carrying two posts."""

    newsletter_id: int
    issue_id: int
    emails: list[str]
    section_ids: list[int]


def reader_email(n: int) -> str:
    """Return the address of test reader n."""
    return f"reader{n:05d}@example.org"


def make_newsletter(
    session: Session,
    readers: int = 5,
    slug: str = "weekly",
    status: SubscriptionStatus = SubscriptionStatus.CONFIRMED,
) -> Setup:
    """Add and commit a newsletter: two sections with a published post each, readers, a draft issue."""
    newsletter = Newsletter(
        slug=slug, name="The Test Weekly", time_zone="Europe/Berlin",
        postal_address="1 Test Street, Berlin",
    )
    session.add(newsletter)
    sections = [
        Section(newsletter=newsletter, slug="news", name="News", position=0),
        Section(newsletter=newsletter, slug="tools", name="Tools", position=1),
    ]
    session.add_all(sections)
    now = utcnow()
    posts = [
        Post(newsletter=newsletter, section=sections[0], slug="first", title="First news",
             summary="Something happened.", status=PostStatus.PUBLISHED, published_at=now),
        Post(newsletter=newsletter, section=sections[1], slug="second", title="A tool",
             summary="We tried it.", status=PostStatus.PUBLISHED, published_at=now),
    ]
    session.add_all(posts)
    issue = Issue(newsletter=newsletter, slug="first-issue", subject="Our first issue")
    session.add(issue)
    session.flush()
    issue.issue_posts = [IssuePost(post_id=p.id, position=i) for i, p in enumerate(posts)]
    session.flush()
    emails = add_readers(session, newsletter.id, range(readers), status)
    session.commit()
    return Setup(newsletter.id, issue.id, emails, [s.id for s in sections])


def add_readers(
    session: Session,
    newsletter_id: int,
    numbers: range,
    status: SubscriptionStatus = SubscriptionStatus.CONFIRMED,
) -> list[str]:
    """Add readers with set-based inserts (fast for thousands); return their addresses."""
    emails = [reader_email(n) for n in numbers]
    if not emails:
        return emails
    now = utcnow()
    session.execute(
        insert(Subscriber),
        [{"email": e, "name": f"Reader {n}", "uid": f"s{newsletter_id}x{n}", "created_at": now}
         for n, e in zip(numbers, emails)],
    )
    ids = dict(session.execute(select(Subscriber.email, Subscriber.id).where(Subscriber.email.in_(emails))).all())
    session.execute(
        insert(Subscription),
        [{"subscriber_id": ids[e], "newsletter_id": newsletter_id, "status": status,
          "uid": f"u{newsletter_id}x{n}", "created_at": now}
         for n, e in zip(numbers, emails)],
    )
    return emails


def states(session: Session, issue_id: int) -> Counter[str]:
    """Return the issue's delivery rows per state, ending the session's transaction.

    On SQLite an open transaction would keep the write lock.
    """
    session.commit()
    rows = session.execute(
        select(Delivery.state, func.count()).where(Delivery.issue_id == issue_id).group_by(Delivery.state)
    ).all()
    session.commit()
    return Counter({DeliveryState(state).value: n for state, n in rows})


def per_recipient(server: SMTPServer) -> Counter[str]:
    """Return how many messages the SMTP server accepted for each recipient."""
    with server.lock:
        return Counter(r for m in server.received for r in m.rcpt_tos)


def process_env(app: Flask, **settings: Any) -> dict[str, str]:
    """Return the environment of a `digest` process using the test app's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_") or "TEST" in k}
    config = app.config
    for key in ("DATABASE_URL", "INSTANCE_PATH", "SECRET_KEY", "BASE_URL", "MAIL_FROM"):
        env[f"DIGEST_{key}"] = str(config[key])
    if config.get("SMTP_URL"):
        env["DIGEST_SMTP_URL"] = config["SMTP_URL"]
    env["DIGEST_SMTP_TIMEOUT"] = "10"
    for key, value in settings.items():
        env[f"DIGEST_{key}"] = str(value)
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextmanager
def digest_process(args: list[str], env: Mapping[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """Run `digest ARGS` as a real process; on exit stop it (SIGTERM, then SIGKILL)."""
    with open(log, "ab") as out:
        process = subprocess.Popen([DIGEST, *args], env=dict(env), stdout=out, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        stop_process(process)


def stop_process(process: subprocess.Popen[bytes], timeout: float = 20.0) -> int | None:
    """Stop a process gracefully if it still runs; return its exit code."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
    return process.returncode


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def digest_server(env: Mapping[str, str], log: Path) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """Run `digest run` as a real process; yield its base URL and the process once /healthz
    answers (or fail, with the log, if it dies or takes over 90 s)."""
    import urllib.request

    port = free_port()
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{base}/healthz", timeout=5) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    with digest_process(["run", "--port", str(port)], env, log) as process:
        deadline = time.monotonic() + 90
        while not healthy():
            if process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"`digest run` did not start:\n{log.read_text(errors='replace')[-3000:]}")
            time.sleep(0.1)
        yield base, process
