"""What the front page's signup form and the JSON signup (/api/v1/subscribe) share.

Both answer alike, whatever the address's state: the same per-IP limit
(DIGEST_SIGNUP_RATE_LIMIT, shared with "send me a new link") and the same timing floor
(DIGEST_SIGNUP_MIN_SECONDS), so neither the answer nor its timing tells a known address
from a new one.
"""

from __future__ import annotations

import time

from flask import Response, after_this_request, current_app, request

from digest.core.extensions import db_session, limiter
from digest.core.models import Newsletter
from digest.core.validation import Invalid
from digest.domain.subscribers.signup import Signup, subscribe

signup_limit = limiter.shared_limit(
    lambda: current_app.config["SIGNUP_RATE_LIMIT"], scope="signup", methods=["POST"]
)


def client_ip() -> str | None:
    """Return the requesting client's address (the forwarded one behind DIGEST_TRUSTED_PROXIES)."""
    return request.remote_addr


def hold_answer() -> None:
    """Make this request's response wait until DIGEST_SIGNUP_MIN_SECONDS after now."""
    deadline = time.monotonic() + float(current_app.config["SIGNUP_MIN_SECONDS"])

    @after_this_request
    def _wait(response: Response) -> Response:
        # Runs after the page is rendered, so rendering is inside the floor too.
        remaining = deadline - time.monotonic()
        if remaining > 0:
            time.sleep(remaining)
        return response


def run_signup(newsletter: Newsletter, signup: Signup) -> None:
    """Record a signup and commit, answering no sooner than the floor; raise Invalid."""
    hold_answer()
    session = db_session()
    try:
        subscribe(session, current_app.config, newsletter, signup)
        session.commit()
    except Invalid:
        session.rollback()
        raise
    # Releasing what this signup loaded happens inside the floor too.
    session.close()
