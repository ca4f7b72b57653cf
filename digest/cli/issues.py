"""`digest issue …`: list, render, send or schedule an issue, and watch a send."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup
from sqlalchemy.exc import NoResultFound

from digest.core.extensions import current_app_object, get_db

if TYPE_CHECKING:
    from digest.domain.issues import Progress

group = AppGroup("issue", help="Issues: list, render, send or schedule, and watch a send.")


def _issue_action(action: Any, *args: Any) -> Any:
    """Run a domain action in the command's session, commit, and turn refusals into errors."""
    from digest.core.extensions import db_session
    from digest.domain.issues import IssueError

    session = db_session()
    try:
        result = action(session, *args)
    except IssueError as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from None
    session.commit()
    return result


@group.command("list")
def issue_list() -> None:
    """List issues, newest first, id first on each line."""
    from digest.core.extensions import db_session
    from digest.domain.deliveries import unclear_counts
    from digest.domain.issues import list_issues, status_label

    session = db_session()
    items = list_issues(session)
    unclear = unclear_counts(session, [item.id for item in items])
    for item in items:
        when = item.sent_at or item.scheduled_at
        stamp = f"{when:%Y-%m-%d %H:%M}Z" if when else "-"
        held = " held" if item.held else ""
        label = status_label(item.status, unclear.get(item.id, 0))
        click.echo(f"{item.id}\t{label}{held}\t{stamp}\t{item.subject}")


@group.command("send")
@click.argument("issue_id", type=int)
@click.option("--now", "now", is_flag=True, help="Start sending right away.")
@click.option("--at", "at", metavar="'YYYY-MM-DD HH:MM'", help="Schedule at this local time.")
@click.option("--tz", metavar="ZONE", help="IANA time zone of --at (default: the newsletter's).")
@click.option("--no-wait", is_flag=True, help="Start it and return; the running service sends it.")
def issue_send(issue_id: int, now: bool, at: str | None, tz: str | None, no_wait: bool) -> None:
    """Send an issue now (following its progress), or schedule it with --at."""
    from digest.core.extensions import db_session
    from digest.core.models import IssueStatus
    from digest.domain import issues

    if now and at:
        raise click.UsageError("choose --now or --at, not both")
    app = current_app_object()
    session = db_session()
    if at:
        item = _issue_action(issues.schedule_issue, issue_id, issues.parse_local(at), tz)
        click.echo(
            f"Issue {item.id} is scheduled for {at} {item.schedule_tz} "
            f"({item.scheduled_at:%Y-%m-%d %H:%M} UTC)."
        )
        return
    if now:
        _check_sendable(app, issue_id)
        _issue_action(issues.send_now, issue_id)
        steps = issues.start_issue_chunks(session, issue_id, app.config)
        with click.progressbar(length=1, label="Preparing the deliveries") as bar:
            for step in steps:
                session.commit()
                bar.length = step.span
                bar.update(step.covered - bar.pos)
        session.commit()
    item = _issue_action(issues.get_issue, issue_id)
    if item.status == IssueStatus.SCHEDULED and not now:
        click.echo(
            f"Issue {item.id} is scheduled for {item.scheduled_at:%Y-%m-%d %H:%M} UTC"
            f"{' but held' if item.held else ''}; the scheduler starts it. "
            "Use --now to send it now."
        )
        return
    if item.status not in (IssueStatus.SENDING, IssueStatus.PAUSED):
        raise click.ClickException(
            f"Issue {item.id} is {item.status.value}: use --now to send it or --at to schedule it."
        )
    if no_wait:
        click.echo(f"Issue {item.id} is {item.status.value}.")
        return
    _send_and_follow(app, issue_id)


def _check_sendable(app: Flask, issue_id: int) -> None:
    """Refuse, changing nothing, an issue its readers must not get (no postal address, HTML
    Gmail would clip)."""
    from digest.core.extensions import db_session
    from digest.domain.issue_mail import prepare_issue
    from digest.mail.render import NotSendable, check_sendable

    session = db_session()
    try:
        check_sendable(prepare_issue(session, issue_id, app.config))
    except NoResultFound:
        raise click.ClickException(f"there is no issue {issue_id}") from None
    except NotSendable as exc:
        raise click.ClickException(f"Issue {issue_id} cannot be sent: {exc}") from None
    finally:
        session.rollback()


def _send_and_follow(app: Flask, issue_id: int) -> None:
    """Send the issue from this process (or via Celery) while showing its progress."""
    from digest.engine.scheduler import maintain
    from digest.engine.sender import SenderPool

    pool = None
    if app.config.get("BROKER_URL"):
        from digest.engine.tasks import CeleryDispatcher

        CeleryDispatcher(app).dispatch([issue_id])
    else:
        pool = SenderPool(app, issue_ids=[issue_id], mail_jobs=()).start()
    try:
        progress = _follow(app, issue_id, on_poll=lambda: maintain(app))
    except KeyboardInterrupt:
        click.echo("\nStopped following; `digest run` or `digest worker` carries on with the issue.")
        return
    finally:
        if pool is not None:
            pool.stop()
    if progress.status == "paused":
        raise SystemExit(1)


@group.command("status")
@click.argument("issue_id", type=int)
@click.option("--once", is_flag=True, help="Print the figures once instead of following a send.")
def issue_status(issue_id: int, once: bool) -> None:
    """Show an issue's deliveries per state, live while it is sending; list unclear ones."""
    from digest.domain import issues

    _issue_action(issues.get_issue, issue_id)
    app = current_app_object()
    try:
        _follow(app, issue_id, live=not once)
    except KeyboardInterrupt:
        click.echo("")


def _follow(app: Flask, issue_id: int, live: bool = True, on_poll: Any = None) -> Progress:
    """Show a progress bar until the issue stops sending; then the figures; return them."""
    from digest.core.models import IssueStatus
    from digest.domain import issues

    database = get_db()

    def snapshot(previous: Progress | None) -> Progress:
        with database.session() as session:
            return issues.issue_progress(
                session, issue_id, previous, heartbeat_seconds=app.config["HEARTBEAT_SECONDS"]
            )

    progress = snapshot(None)
    followed = live and progress.status == IssueStatus.SENDING
    if followed:
        with click.progressbar(
            length=max(progress.counts.total, 1),
            label=f"Issue {issue_id}",
            show_eta=False,
            item_show_func=_progress_line,
        ) as bar:
            bar.update(progress.counts.done, progress)
            while progress.status == IssueStatus.SENDING:
                time.sleep(1.0)
                if on_poll is not None:
                    on_poll()
                progress = snapshot(progress)
                bar.length = max(progress.counts.total, 1)
                bar.update(progress.counts.done - bar.pos, progress)
    _print_figures(progress)
    if followed:
        click.echo(f"Issue {issue_id} is no longer sending: it is {progress.label}.")
    return progress


def _progress_line(progress: Progress | None) -> str:
    if not progress:
        return ""
    counts = progress.counts
    parts = [f"{state.value} {n}" for state, n in counts.by_state.items() if n]
    if progress.rate:
        parts.append(f"{progress.rate:.1f} msg/s")
    if progress.eta_seconds is not None:
        minutes, seconds = divmod(int(progress.eta_seconds), 60)
        parts.append(f"ETA {minutes}:{seconds:02d}")
    parts.extend(obstacle.describe(progress.at) for obstacle in progress.obstacles)
    return " · ".join(parts)


def _print_figures(progress: Progress) -> None:
    from digest.domain.issues import unclear_action

    counts = progress.counts
    click.echo(f"Issue {progress.issue_id}: {progress.label}, {counts.total} deliveries")
    for state, number in counts.by_state.items():
        extra = f" ({counts.retrying} retrying)" if state.value == "failed_temp" and counts.retrying else ""
        if state.value == "skipped" and counts.no_post:
            extra = f" ({counts.no_post} skipped: no post for their sections)"
        click.echo(f"  {state.value:<12}{number:>9}{extra}")
    if progress.pause_reason:
        click.echo(f"Paused: {progress.pause_reason}")
    for obstacle in progress.obstacles:
        click.echo(f"Obstacle: {obstacle.describe(progress.at)}")
    if progress.unclear:
        click.echo(
            "Unclear deliveries (the end of the message went out but no reply came back; "
            "held so nobody gets two):"
        )
        for row in progress.unclear:
            click.echo(f"  delivery {row.delivery_id}\t{row.email or '(erased)'}\t{row.response or ''}")
        click.echo(unclear_action(progress.issue_id))


@group.command("pause")
@click.argument("issue_id", type=int)
def issue_pause(issue_id: int) -> None:
    """Pause a sending issue; senders stop before their next message."""
    from digest.domain import issues

    _issue_action(issues.pause_issue, issue_id, "Paused from the command line.")
    click.echo(f"Issue {issue_id} is paused.")


@group.command("resume")
@click.argument("issue_id", type=int)
def issue_resume(issue_id: int) -> None:
    """Resume a paused issue where it stopped."""
    from digest.domain import issues

    _issue_action(issues.resume_issue, issue_id)
    click.echo(f"Issue {issue_id} is sending again.")


@group.command("cancel")
@click.argument("issue_id", type=int)
def issue_cancel(issue_id: int) -> None:
    """Cancel an issue that is not sent yet (readers not yet mailed will not be)."""
    from digest.domain import issues

    _issue_action(issues.cancel_issue, issue_id)
    click.echo(f"Issue {issue_id} is cancelled.")


@group.command("resend")
@click.argument("issue_id", type=int)
@click.option("--failed", "which", flag_value="failed", help="Readers whose delivery failed.")
@click.option("--unknown", "which", flag_value="unknown", help="Readers whose delivery is unclear.")
def issue_resend(issue_id: int, which: str | None) -> None:
    """Queue an issue again for failed (or unclear) deliveries."""
    from digest.domain import issues

    if which is None:
        raise click.UsageError("say --failed or --unknown")
    action = issues.resend_failed if which == "failed" else issues.resend_unknown
    count = _issue_action(action, issue_id)
    click.echo(f"Issue {issue_id}: {count} deliveries queued again.")


@group.command("render")
@click.argument("issue_id", type=int)
@click.option("--to", "address", required=True, help="The reader (or any address) to render for.")
def issue_render(issue_id: int, address: str) -> None:
    """Write the exact bytes ADDRESS would receive for issue ISSUE_ID to stdout."""
    from digest.core.extensions import db_session
    from digest.domain.issue_mail import preview_for_address

    try:
        preview = preview_for_address(
            db_session(), issue_id, address, current_app.config, live_links=True
        )
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    outgoing = preview.outgoing
    click.echo(f"MAIL FROM:<{outgoing.envelope_from}> RCPT TO:<{outgoing.recipient}>", err=True)
    for note in preview.notes:
        click.echo(note, err=True)
    click.echo(outgoing.data, nl=False)  # bytes go to the binary stream untouched



@group.command("report")
@click.argument("issue_id", type=int)
@click.option("--json", "as_json", is_flag=True, help="Print the figures as the API's JSON.")
def issue_report(issue_id: int, as_json: bool) -> None:
    """Print what issue ISSUE_ID's readers did: clicks, human and machine apart."""
    import json

    from digest.core.extensions import db_session
    from digest.domain.engagement import issue_report as report_of
    from digest.domain.issues import IssueError, get_issue

    session = db_session()
    try:
        report = report_of(session, get_issue(session, issue_id))
    except IssueError as exc:
        raise click.ClickException(str(exc)) from None
    if as_json:
        click.echo(json.dumps(report.as_dict(), indent=2))
        return
    rate = f"{report.click_rate:.1%}" if report.click_rate is not None else "-"
    share = f"{report.machine_share:.1%}" if report.machine_share is not None else "-"
    click.echo(f"Issue {issue_id}: {report.subject}")
    click.echo(f"Delivered {report.delivered}; {report.readers_clicked} readers clicked ({rate}); "
               f"{report.human_clicks} human clicks, {report.machine_clicks} machine ({share}).")
    if report.opens is not None:
        click.echo(f"Opens (Apple's proxy excluded): {report.opens}.")
    for rule, text in report.rules.items():
        click.echo(f"  machine, {text}: {report.machine_by_rule.get(rule, 0)}")
    click.echo("readers\thuman\tmachine\tsection\tpost\turl")
    for link in report.links:
        click.echo(f"{link.unique_human}\t{link.human}\t{link.machine}\t{link.section or '-'}\t"
                   f"{link.post_title or '-'}\t{link.url}")
    for section in report.sections:
        share_of = f"{section.rate:.1%}" if section.rate is not None else "-"
        click.echo(f"section {section.name}: {section.readers_clicked} of {section.readers_got} "
                   f"readers who got it clicked ({share_of})")


COMMANDS = (group,)
