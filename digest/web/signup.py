"""What the front page's signup form and the JSON signup (/api/v1/subscribe) share.

Both answer alike, whatever the address's state, by construction: the request checks
what was typed and records it (digest.domain.subscribers.signup.signup_request), reading
nothing about the address, and answers at once; the engine does the rest
(digest.engine.signups). A burst's signups are recorded together: the requests that
arrive while one is being written are written next in one transaction (group commit,
digest.core.groupcommit). JSON signups share the newsletter they check against for up
to KEEP_SECONDS, read again at once after this process changes it. Both share one per-IP
limit (DIGEST_SIGNUP_RATE_LIMIT, with "send me a new link").
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any

from flask import Flask, current_app, request

from digest.core.extensions import get_db, limiter
from digest.core.groupcommit import GroupCommit
from digest.core.models import Newsletter
from digest.core.validation import Invalid
from digest.domain import newsletters
from digest.domain.newsletters import find_newsletter, newsletter_for_signup
from digest.domain.subscribers.signup import Signup, record_signups, signup_request
from digest.engine.transactional import wake

signup_limit = limiter.shared_limit(
    lambda: current_app.config["SIGNUP_RATE_LIMIT"], scope="signup", methods=["POST"]
)


def client_ip() -> str | None:
    """Return the requesting client's address (the forwarded one behind DIGEST_TRUSTED_PROXIES)."""
    return request.remote_addr


def signup_newsletter(slug: str | None) -> Newsletter | None:
    """Return the newsletter a page's signup names, read without waiting for writers and
    loaded with its sections and logos."""
    with get_db().reader() as session:
        return find_newsletter(session, slug, detached=True)


def json_signup(slug: str | None, signup: Signup) -> bool:
    """Record a JSON signup for the newsletter slug names (the first when empty), as
    run_signup; return False when there is no such newsletter."""
    newsletter, kept = _json_newsletter(slug)
    if newsletter is None:
        return False
    try:
        run_signup(newsletter, signup)
    except Invalid:
        if not kept:
            raise
        # What was refused (a section, a consent version) may be another process's change
        # of a moment ago.
        newsletter, _ = _json_newsletter(slug, fresh=True)
        if newsletter is None:
            return False
        run_signup(newsletter, signup)
    return True


# How long JSON signups use the newsletter an earlier one read (it was a fifth of each
# answer's CPU under a burst): a change this process commits is seen at once
# (digest.domain.newsletters.edits), one another process commits within this.
KEEP_SECONDS = 1.0
KEPT = "digest.signup.newsletters"


def _json_newsletter(slug: str | None, *, fresh: bool = False) -> tuple[Newsletter | None, bool]:
    """Return what a JSON signup checks and records of a newsletter (a JSON answer shows
    nothing of it), and whether it was kept from an earlier signup."""
    kept: dict[str | None, tuple[int, float, Newsletter]] = current_app.extensions.setdefault(KEPT, {})
    # Read before the newsletter: a change committed meanwhile makes this entry stale at once.
    edits, now = newsletters.edits(), time.monotonic()
    entry = kept.get(slug)
    if not fresh and entry is not None and entry[0] == edits and now < entry[1]:
        return entry[2], True
    with get_db().reader() as session:
        newsletter = newsletter_for_signup(session, slug)
    if newsletter is not None:
        kept[slug] = (edits, now + KEEP_SECONDS, newsletter)
    return newsletter, False


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
