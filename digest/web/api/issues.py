"""Sent issues, as the public archive shows them.

Scheduling and sending arrive with the delivery engine; until then the API reads only.
"""

from __future__ import annotations

from flask import Response, abort, current_app, jsonify

from digest.core.extensions import db_session
from digest.domain import archive, deliveries, engagement
from digest.web.api import ID, editor_bp, newsletter_or_404, shapes
from digest.web.api.inputs import Param, query
from digest.web.api.spec import operation

PAGE = Param("page", "integer", "Page number.", minimum=1, default=1)


@editor_bp.get("/newsletters/<newsletter>/issues")
@operation("GET", "List sent issues", tag="issues", params=[PAGE], responses={200: "IssuePage"})
def issues_list(newsletter: str) -> Response:
    """A page of the newsletter's sent issues, newest first."""
    item = newsletter_or_404(newsletter)
    session = db_session()
    page = archive.sent_issue_page(session, item, query([PAGE])["page"])
    unclear = deliveries.unclear_counts(session, [i.id for i in page.issues])
    return jsonify({
        "issues": [shapes.issue_summary(i, unclear.get(i.id, 0), current_app.config) for i in page.issues],
        "page": page.page,
        "pages": page.pages,
        "total": page.total,
    })


@editor_bp.get(f"/issues/<{ID}:issue_id>")
@operation("GET", "Get a sent issue", tag="issues", responses={200: "Issue"},
           description="Its intro and published posts grouped by section, as in the archive, "
                       "and whether deliveries are unclear (`status_label`: \"sent — N unclear\").")
def issue_get(issue_id: int) -> Response:
    """One sent issue with its posts."""
    session = db_session()
    issue = archive.sent_issue_by_id(session, issue_id)
    if issue is None:
        abort(404, f"There is no sent issue {issue_id}.")
    unclear = deliveries.unclear_counts(session, [issue_id]).get(issue_id, 0)
    return jsonify(shapes.issue(issue, archive.issue_sections(issue), unclear, current_app.config))


@editor_bp.get(f"/issues/<{ID}:issue_id>/engagement")
@operation("GET", "Get what an issue's readers did", tag="issues", responses={200: "IssueEngagement"},
           description="Clicks per link, per section and per hour of the first 72, human and "
                       "machine apart (`rules` says how the line is drawn), and opens where "
                       "the newsletter counts them. Figures settle within a minute of a click.")
def issue_engagement(issue_id: int) -> Response:
    """An issue's engagement figures."""
    session = db_session()
    issue = archive.sent_issue_by_id(session, issue_id)
    if issue is None:
        abort(404, f"There is no sent issue {issue_id}.")
    return jsonify(engagement.issue_report(session, issue).as_dict())
