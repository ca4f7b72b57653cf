"""The clock: APScheduler 3.x calls one idempotent `tick()` every DIGEST_TICK_SECONDS.

Contract: the schedule lives in our tables, not in APScheduler (memory job store,
coalesce, max_instances=1), and every tick recomputes due work from the database:

1. assemble the newsletters' weekly issues whose review window opened (once per period);
2. start scheduled issues whose time has come (fan-out, then `sending`);
3. reap expired leases and requeue deliveries whose retry is due;
4. mark issues with nothing left to do `sent`;
5. dispatch: wake the in-process senders, or enqueue Celery batch tasks.

Feed intake (`digest.engine.feeds`: due sources, then saved links' pages) is a job of
its own on the same interval, so a slow feed server never delays a send.

A second scheduler, a missed or doubled fire (a DST change), or a restart mid-tick
changes nothing: uniqueness in the schema and conditional updates make every step safe
to repeat. The clock is started only by `digest run` and `digest scheduler`, never by
the web app factory or a web worker.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol
from zoneinfo import ZoneInfo

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger
from flask import Flask

from digest.core.db import Database, utcnow
from digest.domain import deliveries, engagement, heartbeats, issues
from digest.domain.deliveries import Reaped
from digest.engine import feeds

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Gets sending issues to whatever sends them."""

    def dispatch(self, issue_ids: Sequence[int]) -> None:
        """Make sure senders work on these sending issues."""
        ...


@dataclass
class TickReport:
    """What one tick did."""

    weekly: list[issues.WeeklyOutcome] = field(default_factory=list)
    started: list[int] = field(default_factory=list)
    reaped: Reaped = Reaped(0, 0)
    requeued: int = 0
    finished: list[int] = field(default_factory=list)
    sending: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


def _step(report: TickReport, name: str, action: Callable[[], None]) -> None:
    # One failing step (say, a newsletter with a broken time zone) must not stop the
    # others: sending and reaping go on, and the next tick tries again.
    try:
        action()
    except Exception as exc:  # noqa: BLE001
        log.exception("tick: %s failed", name)
        report.errors.append(f"{name}: {exc}")


def start_due_issues(app: Flask, now: dt.datetime | None = None) -> list[int]:
    """Fan out and start every due scheduled issue, committing chunk by chunk."""
    database: Database = app.extensions["digest.db"]
    started = []
    with database.sessionmaker() as session:
        for issue_id in issues.due_issue_ids(session, now):
            session.commit()
            for _step_done in issues.start_issue_chunks(session, issue_id, app.config, now):
                session.commit()
            session.commit()
            started.append(issue_id)
    return started


def maintain(app: Flask, now: dt.datetime | None = None) -> tuple[Reaped, int, list[int]]:
    """Reap expired leases, requeue due retries, finish done issues; return what changed."""
    database: Database = app.extensions["digest.db"]
    with database.session() as session:
        reaped = deliveries.reap_expired(session, app.config["AMBIGUOUS"], now)
        requeued = deliveries.requeue_due_retries(session, now)
    with database.session() as session:
        finished = issues.finish_done_issues(session, now)
    if reaped.returned or reaped.unclear:
        log.warning(
            "reaper: %d expired claims back in the queue, %d unclear sends marked",
            reaped.returned, reaped.unclear,
        )
    return reaped, requeued, finished


def tick(
    app: Flask, now: dt.datetime | None = None, dispatcher: Dispatcher | None = None
) -> TickReport:
    """Do all due work once; safe to run at any time, twice, or in two processes."""
    database: Database = app.extensions["digest.db"]
    report = TickReport()

    def now_or_real() -> dt.datetime:
        return now if now is not None else utcnow()

    def weekly() -> None:
        with database.session() as session:
            report.weekly = issues.materialise_weekly_issues(session, app.config, now_or_real())

    def start() -> None:
        report.started = start_due_issues(app, now_or_real())

    def maintenance() -> None:
        report.reaped, report.requeued, report.finished = maintain(app, now_or_real())

    def dispatch() -> None:
        with database.session() as session:
            report.sending = issues.sending_issue_ids(session)
        if dispatcher is not None and report.sending:
            dispatcher.dispatch(report.sending)

    _step(report, "weekly issues", weekly)
    _step(report, "starting due issues", start)
    _step(report, "maintenance", maintenance)
    def clicks() -> None:
        with database.session() as session:
            engagement.settle(session, app.config, now_or_real())

    _step(report, "dispatch", dispatch)
    _step(report, "counting clicks", clicks)
    try:
        with database.session() as session:
            heartbeats.record(session, heartbeats.CLOCK, app.config["TICK_SECONDS"], report.errors,
                              now_or_real())
    except Exception:  # noqa: BLE001  (a missed beat shows as lag; the tick's work stands)
        log.exception("tick: recording the heartbeat failed")
    return report


def intake(app: Flask) -> None:
    """Fetch the due sources, then read the pages of newly saved links."""
    try:
        feeds.fetch_sources(app)
        feeds.read_saved_pages(app)
    except Exception:  # noqa: BLE001  (the next run tries again; sending is not concerned)
        log.exception("feed intake failed")


class Clock:
    """APScheduler 3.x in a background thread, calling tick() (and, in Celery mode, the
    periodic mail jobs) at a fixed interval; the first tick runs at once."""

    def __init__(
        self,
        app: Flask,
        dispatcher: Dispatcher | None = None,
        interval: float | None = None,
        extra_jobs: Sequence[tuple[str, float, Callable[[], None]]] = (),
    ) -> None:
        self.app = app
        self.interval = interval or app.config["TICK_SECONDS"]
        self.scheduler = BackgroundScheduler(
            timezone=ZoneInfo("UTC"),
            job_defaults={
                "coalesce": True,
                "max_instances": 1,
                "misfire_grace_time": max(int(self.interval), 1),
            },
        )
        self.scheduler.add_job(
            tick,
            IntervalTrigger(seconds=self.interval),
            kwargs={"app": app, "dispatcher": dispatcher},
            id="digest-tick",
            next_run_time=utcnow(),
        )
        self.scheduler.add_job(
            intake, IntervalTrigger(seconds=self.interval), kwargs={"app": app},
            id="digest-feeds", next_run_time=utcnow(),
        )
        for name, seconds, job in extra_jobs:
            self.scheduler.add_job(job, IntervalTrigger(seconds=seconds), id=name, next_run_time=utcnow())

    def start(self) -> Clock:
        """Start ticking; return self. The app's "digest.wake" then runs a tick at once."""
        self.scheduler.start()
        self.app.extensions["digest.wake"] = self.wake
        return self

    def wake(self) -> None:
        """Run the next tick now rather than at its time (an issue was just made due)."""
        if self.scheduler.running:
            self.scheduler.modify_job("digest-tick", next_run_time=utcnow())

    def shutdown(self) -> None:
        """Stop ticking, waiting for a running tick to finish."""
        if self.app.extensions.get("digest.wake") == self.wake:
            del self.app.extensions["digest.wake"]
        if self.scheduler.running:
            self.scheduler.shutdown(wait=True)
