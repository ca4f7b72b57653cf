"""The OpenAPI document of /api/v1: valid, complete, and true under a bounded schemathesis run."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from openapi_spec_validator import validate
from sqlalchemy import select

from digest.core.models import Issue, IssueStatus, Newsletter, Post, Subscriber
from digest.domain.demo import load_demo_history
from digest.web.api.spec import IMPLICIT_METHODS
from tests.support.api import make_token
from tests.support.apps import get_db_of
from tests.support.delivery import digest_process, process_env
from tests.support.readers import load_newsletter
from tests.support.waiting import wait_until

DOC = "/api/v1/openapi.json"


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
            # A JSON body too deeply nested is refused on any operation, and any may meet a
            # database that cannot answer.
            assert "400" in op["responses"], (path, method)
            assert "Retry-After" in op["responses"]["503"]["headers"], (path, method)
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
        ("/api/v1/newsletters/{newsletter}", "patch"),
        *((path, method) for path, ops in doc["paths"].items() if path.startswith("/api/v1/webhooks")
          for method in ops),
    }
    operation_ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(operation_ids) == len(set(operation_ids))


@pytest.mark.one_backend
def test_the_document_states_the_text_rules(app) -> None:  # type: ignore[no-untyped-def]
    """Text fields carry their control-character pattern and lengths; conflicts are 409s."""
    doc = _document(app)
    post = doc["components"]["schemas"]["NewPost"]["properties"]
    title, body = post["title"]["pattern"], post["body_md"]["pattern"]
    assert post["title"]["maxLength"] == 300
    assert re.search(title, "A title") and not re.search(title, "A\x0btitle")
    assert not re.search(title, "   ") and not re.search(title, "Two\nlines")
    # No \s or \S, which ECMAScript reads otherwise (U+FEFF is a space there, not in Python):
    # a title of one U+FEFF is text to the server, so to every reader of the pattern.
    patterns = re.findall(r'"pattern": "([^"]*)"', json.dumps(doc))
    assert patterns and not any(re.search(r"(?<!\\)\\\\[sS]", p) for p in patterns)
    assert re.search(title, "\ufeff") and not re.search(title, "\u3000")
    # Found by schemathesis (seed 20261205): a link's trailing spaces are trimmed, but a line
    # separator among them is a control character to a one-line field.
    link = post["link_url"]["pattern"]
    assert re.search(link, "https://example.org/a\u3000") and not re.search(link, "https://example.org/a\u2029")
    assert re.search(body, "Two\r\nlines\tand a tab") and not re.search(body, "bell\x07")
    assert "Multi-line" in post["body_md"]["description"]
    assert doc["components"]["schemas"]["NewSubscriber"]["properties"]["consent"]["const"] is True
    email = doc["components"]["schemas"]["NewSubscriber"]["properties"]["email"]
    assert re.search(email["not"]["pattern"], "ada@mail.example.TEST")
    assert not re.search(email["not"]["pattern"], "ada@testing.org")
    publish = doc["paths"]["/api/v1/posts/{post_id}/publish"]["post"]["responses"]
    assert "409" in publish and "422" not in publish


@pytest.mark.one_backend
def test_every_body_is_bounded_and_its_byte_limit_stated(app) -> None:  # type: ignore[no-untyped-def]
    """Every text in a request body has a maxLength and every list a maxItems, so the largest
    body the rules allow has a size, and every operation taking a body states 413 beyond it."""
    doc = _document(app)
    bodies = [name for name, schema in doc["components"]["schemas"].items()
              if schema.get("additionalProperties") is False and "properties" in schema
              and any(op.get("requestBody", {}).get("content", {}).get("application/json", {})
                      .get("schema", {}).get("$ref", "").endswith(f"/{name}")
                      for ops in doc["paths"].values() for op in ops.values())]
    assert {"NewPost", "PostChanges", "NewSubscriber", "SuppressRequest", "Signup"} <= set(bodies)
    for name in bodies:
        for field, rule in doc["components"]["schemas"][name]["properties"].items():
            if "string" in rule["type"]:
                assert "maxLength" in rule, (name, field)
            if rule["type"] == "array":
                assert "maxItems" in rule and "maxLength" in rule["items"], (name, field)
    for ops in doc["paths"].values():
        for op in ops.values():
            if "requestBody" not in op:
                continue
            if "application/json" in op["requestBody"]["content"]:
                assert re.search(r"over [0-9,]+ bytes", op["responses"]["413"]["description"])
            else:  # an upload's limit is a setting, which its description names
                assert "413" in op["responses"] and "DIGEST_" in op["description"]


def test_errors_outside_any_route_are_json_too(app, client) -> None:  # type: ignore[no-untyped-def]
    """An unknown path or a wrong method under /api/v1 answers JSON, not an HTML page."""
    missing = client.get("/api/v1/nothing-here")
    assert missing.status_code == 404 and missing.mimetype == "application/json"
    assert "error" in missing.get_json()
    wrong = client.put("/api/v1/newsletters")
    assert wrong.status_code == 405 and wrong.mimetype == "application/json"
    assert "GET" in wrong.headers["Allow"]
    assert client.get("/editor/nothing-here").mimetype == "text/html"


# Seconds of generated requests per backend for examples, coverage and fuzzing: each gets
# a turn within it.
FUZZ_SECONDS = int(os.environ.get("DIGEST_TEST_FUZZ_SECONDS", "45"))
# Scenarios of the stateful phase: about 15 s on two loaded cores.
STATEFUL_SCENARIOS = int(os.environ.get("DIGEST_TEST_FUZZ_SCENARIOS", "10"))
# More schemathesis options for a run by hand, e.g. DIGEST_TEST_FUZZ_ARGS="--seed 20261205".
EXTRA_ARGS = os.environ.get("DIGEST_TEST_FUZZ_ARGS", "").split()
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
# Room for every generated request: the limits are settings, raised for this run only.
UNLIMITED = {name: "100000 per minute" for name in (
    "API_RATE_LIMIT", "API_FAILED_AUTH_LIMIT", "SIGNUP_RATE_LIMIT", "LINK_RATE_LIMIT",
    "ONE_CLICK_RATE_LIMIT")}


def _known_data(app: Flask) -> str:
    """Return a schemathesis configuration that draws path parameters mostly from real data.

    Random slugs and ids would meet 404 nearly every time, and nothing behind it (a post's
    rules, an unsubscribe) would be tried; the rest of the draws stay random.
    """
    with get_db_of(app).session() as session:
        values = {
            "newsletter": list(session.scalars(select(Newsletter.slug))),
            "post_id": list(session.scalars(select(Post.id))),
            "subscriber_id": list(session.scalars(select(Subscriber.id))),
            # The API reads sent issues only.
            "issue_id": list(session.scalars(select(Issue.id).where(Issue.status == IssueStatus.SENT))),
        }
    lines = []
    for name, known in values.items():
        lines += [f"[dictionaries.{name}]", f"values = {json.dumps(known)}"]
    lines.append("[parameters]")
    lines += [f'"path.{name}" = {{ dictionary = "{name}", probability = 0.8 }}' for name in values]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return bool(response.status == 200)
    except OSError:
        return False


@pytest.mark.slow
def test_schemathesis_finds_no_failure_against_digest_run(app, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`schemathesis run --checks all` against a real `digest run` with an admin token, every
    phase for FUZZ_SECONDS: no server error, no answer the document does not describe, no
    request it allows refused, none it refuses accepted.

    The stateful phase (links between operations: create a post, then change, publish and
    delete it) runs apart, bounded by its number of scenarios rather than by time, so a slow
    machine that spends the budget on the other phases still walks the links."""
    loaded = load_newsletter(app)
    with get_db_of(app).session() as session:  # a sent issue, for the operations that read one
        load_demo_history(session, app.config, session.get_one(Newsletter, loaded.id))
    config = tmp_path / "schemathesis.toml"
    config.write_text(_known_data(app))
    token = make_token(app)
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    env = process_env(app, BASE_URL=base, **UNLIMITED)
    log = tmp_path / "run.log"

    def schemathesis(phases: str, *bound: str) -> str:
        run = subprocess.run(
            [SCHEMATHESIS, "--config-file", str(config), "run", f"{base}{DOC}", "--checks", "all",
             *bound, "--header", f"Authorization: Bearer {token}",
             "--workers", "1", "--suppress-health-check", "all",
             "--generation-database", ":memory:", "--no-color", "--phases", phases, *EXTRA_ARGS],
            capture_output=True, text=True, timeout=FUZZ_SECONDS + 300, cwd=tmp_path, check=False,
        )
        report = run.stdout + run.stderr
        assert run.returncode == 0, report[-20000:]
        assert "Unsupported regex" not in report, report[-5000:]
        print(report[-2500:])  # the run's summary, shown with -s (a long run by hand)
        return report

    with digest_process(["run", "--port", str(port)], env, log):
        # Slow to start on a loaded machine (two cores shared by many processes).
        wait_until(lambda: _healthy(f"{base}/healthz"), timeout=180,
                   what=lambda: log.read_text(errors="replace")[-3000:])
        schemathesis("examples,coverage,fuzzing", "--max-time", str(FUZZ_SECONDS))
        report = schemathesis("stateful", "--max-examples", str(STATEFUL_SCENARIOS))
    scenarios = re.search(r"Scenarios: +([0-9]+)", report)
    assert scenarios and int(scenarios[1]) > 0, report[-5000:]
