"""Issues: the list with the weekly schedule, building, previewing, test sends, scheduling.

The preview shows the bytes `digest issue render` writes (digest.domain.issue_mail, the path
every send takes); its HTML is served alone into a sandboxed iframe, under the outbox
viewer's Content-Security-Policy.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from flask import (
    Flask,
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from limits import parse_many
from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from digest.core.db import utcnow
from digest.core.extensions import current_app_object, db_session, limiter
from digest.core.models import (
    DeliveryState,
    Issue,
    Newsletter,
    Subscriber,
    Subscription,
    SubscriptionStatus,
)
from digest.core.validation import Invalid, as_id
from digest.domain import deliveries, issues, newsletters, reports
from digest.domain.issue_mail import (
    Combination,
    Preview,
    parse_combination,
    prepare_issue,
    preview_for_address,
    preview_for_sections,
    reach_warnings,
    section_combinations,
    test_message,
)
from digest.mail import outbox
from digest.mail.mailer import mailer_for
from digest.mail.markdown import render_markdown
from digest.mail.render import NotSendable, check_sendable
from digest.mail.transport import SendError
from digest.web.editor import bp, commit_change, int_arg, issue_or_404, newsletter_or_409, refusal
from digest.web.editor.outbox import html_policy
from digest.web.editor.times import local_text

# The address of a preview of a section combination (no subscriber has it; no name).
PREVIEW_ADDRESS = "reader@example.com"
WIDTHS = {"desktop": 700, "phone": 375}
PAGE = 50  # issues per page of the list: about a year of weekly issues


def _app() -> Flask:
    app: Flask = current_app_object()
    return app


@bp.get("/issues")
def issues_list() -> str:
    """List every issue, with the weekly schedule, its next slot and what it did lately."""
    newsletter = g.newsletter
    if newsletter is None:
        return render_template("editor/issues.html", items=[])
    dbs = db_session()
    items = issues.list_issues(dbs, newsletter.id, before=int_arg("before"), limit=PAGE + 1)
    older = items[PAGE - 1].id if len(items) > PAGE else None
    items = items[:PAGE]
    return render_template(
        "editor/issues.html",
        items=items,
        older=older,
        delivered=deliveries.sent_of_total(dbs, [i.id for i in items if i.started_at is not None]),
        weekdays=newsletters.WEEKDAYS,
        ahead=issues.outlook(dbs, newsletter),
        runs=issues.schedule_runs(dbs, newsletter.id),
    )


@bp.post("/issues/new")
def issue_new() -> Response:
    """Create a draft carrying every post published since the last issue."""
    newsletter = newsletter_or_409()
    dbs = db_session()
    issue = issues.create_issue(dbs, newsletter)
    dbs.commit()
    carried = len(issue.issue_posts)
    posts = "the post" if carried == 1 else f"the {carried} posts"
    flash(f"A new draft carries {posts} published since the last issue." if carried
          else "A new draft: no post was published since the last issue, so add posts below.", "success")
    return redirect(url_for("editor.issue_edit", issue_id=issue.id))


@dataclass(frozen=True)
class _ScheduleForm:
    """The schedule form as the editor sent it, and what was wrong with which field."""

    at: str
    tz: str
    field: str  # "at" or "tz"
    error: str


def _send_blocker(issue: Issue) -> str:
    """Return why "Send now" would be refused at once (shown before any confirmation), or ""."""
    if not issue.subject.strip():
        return "This issue has no subject yet: write one above and save it, then send."
    if not issue.issue_posts:
        return "This issue carries no posts yet: add at least one, then send."
    return ""


def _edit_page(issue: Issue, data: issues.IssueInput | None = None, errors: dict[str, str] | None = None,
               status: int = 200, schedule: _ScheduleForm | None = None) -> tuple[str, int]:
    newsletter = newsletter_or_409()
    dbs = db_session()
    data = data or issues.IssueInput(issue.subject, issue.preheader, issue.intro_md)
    zone_name = issue.schedule_tz or newsletter.time_zone
    slot = issues.next_weekly_slot(newsletter)
    at = issue.scheduled_at or (slot.send_at if slot else utcnow() + dt.timedelta(hours=1))
    local_at = f"{at.astimezone(ZoneInfo(zone_name)):%Y-%m-%d %H:%M}"
    schedule = schedule or _ScheduleForm(local_at, zone_name, "", "")
    editable = issue.status in issues.EDITABLE
    return render_template(
        "editor/issue_edit.html",
        issue=issue,
        data=data,
        errors=errors or {},
        editable=editable,
        deletable=issue.status in issues.DELETABLE and issue.fanned_out_at is None,
        addable=issues.addable_posts(dbs, newsletter.id, issue.id, request.args.get("find", "")) if editable else [],
        find=request.args.get("find", "").strip(),
        counts=None if editable else deliveries.counts(dbs, issue.id),
        sent_state=DeliveryState.SENT,
        intro_html=render_markdown(data.intro_md or ""),
        zone_name=zone_name,
        schedule=schedule,
        send_blocker=_send_blocker(issue),
        time_zones=newsletters.time_zones(),
        warnings=reach_warnings(dbs, issue.id, current_app.config) if editable else [],
    ), status


@bp.route("/issues/<int:issue_id>", methods=["GET", "POST"])
def issue_edit(issue_id: int) -> Response | tuple[str, int]:
    """Show an issue (its form while it can change); save its subject, preheader and intro."""
    issue = issue_or_404(issue_id)
    if request.method == "GET":
        return _edit_page(issue)
    data = issues.IssueInput(
        subject=request.form.get("subject", ""),
        preheader=request.form.get("preheader", ""),
        intro_md=request.form.get("intro_md", ""),
    )
    dbs = db_session()
    try:
        issues.update_issue(dbs, issue_id, data)
    except Invalid as exc:
        dbs.rollback()
        return _edit_page(issue_or_404(issue_id), data, exc.errors, 400)
    except issues.IssueError as exc:
        dbs.rollback()
        flash(refusal(exc), "error")
        return redirect(url_for("editor.issue_edit", issue_id=issue_id))
    dbs.commit()
    flash("The issue is saved.", "success")
    return redirect(url_for("editor.issue_edit", issue_id=issue_id))


def _change(issue_id: int, change: Callable[[Session], object], done: str, place: str = "") -> Response:
    """Make a change and come back to the issue with its message beside the control used."""
    issue_or_404(issue_id)
    commit_change(change, done, (issues.IssueError, Invalid), place)
    return redirect(url_for("editor.issue_edit", issue_id=issue_id) + (f"#notice-{place}" if place else ""))


def _form_id(name: str) -> int:
    value = as_id(request.form.get(name, ""))
    if value is None:
        abort(400, f"The form lacks {name}.")
    return value


@bp.post("/issues/<int:issue_id>/posts/<int:post_id>/move")
def issue_post_move(issue_id: int, post_id: int) -> Response | tuple[Response, int]:
    """Move a post one place up or down (answering JSON with the new order when asked)."""
    offset = -1 if request.form.get("direction") == "up" else 1
    if request.accept_mimetypes.best == "application/json":  # editor.js moves without a reload
        issue_or_404(issue_id)
        dbs = db_session()
        try:
            issue = issues.move_post(dbs, issue_id, post_id, offset)
        except issues.IssueError as exc:
            dbs.rollback()
            return jsonify(error=refusal(exc)), 409
        dbs.commit()
        return jsonify(post_ids=[item.post_id for item in issue.issue_posts], message="Moved."), 200
    return _change(issue_id, lambda dbs: issues.move_post(dbs, issue_id, post_id, offset),
                   "Moved.", f"post-{post_id}")


@bp.post("/issues/<int:issue_id>/posts/order")
def issue_post_order(issue_id: int) -> tuple[Response, int]:
    """Put the posts in the order a drag and drop (JSON {"post_ids": [...]}) left them;
    answer the order they now have (grouped by section), or why not."""
    issue_or_404(issue_id)
    body = request.get_json(silent=True) or {}
    ids = body.get("post_ids") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
        return jsonify(error="Send the posts' ids in their new order."), 400
    dbs = db_session()
    try:
        issue = issues.reorder_posts(dbs, issue_id, ids)
    except issues.IssueError as exc:
        dbs.rollback()
        return jsonify(error=refusal(exc)), 409
    dbs.commit()
    return jsonify(post_ids=[item.post_id for item in issue.issue_posts], message="Reordered."), 200


@bp.post("/issues/<int:issue_id>/posts/<int:post_id>/remove")
def issue_post_remove(issue_id: int, post_id: int) -> Response:
    """Take a post out of the issue (the post itself stays published)."""
    return _change(issue_id, lambda dbs: issues.remove_post(dbs, issue_id, post_id),
                   "The post is out of this issue; it stays published.", "posts")


@bp.post("/issues/<int:issue_id>/posts/add")
def issue_post_add(issue_id: int) -> Response:
    """Add a published post (moving it from another draft that carries it)."""
    post_id = _form_id("post_id")
    return _change(issue_id, lambda dbs: issues.add_post(dbs, issue_id, post_id),
                   "The post is added at the end of its section.", "add")


def _sendable(issue_id: int) -> bool:
    """Flash why the issue must not go out as it is (no postal address, HTML Gmail clips)."""
    dbs = db_session()
    try:
        check_sendable(prepare_issue(dbs, issue_id, current_app.config))
    except NotSendable as exc:
        flash(f"This issue cannot be sent: {exc}", "error@send")
        return False
    finally:
        dbs.rollback()
    return True


@bp.post("/issues/<int:issue_id>/schedule")
def issue_schedule(issue_id: int) -> Response | tuple[str, int]:
    """Schedule (or reschedule) the issue at a local date and time in a named zone."""
    issue = issue_or_404(issue_id)
    zone_name = request.form.get("tz", "").strip() or issue.newsletter.time_zone
    text = request.form.get("at", "")

    dbs = db_session()
    try:
        at = issues.schedule_issue(dbs, issue_id, issues.parse_local(text), zone_name).scheduled_at
    except issues.IssueError as exc:
        dbs.rollback()
        field = "tz" if newsletters.check_time_zone(zone_name) else "at"
        return _edit_page(issue_or_404(issue_id), schedule=_ScheduleForm(text, zone_name, field, refusal(exc)),
                          status=400)
    dbs.commit()
    flash(f"The issue is scheduled: it goes out at {local_text(at, zone_name)} ({zone_name}; {at:%Y-%m-%d %H:%M} UTC).",
          "success@schedule")
    return redirect(url_for("editor.issue_edit", issue_id=issue_id) + "#notice-schedule")


@bp.post("/issues/<int:issue_id>/unschedule")
def issue_unschedule(issue_id: int) -> Response:
    """Take a scheduled issue back to draft."""
    return _change(issue_id, lambda dbs: issues.unschedule_issue(dbs, issue_id),
                   "The issue is a draft again: it goes out only when scheduled.", "schedule")


@bp.post("/issues/<int:issue_id>/send-now")
def issue_send_now(issue_id: int) -> Response:
    """Make the issue due now and wake the clock when it runs in this process (`digest run`);
    a separate scheduler process starts it at its next tick."""
    issue_or_404(issue_id)
    back = url_for("editor.issue_edit", issue_id=issue_id) + "#notice-send"
    if not _sendable(issue_id):
        return redirect(back)
    wake: Callable[[], None] | None = current_app.extensions.get("digest.wake")
    done = ("The issue goes out now." if wake else
            f"The issue goes out now: sending starts within {current_app.config['TICK_SECONDS']:g} s.")
    dbs = db_session()
    try:
        issues.send_now(dbs, issue_id)
    except issues.IssueError as exc:
        dbs.rollback()
        flash(refusal(exc), "error@send")
        return redirect(back)
    dbs.commit()
    flash(done, "success")  # shown on the sending page, where the editor goes next
    if wake is not None:
        wake()
    return redirect(url_for("editor.issue_sending", issue_id=issue_id))


@bp.post("/issues/<int:issue_id>/hold")
def issue_hold(issue_id: int) -> Response:
    """Hold the issue (it is not sent at its time) or release it."""
    held = request.form.get("held") == "1"
    done = ("The issue is held: it will not be sent until you release it." if held
            else "The issue is released: it goes out at its time.")
    return _change(issue_id, lambda dbs: issues.set_held(dbs, issue_id, held), done, "schedule")


@bp.post("/issues/<int:issue_id>/cancel")
def issue_cancel(issue_id: int) -> Response:
    """Cancel a draft or scheduled issue; its posts can go into another issue."""
    return _change(issue_id, lambda dbs: issues.cancel_unstarted(dbs, issue_id),
                   "The issue is cancelled; its posts are free for the next one.", "send")


@bp.post("/issues/<int:issue_id>/delete")
def issue_delete(issue_id: int) -> Response:
    """Delete a draft or a cancelled issue that never started; its posts go back to the pool."""
    issue_or_404(issue_id)
    dbs = db_session()
    try:
        deleted = issues.delete_issue(dbs, issue_id)
    except issues.IssueError as exc:
        dbs.rollback()
        flash(refusal(exc), "error")
        return redirect(url_for("editor.issue_edit", issue_id=issue_id))
    dbs.commit()
    flash(f"{issues.named(deleted)} is deleted; its posts are free for another issue.", "success")
    return redirect(url_for("editor.issues_list"))


@dataclass(frozen=True)
class _Target:
    """Whose message a preview shows: a confirmed reader, or a combination of sections."""

    reader: Subscriber | None
    sections: frozenset[int]  # the combination's, when there is no reader (empty: every one)
    key: str  # the combination's key ("" for a reader)


def _preview_target(newsletter: Newsletter, combinations: list[Combination] | None) -> _Target:
    """Return the reader (?reader=ID) or section combination (?sections=KEY) to preview;
    without either, the combination most readers chose (given in combinations)."""
    reader_id = int_arg("reader")
    if reader_id is not None:
        found = db_session().scalar(
            select(Subscriber)
            .join(Subscription, Subscription.subscriber_id == Subscriber.id)
            .where(
                Subscription.id == reader_id,
                Subscription.newsletter_id == newsletter.id,
                Subscription.status == SubscriptionStatus.CONFIRMED,
            )
        )
        if found is None:
            abort(404, "There is no confirmed reader with that id.")
        return _Target(found, frozenset(), "")
    key = request.args.get("sections", "")
    if not key:
        key = combinations[0].key if combinations else "all"
    sections = parse_combination(key)
    if sections is None:
        abort(404, "There is no such combination of sections.")
    return _Target(None, sections, key)


def _rendered(issue_id: int, target: _Target) -> tuple[outbox.Message, Preview]:
    if target.reader is not None:
        preview = preview_for_address(db_session(), issue_id, target.reader.email, current_app.config)
    else:
        preview = preview_for_sections(
            db_session(), issue_id, target.sections, PREVIEW_ADDRESS, current_app.config
        )
    return outbox.parse_message("preview", preview.outgoing.data), preview


@bp.get("/issues/<int:issue_id>/preview")
def issue_preview(issue_id: int) -> str:
    """Show the issue as a chosen reader or section combination receives it: HTML at desktop
    or phone width, text, size; and every combination of sections among its readers."""
    issue = issue_or_404(issue_id)
    newsletter = newsletter_or_409()
    combinations = section_combinations(db_session(), issue_id, current_app.config)
    target = _preview_target(newsletter, combinations)
    message, preview = _rendered(issue_id, target)
    report = preview.size
    search = request.args.get("q", "").strip()
    matches = reports.search_subscribers(
        db_session(), newsletter, search=search, status=SubscriptionStatus.CONFIRMED.value, limit=20
    ).rows if search else []
    view = request.args.get("view") if request.args.get("view") in WIDTHS else "desktop"
    shown = next((c for c in combinations if c.key == target.key), None)
    return render_template(
        "editor/issue_preview.html",
        issue=issue,
        message=message,
        headers=dict(message.headers),
        notes=[n for n in preview.notes if n != report.message],
        report=report,
        reader=target.reader,
        preheader=preview.preheader,
        combinations=combinations,
        combination=shown,
        target=target,
        reader_id=int_arg("reader"),
        search=search,
        matches=matches,
        view=view,
        scheme="dark" if request.args.get("scheme") == "dark" else "light",
        widths=WIDTHS,
        segments=outbox.text_segments(message.text or ""),
    )


@bp.get("/issues/<int:issue_id>/preview/html")
def issue_preview_html(issue_id: int) -> Response:
    """Serve the previewed message's HTML alone, under a CSP that runs nothing but its styles and images."""
    issue_or_404(issue_id)
    newsletter = newsletter_or_409()
    combinations = None if request.args.get("sections") or request.args.get("reader") else (
        section_combinations(db_session(), issue_id, current_app.config)
    )
    html = _rendered(issue_id, _preview_target(newsletter, combinations))[0].html or ""
    # The chosen mode, whatever the editor's own system prefers: a mail program in dark mode
    # applies the email's dark styles, one in light mode never does.
    dark = request.args.get("scheme") == "dark"
    html = html.replace("@media (prefers-color-scheme: dark)", "@media all" if dark else "@media not all")
    response = current_app.response_class(html, mimetype="text/html")
    # The preview's own issue, sanitised and script-free: its frame grows to its height.
    response.headers["Content-Security-Policy"] = html_policy(outbox.image_origins(html), measurable=True)
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


@bp.post("/issues/<int:issue_id>/test")
def issue_test_send(issue_id: int) -> Response:
    """Send the previewed combination's message to the editor's own address, marked [Test]."""
    issue_or_404(issue_id)
    key = request.form.get("sections") or "all"
    sections = parse_combination(key)
    target = url_for("editor.issue_preview", issue_id=issue_id, sections=key if sections is not None else None)
    if sections is None:
        flash("That combination of sections does not exist: pick one from the list.", "error")
        return redirect(target)
    limits = parse_many(current_app.config["TEST_SEND_RATE_LIMIT"])
    if not all(limiter.limiter.hit(item, "issue-test-send", str(current_user.id)) for item in limits):
        flash("You sent several tests in the last minutes: wait a little before the next.", "error")
        return redirect(target)
    app = _app()
    dbs = db_session()
    try:
        outgoing = test_message(dbs, issue_id, current_user.email, app.config, sections)
    finally:
        dbs.rollback()
    try:
        with mailer_for(app.config) as mailer:
            mailer.send(outgoing.envelope_from, outgoing.recipient, outgoing.data)
    except SendError as exc:
        flash(f"The test could not be sent: {exc}", "error")
        return redirect(target)
    outbox_note = "find it in the Outbox" if current_user.is_admin else "an admin finds it in the Outbox"
    where = "" if app.config.get("SMTP_URL") else f" (no SMTP server is set: {outbox_note})"
    flash(f"A test is on its way to {current_user.email}{where}.", "success")
    return redirect(target)
