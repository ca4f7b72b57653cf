"""Shared pieces of the delivery benchmarks: a fresh database filled with a 20-post issue
and N readers by set-based SQL, a DKIM key, the sink process, and table printing."""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from digest import create_app  # noqa: E402
from digest.core.db import Database, upgrade, utcnow  # noqa: E402
from digest.core.extensions import get_db  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/digest_bench"
DEMO_READERS = 4  # load_demo's own readers, on top of the benchmark's


@dataclass
class Bench:
    """A fresh instance for one benchmark run."""

    overrides: dict[str, Any]
    issue_id: int
    folder: Path

    def app(self, **more: Any):  # type: ignore[no-untyped-def]
        """Return an app on the bench database (more settings optional)."""
        return create_app({**self.overrides, **more})


def fresh_database(kind: str, folder: Path) -> str:
    """Return the URL of an empty, migrated database of kind sqlite or postgresql."""
    if kind == "sqlite":
        url = f"sqlite:///{folder / 'bench.sqlite3'}"
    else:
        url = POSTGRES
        admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text("DROP DATABASE IF EXISTS digest_bench WITH (FORCE)"))
            conn.execute(text("CREATE DATABASE digest_bench"))
        admin.dispose()
    database = Database(url)
    upgrade(database)
    database.dispose()
    return url


def make_bench(kind: str, readers: int, **settings: Any) -> Bench:
    """Create a database with one newsletter, a 20-post issue and `readers` confirmed readers."""
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-"))
    url = fresh_database(kind, folder)
    overrides = {
        "DATABASE_URL": url,
        "INSTANCE_PATH": str(folder / "instance"),
        "SECRET_KEY": "bench-secret-0123456789-abcdefghijklmnopqrstuvwxyz-0123456789",
        "BASE_URL": "https://news.example.org",
        "MAIL_FROM": "The Bench Weekly <news@news.example.org>",
        **settings,
    }
    app = create_app(overrides)
    with app.app_context():
        issue_id = populate(get_db(), readers)
        get_db().dispose()
    return Bench(overrides, issue_id, folder)


def populate(database: Database, readers: int) -> int:
    """Fill the database with the demo newsletter, an issue of 20 posts (the content of
    bench/sample_issue.py) and `readers` more confirmed readers; return the issue id."""
    from sample_issue import _BODY as SAMPLE_BODY  # type: ignore[import-not-found]
    from sqlalchemy import select

    from digest.core.models import Issue, IssuePost, Post, PostStatus, Section
    from digest.domain.demo import load_demo

    now = utcnow()
    with database.session() as session:
        newsletter = load_demo(session, now)
        assert newsletter is not None
        sections = list(session.scalars(select(Section).order_by(Section.position)))
        issue = session.scalars(select(Issue)).one()
        posts = [item.post for item in issue.issue_posts]
        for n in range(len(posts), 20):
            post = Post(
                newsletter=newsletter, section=sections[n % len(sections)], slug=f"bench-post-{n}",
                title=f"Field notes #{n}: what we measured when we tried setup {n} for real",
                summary="" if n % 4 == 0 else (
                    "A short, honest summary of the piece: what was tried, what it cost, "
                    "and whether we would do it again next quarter."
                ),
                body_md=SAMPLE_BODY.format(n=n), status=PostStatus.PUBLISHED, published_at=now,
            )
            session.add(post)
            posts.append(post)
        session.flush()
        ordered = sorted(posts, key=lambda p: (p.section.position, p.id))
        issue.issue_posts = [IssuePost(post_id=p.id, position=i) for i, p in enumerate(ordered)]
        issue_id, newsletter_id, two = issue.id, newsletter.id, [s.id for s in sections[:2]]
    stamp: Any = now.replace(tzinfo=None).isoformat(" ") if database.dialect == "sqlite" else now
    series = (
        "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < :last) "
        if database.dialect == "sqlite"
        else ""
    )
    source = "seq" if database.dialect == "sqlite" else "generate_series(0, :last) AS seq(n)"
    params = {"last": readers - 1, "now": stamp, "n": newsletter_id}
    with database.engine.begin() as conn:
        conn.execute(
            text(
                f"{series}INSERT INTO subscriber (uid, email, name, created_at) "
                f"SELECT 'u' || n, 'reader' || n || '@example.org', 'Reader ' || n, :now FROM {source} WHERE true"
            ),
            params,
        )
        conn.execute(
            text(
                "INSERT INTO subscription (uid, subscriber_id, newsletter_id, status, created_at) "
                "SELECT 's' || s.id, s.id, :n, 'confirmed', :now FROM subscriber s "
                "WHERE s.email LIKE 'reader%@example.org'"
            ),
            params,
        )
        # One reader in five chose two sections; the others get everything.
        for section in two:
            conn.execute(
                text(
                    "INSERT INTO subscription_section (subscription_id, section_id) "
                    "SELECT id, :s FROM subscription WHERE id % 5 = 0 AND id > 4"
                ),
                {"s": section},
            )
    if database.dialect == "postgresql":
        with database.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    return issue_id


def dkim_settings(folder: Path) -> dict[str, str]:
    """Write an RSA-2048 DKIM key; return the DKIM_* settings naming it."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = folder / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return {"DKIM_DOMAIN": "news.example.org", "DKIM_SELECTOR": "bench", "DKIM_KEY_FILE": str(path)}


@contextmanager
def sink(procs: int = 2) -> Iterator[tuple[int, list[int]]]:
    """Run bench/sink.py; yield its port and, after exit, [messages it accepted]."""
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sink.py"), "--procs", str(procs)],
        stdout=subprocess.PIPE, text=True,
    )
    assert process.stdout is not None
    port = int(process.stdout.readline().rsplit(":", 1)[1])
    accepted: list[int] = []
    try:
        yield port, accepted
    finally:
        process.send_signal(signal.SIGTERM)
        out = process.stdout.read()
        process.wait(30)
        accepted.extend(int(line.split()[1]) for line in out.splitlines() if line.startswith("accepted"))


def peak_rss_mb() -> float:
    """Return this process's peak resident set size in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Print one aligned table."""
    cells = [[str(c) for c in header]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    print(f"\n{title}")
    for n, row in enumerate(cells):
        print("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(row, widths))))
        if n == 0:
            print("  ".join("-" * w for w in widths))


def cleanup(bench: Bench) -> None:
    """Remove the bench folder (the PostgreSQL database is dropped by the next run)."""
    shutil.rmtree(bench.folder, ignore_errors=True)


def wait_until(predicate: Callable[[], bool], timeout: float, every: float = 0.05) -> float:
    """Poll until predicate holds; return the time it became true (perf_counter)."""
    deadline = time.perf_counter() + timeout
    while not predicate():
        if time.perf_counter() > deadline:
            raise TimeoutError("benchmark did not finish in time")
        time.sleep(every)
    return time.perf_counter()
