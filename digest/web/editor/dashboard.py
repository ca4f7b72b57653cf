"""The dashboard: reader growth and per-issue delivery results, as charts and tables."""

from __future__ import annotations

from flask import g, render_template

from digest.core.extensions import db_session
from digest.domain import reports
from digest.web.editor import bp, charts, engagement

ISSUE_SERIES = {
    "delivered": "delivered",
    "bounced": "bounced",
    "failed": "failed or unclear",
    "unsubscribed": "unsubscribed",
}


@bp.get("/")
def dashboard() -> str:
    """Show reader growth and per-issue delivery results as charts and tables."""
    newsletter = g.newsletter
    if newsletter is None:
        return render_template("editor/dashboard.html", weeks=[], issues=[])
    dbs = db_session()
    weeks = reports.growth(dbs, newsletter, min_weeks=8)
    issues = reports.issue_figures(dbs, newsletter)
    week_names = [w.start.strftime("%d %b") for w in weeks]
    issue_names = [f.issue.subject[:18] + ("…" if len(f.issue.subject) > 18 else "") for f in issues]
    return render_template(
        "editor/dashboard.html",
        weeks=weeks,
        issues=issues,
        readers_chart=charts.line(week_names, [w.readers for w in weeks], "readers"),
        weekly_chart=charts.bars(
            week_names,
            {"confirmed": [w.confirmed for w in weeks], "unsubscribed": [w.unsubscribed for w in weeks]},
            {"confirmed": "new readers", "unsubscribed": "unsubscribed"},
        ),
        issues_chart=charts.bars(
            issue_names,
            {key: [getattr(f, key) for f in issues] for key in ISSUE_SERIES},
            ISSUE_SERIES,
        ),
        **engagement.dashboard_view(newsletter),
    )
