"""The `digest` command: the Flask CLI of this app, and every job as a command."""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Any

import click
from flask import Flask, current_app
from flask.cli import AppGroup, FlaskGroup, routes_command, shell_command, with_appcontext

from sqlalchemy.exc import NoResultFound

from digest.extensions import get_db

if TYPE_CHECKING:
    from digest.issues import Progress
    from digest.scheduler import Clock
    from digest.sender import SenderPool


def _create_app() -> Flask:
    from digest import create_app
    from digest.config import ConfigError

    try:
        return create_app()
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None


@click.group(cls=FlaskGroup, create_app=_create_app, add_default_commands=False)
def main() -> None:
    """digest: a self-hosted newsletter for a weekly digest."""


main.add_command(shell_command)
main.add_command(routes_command)

db = AppGroup("db", help="Database schema.")


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Apply migrations (to the latest revision by default)."""
    from digest.db import upgrade

    database = get_db()
    upgrade(database, revision)
    click.echo(f"Database at {database.engine.url.render_as_string(hide_password=True)} is up to date.")


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run(host: str, port: int) -> None:
    """Run the web app, the scheduler and the sender in one process."""
    from waitress import serve

    from digest.db import pending_migrations

    if pending_migrations(get_db()):
        raise click.ClickException("The database is not up to date: run `digest db upgrade` first.")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _log_to_stderr()
    pool, clock = _start_background(app)
    # waitress stops on KeyboardInterrupt; make SIGTERM (systemd, docker stop) do the same.
    signal.signal(signal.SIGTERM, _interrupt)
    click.echo(f"digest is serving on http://{host}:{port} (Ctrl+C to stop)")
    try:
        serve(app, host=host, port=port, threads=8, ident="digest")
    finally:
        clock.shutdown()
        if pool is not None:
            pool.stop()


@click.command("demo")
@with_appcontext
def demo() -> None:
    """Load the demo newsletter, its posts, a draft issue and a few readers."""
    from digest.demo import ensure_demo_admin, load_demo, load_demo_history
    from digest.extensions import db_session

    session = db_session()
    newsletter = load_demo(session)
    if newsletter is None:
        click.echo("The demo newsletter is already loaded.")
    else:
        load_demo_history(session, newsletter)
        click.echo(f"Loaded the demo newsletter {newsletter.name!r}.")
    admin, password = ensure_demo_admin(session)
    session.commit()
    login = f"{current_app.config['BASE_URL']}/editor/login"
    if password:
        click.echo(f"Editor login: {login} as {admin.email} with the password {password}")
        click.echo("(shown once; change it under your account, or run `digest editor reset-password`)")
    else:
        click.echo(f"Editor login: {login} as {admin.email} (password shown when it was created)")


# --- delivery: the clock, the senders and the issue commands ---------------------------


def _log_to_stderr() -> None:
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _interrupt(_signum: int, _frame: Any) -> None:
    raise KeyboardInterrupt


def _wait_for_stop() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(1.0):
        pass


def _start_background(app: Flask, *, senders: bool = True) -> tuple[SenderPool | None, Clock]:
    """Start the clock, plus sender threads unless a broker takes the sending."""
    from digest.scheduler import Clock
    from digest.sender import MAIL_JOBS, MAIL_JOB_SECONDS, SenderPool

    if app.config.get("BROKER_URL"):
        from digest.tasks import CeleryDispatcher

        dispatcher = CeleryDispatcher(app)
        extra = [("digest-mail-jobs", MAIL_JOB_SECONDS, dispatcher.enqueue_mail_jobs)] if MAIL_JOBS else []
        return None, Clock(app, dispatcher, extra_jobs=extra).start()
    pool = SenderPool(app).start() if senders else None
    return pool, Clock(app, pool).start()


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@with_appcontext
def scheduler(once: bool) -> None:
    """Run the clock alone: weekly issues, due sends, reaping, dispatch (one per deployment)."""
    from digest.scheduler import tick

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _log_to_stderr()
    if once:
        dispatcher = None
        if app.config.get("BROKER_URL"):
            from digest.tasks import CeleryDispatcher

            dispatcher = CeleryDispatcher(app)
        report = tick(app, dispatcher=dispatcher)
        for outcome in report.weekly:
            click.echo(f"week {outcome.period_key} of newsletter {outcome.newsletter_id}: {outcome.outcome}")
        click.echo(
            f"started {len(report.started)}, finished {len(report.finished)}, "
            f"sending {len(report.sending)}, reaped {report.reaped.returned}+{report.reaped.unclear}, "
            f"retries due {report.requeued}"
        )
        for error in report.errors:
            click.echo(f"error: {error}", err=True)
        if report.errors:
            raise SystemExit(1)
        return
    _pool, clock = _start_background(app, senders=False)
    click.echo(f"digest scheduler: ticking every {clock.interval:g} s (Ctrl+C to stop)")
    try:
        _wait_for_stop()
    finally:
        clock.shutdown()


@click.command("worker")
@click.option("--threads", type=int, help="Sender threads or Celery processes (DIGEST_SENDER_THREADS).")
@with_appcontext
def worker(threads: int | None) -> None:
    """Run a sender process alone (a Celery worker when DIGEST_BROKER_URL is set)."""
    from digest.sender import SenderPool

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    _log_to_stderr()
    threads = threads or app.config["SENDER_THREADS"]
    if app.config.get("BROKER_URL"):
        from digest.tasks import QUEUE, celery_for

        celery_for(app).worker_main(
            ["worker", "--loglevel=INFO", f"--concurrency={threads}", "-Q", QUEUE,
             "--without-gossip", "--without-mingle", "--without-heartbeat"]
        )
        return
    pool = SenderPool(app, threads).start()
    click.echo(f"digest worker: {threads} sender threads (Ctrl+C to stop)")
    try:
        _wait_for_stop()
    finally:
        pool.stop()


issue = AppGroup("issue", help="Issues: list, render, send or schedule, and watch a send.")


def _issue_action(action: Any, *args: Any) -> Any:
    """Run a domain action in the command's session, commit, and turn refusals into errors."""
    from digest.extensions import db_session
    from digest.issues import IssueError

    session = db_session()
    try:
        result = action(session, *args)
    except IssueError as exc:
        session.rollback()
        raise click.ClickException(str(exc)) from None
    session.commit()
    return result


@issue.command("list")
def issue_list() -> None:
    """List issues, newest first, id first on each line."""
    from digest.extensions import db_session
    from digest.issues import list_issues

    for item in list_issues(db_session()):
        when = item.sent_at or item.scheduled_at
        stamp = f"{when:%Y-%m-%d %H:%M}Z" if when else "-"
        held = " held" if item.held else ""
        click.echo(f"{item.id}\t{item.status.value}{held}\t{stamp}\t{item.subject}")


@issue.command("send")
@click.argument("issue_id", type=int)
@click.option("--now", "now", is_flag=True, help="Start sending right away.")
@click.option("--at", "at", metavar="'YYYY-MM-DD HH:MM'", help="Schedule at this local time.")
@click.option("--tz", metavar="ZONE", help="IANA time zone of --at (default: the newsletter's).")
@click.option("--no-wait", is_flag=True, help="Start it and return; the running service sends it.")
def issue_send(issue_id: int, now: bool, at: str | None, tz: str | None, no_wait: bool) -> None:
    """Send an issue now (following its progress), or schedule it with --at."""
    from digest import issues
    from digest.extensions import db_session

    if now and at:
        raise click.UsageError("choose --now or --at, not both")
    app = current_app._get_current_object()  # type: ignore[attr-defined]
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
    if item.status == issues.IssueStatus.SCHEDULED and not now:
        click.echo(
            f"Issue {item.id} is scheduled for {item.scheduled_at:%Y-%m-%d %H:%M} UTC"
            f"{' but held' if item.held else ''}; the scheduler starts it. "
            "Use --now to send it now."
        )
        return
    if item.status not in (issues.IssueStatus.SENDING, issues.IssueStatus.PAUSED):
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
    from digest.extensions import db_session
    from digest.mail.render import NotSendable, check_sendable, prepare_issue

    session = db_session()
    try:
        check_sendable(prepare_issue(session, issue_id, app))
    except NoResultFound:
        raise click.ClickException(f"there is no issue {issue_id}") from None
    except NotSendable as exc:
        raise click.ClickException(f"Issue {issue_id} cannot be sent: {exc}") from None
    finally:
        session.rollback()


def _send_and_follow(app: Flask, issue_id: int) -> None:
    """Send the issue from this process (or via Celery) while showing its progress."""
    from digest.scheduler import maintain
    from digest.sender import SenderPool

    pool = None
    if app.config.get("BROKER_URL"):
        from digest.tasks import CeleryDispatcher

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


@issue.command("status")
@click.argument("issue_id", type=int)
@click.option("--once", is_flag=True, help="Print the figures once instead of following a send.")
def issue_status(issue_id: int, once: bool) -> None:
    """Show an issue's deliveries per state, live while it is sending; list unclear ones."""
    from digest import issues

    _issue_action(issues.get_issue, issue_id)
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    try:
        _follow(app, issue_id, live=not once)
    except KeyboardInterrupt:
        click.echo("")


def _follow(app: Flask, issue_id: int, live: bool = True, on_poll: Any = None) -> Progress:
    """Show a progress bar until the issue stops sending; then the figures; return them."""
    import time

    from digest import issues

    database = get_db()

    def snapshot(previous: Progress | None) -> Progress:
        with database.session() as session:
            return issues.issue_progress(session, issue_id, previous)

    progress = snapshot(None)
    followed = live and progress.status == issues.IssueStatus.SENDING
    if followed:
        with click.progressbar(
            length=max(progress.counts.total, 1),
            label=f"Issue {issue_id}",
            show_eta=False,
            item_show_func=lambda p: _progress_line(p) if p else "",
        ) as bar:
            bar.update(progress.counts.done, progress)
            while progress.status == issues.IssueStatus.SENDING:
                time.sleep(1.0)
                if on_poll is not None:
                    on_poll()
                progress = snapshot(progress)
                bar.length = max(progress.counts.total, 1)
                bar.update(progress.counts.done - bar.pos, progress)
    _print_figures(progress)
    if followed:
        click.echo(f"Issue {issue_id} is no longer sending: it is {progress.status.value}.")
    return progress


def _progress_line(progress: Progress) -> str:
    counts = progress.counts
    parts = [f"{state.value} {n}" for state, n in counts.by_state.items() if n]
    if progress.rate:
        parts.append(f"{progress.rate:.1f} msg/s")
    if progress.eta_seconds is not None:
        minutes, seconds = divmod(int(progress.eta_seconds), 60)
        parts.append(f"ETA {minutes}:{seconds:02d}")
    return " · ".join(parts)


def _print_figures(progress: Progress) -> None:
    counts = progress.counts
    click.echo(f"Issue {progress.issue_id}: {progress.status.value}, {counts.total} deliveries")
    for state, number in counts.by_state.items():
        extra = f" ({counts.retrying} retrying)" if state.value == "failed_temp" and counts.retrying else ""
        click.echo(f"  {state.value:<12}{number:>9}{extra}")
    if progress.pause_reason:
        click.echo(f"Paused: {progress.pause_reason}")
    if progress.unclear:
        click.echo(
            "Unclear deliveries (the server may have accepted them; held so nobody gets two; "
            "`digest issue resend ID --unknown` sends them again):"
        )
        for row in progress.unclear:
            click.echo(f"  delivery {row.delivery_id}\t{row.email or '(erased)'}\t{row.response or ''}")


@issue.command("pause")
@click.argument("issue_id", type=int)
def issue_pause(issue_id: int) -> None:
    """Pause a sending issue; senders stop before their next message."""
    from digest import issues

    _issue_action(issues.pause_issue, issue_id, "Paused from the command line.")
    click.echo(f"Issue {issue_id} is paused.")


@issue.command("resume")
@click.argument("issue_id", type=int)
def issue_resume(issue_id: int) -> None:
    """Resume a paused issue where it stopped."""
    from digest import issues

    _issue_action(issues.resume_issue, issue_id)
    click.echo(f"Issue {issue_id} is sending again.")


@issue.command("cancel")
@click.argument("issue_id", type=int)
def issue_cancel(issue_id: int) -> None:
    """Cancel an issue that is not sent yet (readers not yet mailed will not be)."""
    from digest import issues

    _issue_action(issues.cancel_issue, issue_id)
    click.echo(f"Issue {issue_id} is cancelled.")


@issue.command("resend")
@click.argument("issue_id", type=int)
@click.option("--failed", "which", flag_value="failed", help="Readers whose delivery failed.")
@click.option("--unknown", "which", flag_value="unknown", help="Readers whose delivery is unclear.")
def issue_resend(issue_id: int, which: str | None) -> None:
    """Queue an issue again for failed (or unclear) deliveries."""
    from digest import issues

    if which is None:
        raise click.UsageError("say --failed or --unknown")
    action = issues.resend_failed if which == "failed" else issues.resend_unknown
    count = _issue_action(action, issue_id)
    click.echo(f"Issue {issue_id}: {count} deliveries queued again.")


def init_app(app: Flask) -> None:
    """Add every command to the app's CLI."""
    from digest import cli_api_tokens, cli_bounces, cli_subscribers

    for command in (db, run, demo, scheduler, worker, issue, dkim, cli_subscribers.group):
        app.cli.add_command(command)
    app.cli.add_command(editor_group)
    app.cli.add_command(cli_bounces.group)
    app.cli.add_command(cli_api_tokens.group)


editor_group = AppGroup("editor", help="Editor accounts.")


def _read_password(password_stdin: bool) -> str:
    import sys

    if password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return click.prompt("Password", hide_input=True, confirmation_prompt=True)


@editor_group.command("create")
@click.argument("email")
@click.option("--role", type=click.Choice(["admin", "editor"]), default="editor", show_default=True)
@click.option("--name", default="", help="Display name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@with_appcontext
def editor_create(email: str, role: str, name: str, password_stdin: bool) -> None:
    """Create an editor who can log in at /editor/login."""
    from digest.editors import EditorError, create_editor
    from digest.extensions import db_session
    from digest.models import EditorRole

    session = db_session()
    try:
        editor = create_editor(session, email, _read_password(password_stdin), EditorRole(role), name=name)
    except EditorError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(f"Created {editor.role.value} {editor.email}; log in at {current_app.config['BASE_URL']}/editor/login")


@editor_group.command("list")
@with_appcontext
def editor_list() -> None:
    """List editors: address, role, status, last login."""
    from digest.editors import list_editors
    from digest.extensions import db_session

    for editor in list_editors(db_session()):
        last = editor.last_login_at.strftime("%Y-%m-%d %H:%M UTC") if editor.last_login_at else "never"
        status = "active" if editor.active else "deactivated"
        click.echo(f"{editor.email}\t{editor.role.value}\t{status}\tlast login {last}")


def _change_editor(email: str, change) -> None:  # type: ignore[no-untyped-def]
    from digest.editors import EditorError, find_editor
    from digest.extensions import db_session

    session = db_session()
    editor = find_editor(session, email)
    if editor is None:
        raise click.ClickException(f"no editor has the address {email}")
    try:
        message = change(session, editor)
    except EditorError as exc:
        raise click.ClickException(str(exc)) from None
    session.commit()
    click.echo(message)


@editor_group.command("deactivate")
@click.argument("email")
@with_appcontext
def editor_deactivate(email: str) -> None:
    """Stop an editor from logging in (ends their sessions); never the last admin."""
    from digest.editors import set_active

    _change_editor(email, lambda s, e: set_active(s, e, False) and f"{e.email} is deactivated.")


@editor_group.command("activate")
@click.argument("email")
@with_appcontext
def editor_activate(email: str) -> None:
    """Let a deactivated editor log in again."""
    from digest.editors import set_active

    _change_editor(email, lambda s, e: set_active(s, e, True) and f"{e.email} is active.")


@editor_group.command("reset-password")
@click.argument("email")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@with_appcontext
def editor_reset_password(email: str, password_stdin: bool) -> None:
    """Set a new password for an editor."""
    from digest.editors import set_password

    password = _read_password(password_stdin)
    _change_editor(email, lambda s, e: set_password(s, e, password) and f"{e.email} has a new password.")



@issue.command("render")
@click.argument("issue_id", type=int)
@click.option("--to", "address", required=True, help="The reader (or any address) to render for.")
def issue_render(issue_id: int, address: str) -> None:
    """Write the exact bytes ADDRESS would receive for issue ISSUE_ID to stdout."""
    from digest.extensions import db_session
    from digest.mail.render import preview_for_address

    try:
        preview = preview_for_address(
            db_session(), issue_id, address, current_app._get_current_object()  # type: ignore[attr-defined]
        )
    except (LookupError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    outgoing = preview.outgoing
    click.echo(f"MAIL FROM:<{outgoing.envelope_from}> RCPT TO:<{outgoing.recipient}>", err=True)
    for note in preview.notes:
        click.echo(note, err=True)
    click.echo(outgoing.data, nl=False)  # bytes go to the binary stream untouched


dkim = AppGroup("dkim", help="DKIM signing.")


@dkim.command("record")
@with_appcontext
def dkim_record() -> None:
    """Print the DNS TXT record to publish for the configured DKIM key."""
    from digest.mail.dkim import signer_from_config

    signer = signer_from_config(current_app.config)
    if signer is None:
        raise click.ClickException(
            "DKIM is not configured: set DIGEST_DKIM_DOMAIN, DIGEST_DKIM_SELECTOR and "
            "DIGEST_DKIM_KEY_FILE."
        )
    click.echo(f"{signer.record_name}. IN TXT {signer.dns_record_quoted()}")
