"""Public pages: front page and signup, confirm, unsubscribe (RFC 8058), preferences.

Every link a reader gets carries a signed token; a bad one gets a 400 page, a genuine
one whose reader was erased a 404 page, and neither changes anything. GET never
changes state. Every signed page is rate limited per client IP (429 page, nothing
changed). Only the one-click unsubscribe POST is exempt from CSRF: it can do nothing but
unsubscribe the reader its token names.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from contextlib import suppress

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    request,
)
from flask_limiter.errors import RateLimitExceeded
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from werkzeug.wrappers import Response as BaseResponse

from digest.core.extensions import csrf_exempt, db_session, limiter
from digest.core.models import ConsentSource, Issue, IssueStatus, Newsletter, Subscription
from digest.core.tokens import CONFIRM_MAX_AGE, BadToken, ClickSigner, ExpiredToken, Purpose
from digest.core.validation import Invalid
from digest.domain import archive, engagement, links
from digest.domain.newsletters import find_newsletter
from digest.domain.subscribers import privacy, signup
from digest.domain.subscribers.signup import ConfirmResult, LinkGone, Signup, WithdrawalChannel
from digest.engine.clicks import recorder
from digest.engine.transactional import wake
from digest.mail.tracking import OPEN_LINK
from digest.web.language import speak, translated, translated_errors
from digest.web.signup import client_ip, run_signup, signup_limit, signup_newsletter
from digest.web.unavailable import TRY_AGAIN, retry_after
from digest.web.unavailable import unavailable as database_unavailable

bp = Blueprint("public", __name__)

# Per client IP, shared by every page a signed link opens and what its buttons send: ample
# for a reader, little for a script trying tokens. The RFC 8058 one-click POST comes from
# mail providers' servers, each sending for many readers, so its own budget is generous.
link_limit = limiter.shared_limit(lambda: current_app.config["LINK_RATE_LIMIT"], scope="signed-link")
one_click_limit = limiter.shared_limit(
    lambda: current_app.config["ONE_CLICK_RATE_LIMIT"], scope="one-click"
)


def _latest_issue(newsletter: Newsletter) -> Issue | None:
    return (
        db_session()
        .scalars(
            select(Issue)
            .where(Issue.newsletter_id == newsletter.id, Issue.status == IssueStatus.SENT)
            .order_by(Issue.sent_at.desc(), Issue.id.desc())
            .limit(1)
        )
        .first()
    )


def _front_page(
    newsletter: Newsletter | None,
    form: Mapping[str, object] | None = None,
    errors: dict[str, str] | None = None,
    status: int = 200,
    *,
    unavailable: bool = False,
) -> tuple[str, int]:
    latest = _latest_issue(newsletter) if newsletter else None
    return render_template(
        "public/index.html",
        newsletter=newsletter,
        consent_text=signup.consent_text(current_app.config, newsletter) if newsletter else "",
        latest=latest,
        latest_summary=archive.summary(current_app.config, latest) if latest else "",
        latest_day=archive.local_date(newsletter, latest.sent_at) if newsletter and latest else "",
        latest_url=links.issue_url(current_app.config, newsletter.slug, latest.slug)
        if newsletter and latest
        else None,
        form=form or {},
        errors=errors or {},
        unavailable=translated(TRY_AGAIN) if unavailable else "",
    ), status


def _attached(newsletter: Newsletter) -> Newsletter:
    # The signup read it in a session now closed; the page may follow its relationships.
    return db_session().merge(newsletter, load=False)


@bp.get("/")
def index() -> tuple[str, int]:
    """The front page: what the newsletter is, its latest issue, the signup form."""
    newsletter = find_newsletter(db_session())
    if newsletter is not None:
        speak(newsletter.language)
    return _front_page(newsletter)


@bp.post("/subscribe")
@signup_limit
def subscribe() -> tuple[str, int] | tuple[str, int, dict[str, str]]:
    """Take a signup from the form; the same answer whatever the address's state."""
    newsletter = signup_newsletter(request.form.get("newsletter"))
    if newsletter is None:
        abort(404)
    speak(newsletter.language)
    form = request.form
    wanted = Signup(
        email=form.get("email", ""),
        name=form.get("name", ""),
        sections=form.getlist("sections") if newsletter.sections else None,
        consent=form.get("consent") == "yes",
        consent_version=form.get("consent_version"),
        honeypot=form.get("website", ""),
        source=ConsentSource.FORM,
        ip=client_ip(),
        user_agent=request.user_agent.string,
    )
    values = {"email": wanted.email, "name": wanted.name, "sections": form.getlist("sections"),
              "consent": wanted.consent}
    try:
        run_signup(newsletter, wanted)
    except Invalid as exc:
        return _front_page(_attached(newsletter), values, translated_errors(exc.errors), 400)
    except OperationalError as exc:
        # Nothing was recorded: the form comes back filled in, to send again in a moment.
        database_unavailable(exc)
        page, status = _front_page(_attached(newsletter), values, status=503, unavailable=True)
        return page, status, retry_after()
    return render_template("public/check_inbox.html", newsletter=newsletter), 200


@bp.after_request
def _private(response: Response) -> Response:
    # Pages opened from a signed link show one reader's data: no caching, no indexing.
    if request.view_args and "token" in request.view_args:
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Robots-Tag"] = "noindex"
    return response


@bp.errorhandler(RateLimitExceeded)
def _too_many(_error: RateLimitExceeded) -> tuple[str, int]:
    return render_template("public/too_many.html"), 429


@bp.errorhandler(BadToken)
def _bad_link(_error: BadToken) -> tuple[str, int]:
    return render_template("public/link_error.html", gone=False), 400


@bp.errorhandler(LinkGone)
def _gone_link(_error: LinkGone) -> tuple[str, int]:
    return render_template("public/link_error.html", gone=True), 404


def _subscription(purpose: Purpose, token: str, **options: bool) -> Subscription:
    subscription = signup.from_token(db_session(), current_app.config, purpose, token, **options)
    speak(subscription.newsletter.language)
    return subscription


def _expired(token: str) -> tuple[str, int]:
    return render_template(
        "public/confirm_expired.html", token=token, expires_days=CONFIRM_MAX_AGE // 86400
    ), 410


_PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")


@bp.get("/c/<token>", defaults={"ref": ""})
@bp.get("/c/<token>/<ref>")
def click(token: str, ref: str) -> BaseResponse:
    """Send a reader on to the link a click link names, at once, and record the click;
    a tampered or unknown link goes to this site's front page, never elsewhere."""
    config = current_app.config
    clicks = recorder(current_app)
    try:
        issue_id, delivery_id, link = ClickSigner(config["SECRET_KEY"]).read(token, ref)
    except BadToken:
        return _no_store(redirect(links.absolute(config, "/"), 302))
    machine = engagement.request_machine(
        request.method, request.user_agent.string, request.remote_addr, link
    )
    if link == OPEN_LINK:
        clicks.record(issue_id, delivery_id, link, machine, request.remote_addr)
        return _no_store(Response(_PIXEL, 200, mimetype="image/gif"))
    target = clicks.target(issue_id, link)
    if target is None:
        return _no_store(redirect(links.absolute(config, "/"), 302))
    clicks.record(issue_id, delivery_id, link, machine, request.remote_addr)
    return _no_store(redirect(target, 302))


def _no_store(response: BaseResponse) -> BaseResponse:
    response.headers["Cache-Control"] = "no-store"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/confirm/<token>")
@link_limit
def confirm_page(token: str) -> tuple[str, int]:
    """Show the Confirm button (scanners fetch GETs, so this changes nothing)."""
    try:
        subscription = _subscription(Purpose.CONFIRM, token)
    except ExpiredToken:
        _subscription(Purpose.CONFIRM, token, allow_expired=True)
        return _expired(token)
    return render_template(
        "public/confirm.html",
        subscription=subscription,
        newsletter=subscription.newsletter,
        waiting=signup.awaiting_confirmation(subscription),
        asked=signup.asked_changes(
            subscription, signup.consent_named(current_app.config, token)
        ),
        token=token,
    ), 200


@bp.post("/confirm/<token>")
@link_limit
def confirm(token: str) -> tuple[str, int]:
    """Confirm the signup a link names (idempotent)."""
    session = db_session()
    try:
        subscription = _subscription(Purpose.CONFIRM, token, for_update=True)
    except ExpiredToken:
        _subscription(Purpose.CONFIRM, token, allow_expired=True)
        return _expired(token)
    result = signup.confirm(
        session, current_app.config, subscription, client_ip(), request.user_agent.string,
        consent_id=signup.consent_named(current_app.config, token),
    )
    session.commit()
    return render_template(
        "public/confirmed.html",
        result=result.value,
        newsletter=subscription.newsletter,
        preferences_url=links.preferences_url(current_app.config, subscription.uid)
        if result in (ConfirmResult.CONFIRMED, ConfirmResult.ALREADY_CONFIRMED)
        else None,
    ), 200


@bp.post("/confirm/<token>/renew")
@link_limit
@signup_limit
def renew(token: str) -> tuple[str, int]:
    """Send a fresh confirmation link after an expired one."""
    session = db_session()
    subscription = _subscription(Purpose.CONFIRM, token, for_update=True, allow_expired=True)
    signup.renew_confirmation(session, subscription)
    session.commit()
    wake(current_app)
    return render_template("public/check_inbox.html", newsletter=subscription.newsletter), 200


def _unsubscribe_page(
    subscription: Subscription, token: str, *, just_now: bool, human: bool
) -> str:
    return render_template(
        "public/unsubscribe.html",
        subscription=subscription,
        token=token,
        newsletter=subscription.newsletter,
        consent_text=signup.consent_text(current_app.config, subscription.newsletter),
        just_now=just_now,
        # The one-click POST from a mail provider gets no form, hence no session cookie.
        offer_resubscribe=human,
        preferences_url=links.preferences_url(current_app.config, subscription.uid),
    )


@bp.get("/unsubscribe/<token>")
@link_limit
def unsubscribe_page(token: str) -> str:
    """Show the Unsubscribe (or, afterwards, Resubscribe) button."""
    subscription = _subscription(Purpose.UNSUBSCRIBE, token)
    return _unsubscribe_page(subscription, token, just_now=False, human=True)


@bp.post("/unsubscribe/<token>")
@csrf_exempt
@one_click_limit
def unsubscribe(token: str) -> tuple[str, int]:
    """RFC 8058 one-click unsubscribe, and the page's button: 200, no redirect, no cookie."""
    if request.form.get("List-Unsubscribe") != "One-Click":
        with suppress(BadToken, LinkGone):  # a broken link gets it in the default language
            _subscription(Purpose.UNSUBSCRIBE, token)
        return render_template("public/unsubscribe_bad_request.html"), 400
    session = db_session()
    subscription = _subscription(Purpose.UNSUBSCRIBE, token, for_update=True)
    human = request.form.get("via") == "page"
    channel = WithdrawalChannel.PAGE if human else WithdrawalChannel.ONE_CLICK
    signup.unsubscribe(session, subscription, channel)
    session.commit()
    return _unsubscribe_page(subscription, token, just_now=True, human=human), 200


@bp.post("/unsubscribe/<token>/resubscribe")
@link_limit
def resubscribe(token: str) -> tuple[str, int]:
    """Subscribe again from the unsubscribe link: a new consent, confirmed by the link."""
    session = db_session()
    subscription = _subscription(Purpose.UNSUBSCRIBE, token, for_update=True)
    result = signup.resubscribe(
        session, current_app.config, subscription, client_ip(), request.user_agent.string
    )
    session.commit()
    return render_template(
        "public/resubscribed.html",
        result=result.value,
        newsletter=subscription.newsletter,
        preferences_url=links.preferences_url(current_app.config, subscription.uid),
    ), 200


def _preferences_page(
    subscription: Subscription,
    token: str,
    *,
    notice: str | None = None,
    errors: dict[str, str] | None = None,
    form: Mapping[str, object] | None = None,
    status: int = 200,
) -> tuple[str, int]:
    chosen = [s.slug for s in subscription.sections] or [
        s.slug for s in subscription.newsletter.sections
    ]
    return render_template(
        "public/preferences.html",
        subscription=subscription,
        subscriber=subscription.subscriber,
        newsletter=subscription.newsletter,
        token=token,
        notice=notice,
        errors=errors or {},
        form=form or {"name": subscription.subscriber.name, "sections": chosen},
        consent_text=signup.consent_text(current_app.config, subscription.newsletter),
        unsubscribe_url=links.unsubscribe_url(current_app.config, subscription.uid),
    ), status


@bp.get("/preferences/<token>")
@link_limit
def preferences(token: str) -> tuple[str, int]:
    """Show the preference center of the subscription a link names."""
    return _preferences_page(_subscription(Purpose.PREFERENCES, token), token)


@bp.post("/preferences/<token>")
@link_limit
def preferences_action(token: str) -> tuple[str, int]:
    """Save name and sections, pause, resume, unsubscribe or resubscribe."""
    session = db_session()
    subscription = _subscription(Purpose.PREFERENCES, token, for_update=True)
    action = request.form.get("action", "")
    if action == "save":
        form = {"name": request.form.get("name", ""), "sections": request.form.getlist("sections")}
        try:
            signup.update_preferences(
                session, subscription, str(form["name"]), request.form.getlist("sections")
            )
        except Invalid as exc:
            session.rollback()
            errors = translated_errors(exc.errors)
            return _preferences_page(subscription, token, errors=errors, form=form, status=400)
    elif action in ("track", "no-track"):
        engagement.set_tracking(subscription, allowed=action == "track")
    elif action == "pause":
        signup.pause(session, subscription)
    elif action == "resume":
        signup.resume(session, subscription)
    elif action == "unsubscribe":
        signup.unsubscribe(session, subscription, WithdrawalChannel.PREFERENCES)
    elif action == "resubscribe":
        result = signup.resubscribe(
            session, current_app.config, subscription, client_ip(), request.user_agent.string
        )
        if result is ConfirmResult.SUPPRESSED:
            action = "suppressed"
    else:
        abort(400, description="Unknown action.")
    session.commit()
    return _preferences_page(subscription, token, notice=action)


@bp.get("/preferences/<token>/data.json")
@link_limit
def download_data(token: str) -> Response:
    """Everything stored about the reader, as a JSON download."""
    subscription = _subscription(Purpose.PREFERENCES, token)
    data = privacy.personal_data(db_session(), current_app.config, subscription.subscriber)
    response = Response(
        json.dumps(data, indent=2, ensure_ascii=False) + "\n", mimetype="application/json"
    )
    response.headers["Content-Disposition"] = 'attachment; filename="my-newsletter-data.json"'
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/preferences/<token>/delete")
@link_limit
def delete_page(token: str) -> str:
    """The confirmation step before erasing the reader."""
    subscription = _subscription(Purpose.PREFERENCES, token)
    return render_template(
        "public/delete.html",
        subscription=subscription,
        newsletter=subscription.newsletter,
        subscriber=subscription.subscriber,
        token=token,
    )


@bp.post("/preferences/<token>/delete")
@link_limit
def delete(token: str) -> str:
    """Erase the reader: only a keyed hash stays, in the suppression list."""
    session = db_session()
    subscription = _subscription(Purpose.PREFERENCES, token, for_update=True)
    newsletter_name = subscription.newsletter.name
    privacy.erase(session, current_app.config, subscription.subscriber)
    session.commit()
    return render_template("public/deleted.html", newsletter_name=newsletter_name)

