"""Monitoring: the Prometheus collector, its private listener, and the health checks.

Contract: every figure comes from the database (`domain.metrics`) at scrape time, so the
web app's `/metrics`, the listener `digest run` or `digest scheduler` opens on
DIGEST_METRICS_LISTEN and any other process report the same numbers. `health` checks the
three parts a send needs (the database, the clock's last tick, the SMTP server or the
outbox folder) and names each one that fails; the SMTP check connects and logs in, at
most once per SMTP_CHECK_SECONDS per process, so a busy health probe costs the mail
server nothing.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import text

from digest.core.db import Database, utcnow
from digest.domain import heartbeats, metrics
from digest.engine.liveness import liveness_for
from digest.mail.transport import SendError, Transport, make_transport

SMTP_CHECK_SECONDS = 30.0
SMTP_CHECK_TIMEOUT = 5.0
# The clock counts as stopped once its next tick is this many intervals overdue.
LATE_TICKS = 2.0


class FiguresCollector(Collector):
    """Turns domain.metrics.figures into Prometheus metric families at each scrape."""

    def __init__(self, database: Database) -> None:
        self.database = database

    def collect(self) -> Iterator[Metric]:
        """Yield every metric family, read from the database now."""
        with self.database.sessionmaker() as session:
            figures = metrics.figures(session)
        deliveries = GaugeMetricFamily("digest_deliveries", "Delivery rows per ledger state.",
                                       labels=["state"])
        for state, count in figures.deliveries.items():
            deliveries.add_metric([state], count)
        yield deliveries
        queue = GaugeMetricFamily("digest_queue_depth", "Messages waiting to be sent.", labels=["queue"])
        for name, count in figures.queue_depth.items():
            queue.add_metric([name], count)
        yield queue
        yield GaugeMetricFamily("digest_send_rate_messages_per_second",
                                "Issue messages sent per second over the last minute.",
                                value=figures.send_rate)
        replies = CounterMetricFamily("digest_smtp_replies", "Last SMTP reply of each delivery, by class.",
                                      labels=["class"])
        for reply_class in ("2xx", "4xx", "5xx"):
            replies.add_metric([reply_class], figures.smtp_replies.get(reply_class, 0))
        yield replies
        yield CounterMetricFamily("digest_signups", "Subscriptions ever recorded.", value=figures.signups)
        yield CounterMetricFamily("digest_confirmations", "Subscriptions ever confirmed.",
                                  value=figures.confirmed)
        yield CounterMetricFamily("digest_unsubscribes", "Subscriptions ended by their reader.",
                                  value=figures.unsubscribes)
        yield CounterMetricFamily("digest_job_errors", "Scheduler jobs that failed.", value=figures.job_errors)
        if figures.last_tick is not None and figures.tick_lag is not None:
            yield GaugeMetricFamily("digest_scheduler_last_tick_timestamp_seconds",
                                    "When the clock last ticked (Unix time).",
                                    value=figures.last_tick.timestamp())
            yield GaugeMetricFamily("digest_scheduler_tick_lag_seconds",
                                    "How overdue the clock's next tick is (0 while on time).",
                                    value=figures.tick_lag)


def registry_for(database: Database) -> CollectorRegistry:
    """Return a registry holding only digest's figures."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(database))
    return registry


def exposition(registry: CollectorRegistry) -> bytes:
    """Return the registry's metrics in Prometheus' text format."""
    return generate_latest(registry)


def start_listener(app: Flask) -> Any | None:
    """Serve /metrics on DIGEST_METRICS_LISTEN (a private address) if set; return the server."""
    listen = app.config.get("METRICS_LISTEN")
    if not listen:
        return None
    host, port = listen
    server, _thread = start_http_server(port, addr=host, registry=registry_for(app.extensions["digest.db"]))
    return server


@dataclass(frozen=True)
class Health:
    """Each part's verdict: "ok" or what is wrong with it."""

    checks: dict[str, str]

    @property
    def ok(self) -> bool:
        """Return whether every part is healthy."""
        return all(verdict == "ok" for verdict in self.checks.values())


def health(app: Flask) -> Health:
    """Check the database, the clock's last tick and the SMTP server (or the outbox)."""
    database: Database = app.extensions["digest.db"]
    checks = {"database": "ok", "scheduler": "ok", "smtp": _smtp(app)}
    try:
        with database.reader() as session:
            session.execute(text("SELECT 1"))
            beat = heartbeats.get(session)
    except Exception as exc:  # noqa: BLE001  (any failure to read is the verdict)
        outage = liveness_for(app).outage()
        checks["database"] = (
            f"unreachable since {outage.since:%H:%M:%S} UTC: {outage.reason}" if outage
            else f"unreachable: {type(exc).__name__}"
        )
        checks["scheduler"] = "unknown (the database is unreachable)"
        return Health(checks)
    if beat is None:
        checks["scheduler"] = "has never ticked: start `digest run` or `digest scheduler`"
    else:
        lag = heartbeats.lag(beat, utcnow())
        if lag > LATE_TICKS * beat.interval_seconds:
            since = (utcnow() - beat.beat_at).total_seconds()
            checks["scheduler"] = (f"no tick for {since:.0f} s (every {beat.interval_seconds:g} s expected; "
                                   f"the last from {beat.host})")
    return Health(checks)


def _smtp(app: Flask) -> str:
    # The last verdict, per app: (when, verdict); concurrent probes may both connect.
    cache: list[tuple[float, str]] = app.extensions.setdefault("digest.smtp_health", [])
    if cache and time.monotonic() - cache[-1][0] < SMTP_CHECK_SECONDS:
        return cache[-1][1]
    verdict = smtp_verdict(app.config)
    cache[:] = [(time.monotonic(), verdict)]
    return verdict


def smtp_verdict(config: Any, timeout: float = SMTP_CHECK_TIMEOUT) -> str:
    """Connect (and log in) to the configured SMTP server, or check the outbox; return "ok"
    or what failed, without the password."""
    transport: Transport = make_transport(config.get("SMTP_URL"), Path(config["OUTBOX_PATH"]), timeout)
    try:
        transport.connect()
    except SendError as exc:
        return str(exc)
    finally:
        transport.close()
    return "ok"
