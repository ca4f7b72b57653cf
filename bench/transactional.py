"""Per-message cost of the reader's emails (confirmation, welcome): rendered once, or every time.

Usage: python bench/transactional.py [N_READERS]   (default 300)

Builds a throwaway SQLite database with the demo newsletter and N pending readers
(varied names and section choices), each with a confirmation and a welcome email
recorded, then renders every email to its final bytes two ways in the same run, best of
three: digest.domain.transactional.render as the runner (digest.engine.transactional)
calls it (what readers share is rendered and CSS-inlined once per process, each reader's
values filled in), and the same with that cache emptied before every message (Jinja +
css-inline per message).
Prints ms per message and the ratio; every message of the last round is checked: it
parses as multipart/alternative (text, then HTML), and the welcome carries the reader's
own unsubscribe link in its header and both parts.
"""

from __future__ import annotations

import email
import email.policy
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, joinedload, selectinload

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sample_issue import sample_app  # noqa: E402

from digest.core.extensions import get_db  # noqa: E402
from digest.core.models import (  # noqa: E402
    Newsletter,
    Section,
    Subscriber,
    Subscription,
    SubscriptionStatus,
    TransactionalKind,
    TransactionalMail,
)
from digest.domain import links, transactional  # noqa: E402

NAMES = ["", "Ada", "Grace Hopper", "Zoë Ångström", "Alan"]


def _populate(session: Session, readers: int) -> None:
    newsletter = session.scalars(select(Newsletter)).one()
    sections = list(session.scalars(select(Section).order_by(Section.position)))
    for n in range(readers):
        subscriber = Subscriber(email=f"reader{n}@example.org", name=NAMES[n % len(NAMES)])
        chosen = sections[: n % 3]  # none (every section), one, or two
        subscription = Subscription(
            subscriber=subscriber,
            newsletter=newsletter,
            status=SubscriptionStatus.CONFIRMED,
            sections=chosen,
        )
        session.add(subscription)
        for kind in (TransactionalKind.CONFIRM, TransactionalKind.WELCOME):
            session.add(TransactionalMail(subscription=subscription, kind=kind))


def _check(config: dict, mail: TransactionalMail, data: bytes) -> bool:
    message = email.message_from_bytes(data, policy=email.policy.default)
    kinds = [part.get_content_type() for part in message.iter_parts()]  # type: ignore[attr-defined]
    if kinds != ["text/plain", "text/html"]:
        return False
    if mail.kind is not TransactionalKind.WELCOME:
        return True
    url = links.unsubscribe_url(config, mail.subscription.uid)
    parts = [part.get_content() for part in message.iter_parts()]  # type: ignore[attr-defined]
    return url in str(message["List-Unsubscribe"]) and all(url in p for p in parts)


def _best_of_three(run: Callable[[], list[bytes]], count: int) -> tuple[float, list[bytes]]:
    best, out = float("inf"), []
    for _ in range(3):
        start = time.perf_counter()
        out = run()
        best = min(best, (time.perf_counter() - start) * 1000 / count)
    return best, out


def main() -> None:
    """Print the table."""
    readers = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    with tempfile.TemporaryDirectory() as folder:
        app, _issue_id = sample_app(Path(folder))
        config = app.config
        with app.app_context():
            database = get_db()
            with database.session() as session:
                _populate(session, readers)
            with database.sessionmaker() as session:
                mails = list(
                    session.scalars(
                        select(TransactionalMail)
                        .order_by(TransactionalMail.id)
                        .options(
                            joinedload(TransactionalMail.subscription).options(
                                joinedload(Subscription.subscriber),
                                joinedload(Subscription.newsletter).selectinload(
                                    Newsletter.sections
                                ),
                                selectinload(Subscription.sections),
                            )
                        )
                    )
                )

                def once() -> list[bytes]:
                    return [transactional.render(session, config, m).data for m in mails]

                def every_time() -> list[bytes]:
                    out = []
                    for mail in mails:
                        transactional._stencil.cache_clear()
                        out.append(transactional.render(session, config, mail).data)
                    return out

                every_ms, every_out = _best_of_three(every_time, len(mails))
                transactional._stencil.cache_clear()
                once_ms, once_out = _best_of_three(once, len(mails))
                valid = all(_check(config, m, d) for m, d in zip(mails, once_out, strict=True))
                valid = valid and all(
                    _check(config, m, d) for m, d in zip(mails, every_out, strict=True)
                )
                variants = transactional._stencil.cache_info().currsize
    ok = "yes" if valid else "NO"
    print(
        f"Reader emails to final bytes: {readers} readers × (confirmation + welcome) = "
        f"{len(mails)} messages, {variants} shared renderings, best of 3 rounds, one run"
    )
    print()
    print("pipeline                                   | ms/msg | ratio | valid")
    print("-" * 70)
    print(f"rendered + inlined once, filled per reader | {once_ms:6.3f} |  1.0× | {ok}")
    ratio = every_ms / once_ms
    print(f"rendered + inlined for every message       | {every_ms:6.3f} | {ratio:4.1f}× | {ok}")


if __name__ == "__main__":
    main()
