"""Send now, as the editor sees it: from the click until the sending page shows the send.

    .venv/bin/python bench/send_now.py [--repeats 5] [--send-rate 2]

Each round is a fresh instance (SQLite, the outbox, the clock's 30 s tick): `digest db
upgrade`, `digest demo`, then `digest run`. Headless Chromium logs in as the demo's admin,
opens the demo's draft, clicks "Send now" (accepting its confirmation) and times until the
sending page's progress reads "sending" (or already "sent") with a count of deliveries
above 0, and until the first message is out. The issue asks for the first under 2 s.
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DIGEST = str(Path(sys.executable).with_name("digest"))
CHROMIUM = "/usr/bin/chromium"
SHOWN = """() => {
  const badge = document.getElementById('sending-badge');
  const total = document.querySelector('[data-field=total]');
  return badge && total && /sending|sent/.test(badge.className)
    && Number(total.textContent.replace(/,/g, '')) > 0;
}"""
FIRST_OUT = "() => Number(document.querySelector('[data-field=done]').textContent.replace(/,/g, '')) > 0"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


def one_round(folder: Path, send_rate: float, browser: object) -> tuple[float, float]:
    """Run one fresh instance, click Send now; return seconds until shown and until the first is out."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    env.update(DIGEST_INSTANCE_PATH=str(folder), DIGEST_DATABASE_URL=f"sqlite:///{folder / 'digest.sqlite3'}",
               DIGEST_BASE_URL=f"http://127.0.0.1:{port}", DIGEST_SEND_RATE=str(send_rate),
               PYTHONUNBUFFERED="1")
    subprocess.run([DIGEST, "db", "upgrade"], env=env, cwd=ROOT, check=True, capture_output=True)
    demo = subprocess.run([DIGEST, "demo"], env=env, cwd=ROOT, check=True, capture_output=True, text=True)
    found = re.search(r"as (\S+) with the password (\S+)", demo.stdout)
    if found is None:
        raise SystemExit(f"digest demo printed no login: {demo.stdout}{demo.stderr}")
    email, password = found.groups()
    with open(folder / "run.log", "ab") as log:
        server = subprocess.Popen([DIGEST, "run", "--port", str(port)], env=env, cwd=ROOT,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not _up(port):
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit(f"digest run did not come up; see {folder / 'run.log'}")
            time.sleep(0.2)
        base = f"http://127.0.0.1:{port}"
        context = browser.new_context(viewport={"width": 1280, "height": 900})  # type: ignore[attr-defined]
        page = context.new_page()
        page.on("dialog", lambda d: d.accept())
        page.goto(base + "/editor/login")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("button:has-text('Log in')")
        page.wait_for_selector("h1:has-text('Dashboard')")
        page.goto(base + "/editor/issues/1")  # the demo's draft
        page.wait_for_selector("button:has-text('Send now')")
        time.sleep(1)  # past the clock's first tick at start: the next is 30 s away
        started = time.monotonic()
        page.click("button:has-text('Send now')")
        page.wait_for_function(SHOWN, timeout=60_000, polling="raf")
        shown = time.monotonic() - started
        page.wait_for_function(FIRST_OUT, timeout=60_000, polling="raf")
        first = time.monotonic() - started
        context.close()
        return shown, first
    finally:
        server.terminate()
        server.wait(60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--send-rate", type=float, default=2.0, help="messages a second (the demo has 4 readers)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    shown: list[float] = []
    first: list[float] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for number in range(args.repeats):
                with tempfile.TemporaryDirectory(prefix="digest-send-now-") as folder:
                    a, b = one_round(Path(folder), args.send_rate, browser)
                shown.append(a)
                first.append(b)
                print(f"round {number + 1}: sending shown after {a:.2f} s, first message out after {b:.2f} s")
        finally:
            browser.close()
    print(f"\nSend now → sending shown with a count > 0: median {statistics.median(shown):.2f} s, "
          f"max {max(shown):.2f} s (the issue asks for 2 s)")
    print(f"Send now → first message counted as out:   median {statistics.median(first):.2f} s, "
          f"max {max(first):.2f} s")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
