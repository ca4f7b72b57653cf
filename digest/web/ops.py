"""Operations endpoints: /healthz for load balancers and orchestrators, /metrics for Prometheus.

/healthz answers 200 when the database, the clock and the SMTP server (or outbox) are
healthy, and 503 naming each part that is not. /metrics exists only when
DIGEST_METRICS_TOKEN is set and answers only a request bearing it (otherwise 404, so a
scan learns nothing); wrong tokens are rate limited per client like the API's.
"""

from __future__ import annotations

import hmac

from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask_limiter.util import get_remote_address

from digest.core.extensions import current_app_object, get_db, limiter
from digest.engine import monitoring

bp = Blueprint("ops", __name__)


@bp.get("/healthz")
def healthz() -> tuple[Response, int]:
    """Answer each part's health; 503 when one is unhealthy."""
    health = monitoring.health(current_app_object())
    return jsonify(status="ok" if health.ok else "unhealthy", checks=health.checks), 200 if health.ok else 503


@bp.get("/metrics")
@limiter.limit(
    lambda: current_app.config["API_FAILED_AUTH_LIMIT"],
    key_func=lambda: "metrics-failed-auth:" + (get_remote_address() or ""),
    deduct_when=lambda response: response.status_code == 401,
)
def metrics() -> Response:
    """Prometheus metrics, for a request with the bearer token."""
    token = current_app.config.get("METRICS_TOKEN")
    if not token:
        abort(404)
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        return Response("A valid bearer token is required.\n", 401, {"WWW-Authenticate": "Bearer"},
                        mimetype="text/plain")
    body = monitoring.exposition(monitoring.registry_for(get_db()))
    return Response(body, mimetype="text/plain; version=0.0.4; charset=utf-8")
