"""The OpenAPI document of /api/v1: valid, complete, and true under a bounded fuzz run."""

from __future__ import annotations

import re
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from openapi_spec_validator import validate
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from digest.web.api.spec import IMPLICIT_METHODS
from tests.support.api import make_token
from tests.support.readers import load_newsletter

DOC = "/api/v1/openapi.json"
# Examples per operation and generation mode: enough to find a crash, bounded in time.
FUZZ_EXAMPLES = 25


def _document(app: Flask) -> dict[str, Any]:
    response = app.test_client().get(DOC)
    assert response.status_code == 200 and response.mimetype == "application/json"
    return response.get_json()


@pytest.mark.one_backend
def test_the_document_is_valid_openapi_3_1(app) -> None:  # type: ignore[no-untyped-def]
    """openapi-spec-validator accepts the document as OpenAPI 3.1, bearer scheme included."""
    doc = _document(app)
    validate(doc)
    assert doc["openapi"].startswith("3.1")
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "dg_…",
        "description": "An API token of an active editor."}
    assert doc["security"] == [{"bearer": []}]
    assert doc["servers"] == [{"url": "https://news.example.org"}]


@pytest.mark.one_backend
def test_every_route_is_documented_and_nothing_else(app) -> None:  # type: ignore[no-untyped-def]
    """The routes under /api/v1 in the URL map and the document's operations are the same set."""
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routes |= {(path, m.lower()) for m in (rule.methods or set()) - IMPLICIT_METHODS}
    documented = {(path, method) for path, ops in _document(app)["paths"].items() for method in ops}
    assert routes == documented
    assert len(routes) >= 20


@pytest.mark.one_backend
def test_every_token_operation_documents_its_errors(app) -> None:  # type: ignore[no-untyped-def]
    """Token endpoints list 401 (with WWW-Authenticate) and 429; admin-only ones also 403."""
    doc = _document(app)
    public = {("/api/v1/subscribe", "get"), ("/api/v1/subscribe", "post"), (DOC, "get")}
    admin = set()
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            assert op["summary"] and op["tags"] and op["operationId"]
            if (path, method) in public:
                assert op["security"] == []
                continue
            assert "security" not in op
            assert "WWW-Authenticate" in op["responses"]["401"]["headers"]
            assert "Retry-After" in op["responses"]["429"]["headers"]
            if "403" in op["responses"]:
                assert "Admins only." in op["description"]
                admin.add((path, method))
    assert admin == {
        ("/api/v1/newsletters/{newsletter}/subscribers/{subscriber_id}/unsubscribe", "post"),
        ("/api/v1/subscribers/{subscriber_id}/suppress", "post"),
    }
    operation_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


@pytest.mark.one_backend
def test_errors_outside_any_route_are_json_too(app, client) -> None:  # type: ignore[no-untyped-def]
    """An unknown path or a wrong method under /api/v1 answers JSON, not an HTML page."""
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    assert "error" in missing.get_json()
    wrong = client.put("/api/v1/newsletters")
    assert wrong.status_code == 405 and wrong.mimetype == "application/json"
    assert "GET" in wrong.headers["Allow"]
    assert client.get("/editor/nothing-here").mimetype == "text/html"


@pytest.fixture
def app_overrides(app_overrides: dict[str, Any]) -> dict[str, Any]:
    """Room for the fuzz run's hundreds of requests with one token.

    (RATELIMIT_ENABLED=False would stick to the shared limiter for later apps.)
    """
    return {**app_overrides, "API_RATE_LIMIT": "10000 per minute"}


def _fuzz(operation: Any, mode: GenerationMode, auth: dict[str, str], checks: list[Any]) -> None:
    """Send FUZZ_EXAMPLES generated requests to one operation and check every answer."""

    @settings(max_examples=FUZZ_EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=[Phase.explicit, Phase.generate])
    @given(case=operation.as_strategy(generation_mode=mode, headers=auth))
    def run(case: Any) -> None:
        case.call_and_validate(headers=auth, checks=checks)

    try:
        run()
    except Unsatisfiable:
        pass  # nothing invalid to send (no parameters or body)


@pytest.mark.slow
def test_fuzzing_finds_no_crash_and_no_undocumented_answer(app) -> None:  # type: ignore[no-untyped-def]
    """Schemathesis sends valid and invalid requests to every operation: no 500, all as documented."""
    load_newsletter(app)
    auth = {"Authorization": f"Bearer {make_token(app)}"}
    schema = schemathesis.openapi.from_wsgi(DOC, app)
    checks = [not_a_server_error, status_code_conformance, content_type_conformance,
              response_schema_conformance, response_headers_conformance]
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        # The signup's trap field answers bots like everyone (202), whatever they put in it.
        rejects_bad_input = not operation.path.endswith("/subscribe")
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            strict = mode is GenerationMode.NEGATIVE and rejects_bad_input
            try:
                _fuzz(operation, mode, auth, checks + ([negative_data_rejection] if strict else []))
            except Exception as exc:  # noqa: BLE001  (collect every operation's failure)
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
