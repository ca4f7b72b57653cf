"""Logging for the long-running processes: plain text lines, or one JSON object per line.

Contract: `configure` sets the root logger once per process (DIGEST_LOG_FORMAT: "text"
or "json"); every record written while a web request is handled carries that request's
id (`request_id`, the X-Request-ID the proxy sent when it is a plausible id, else a new
one), so one request's lines can be found among many workers'.
"""

from __future__ import annotations

import logging
import re
import sys
import uuid

from flask import g, has_request_context, request
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
JSON_FIELDS = ["asctime", "levelname", "name", "message"]
# What we accept from a proxy's X-Request-ID: short, and nothing that could forge a log line.
REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{8,128}")


class RequestIdFilter(logging.Filter):
    """Adds the current web request's id (or None outside a request) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Attach request_id; never drop a record."""
        record.request_id = g.get("request_id") if has_request_context() else None
        return True


def configure(log_format: str, level: int = logging.INFO) -> None:
    """Send every log record to stderr as text or JSON lines, with request ids."""
    handler = logging.StreamHandler(sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter(
            JSON_FIELDS, rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        ))
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


def request_id() -> str:
    """Return the id of the current request: the proxy's X-Request-ID if plausible, else new."""
    given = request.headers.get("X-Request-ID", "")
    return given if REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
