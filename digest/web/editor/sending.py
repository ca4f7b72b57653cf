"""The sending view: an issue's live progress, what an editor does to a send (pause, resume,
cancel, resend), and the issue's record once it is sent.

The page and progress.json are built from one summary (`summary()`), so the numbers a page
shows without JavaScript and those digest/static/editor.js polls every second agree.
Every action calls one digest.domain.issues function; a refusal is flashed with its reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, flash, jsonify, redirect, render_template, url_for
from flask_login import current_user
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from digest.core.db import utcnow
from digest.core.extensions import db_session
from digest.core.models import BounceKind, DeliveryState, Issue, IssueStatus
from digest.domain import issues, reports
from digest.domain.issues import IssueError, Progress
from digest.web.editor import bp, commit_change, engagement, issue_or_404, refusal
from digest.web.editor.times import local_text, workspace_zone

# Statuses in which the numbers can still change by themselves, so the page polls.
LIVE = (IssueStatus.SENDING, IssueStatus.PAUSED)
RESENDABLE = (IssueStatus.SENDING, IssueStatus.PAUSED, IssueStatus.SENT)
# Statuses that stand still long enough to list the failed and unclear deliveries.
RECORDED = (IssueStatus.PAUSED, IssueStatus.SENT, IssueStatus.CANCELLED)

# The rows of the counts table: key, label, help; keys match progress.json's counts.
COUNT_ROWS = (
    ("pending", "Waiting", "not sent yet"),
    ("in_flight", "Being sent", "claimed by a sender or on their way to the mail server"),
    ("sent", "Sent", "accepted by the readers' mail servers"),
    ("retrying", "Retrying", "refused for now (4xx); tried again later"),
    ("gave_up", "Failed after retries", "refused for now every time, until no attempt was left"),
    ("failed_perm", "Refused for good", "the address does not take mail (bounced; now suppressed)"),
    ("unknown", "Unclear", "the connection broke after the message went out: maybe delivered"),
    ("skipped", "Skipped", "unsubscribed or suppressed before their turn"),
    ("no_post", "Skipped: no post", "none of the sections they chose has a post in this issue"),
)
# How the record names what happened to a delivery, and what came back about it.
STATE_TEXT = {
    DeliveryState.FAILED_TEMP: "failed for now",
    DeliveryState.FAILED_PERM: "refused for good",
    DeliveryState.UNKNOWN: "unclear",
    DeliveryState.SENT: "sent",
    DeliveryState.SKIPPED: "skipped",
    DeliveryState.PENDING: "waiting",
    DeliveryState.CLAIMED: "being sent",
    DeliveryState.SENDING: "being sent",
}
BOUNCE_TEXT = {
    BounceKind.HARD: "hard bounce (address does not exist)",
    BounceKind.SOFT: "soft bounce (failed for now)",
    BounceKind.COMPLAINT: "spam complaint",
    BounceKind.SENDER: "refused for our reasons (policy, content)",
}


def _when(moment: dt.datetime | None) -> str | None:
    return local_text(moment, precision="second") if moment else None


def duration_text(seconds: float) -> str:
    """Return a duration as "45 s", "2 min 5 s" or "1 h 3 min"."""
    whole = max(round(seconds), 0)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes} min"
    if minutes:
        return f"{minutes} min {secs} s"
    return f"{secs} s"


def rate_text(rate: float | None) -> str:
    """Return a send rate as "12.5 messages a second"."""
    if rate is None:
        return "–"
    return f"{rate:.1f} {'message' if round(rate, 1) == 1 else 'messages'} a second"


def pause_explanation(reason: str | None) -> str:
    """Return a sentence telling the editor why the issue is paused and what to do."""
    if not reason or reason.startswith("Paused "):
        return "An editor paused this issue. Nothing more goes out until someone resumes it."
    lowered = reason.lower()
    if "login" in lowered or "authentic" in lowered:
        advice = ("The mail server refused our login: the SMTP user name or password "
                  "(DIGEST_SMTP_URL) is wrong or was changed. Once an admin has fixed it, resume.")
    elif "tls" in lowered:
        advice = ("The secure (TLS) connection to the mail server failed. Once an admin has fixed "
                  "the SMTP settings, resume.")
    elif "5.7." in reason or "policy" in lowered:
        advice = ("The mail server refused the issue for policy reasons (spam filter, sender "
                  "not allowed). Check the content and the sender settings, then resume.")
    elif reason.startswith("The issue cannot be sent"):
        advice = "The issue itself must be fixed before it can go out; then resume."
    else:
        advice = "Something on our side stopped the send. Once it is fixed, resume."
    return (f"Sending stopped by itself. {advice} No reader was marked failed, and nobody "
            "gets the issue twice.")


def _status_text(issue: Issue, progress: Progress, now: dt.datetime) -> str:
    text = _status_sentence(issue, progress, now)
    no_post = progress.counts.no_post
    if no_post:
        text += f" {no_post:,} skipped: no post for their sections."
    return text


def _status_sentence(issue: Issue, progress: Progress, now: dt.datetime) -> str:
    counts = progress.counts
    status = progress.status
    if status is IssueStatus.DRAFT:
        return "Draft: this issue is not scheduled yet."
    if status is IssueStatus.SCHEDULED:
        if issue.held:
            return f"Scheduled for {_when(issue.scheduled_at)}, but held: it does not go out until released."
        if issue.scheduled_at and issue.scheduled_at <= now:
            return "Starting: the scheduler prepares the deliveries and starts sending within a minute."
        return f"Scheduled for {_when(issue.scheduled_at)}."
    if status is IssueStatus.SENDING:
        return f"Sending: {counts.done:,} of {counts.total:,} deliveries done."
    if status is IssueStatus.PAUSED:
        return (f"Paused: {counts.done:,} of {counts.total:,} deliveries done; nothing more goes out "
                "until it is resumed.")
    if status is IssueStatus.SENT and counts[DeliveryState.UNKNOWN]:
        unclear = counts[DeliveryState.UNKNOWN]
        return (f"Sent — {unclear:,} unclear: {counts[DeliveryState.SENT]:,} of {counts.total:,} "
                f"readers got it, and for {unclear:,} the end of the message went out but no reply "
                "came back. Resend to the unclear below if they should have it (some may get it twice).")
    if status is IssueStatus.SENT:
        return f"Sent: {counts[DeliveryState.SENT]:,} of {counts.total:,} readers got it."
    return (f"Cancelled: {counts[DeliveryState.SENT]:,} readers got it before it was cancelled; "
            f"{counts.open:,} will not.")


def actions(status: IssueStatus, counts: dict[str, int]) -> list[str]:
    """Return the actions that fit an issue now, in the order the page shows them."""
    shown = []
    if status is IssueStatus.SENDING:
        shown.append("pause")
    if status is IssueStatus.PAUSED:
        shown.append("resume")
    if status in RESENDABLE and counts["failed"]:
        shown.append("resend_failed")
    if status in RESENDABLE and counts["unknown"]:
        shown.append("resend_unknown")
    if status in LIVE:
        shown.append("cancel")
    return shown


def summary(issue: Issue, progress: Progress, now: dt.datetime | None = None) -> dict[str, Any]:
    """Return everything the page and progress.json show about a send, JSON-ready."""
    now = now or utcnow()
    by_state = progress.counts.by_state
    retrying = progress.counts.retrying
    counts = {
        "pending": by_state[DeliveryState.PENDING],
        "in_flight": by_state[DeliveryState.CLAIMED] + by_state[DeliveryState.SENDING],
        "sent": by_state[DeliveryState.SENT],
        "retrying": retrying,
        "gave_up": by_state[DeliveryState.FAILED_TEMP] - retrying,
        "failed_perm": by_state[DeliveryState.FAILED_PERM],
        "unknown": by_state[DeliveryState.UNKNOWN],
        "skipped": by_state[DeliveryState.SKIPPED] - progress.counts.no_post,
        "no_post": progress.counts.no_post,
        "failed": by_state[DeliveryState.FAILED_TEMP] + by_state[DeliveryState.FAILED_PERM],
    }
    total, done = progress.counts.total, progress.counts.done
    due = (issue.status is IssueStatus.SCHEDULED and not issue.held
           and issue.scheduled_at is not None and issue.scheduled_at <= now)
    sending = progress.status is IssueStatus.SENDING
    finished = issue.sent_at or issue.cancelled_at
    return {
        "issue_id": issue.id,
        "status": progress.status.value,
        "status_label": progress.label,
        "status_text": _status_text(issue, progress, now),
        "live": progress.status in LIVE or due,
        "total": total,
        "done": done,
        "percent": round(100.0 * progress.fraction, 1) if total else 0.0,
        "counts": counts,
        "rate": round(progress.rate, 2) if sending and progress.rate is not None else None,
        "rate_text": rate_text(progress.rate if sending else None),
        "eta_seconds": round(progress.eta_seconds) if sending and progress.eta_seconds is not None else None,
        "eta_text": (f"about {duration_text(progress.eta_seconds)} left"
                     if sending and progress.eta_seconds is not None else "–"),
        "obstacle_text": "; ".join(o.describe(now, ZoneInfo(workspace_zone()))
                                   for o in progress.obstacles) or None,
        "pause_reason": progress.pause_reason if progress.status is IssueStatus.PAUSED else None,
        "pause_explanation": (pause_explanation(progress.pause_reason)
                              if progress.status is IssueStatus.PAUSED else None),
        "started_at": issue.started_at.isoformat() if issue.started_at else None,
        "started_text": _when(issue.started_at),
        "finished_at": finished.isoformat() if finished else None,
        "finished_text": _when(finished),
        "actions": actions(progress.status, counts),
    }


@bp.get("/issues/<int:issue_id>/sending")
def issue_sending(issue_id: int) -> str:
    """Show an issue's send: live progress, the actions that fit, and its record once sent."""
    dbs = db_session()
    issue = issue_or_404(issue_id)
    progress = issues.issue_progress(
        dbs, issue_id, heartbeat_seconds=current_app.config["HEARTBEAT_SECONDS"]
    )
    record = None
    clicks: dict[str, Any] = {"engagement": None}
    if issue.status in RECORDED and issue.started_at is not None:
        record = reports.issue_record(dbs, issue)
    if issue.started_at is not None:
        clicks = engagement.report_view(issue)
    return render_template("editor/issue_sending.html", issue=issue, view=summary(issue, progress),
                           record=record, count_rows=COUNT_ROWS, state_text=STATE_TEXT,
                           bounce_text=BOUNCE_TEXT, duration_text=duration_text, rate_text=rate_text,
                           **clicks)


@bp.get("/issues/<int:issue_id>/progress.json")
def sending_progress(issue_id: int) -> Response:
    """Return an issue's progress as JSON (polled by the sending page)."""
    issue = issue_or_404(issue_id)
    progress = issues.issue_progress(
        db_session(), issue_id, heartbeat_seconds=current_app.config["HEARTBEAT_SECONDS"]
    )
    return jsonify(summary(issue, progress))


def _act(issue_id: int, change: Callable[[Session], object], done: str) -> Response:
    issue_or_404(issue_id)
    commit_change(change, done, (IssueError,))
    return redirect(url_for("editor.issue_sending", issue_id=issue_id))


@bp.post("/issues/<int:issue_id>/sending/pause")
def sending_pause(issue_id: int) -> Response:
    """Pause a sending issue; senders stop before their next message."""
    return _act(issue_id, lambda dbs: issues.pause_issue(dbs, issue_id, f"Paused by {current_user.email}."),
                "Paused: senders stop before their next message. Resume whenever you are ready.")


@bp.post("/issues/<int:issue_id>/sending/resume")
def sending_resume(issue_id: int) -> Response:
    """Resume a paused issue where it stopped."""
    return _act(issue_id, lambda dbs: issues.resume_issue(dbs, issue_id),
                "Sending again: the issue carries on where it stopped.")


@bp.post("/issues/<int:issue_id>/sending/cancel")
def sending_cancel(issue_id: int) -> Response:
    """Cancel an issue that is not sent yet; readers not yet mailed will not get it."""
    return _act(issue_id, lambda dbs: issues.cancel_issue(dbs, issue_id),
                "Cancelled: readers who have not got the issue yet will not get it.")


def _resend(issue_id: int, resend: Callable[[Session, int], int], what: str, caveat: str) -> Response:
    issue_or_404(issue_id)
    dbs = db_session()
    try:
        count = resend(dbs, issue_id)
    except IssueError as exc:
        dbs.rollback()
        flash(refusal(exc), "error")
    else:
        dbs.commit()
        if count:
            noun = "delivery" if count == 1 else "deliveries"
            flash(f"Queued {count:,} {what} {noun} again. {caveat}", "success")
        else:
            flash(f"There are no {what} deliveries to send again: nothing changed.", "warning")
    return redirect(url_for("editor.issue_sending", issue_id=issue_id))


@bp.post("/issues/<int:issue_id>/sending/resend-failed")
def sending_resend_failed(issue_id: int) -> Response:
    """Queue the issue again for readers whose delivery failed."""
    return _resend(issue_id, issues.resend_failed, "failed",
                   "Addresses suppressed since (hard bounces) are skipped.")


@bp.post("/issues/<int:issue_id>/sending/resend-unknown")
def sending_resend_unknown(issue_id: int) -> Response:
    """Queue the issue again for readers whose delivery is unclear (they may get it twice)."""
    return _resend(issue_id, issues.resend_unknown, "unclear",
                   "Some of these readers may get the issue twice.")
