"""Subscribers (read side): search, filter, page through, and one reader's record."""

from __future__ import annotations

from flask import abort, g, render_template, request

from digest import newsletters, reports
from digest.extensions import db_session
from digest.models import SubscriptionStatus
from digest.web.editor import bp, int_arg


@bp.get("/subscribers")
def subscribers_list() -> str:
    """List readers with search, filters and keyset pages."""
    newsletter = g.newsletter
    if newsletter is None:
        return render_template("editor/subscribers.html", page=None, sections=[], statuses=[])
    dbs = db_session()
    filters = {
        "search": request.args.get("q", ""),
        "status": request.args.get("status", ""),
        "section_id": int_arg("section"),
    }
    page = reports.search_subscribers(
        dbs, newsletter, before=int_arg("before"), after=int_arg("after"), **filters  # type: ignore[arg-type]
    )
    return render_template(
        "editor/subscribers.html",
        page=page,
        sections=newsletters.sections(dbs, newsletter),
        statuses=[status.value for status in SubscriptionStatus],
    )


@bp.get("/subscribers/<int:subscriber_id>")
def subscriber_detail(subscriber_id: int) -> str:
    """Show one reader's subscriptions, consent records and deliveries."""
    record = reports.subscriber_record(db_session(), subscriber_id)
    if record is None:
        abort(404)
    return render_template("editor/subscriber.html", record=record)
