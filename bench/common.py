"""Shared pieces of the delivery benchmarks: a fresh database filled with a 20-post issue
and N readers by set-based SQL, a DKIM key, the sink process, and table printing."""

from __future__ import annotations

import base64
import hashlib
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from digest import create_app  # noqa: E402
from digest.db import Database, upgrade, utcnow  # noqa: E402
from digest.extensions import get_db  # noqa: E402

POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/digest_bench"
SECTIONS = ["News", "Engineers", "Startups", "Tools", "Careers"]
SUMMARY = (
    "A short, careful summary of why this piece matters this week: what happened, who is "
    "affected, and what a practitioner should do about it on Monday morning. We read the "
    "paper, the thread and the changelog so that you do not have to, and we link the lot."
)


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
        "SECRET_KEY": "bench-secret",
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
    """Fill the database; return the issue id. Readers are inserted set-based."""
    now = utcnow()
    stamp: Any = now.replace(tzinfo=None).isoformat(" ") if database.dialect == "sqlite" else now
    series = (
        "WITH RECURSIVE seq(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM seq WHERE n < :last) "
        if database.dialect == "sqlite"
        else ""
    )
    source = "seq" if database.dialect == "sqlite" else "generate_series(0, :last) AS seq(n)"
    with database.engine.begin() as conn:
        nid = conn.execute(
            text(
                "INSERT INTO newsletter (slug, name, description, from_name, postal_address, time_zone,"
                " review_hours, consent_text, consent_version, created_at) VALUES ('bench', 'The Bench"
                " Weekly', '', 'The Bench Weekly', '1 Bench Street, 10115 Berlin', 'Europe/Berlin', 24,"
                " '', '1', :now) RETURNING id"
            ),
            {"now": stamp},
        ).scalar_one()
        sections = [
            conn.execute(
                text(
                    "INSERT INTO section (newsletter_id, slug, name, description, position) "
                    "VALUES (:n, :slug, :name, '', :pos) RETURNING id"
                ),
                {"n": nid, "slug": name.lower(), "name": name, "pos": i},
            ).scalar_one()
            for i, name in enumerate(SECTIONS)
        ]
        posts = []
        for i in range(20):
            posts.append(
                conn.execute(
                    text(
                        "INSERT INTO post (newsletter_id, section_id, slug, title, summary, body_md,"
                        " status, published_at, created_at, updated_at) VALUES (:n, :s, :slug, :title,"
                        " :summary, :body, 'published', :now, :now, :now) RETURNING id"
                    ),
                    {
                        "n": nid, "s": sections[i % 5], "slug": f"post-{i}",
                        "title": f"Piece number {i}: what changed this week, and why it matters",
                        "summary": SUMMARY, "body": (SUMMARY + "\n\n") * 3, "now": stamp,
                    },
                ).scalar_one()
            )
        issue_id = conn.execute(
            text(
                "INSERT INTO issue (newsletter_id, slug, subject, preheader, intro_md, status, held,"
                " created_at, updated_at) VALUES (:n, 'bench', 'The week in twenty pieces',"
                " 'Twenty pieces, five sections', 'Good morning! **Twenty** pieces this week.',"
                " 'draft', false, :now, :now) RETURNING id"
            ),
            {"n": nid, "now": stamp},
        ).scalar_one()
        order = sorted(range(20), key=lambda i: (i % 5, i))
        conn.execute(
            text("INSERT INTO issue_post (issue_id, post_id, position) VALUES (:i, :p, :pos)"),
            [{"i": issue_id, "p": posts[j], "pos": k} for k, j in enumerate(order)],
        )
        params = {"last": readers - 1, "now": stamp, "n": nid}
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
                "SELECT 's' || id, id, :n, 'confirmed', :now FROM subscriber WHERE true"
            ),
            params,
        )
        # One reader in five chose two sections; the others get everything.
        for section in sections[:2]:
            conn.execute(
                text(
                    "INSERT INTO subscription_section (subscription_id, section_id) "
                    "SELECT id, :s FROM subscription WHERE id % 5 = 0"
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


_SIGNED = (
    "from", "to", "subject", "date", "message-id", "reply-to", "mime-version", "content-type",
    "list-id", "list-unsubscribe", "list-unsubscribe-post", "feedback-id",
)


class FallbackSigner:
    """DKIM rsa-sha256, relaxed/relaxed, with OpenSSL through `cryptography`: used only
    while `mailer_for` does not sign yet (another branch adds the product's signer)."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        from cryptography.hazmat.primitives import serialization

        self.key = serialization.load_pem_private_key(Path(config["DKIM_KEY_FILE"]).read_bytes(), None)
        self.domain, self.selector = config["DKIM_DOMAIN"], config["DKIM_SELECTOR"]

    def __call__(self, data: bytes) -> bytes:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        head, _, body = data.partition(b"\r\n\r\n")
        if b"\t" in body or b"  " in body or b" \r\n" in body:
            body = re.sub(rb"[ \t]+\r\n", b"\r\n", body)
            body = re.sub(rb"[ \t]+", b" ", body)
        body = body.rstrip(b"\r\n") + b"\r\n"
        body_hash = base64.b64encode(hashlib.sha256(body).digest()).decode()
        fields = re.split(rb"\r\n(?![ \t])", head)
        chosen = []
        for field in fields:
            name, _, value = field.partition(b":")
            lower = name.strip().lower().decode()
            if lower in _SIGNED:
                value = re.sub(rb"\s+", b" ", value.replace(b"\r\n", b"")).strip()
                chosen.append((lower, value))
        header = (
            f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={self.domain}; s={self.selector}; "
            f"t={int(time.time())}; h={':'.join(n for n, _ in chosen)}; bh={body_hash}; b="
        )
        canonical = b"".join(n.encode() + b":" + v + b"\r\n" for n, v in chosen)
        canonical += b"dkim-signature:" + header.encode()
        signature = self.key.sign(canonical, padding.PKCS1v15(), hashes.SHA256())  # type: ignore[union-attr]
        return b"DKIM-Signature: " + header.encode() + base64.b64encode(signature) + b"\r\n" + data


def signing_mailer(config: Mapping[str, Any]):  # type: ignore[no-untyped-def]
    """Return the product's Mailer for config, given the fallback signer if it has none."""
    from digest.mail.mailer import mailer_for

    mailer = mailer_for(config)
    if mailer.signer is None:
        mailer.signer = FallbackSigner(config)
    return mailer


def signer_name(config: Mapping[str, Any]) -> str:
    """Return which DKIM signer the benchmark's messages go through."""
    from digest.mail.mailer import mailer_for

    return "mailer_for (product)" if mailer_for(config).signer is not None else "bench fallback (cryptography/OpenSSL)"


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
