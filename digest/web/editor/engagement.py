"""What readers did with an issue: the report on the sending page, its CSV, the
dashboard's trend and a post's clicks across issues."""

from __future__ import annotations

from typing import Any

from flask import Response, g

from digest.core.extensions import db_session
from digest.core.models import Issue, Newsletter
from digest.domain import engagement
from digest.web.editor import bp, charts, issue_or_404

TIMELINE_SERIES = {"human": "human clicks", "machine": "machine clicks"}
TREND_SERIES = {"readers": "readers who clicked", "machine": "machine clicks"}


def report_view(issue: Issue) -> dict[str, Any]:
    """Return the template values of an issue's engagement report."""
    report = engagement.issue_report(db_session(), issue)
    hours = report.timeline
    return {
        "engagement": report,
        "clicks_chart": charts.bars(
            [f"{h.hour}h" for h in hours],
            {"human": [h.human for h in hours], "machine": [h.machine for h in hours]},
            TIMELINE_SERIES, stacked=True, max_labels=12,
        ),
    }


def dashboard_view(newsletter: Newsletter) -> dict[str, Any]:
    """Return the dashboard's engagement values: the trend across issues, the top posts,
    and the sections ranked by click rate (a suggestion for ordering)."""
    dbs = db_session()
    trend = engagement.trend(dbs, newsletter)
    names = [t.subject[:18] + ("…" if len(t.subject) > 18 else "") for t in trend]
    return {
        "trend": trend,
        "trend_chart": charts.bars(
            names,
            {"readers": [t.readers_clicked for t in trend], "machine": [t.machine_clicks for t in trend]},
            TREND_SERIES,
        ),
        "top_posts": engagement.top_posts(dbs, newsletter),
        "section_ranking": engagement.sections_by_performance(dbs, newsletter),
    }


@bp.get("/issues/<int:issue_id>/engagement.csv")
def engagement_csv(issue_id: int) -> Response:
    """Download an issue's clicks per link as CSV."""
    issue = issue_or_404(issue_id)
    body = engagement.report_csv(engagement.issue_report(db_session(), issue))
    name = f"{g.newsletter.slug if g.newsletter else 'issue'}-issue-{issue.id}-clicks.csv"
    return Response(body, mimetype="text/csv",
                    headers={"Content-Disposition": f'attachment; filename="{name}"'})
