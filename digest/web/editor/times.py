"""How the workspace shows a moment: in the newsletter's time zone, 24-hour ISO, UTC on hover.

Templates use the `when` filter (`{{ issue.sent_at|when }}`, `|when("date")`,
`|when(zone=issue.schedule_tz)`); plain text (flashes, progress.json) uses `local_text`.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

from flask import g
from markupsafe import Markup

from digest.web.editor import bp

FORMATS = {"date": "%Y-%m-%d", "minute": "%Y-%m-%d %H:%M", "second": "%Y-%m-%d %H:%M:%S"}


def workspace_zone() -> str:
    """Return the name of the time zone the workspace shows times in: the newsletter's."""
    newsletter = g.get("newsletter")
    return newsletter.time_zone if newsletter is not None else "UTC"


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def local_text(moment: dt.datetime | None, zone_name: str | None = None, precision: str = "minute") -> str:
    """Return moment as local 24-hour ISO text with the zone's abbreviation, e.g.
    "2026-12-07 08:00 CET" (a date alone has none; no moment, "")."""
    if moment is None:
        return ""
    local = _utc(moment).astimezone(ZoneInfo(zone_name or workspace_zone()))
    text = local.strftime(FORMATS[precision])
    return text if precision == "date" else f"{text} {local:%Z}"


@bp.app_template_filter("when")
def when(moment: dt.datetime | None, precision: str = "minute", zone: str | None = None) -> Markup:
    """Return a <time> element showing moment in local time, with UTC in its title (hover)."""
    if moment is None:
        return Markup("")
    utc = _utc(moment)
    return Markup('<time datetime="{}" title="{} UTC">{}</time>').format(
        utc.strftime("%Y-%m-%dT%H:%M:%SZ"), utc.strftime(FORMATS["second"]), local_text(utc, zone, precision)
    )
