"""Celery mode: with DIGEST_BROKER_URL set, `digest worker` is a Celery worker whose
tasks send batches from the same ledger as the in-process senders.

Contract: a task carries only an issue id. It claims one batch with `send_batch` (the
same code as `digest run`), and re-enqueues itself while it found rows, so a chain
ends when the ledger has nothing left for it. The clock seeds DIGEST_CELERY_TASKS chains
for a sending issue whenever it has pending rows and nothing is in flight, which also
restarts work after retries come due or a worker died. Redelivery is harmless (the
ledger decides), so tasks are acks_late with reject_on_worker_lost; there are no
per-recipient tasks, no chords and no result backend. Each worker process keeps one SMTP
connection across tasks, disposes of the database pool it inherited at fork, and beats
its own `sender` row, so the claims of a worker process that died are taken over by a
living sender within seconds. Webhooks go the same way: the clock queues
`digest.deliver_webhooks` every second, and whichever worker takes it sends the due ones.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from typing import Any

from celery import Celery, Task, shared_task
from celery.signals import worker_process_init, worker_process_shutdown
from flask import Flask

from digest.core.db import Database
from digest.core.extensions import current_app_object
from digest.domain import deliveries
from digest.engine.liveness import liveness_for
from digest.engine.sender import (
    MAIL_JOBS,
    Throttle,
    new_owner,
    run_mail_jobs,
    send_batch,
    send_rate_for,
)
from digest.engine.webhooks import deliver_due, webhook_client
from digest.mail.mailer import Mailer, mailer_for

log = logging.getLogger(__name__)

QUEUE = "digest"
SMTP_RETRY_MAX = 30.0


def celery_init_app(app: Flask) -> Celery:
    """Create the Celery app for a Flask app (Flask docs' pattern: tasks run in its context)."""

    class FlaskTask(Task[Any, Any]):
        def __call__(self, *args: Any, **kwargs: Any) -> Any:
            with app.app_context():
                return self.run(*args, **kwargs)

    celery_app: Celery = Celery(app.name, task_cls=FlaskTask)
    celery_app.config_from_object(
        {
            "broker_url": app.config["BROKER_URL"],
            "broker_connection_retry_on_startup": True,
            "task_ignore_result": True,
            "task_acks_late": True,
            "task_reject_on_worker_lost": True,
            "task_default_queue": QUEUE,
            "worker_prefetch_multiplier": 1,
            "worker_hijack_root_logger": False,
        }
    )
    celery_app.set_default()
    app.extensions["celery"] = celery_app

    @worker_process_init.connect(weak=False)
    def _after_fork(**_: Any) -> None:
        # Connections inherited from the parent must never be used by two processes.
        app.extensions["digest.db"].engine.dispose(close=False)
        _Process.mailer, _Process.owner, _Process.rate_ready = None, None, False
        # Each worker process is a sender of its own: its claims name it, and its death
        # hands them on within seconds (digest.engine.liveness).
        app.extensions.pop("digest.liveness", None)
        liveness_for(app).start()

    @worker_process_shutdown.connect(weak=False)
    def _at_exit(**_: Any) -> None:
        _Process.close()
        liveness_for(app).stop()

    return celery_app


def celery_for(app: Flask) -> Celery:
    """Return the app's Celery app, creating it on first use."""
    return app.extensions.get("celery") or celery_init_app(app)


class _Process:
    """What one worker process keeps between tasks: its SMTP connection, lease owner
    id and handle on the shared send rate."""

    mailer: Mailer | None = None
    owner: str | None = None
    rate: Throttle | None = None
    rate_ready = False

    @classmethod
    def for_app(cls, app: Flask) -> tuple[Mailer, str, Throttle | None]:
        if cls.mailer is None:
            cls.mailer = mailer_for(app.config)
            cls.owner = new_owner("celery")
        if not cls.rate_ready:
            cls.rate, cls.rate_ready = send_rate_for(app), True
        assert cls.owner is not None
        return cls.mailer, cls.owner, cls.rate

    @classmethod
    def close(cls) -> None:
        if cls.mailer is not None:
            cls.mailer.close()
        cls.mailer = None


@shared_task(name="digest.send_issue_batch", acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def send_issue_batch(issue_id: int, failures: int = 0) -> None:
    """Send one batch of an issue, then queue the next while rows were found."""
    app = current_app_object()
    mailer, owner, rate = _Process.for_app(app)
    outcome = send_batch(app, mailer, issue_id, owner=owner, rate=rate)
    if outcome.smtp_unavailable:
        delay = min(SMTP_RETRY_MAX, 2.0**failures) * random.uniform(0.5, 1.0)
        log.warning("issue %s: %s; retrying in %.0f s", issue_id, outcome.smtp_unavailable, delay)
        send_issue_batch.apply_async((issue_id, failures + 1), countdown=delay)
    elif outcome.claimed and not outcome.paused:
        send_issue_batch.delay(issue_id)


@shared_task(name="digest.run_mail_jobs", ignore_result=True)
def mail_jobs() -> None:
    """Run the periodic mail jobs once in this worker."""
    app = current_app_object()
    mailer, _owner, _rate = _Process.for_app(app)
    run_mail_jobs(app, mailer, MAIL_JOBS)


@shared_task(name="digest.deliver_webhooks", ignore_result=True)
def deliver_webhooks() -> None:
    """Send the due webhook deliveries once in this worker."""
    app = current_app_object()
    with webhook_client(app) as client:
        deliver_due(app, client, new_owner("celery-webhooks"))


class CeleryDispatcher:
    """The clock's Dispatcher in Celery mode: seed batch chains for idle sending issues."""

    def __init__(self, app: Flask) -> None:
        self.app = app
        self.celery = celery_for(app)

    def dispatch(self, issue_ids: Sequence[int]) -> None:
        """Enqueue DIGEST_CELERY_TASKS chains for each issue with pending rows and nothing
        in flight (a running chain keeps itself going)."""
        database: Database = self.app.extensions["digest.db"]
        for issue_id in issue_ids:
            with database.session() as session:
                idle = deliveries.has_pending(session, issue_id) and not deliveries.has_in_flight(
                    session, issue_id
                )
            if idle:
                for _ in range(self.app.config["CELERY_TASKS"]):
                    send_issue_batch.delay(issue_id)

    def enqueue_mail_jobs(self) -> None:
        """Queue one run of the periodic mail jobs (the clock calls this every few seconds)."""
        mail_jobs.apply_async(expires=10)

    def enqueue_webhooks(self) -> None:
        """Queue one round of webhook delivery (the clock calls this every second)."""
        deliver_webhooks.apply_async(expires=10)
