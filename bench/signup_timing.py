"""How long a signup answer takes for each state of the address.

The answer must not reveal whether an address is known: the request only records the
signup (the engine acts on it later), so every state takes the same path. This prints,
per address state, the median answer time of POST /subscribe on SQLite (in-process test
client) and its ratio to the "new address" median.

    .venv/bin/python bench/signup_timing.py [--rounds 40]
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable

from sqlalchemy import select

from digest import create_app
from digest.core.db import upgrade, utcnow
from digest.core.extensions import get_db
from digest.core.models import Newsletter, Subscriber, Subscription, SuppressionReason
from digest.domain.demo import load_demo
from digest.domain.subscribers.privacy import erase
from digest.domain.subscribers.signup import Signup, confirm, subscribe, unsubscribe
from digest.domain.suppression import suppress

STATES = ["new", "pending", "confirmed", "unsubscribed", "bounced", "erased"]


def prepare(app, state: str) -> str:  # type: ignore[no-untyped-def]
    """Put a fresh address into state and return it."""
    email = f"{state}-{uuid.uuid4().hex[:8]}@example.org"
    if state == "new":
        return email
    with get_db_of(app).session() as session:
        if state == "bounced":
            suppress(session, app.config, email, SuppressionReason.HARD_BOUNCE)
            return email
        newsletter = session.scalars(select(Newsletter)).one()
        subscribe(
            session,
            app.config,
            newsletter,
            Signup(email=email, consent=True),
            now=utcnow() - dt.timedelta(days=2),
        )
        sub = session.scalars(
            select(Subscription).join(Subscriber).where(Subscriber.email == email)
        ).one()
        if state != "pending":
            confirm(session, app.config, sub)
        if state == "unsubscribed":
            unsubscribe(session, sub, "one-click")
        if state == "erased":
            erase(session, app.config, sub.subscriber)
    return email


def get_db_of(app):  # type: ignore[no-untyped-def]
    with app.app_context():
        return get_db()


def measure(rounds: int) -> dict[str, float]:
    """Return the median answer time in seconds per state."""
    folder = tempfile.mkdtemp(prefix="digest-bench-")
    app = create_app({"INSTANCE_PATH": folder, "SECRET_KEY": "bench-secret-key"})
    upgrade(get_db_of(app))
    with get_db_of(app).session() as session:
        load_demo(session)
    client = app.test_client()
    html = client.get("/").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    timings: dict[str, list[float]] = {state: [] for state in STATES}
    counter = 0
    for _ in range(rounds):
        for state in STATES:  # interleaved, so drift hits every state alike
            email = prepare(app, state)
            counter += 1
            started = time.perf_counter()
            response = client.post(
                "/subscribe",
                data={
                    "csrf_token": token,
                    "email": email,
                    "consent": "yes",
                    "newsletter": "weekly-model",
                    "sections": ["news", "tools"],
                },
                environ_base={"REMOTE_ADDR": f"10.9.{counter // 250}.{counter % 250}"},
            )
            timings[state].append(time.perf_counter() - started)
            assert response.status_code == 200, response.status_code
    get_db_of(app).dispose()
    return {state: statistics.median(values) for state, values in timings.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=40)
    args = parser.parse_args()
    timings = measure(args.rounds)
    line: Callable[..., str] = "{:<14}{:>10}{:>10}".format
    print(f"signup answer time, median of {args.rounds} per state (SQLite, in-process)")
    print(line("state", "ms", "ratio"))
    for state in STATES:
        print(line(state, f"{timings[state] * 1000:.2f}", f"{timings[state] / timings['new']:.3f}"))
    spread = (max(timings.values()) - min(timings.values())) / timings["new"]
    print(f"spread between states: {spread:.2%} of the new-address median")


if __name__ == "__main__":
    main()
