"""CSV import from the editor workspace: does a big upload keep the web app responsive?

Uploads a generated CSV of N rows through the real form (an admin's session, CSRF token
included) on a fresh SQLite instance, then measures, in one run:
- how long the upload request takes to answer, against how long the background job
  takes to check and import everything (the request must not wait for the work);
- how long a subscriber page takes to render while the job runs, against the same page
  with nothing running (the ratio is the slowdown other editors feel).

    .venv/bin/python bench/import_job.py [--rows 100000] [--samples 20]
"""

from __future__ import annotations

import argparse
import io
import re
import statistics
import tempfile
import time
from pathlib import Path

from digest import create_app
from digest.core.db import upgrade
from digest.core.extensions import get_db
from digest.core.models import EditorRole
from digest.domain.demo import load_demo
from digest.domain.editors import create_editor

PASSWORD = "bench password 1234"
_TOKEN = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def _token(html: str) -> str:
    match = _TOKEN.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def _page_ms(client, samples: int) -> float:  # type: ignore[no-untyped-def]
    times = []
    for _ in range(samples):
        started = time.perf_counter()
        assert client.get("/editor/subscribers").status_code == 200
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def run(rows: int, samples: int) -> dict[str, float]:
    """Upload rows readers and time the answer, the job and a page; return the figures."""
    folder = Path(tempfile.mkdtemp(prefix="digest-bench-import-"))
    app = create_app({"INSTANCE_PATH": str(folder), "SECRET_KEY": "bench-secret-key"})
    with app.app_context():
        database = get_db()
    upgrade(database)
    with database.session() as session:
        load_demo(session)
        create_editor(session, "admin@example.com", PASSWORD, EditorRole.ADMIN)
    client = app.test_client()
    login = client.get("/editor/login").get_data(as_text=True)
    client.post("/editor/login", data={"csrf_token": _token(login), "email": "admin@example.com",
                                       "password": PASSWORD})
    data = "email,name,status\n" + "".join(f"bench{n:07d}@example.org,Reader {n},confirmed\n"
                                             for n in range(rows))
    idle = _page_ms(client, samples)

    form = client.get("/editor/subscribers/import").get_data(as_text=True)
    started = time.perf_counter()
    response = client.post("/editor/subscribers/import", content_type="multipart/form-data", data={
        "csrf_token": _token(form), "source": "import", "statuses": "keep",
        "file": (io.BytesIO(data.encode()), "bench.csv"),
    })
    answered = time.perf_counter() - started
    assert response.status_code == 302, response.status_code
    status_url = response.headers["Location"] + "/status"
    busy = []
    while True:
        state = client.get(status_url).get_json()["state"]
        if state not in ("checking", "importing"):
            break
        busy.append(_page_ms(client, 1))
    finished = time.perf_counter() - started
    assert state == "done", state
    database.dispose()
    return {
        "answer_s": answered,
        "job_s": finished,
        "rows_per_s": rows / finished,
        "idle_ms": idle,
        "busy_ms": statistics.median(busy) if busy else float("nan"),
    }


def main() -> None:
    """Print one table of figures measured in this run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=20)
    args = parser.parse_args()
    figures = run(args.rows, args.samples)
    print(f"CSV import of {args.rows:,} rows through the editor workspace (SQLite, one process)")
    print(f"{'measure':<44}{'value':>12}")
    print(f"{'upload request answered after (s)':<44}{figures['answer_s']:>12.2f}")
    print(f"{'job checked and imported everything after (s)':<44}{figures['job_s']:>12.1f}")
    print(f"{'  job / answer':<44}{figures['job_s'] / figures['answer_s']:>12,.0f}")
    print(f"{'rows imported per second':<44}{figures['rows_per_s']:>12,.0f}")
    print(f"{'subscriber page, nothing running (ms)':<44}{figures['idle_ms']:>12.1f}")
    print(f"{'subscriber page, during the import (ms)':<44}{figures['busy_ms']:>12.1f}")
    print(f"{'  during / idle':<44}{figures['busy_ms'] / figures['idle_ms']:>12.2f}")


if __name__ == "__main__":
    main()
