"""The `digest issue` and `digest scheduler --once` commands."""

from __future__ import annotations

import threading

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import update
from sqlalchemy.orm import Session

from digest.core.models import Delivery, IssueStatus
from digest.domain import issues
from tests.support.apps import get_db_of
from tests.support.delivery import CONFIG, make_newsletter, per_recipient, reader_email, states
from tests.support.smtp import SMTPServer


def test_list_puts_the_id_first(runner: FlaskCliRunner, db: Session) -> None:
    """Each line of `issue list` starts with the issue id, then its status and subject."""
    setup = make_newsletter(db)
    result = runner.invoke(args=["issue", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [f"{setup.issue_id}\tdraft\t-\tOur first issue"]


def test_send_now_sends_and_shows_the_figures(smtp_app: Flask, smtp_server: SMTPServer, db: Session) -> None:
    """`issue send ID --now` fans out, sends to every reader from this process and prints the counts."""
    setup = make_newsletter(db, readers=6)
    result = smtp_app.test_cli_runner().invoke(args=["issue", "send", str(setup.issue_id), "--now"])
    assert result.exit_code == 0, result.output
    assert f"Issue {setup.issue_id}: sent, 6 deliveries" in result.output
    assert "  sent                6" in result.output
    assert per_recipient(smtp_server) == {e: 1 for e in setup.emails}


def test_send_at_a_local_time_schedules(runner: FlaskCliRunner, db: Session) -> None:
    """`--at` with `--tz` schedules the issue and says when, in UTC too."""
    setup = make_newsletter(db)
    result = runner.invoke(args=["issue", "send", str(setup.issue_id), "--at", "2030-01-07 08:00", "--tz", "Europe/Berlin"])
    assert result.exit_code == 0, result.output
    assert "scheduled for 2030-01-07 08:00 Europe/Berlin (2030-01-07 07:00 UTC)" in result.output
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SCHEDULED


def test_send_refusals_are_one_line_errors(runner: FlaskCliRunner, db: Session) -> None:
    """A skipped DST time, an unknown zone or a draft without --now/--at: a clear error, nothing changes."""
    setup = make_newsletter(db)
    cases = [
        (["--at", "2030-03-31 02:30", "--tz", "Europe/Berlin"], "does not exist in Europe/Berlin"),
        (["--at", "2030-01-07 08:00", "--tz", "Europe/Nowhere"], "Europe/Nowhere is not a time zone name"),
        ([], "use --now to send it or --at to schedule it"),
        (["--now", "--at", "2030-01-07 08:00"], "choose --now or --at"),
    ]
    for extra, message in cases:
        result = runner.invoke(args=["issue", "send", str(setup.issue_id), *extra])
        assert result.exit_code != 0 and message in result.output, result.output
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.DRAFT
    db.commit()
    assert "there is no issue 999" in runner.invoke(args=["issue", "status", "999"]).output


def test_status_lists_unclear_deliveries(runner: FlaskCliRunner, db: Session) -> None:
    """`issue status` prints counts per state and names every unclear delivery's reader."""
    setup = make_newsletter(db, readers=3)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.execute(update(Delivery).where(Delivery.subscriber_id == 2).values(state="unknown", smtp_response="lost after DATA"))
    db.execute(update(Delivery).where(Delivery.subscriber_id != 2).values(state="sent"))
    assert issues.finish_issue(db, setup.issue_id)
    db.commit()
    result = runner.invoke(args=["issue", "status", str(setup.issue_id)])
    assert result.exit_code == 0
    assert "  sent                2" in result.output and "  unknown             1" in result.output
    assert reader_email(1) in result.output and "lost after DATA" in result.output


def test_status_follows_a_send_and_ends_when_it_stops(app: Flask, runner: FlaskCliRunner, db: Session) -> None:
    """`issue status` (without --once) follows a sending issue and returns by itself once
    it is paused, with the reason and a last line saying where the issue stands."""
    setup = make_newsletter(db, readers=2)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()

    def pause_later() -> None:
        with get_db_of(app).session() as session:
            issues.pause_issue(session, setup.issue_id, "the editor spotted a typo")
            session.commit()

    timer = threading.Timer(1.5, pause_later)
    timer.start()
    results: list = []
    follower = threading.Thread(
        target=lambda: results.append(runner.invoke(args=["issue", "status", str(setup.issue_id)])),
        daemon=True,
    )
    follower.start()
    follower.join(20)
    timer.join()
    assert not follower.is_alive(), "issue status kept following a paused issue"
    result = results[0]
    assert result.exit_code == 0, result.output
    assert "Paused: the editor spotted a typo" in result.output
    assert result.output.splitlines()[-1] == f"Issue {setup.issue_id} is no longer sending: it is paused."


def test_pause_resume_cancel_and_resend(runner: FlaskCliRunner, db: Session) -> None:
    """The lifecycle commands act on the issue and refuse what does not fit."""
    setup = make_newsletter(db, readers=2)
    issues.send_now(db, setup.issue_id)
    issues.start_issue(db, setup.issue_id, CONFIG)
    db.commit()
    issue = str(setup.issue_id)
    assert "is paused" in runner.invoke(args=["issue", "pause", issue]).output
    assert "cannot be paused" in runner.invoke(args=["issue", "pause", issue]).output
    assert "sending again" in runner.invoke(args=["issue", "resume", issue]).output
    db.execute(update(Delivery).values(state="failed_perm"))
    db.commit()
    assert "2 deliveries queued again" in runner.invoke(args=["issue", "resend", issue, "--failed"]).output
    assert states(db, setup.issue_id) == {"pending": 2}
    assert "is cancelled" in runner.invoke(args=["issue", "cancel", issue]).output


def test_scheduler_once_runs_one_tick(runner: FlaskCliRunner, db: Session) -> None:
    """`digest scheduler --once` starts a due issue and reports what it did."""
    setup = make_newsletter(db, readers=2)
    issues.send_now(db, setup.issue_id)
    db.commit()
    result = runner.invoke(args=["scheduler", "--once"])
    assert result.exit_code == 0, result.output
    assert "started 1" in result.output
    assert issues.get_issue(db, setup.issue_id).status == IssueStatus.SENDING
