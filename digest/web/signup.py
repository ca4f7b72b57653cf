"""What the front page's signup form and the JSON signup (/api/v1/subscribe) share.

Both answer alike, whatever the address's state, by construction: the request checks
what was typed and records it (digest.domain.subscribers.signup.record_signup), reading
nothing about the address, and answers at once; the engine does the rest
(digest.engine.signups). Both share one per-IP limit (DIGEST_SIGNUP_RATE_LIMIT, with
"send me a new link").
"""

from __future__ import annotations

from flask import current_app, request

from digest.core.extensions import db_session, get_db, limiter
from digest.core.models import Newsletter
from digest.core.validation import Invalid
from digest.domain.newsletters import find_newsletter
from digest.domain.subscribers.signup import Signup, record_signup
from digest.engine.transactional import wake

signup_limit = limiter.shared_limit(
    lambda: current_app.config["SIGNUP_RATE_LIMIT"], scope="signup", methods=["POST"]
)


def client_ip() -> str | None:
    """Return the requesting client's address (the forwarded one behind DIGEST_TRUSTED_PROXIES)."""
    return request.remote_addr


def signup_newsletter(slug: str | None, *, logos: bool = True) -> Newsletter | None:
    """Return the newsletter a signup names, with its sections (and the logos its page
    shows, unless logos is False), read without waiting for writers."""
    with get_db().reader() as session:
        return find_newsletter(session, slug, detached=True, logos=logos)


def run_signup(newsletter: Newsletter, signup: Signup) -> None:
    """Record a signup for the engine and commit; raise Invalid."""
    # The checks run before the first statement, so SQLite's write lock is held only for
    # the insert and the commit.
    session = db_session()
    try:
        record_signup(session, current_app.config, newsletter, signup)
        session.commit()
    except Invalid:
        session.rollback()
        raise
    wake(current_app)
