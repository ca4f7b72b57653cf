"""What reading a feed costs, and what refusing a hostile one costs.

Usage: python bench/feeds.py [ENTRIES]   (default 200, the most one fetch keeps)

Builds an RSS 2.0 feed and a JSON Feed of ENTRIES items with HTML summaries (a script
in each), and a billion-laughs document; parses each with digest.domain.feeds (best of
five) and prints ms per feed and per entry, the bytes read, and the peak memory of
expanding nothing: the entity bomb is refused before any parser runs.
"""

from __future__ import annotations

import json
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from digest.domain.feeds import FeedError, parse_feed  # noqa: E402

SUMMARY = ("<p>A <b>long</b> summary with <a href='https://example.org/x?utm_source=rss'>a link"
           "</a> and <script>alert('x')</script> some more text to clean. </p>" * 4)


def rss(entries: int) -> bytes:
    """Return an RSS 2.0 feed of entries items."""
    items = "".join(
        f"<item><title>Entry {i}</title><link>https://example.org/{i}?utm_medium=feed</link>"
        f"<guid>id-{i}</guid><pubDate>Fri, 04 Dec 2026 09:00:00 GMT</pubDate>"
        f"<description><![CDATA[{SUMMARY}]]></description></item>" for i in range(entries))
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Bench</title>'
            f"<link>https://example.org/</link>{items}</channel></rss>").encode()


def json_feed(entries: int) -> bytes:
    """Return a JSON Feed of entries items."""
    return json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "Bench",
                       "items": [{"id": str(i), "url": f"https://example.org/{i}",
                                  "title": f"Entry {i}", "content_html": SUMMARY,
                                  "date_published": "2026-12-04T09:00:00Z"}
                                 for i in range(entries)]}).encode()


BOMB = (b'<?xml version="1.0"?><!DOCTYPE l [<!ENTITY a "' + b"x" * 1000 + b'">'
        + b"".join(f'<!ENTITY {chr(98 + i)} "{("&" + chr(97 + i) + ";") * 10}">'.encode()
                   for i in range(9))
        + b']><rss version="2.0"><channel><title>&j;</title></channel></rss>')


def best(run: Callable[[], object], rounds: int = 5) -> float:
    """Return the best wall time of rounds runs, in seconds."""
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return min(times)


def refuse(data: bytes) -> None:
    """Parse data, expecting FeedError."""
    try:
        parse_feed(data)
    except FeedError:
        return
    raise AssertionError("the entity bomb was parsed")


def main() -> None:
    """Print one table."""
    entries = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    cases = [("RSS 2.0", rss(entries), entries), ("JSON Feed", json_feed(entries), entries),
             ("entity bomb (10^9 x 1 kB)", BOMB, 0)]
    print(f"{'document':28} {'bytes':>9} {'ms/feed':>9} {'ms/entry':>9} {'peak MiB':>9}")
    for name, data, count in cases:
        seconds = best(lambda d=data, c=count: refuse(d) if c == 0 else parse_feed(d))
        tracemalloc.start()
        if count:
            parsed = parse_feed(data)
            assert len(parsed.entries) == count and "alert" not in parsed.entries[0].summary
        else:
            refuse(data)
        peak = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        per_entry = f"{seconds * 1000 / count:9.3f}" if count else f"{'-':>9}"
        print(f"{name:28} {len(data):9d} {seconds * 1000:9.2f} {per_entry} {peak:9.2f}")


if __name__ == "__main__":
    main()
