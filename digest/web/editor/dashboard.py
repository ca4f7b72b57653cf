"""The dashboard: reader growth and per-issue delivery results, as charts and tables."""

from __future__ import annotations

from flask import current_app, g, render_template

from digest.core.extensions import db_session
from digest.core.models import Issue
from digest.domain import issues as issues_domain
from digest.domain import reports
from digest.domain.issue_mail import section_combinations
from digest.web.editor import bp, charts, engagement

ISSUE_SERIES = {
    "delivered": "delivered",
    "bounced": "bounced",
    "failed": "failed or unclear",
    "unsubscribed": "unsubscribed",
}


def _reach(issue: Issue | None) -> tuple[int, int]:
    """Return how many confirmed readers get a post of the issue, and how many get none."""
    if issue is None:
        return 0, 0
    combinations = section_combinations(db_session(), issue.id, current_app.config)
    return (sum(c.readers for c in combinations if c.headlines),
            sum(c.readers for c in combinations if not c.headlines))


@bp.get("/")
def dashboard() -> str:
    """Show what lies ahead, reader growth and per-issue delivery results."""
    newsletter = g.newsletter
    if newsletter is None:
        return render_template("editor/dashboard.html", weeks=[], issues=[])
    dbs = db_session()
    weeks = reports.growth(dbs, newsletter, min_weeks=8)
    issues = reports.issue_figures(dbs, newsletter)
    ahead = issues_domain.outlook(dbs, newsletter)
    # Each week by its local Monday as an ISO date; under the axis its month and day, which
    # fit a phone's width (the marks' titles and the table keep the year).
    week_names = [w.start.isoformat() for w in weeks]
    week_axis = [f"{w.start:%m-%d}" for w in weeks]
    issue_names = [f.issue.subject[:18] + ("…" if len(f.issue.subject) > 18 else "") for f in issues]
    return render_template(
        "editor/dashboard.html",
        weeks=weeks,
        issues=issues,
        ahead=ahead,
        reach=_reach(ahead.next_issue),
        readers_chart=charts.line(week_names, [w.readers for w in weeks], "readers", axis=week_axis),
        weekly_chart=charts.bars(
            week_names,
            {"confirmed": [w.confirmed for w in weeks], "unsubscribed": [w.unsubscribed for w in weeks]},
            {"confirmed": "new readers", "unsubscribed": "unsubscribed"}, axis=week_axis,
        ),
        issues_chart=charts.bars(
            issue_names,
            {key: [getattr(f, key) for f in issues] for key in ISSUE_SERIES},
            ISSUE_SERIES,
        ),
        **engagement.dashboard_view(newsletter),
    )
