"""Outgoing webhooks: what the outbox adds to a change, and how fast one process delivers.

On a fresh SQLite instance, in one run:
- adds N readers by hand (one transaction each) with no webhook endpoint, then N more
  with two endpoints listening to subscriber.created: the ratio is what writing the event
  and its deliveries in the change's own transaction costs;
- delivers the 2N messages to a local receiver with one `deliver_due` loop (as the thread
  in `digest run` does): messages per second, signed and recorded with their attempt.

    .venv/bin/python bench/webhooks.py [--readers 300]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from sqlalchemy import func, select

from digest import create_app
from digest.core.db import upgrade
from digest.core.extensions import get_db
from digest.core.models import Newsletter, WebhookDelivery, WebhookState
from digest.domain import webhooks
from digest.domain.demo import load_demo
from digest.domain.subscribers.actions import EditorAddition, add_by_editor
from digest.engine.webhooks import deliver_due, webhook_client


class _Sink(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802  (http.server's naming)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(204)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def run(readers: int) -> dict[str, float]:
    """Return the figures of one run."""
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-webhooks-"))
    app = create_app({"INSTANCE_PATH": str(folder), "SECRET_KEY": "bench-secret-key-" + "x9" * 20,
                      "ALLOW_PRIVATE_URLS": True})
    with app.app_context():
        database = get_db()
    upgrade(database)
    with database.session() as session:
        newsletter_id = load_demo(session).id  # type: ignore[union-attr]
    sink = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink.serve_forever, daemon=True).start()

    def add(prefix: str) -> float:
        started = time.perf_counter()
        for n in range(readers):
            with database.session() as session:
                newsletter = session.get_one(Newsletter, newsletter_id)
                add_by_editor(session, app.config, newsletter,
                              EditorAddition(f"{prefix}{n}@example.org"))
        return time.perf_counter() - started

    plain = add("plain")
    with database.session() as session:
        for name in ("crm", "analytics"):
            webhooks.create_endpoint(session, f"http://127.0.0.1:{sink.server_port}/{name}",
                                     ["subscriber.created"])
    hooked = add("hooked")
    started = time.perf_counter()
    with webhook_client(app) as client:
        while deliver_due(app, client, "bench", limit=50):
            pass
    delivering = time.perf_counter() - started
    with database.session() as session:
        delivered = session.scalar(select(func.count()).select_from(WebhookDelivery)
                                   .where(WebhookDelivery.state == WebhookState.DELIVERED)) or 0
    sink.shutdown()
    return {"readers": readers, "plain_ms": plain / readers * 1000,
            "hooked_ms": hooked / readers * 1000, "ratio": hooked / plain,
            "delivered": delivered, "per_second": delivered / delivering}


def main() -> None:
    """Parse arguments, run, print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=300)
    figures = run(parser.parse_args().readers)
    print(f"readers added per run:                 {figures['readers']:.0f}")
    print(f"add a reader, no endpoint:             {figures['plain_ms']:.2f} ms")
    print(f"add a reader, 2 endpoints listening:   {figures['hooked_ms']:.2f} ms "
          f"(x{figures['ratio']:.2f})")
    print(f"messages delivered:                    {figures['delivered']:.0f}")
    print(f"delivery rate, one process:            {figures['per_second']:.0f} messages/s")


if __name__ == "__main__":
    main()
