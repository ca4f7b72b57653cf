"""`digest run`, `digest scheduler`, `digest worker`: the long-running processes."""

from __future__ import annotations

import signal
import sys
import threading
from typing import TYPE_CHECKING, Any

import click
from flask import Flask
from flask.cli import with_appcontext
from werkzeug.middleware.proxy_fix import ProxyFix

from digest.core.config import DEFAULT_BASE_URL
from digest.core.extensions import current_app_object, get_db

if TYPE_CHECKING:
    from digest.engine.scheduler import Clock
    from digest.engine.sender import SenderPool
    from digest.engine.webhooks import WebhookDeliverer


@click.command("run")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def run(host: str, port: int) -> None:
    """Run the web app, the scheduler and the sender in one process."""
    _require_database()
    # Threads waiting on a socket or the database get the GIL back within 1 ms instead
    # of CPython's 5 ms, while the clock, the senders and the mail thread compute: an
    # answer takes the GIL a dozen times. (A signup burst during a send: p99 305 → 126 ms.)
    sys.setswitchinterval(0.001)
    app = current_app_object()
    proxy = _proxy_settings(app)
    _links_follow_port(app, host, port)
    _log_to_stderr()
    pool, clock = _start_background(app)
    hooks = _start_webhooks(app)
    # waitress stops on KeyboardInterrupt; make SIGTERM (systemd, docker stop) do the same.
    signal.signal(signal.SIGTERM, _interrupt)
    click.echo(f"digest is serving on http://{host}:{port}, links point at {app.config['BASE_URL']} (Ctrl+C to stop)")
    try:
        _serve(app, host=host, port=port, threads=8, ident="digest", **proxy)
    finally:
        clock.shutdown()
        if pool is not None:
            pool.stop()
        if hooks is not None:
            hooks.stop()


# Below this much unsent answer, a connection whose request is still being served leaves
# the sending to the thread serving it; above it (a slow reader of a large answer) the
# select loop helps, as waitress's own channel does at any size.
_TASK_SENDS = 1 << 16


def _serve(app: Flask, **settings: Any) -> None:
    """Serve app with waitress, whose connections do not busy-wait on a task's answer."""
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer, create_server

    class Channel(HTTPChannel):
        # waitress's own channel asks to write whenever its buffer holds bytes, even while
        # the serving thread holds the buffer to send them itself: its select loop then
        # spins, taking the GIL from that thread for up to the switch interval (5 ms) per
        # answer. Under a burst that tripled the CPU of each signup and its p99.
        def writable(self) -> bool:
            if (self.requests and self.total_outbufs_len < _TASK_SENDS
                    and not (self.will_close or self.close_when_flushed)):
                return False
            return bool(super().writable())

    sockets: dict[int, Any] = {}
    server = create_server(app, map=sockets, **settings)
    for listener in sockets.values():
        if isinstance(listener, BaseWSGIServer):
            listener.channel_class = Channel
    server.print_listen("Serving on http://{}:{}")
    server.run()


def _proxy_settings(app: Flask) -> dict[str, Any]:
    """Return waitress's settings for DIGEST_TRUSTED_PROXIES, taking the job from ProxyFix.

    waitress drops every X-Forwarded-* header from a peer it does not trust, so it must
    be told to read them itself: the client is the address the outermost trusted proxy saw.
    """
    hops = app.config["TRUSTED_PROXIES"]
    if not hops:
        return {}
    if isinstance(app.wsgi_app, ProxyFix):
        # One translation only: waitress has already replaced REMOTE_ADDR and the scheme.
        app.wsgi_app = app.wsgi_app.app  # type: ignore[method-assign,assignment]  # undoing create_app's wrap
    return {
        "trusted_proxy": "*",
        "trusted_proxy_count": hops,
        "trusted_proxy_headers": {"x-forwarded-for", "x-forwarded-proto"},
    }


def _require_database() -> None:
    """Stop a long-running process at its start if the database cannot take its writes,
    was migrated by newer code or lacks migrations (digest.__main__ turns a database error
    into one line)."""
    from digest.core.db import SchemaTooNew, check_writable, pending_migrations

    check_writable(get_db())
    try:
        behind = pending_migrations(get_db())
    except SchemaTooNew as exc:
        raise click.ClickException(str(exc)) from None
    if behind:
        raise click.ClickException("The database is not up to date: run `digest db upgrade` first.")


def _links_follow_port(app: Flask, host: str, port: int) -> None:
    # Without DIGEST_BASE_URL, a development server on another port would mail links to 5000.
    if app.config["ENV"] != "development" or app.config["BASE_URL"] != DEFAULT_BASE_URL:
        return
    shown = "127.0.0.1" if host in {"", "0.0.0.0", "::"} else host
    shown = f"[{shown}]" if ":" in shown else shown
    app.config["BASE_URL"] = f"http://{shown}:{port}"


def _log_to_stderr() -> None:
    from digest.core.logs import configure

    configure(current_app_object().config["LOG_FORMAT"])


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
    from digest.engine.monitoring import start_listener
    from digest.engine.scheduler import Clock
    from digest.engine.sender import MAIL_JOB_SECONDS, MAIL_JOBS, SenderPool

    start_listener(app)
    if app.config.get("BROKER_URL"):
        from digest.engine.tasks import CeleryDispatcher

        dispatcher = CeleryDispatcher(app)
        extra = [("digest-mail-jobs", MAIL_JOB_SECONDS, dispatcher.enqueue_mail_jobs)] if MAIL_JOBS else []
        extra.append(("digest-webhooks", MAIL_JOB_SECONDS, dispatcher.enqueue_webhooks))
        return None, Clock(app, dispatcher, extra_jobs=extra).start()
    pool = SenderPool(app).start() if senders else None
    return pool, Clock(app, pool).start()


def _start_webhooks(app: Flask) -> WebhookDeliverer | None:
    """Start the webhook delivery thread, unless a broker's workers deliver them."""
    from digest.engine.webhooks import WebhookDeliverer

    return None if app.config.get("BROKER_URL") else WebhookDeliverer(app).start()


@click.command("scheduler")
@click.option("--once", is_flag=True, help="Run one tick and exit.")
@with_appcontext
def scheduler(once: bool) -> None:
    """Run the clock alone: weekly issues, due sends, reaping, dispatch (one per deployment)."""
    from digest.engine.scheduler import tick

    _require_database()
    app = current_app_object()
    _log_to_stderr()
    if once:
        dispatcher = None
        if app.config.get("BROKER_URL"):
            from digest.engine.tasks import CeleryDispatcher

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
    from digest.engine.sender import SenderPool

    _require_database()
    app = current_app_object()
    _log_to_stderr()
    threads = threads or app.config["SENDER_THREADS"]
    if app.config.get("BROKER_URL"):
        from digest.engine.tasks import QUEUE, celery_for

        celery_for(app).worker_main(
            ["worker", "--loglevel=INFO", f"--concurrency={threads}", "-Q", QUEUE,
             "--without-gossip", "--without-mingle", "--without-heartbeat"]
        )
        return
    pool = SenderPool(app, threads).start()
    hooks = _start_webhooks(app)
    click.echo(f"digest worker: {threads} sender threads (Ctrl+C to stop)")
    try:
        _wait_for_stop()
    finally:
        pool.stop()
        if hooks is not None:
            hooks.stop()



COMMANDS = (run, scheduler, worker)
