"""Subscribers: search and page through readers, one reader's record, and what editors do
to readers: add, unsubscribe, suppress, lift a manual suppression, erase, export their data.

Every change goes through digest.domain.subscribers or digest.domain.suppression; views only
parse, call, commit and say what happened.
"""

from __future__ import annotations

import json

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.models import (
    Subscriber,
    Subscription,
    SubscriptionStatus,
    Suppression,
    SuppressionReason,
)
from digest.core.validation import Invalid
from digest.domain import newsletters, reports, suppression
from digest.domain.subscribers import actions, privacy
from digest.domain.subscribers.actions import EditorAdd, EditorAddition
from digest.domain.subscribers.signup import WithdrawalChannel, unsubscribe
from digest.domain.suppression import REASON_TEXT
from digest.web.editor import admin_only, bp, get_or_404, int_arg, newsletter_or_409
from digest.web.editor.auth import safe_next

ADDED = {
    EditorAdd.INVITED: (
        ("{email} is added as pending: a confirmation email is on its way. "
        "They receive the newsletter once they confirm."),
        "success",
    ),
    EditorAdd.ALREADY_INVITED: (
        ("{email} is waiting to confirm. A confirmation email went out in the last 24 hours, "
        "so no other is sent yet."),
        "success",
    ),
    EditorAdd.CONFIRMED: (
        ("{email} is subscribed, with your note kept in the consent record. "
        "A welcome email is on its way."),
        "success",
    ),
    EditorAdd.ALREADY_SUBSCRIBED: ("{email} already receives the newsletter: nothing changed.", "warning"),
}


@bp.get("/subscribers")
def subscribers_list() -> str:
    """List readers with search, filters and keyset pages."""
    newsletter = g.newsletter
    if newsletter is None:
        return render_template("editor/subscribers.html", page=None, sections=[], statuses=[])
    dbs = db_session()
    page = reports.search_subscribers(
        dbs, newsletter, search=request.args.get("q", ""), status=request.args.get("status", ""),
        section_id=int_arg("section"), before=int_arg("before"), after=int_arg("after"),
    )
    return render_template(
        "editor/subscribers.html",
        page=page,
        sections=newsletters.sections(dbs, newsletter),
        statuses=[status.value for status in SubscriptionStatus],
    )


def _add_page(form: dict[str, object], errors: dict[str, str], status: int = 200) -> tuple[str, int]:
    newsletter = newsletter_or_409()
    return render_template(
        "editor/subscriber_new.html",
        form=form,
        errors=errors,
        sections=newsletters.sections(db_session(), newsletter),
    ), status


@bp.route("/subscribers/new", methods=["GET", "POST"])
def subscriber_new() -> Response | tuple[str, int]:
    """Add a reader: a confirmation email, or (admins) confirmed on recorded consent."""
    newsletter = newsletter_or_409()
    if request.method == "GET":
        return _add_page({"consent": "confirm", "sections": [s.slug for s in newsletter.sections]}, {})
    form = request.form
    elsewhere = form.get("consent") == "elsewhere"
    if elsewhere and not current_user.is_admin:
        abort(403, "Only an admin can record consent obtained elsewhere.")
    addition = EditorAddition(
        email=form.get("email", ""),
        name=form.get("name", ""),
        sections=form.getlist("sections") if newsletter.sections else None,
        consent_elsewhere=elsewhere,
        note=form.get("note", ""),
        recorded_by=current_user.email,
    )
    dbs = db_session()
    try:
        outcome, subscription = actions.add_by_editor(dbs, current_app.config, newsletter, addition)
    except Invalid as exc:
        dbs.rollback()
        shown = {key: form.get(key, "") for key in ("email", "name", "consent", "note")}
        return _add_page({**shown, "sections": form.getlist("sections")}, exc.errors, 400)
    dbs.commit()
    message, category = ADDED[outcome]
    flash(message.format(email=subscription.subscriber.email), category)
    return redirect(url_for("editor.subscriber_detail", subscriber_id=subscription.subscriber_id))


def _detail_page(subscriber_id: int, errors: dict[str, str] | None = None, note: str = "",
                 status: int = 200) -> tuple[str, int]:
    record = reports.subscriber_record(db_session(), current_app.config, subscriber_id)
    if record is None:
        abort(404)
    return render_template("editor/subscriber.html", record=record, errors=errors or {}, note=note,
                           reasons=REASON_TEXT), status


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber_detail(subscriber_id: int) -> tuple[str, int]:
    """Show one reader's subscriptions, consent records, deliveries and what editors can do."""
    return _detail_page(subscriber_id)


@bp.post("/subscribers/<int:subscriber_id>/subscriptions/<int:subscription_id>/unsubscribe")
def subscriber_unsubscribe(subscriber_id: int, subscription_id: int) -> Response:
    """Unsubscribe a reader from one newsletter at once (withdrawal channel "editor")."""
    dbs = db_session()
    subscription = get_or_404(Subscription, subscription_id)
    if subscription.subscriber_id != subscriber_id:
        abort(404)
    if unsubscribe(dbs, subscription, WithdrawalChannel.EDITOR):
        flash(f"{subscription.subscriber.email} is unsubscribed from {subscription.newsletter.name}: "
              "no more issues, and their consent is marked withdrawn.", "success")
    else:
        flash(f"{subscription.subscriber.email} was already unsubscribed.", "warning")
    dbs.commit()
    return redirect(url_for("editor.subscriber_detail", subscriber_id=subscriber_id))


@bp.post("/subscribers/<int:subscriber_id>/suppress")
def subscriber_suppress(subscriber_id: int) -> Response | tuple[str, int]:
    """Suppress a reader's address (reason manual, with a note): unsubscribed, never mailed again."""
    subscriber = get_or_404(Subscriber, subscriber_id)
    email, note = subscriber.email, request.form.get("note", "")
    dbs = db_session()
    try:
        entry = actions.suppress_by_editor(dbs, current_app.config, email, note, current_user.email)
    except Invalid as exc:
        dbs.rollback()
        return _detail_page(subscriber_id, exc.errors, note, 400)
    dbs.commit()
    flash(_suppressed_message(email, entry), "success")
    return redirect(url_for("editor.subscriber_detail", subscriber_id=subscriber_id))


def _suppressed_message(email: str, entry: Suppression) -> str:
    if entry.reason is not SuppressionReason.MANUAL:
        return (f"{email} was already on the suppression list ({REASON_TEXT[entry.reason]}); "
                "they are unsubscribed and never mailed.")
    return f"{email} is suppressed and unsubscribed: no email of any kind goes to it again."


@bp.get("/subscribers/<int:subscriber_id>/data.json")
def subscriber_data(subscriber_id: int) -> Response:
    """Download everything stored about a reader, as JSON (for an access request)."""
    subscriber = get_or_404(Subscriber, subscriber_id)
    data = privacy.personal_data(db_session(), current_app.config, subscriber)
    response = current_app.response_class(json.dumps(data, indent=2, ensure_ascii=False) + "\n",
                                          mimetype="application/json")
    response.headers["Content-Disposition"] = f'attachment; filename="reader-{subscriber.id}.json"'
    return response


@bp.route("/subscribers/<int:subscriber_id>/erase", methods=["GET", "POST"])
@admin_only("Only admins erase readers.")
def subscriber_erase(subscriber_id: int) -> Response | tuple[str, int]:
    """Ask for the address as confirmation, then erase the reader and their personal data."""
    subscriber = get_or_404(Subscriber, subscriber_id)
    if request.method == "GET":
        return render_template("editor/subscriber_erase.html", subscriber=subscriber, errors={}), 200
    typed = request.form.get("confirm_email", "").strip().lower()
    if typed != subscriber.email:
        errors = {"confirm_email": f"Type {subscriber.email} exactly to confirm, or go back."}
        return render_template("editor/subscriber_erase.html", subscriber=subscriber, errors=errors), 400
    email = subscriber.email
    dbs = db_session()
    privacy.erase(dbs, current_app.config, subscriber)
    dbs.commit()
    flash(f"{email} is erased. Only a hashed entry on the suppression list remains, so the address "
          "is never mailed by accident; past issues keep their delivery figures without the reader.",
          "success")
    return redirect(url_for("editor.subscribers_list"))


def _suppressions_page(errors: dict[str, str] | None = None, form: object = None,
                       looked_up: str | None = None, entry: Suppression | None = None,
                       status: int = 200) -> tuple[str, int]:
    return render_template("editor/suppressions.html", counts=reports.suppression_counts(db_session()),
                           reasons=REASON_TEXT, looked_up=looked_up, entry=entry, errors=errors or {},
                           form=form or {}), status


@bp.get("/suppressions")
def suppressions() -> tuple[str, int]:
    """The suppression list: its size by reason, a lookup, and adding an address by hand."""
    return _suppressions_page()


@bp.post("/suppressions/check")
def suppression_check() -> tuple[str, int]:
    """Say whether an address is on the suppression list, and why (POST: no address in URLs)."""
    address = request.form.get("email", "").strip()
    entry = suppression.suppression_for(db_session(), current_app.config, address) if address else None
    return _suppressions_page(looked_up=address, entry=entry)


@bp.post("/suppressions")
def suppression_add() -> Response | tuple[str, int]:
    """Suppress any address by hand (reason manual), unsubscribing its reader if there is one."""
    form = request.form
    dbs = db_session()
    try:
        entry = actions.suppress_by_editor(dbs, current_app.config, form.get("email", ""),
                                               form.get("note", ""), current_user.email)
    except Invalid as exc:
        dbs.rollback()
        return _suppressions_page(exc.errors, form, status=400)
    dbs.commit()
    flash(_suppressed_message(form.get("email", "").strip(), entry), "success")
    return redirect(url_for("editor.suppressions"))


@bp.post("/suppressions/lift")
@admin_only("Only admins lift a suppression.")
def suppression_lift() -> Response:
    """Lift a manual suppression (admins): the address may be mailed again once it signs up."""
    address = request.form.get("email", "")
    dbs = db_session()
    if suppression.lift_manual(dbs, current_app.config, address):
        dbs.commit()
        flash(f"{address.strip()} is off the suppression list. They stay unsubscribed until they "
              "sign up again or an editor adds them.", "success")
    else:
        flash(f"{address.strip()} has no manual suppression to lift (bounces, complaints and "
              "erasures cannot be lifted by hand).", "error")
    return redirect(safe_next(request.form.get("next")) if request.form.get("next")
                    else url_for("editor.suppressions"))
