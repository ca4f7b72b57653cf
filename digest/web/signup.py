"""What the front page's signup form and the JSON signup (/api/v1/subscribe) share.

Both answer alike, whatever the address's state, by construction: the request checks
what was typed and records it (digest.domain.subscribers.signup.signup_request), reading
nothing about the address, and answers at once; the engine does the rest
(digest.engine.signups). A burst's signups are recorded together: the requests that
arrive while one is being written are written next in one transaction (group commit,
digest.core.groupcommit). Both share one per-IP limit (DIGEST_SIGNUP_RATE_LIMIT, with
"send me a new link").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, current_app, request

from digest.core.extensions import get_db, limiter
from digest.core.groupcommit import GroupCommit
from digest.core.models import Newsletter
from digest.domain.newsletters import find_newsletter, newsletter_for_signup
from digest.domain.subscribers.signup import Signup, record_signups, signup_request
from digest.engine.transactional import wake

signup_limit = limiter.shared_limit(
    lambda: current_app.config["SIGNUP_RATE_LIMIT"], scope="signup", methods=["POST"]
)


def client_ip() -> str | None:
    """Return the requesting client's address (the forwarded one behind DIGEST_TRUSTED_PROXIES)."""
    return request.remote_addr


def signup_newsletter(slug: str | None, *, page: bool = True) -> Newsletter | None:
    """Return the newsletter a signup names, read without waiting for writers: for a page,
    loaded with its sections and logos; else (a JSON answer shows nothing of it) only what
    the signup checks and records."""
    with get_db().reader() as session:
        if not page:
            return newsletter_for_signup(session, slug)
        return find_newsletter(session, slug, detached=True)


def run_signup(newsletter: Newsletter, signup: Signup) -> None:
    """Record a signup for the engine (committed with those arriving meanwhile); raise
    Invalid, or the database's error (nothing of it was recorded)."""
    # The checks run before any statement, so SQLite's write lock is held only for the
    # insert and the commit.
    row = signup_request(current_app.config, newsletter, signup)
    if row is None:
        return
    _recorder(current_app).submit(row)
    wake(current_app)


RECORDER = "digest.signup.recorder"


def _recorder(app: Flask) -> GroupCommit[Mapping[str, Any]]:
    recorder: GroupCommit[Mapping[str, Any]] | None = app.extensions.get(RECORDER)
    if recorder is None:
        database = get_db()

        def write(rows: Sequence[Mapping[str, Any]]) -> None:
            with database.session() as session:
                record_signups(session, rows)

        recorder = app.extensions.setdefault(RECORDER, GroupCommit(write))
    return recorder
