"""The email lint run on every email template and on a rendered issue.

Contract: `check_templates(config, folder)` renders each email of folder/emails (the
digest from the demo content, with its image-heavy post; the reader's emails with every
optional part filled in) as a reader receives it, CSS inlined, and returns what
digest.mail.lint finds, each problem placed at the template line that causes it.
`check_issue(session, issue_id, config)` lints an issue's largest reader variant. Neither
writes anything.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jinja2 import TemplateError
from sqlalchemy.orm import Session

from digest.core.resources import resource_dir
from digest.domain import demo, identity, links
from digest.domain.issue_mail import prepare_issue
from digest.mail.lint import Problem, lint_html
from digest.mail.render import (
    IssueContent,
    NewsletterView,
    PostContent,
    PreparedIssue,
    RenderSettings,
    SectionContent,
)
from digest.mail.stencil import email_templates, render_email

SITE = "https://news.example.org"
_NEWSLETTER = {"name": "The Weekly Model", "postal_address": "12 Example Street, 10115 Berlin"}


@dataclass(frozen=True)
class Located:
    """A problem and the template line that causes it."""

    template: str  # relative to the templates folder, e.g. "emails/confirm.html"
    line: int
    problem: Problem

    def __str__(self) -> str:
        return f"{self.template}:{self.line}: {self.problem.message}"


@dataclass(frozen=True)
class _Fields:
    name: str
    postal_address: str


def email_names(folder: Path) -> list[str]:
    """Return the names of the emails in folder/emails (NAME.html, not the layout or partials)."""
    return sorted(
        path.stem
        for path in (folder / "emails").glob("*.html")
        if path.stem != "layout" and not path.stem.startswith("_")
    )


def check_templates(config: Mapping[str, Any], folder: Path | None = None) -> list[Located]:
    """Return every lint problem of every email in folder (default: the packaged templates)."""
    folder = folder or resource_dir("templates")
    found: list[Located] = []
    seen: set[str] = set()
    for name in email_names(folder):
        try:
            html = sample_html(config, folder, name)
        except TemplateError as exc:
            found.append(_broken(name, exc))
            continue
        if html is None:
            found.append(
                Located(
                    f"emails/{name}.html",
                    1,
                    Problem(
                        "sample",
                        "no sample content to render this email with (a NAME.txt twin and a "
                        "context in digest.domain.email_check)",
                        1,
                    ),
                )
            )
            continue
        sources = _sources(folder, name)
        for problem in lint_html(html):
            located = _locate(problem, sources)
            if str(located) not in seen:  # the layout's problems show once, not once per email
                seen.add(str(located))
                found.append(located)
    return found


def _broken(name: str, exc: TemplateError) -> Located:
    # A syntax error names its file and line; an undefined value only its message.
    where = getattr(exc, "name", None) or f"emails/{name}.html"
    line = getattr(exc, "lineno", None) or 1
    message = f"the template does not render: {exc.message or exc}"
    return Located(str(where), int(line), Problem("render", message, int(line)))


def check_issue(session: Session, issue_id: int, config: Mapping[str, Any]) -> list[Problem]:
    """Return the lint problems of an issue's HTML (every section, the longest values)."""
    return lint_html(prepare_issue(session, issue_id, config).largest_html())


def sample_html(config: Mapping[str, Any], folder: Path, name: str) -> str | None:
    """Return email NAME rendered with sample content, as a reader receives it (None: no sample)."""
    if name == "digest":
        settings = RenderSettings(links.mail_domain(config), folder, identity.SignedLinks(config))
        return PreparedIssue(_demo_content(config), settings).largest_html()
    context: dict[str, Any] = {
        "newsletter": _Fields(**_NEWSLETTER),
        "site_url": SITE,
        "name": "Ada",
        "email": "ada@example.com",
        "confirm_url": f"{SITE}/confirm/uidAdaAdaAdaAdaAdaAda.sample-token-of-typical-length",
        "preferences_url": f"{SITE}/preferences/uidAdaAdaAdaAdaAdaAda.sample-token",
        "unsubscribe_url": f"{SITE}/unsubscribe/uidAdaAdaAdaAdaAdaAda.sample-token",
        "expires_days": 7,
        "sections": ("News", "Tools"),
        "all_sections": tuple(section for _, section, _ in demo.SECTIONS),
        "schedule": "every Monday at 08:00 (Europe/Berlin)",
        "status": "paused",
        "latest_issue_subject": "Open weights catch up",
        "latest_issue_url": f"{SITE}/archive/weekly-model/open-weights-catch-up",
    }
    if not (folder / "emails" / f"{name}.txt").is_file():
        return None
    return render_email(email_templates(folder), name, context)[0]


def _demo_content(config: Mapping[str, Any]) -> IssueContent:
    section_ids = {slug: i for i, (slug, _, _) in enumerate(demo.SECTIONS, start=1)}
    newsletter = NewsletterView(
        id=1,
        slug=demo.DEMO_SLUG,
        name=_NEWSLETTER["name"],
        postal_address=_NEWSLETTER["postal_address"],
        reply_to=None,
        from_header=f"{_NEWSLETTER['name']} <news@news.example.org>",
        list_id=f"<{demo.DEMO_SLUG}.news.example.org>",
        sections=tuple((section_ids[slug], name) for slug, name, _ in demo.SECTIONS),
    )
    sections = tuple(
        SectionContent(
            section_ids[slug],
            name,
            tuple(
                PostContent(i, post.title, post.summary, post.body, post.link or f"{SITE}/p/{i}")
                for i, post in enumerate(demo.POSTS, start=1)
                if post.section == slug
            ),
        )
        for slug, name, _ in demo.SECTIONS
    )
    return IssueContent(
        id=1,
        subject="Open weights catch up, evals first, and a chip with a point to prove",
        preheader="Eight pieces this week: reasoning models, chunk sizes and interview loops.",
        intro_md="Good morning! This week the open-weights world closed another gap.",
        web_url=f"{SITE}/archive/{demo.DEMO_SLUG}/sample",
        date=dt.datetime(2026, 12, 7, 8, tzinfo=dt.UTC),
        feedback_id="sample:weekly-model:digest:newsexampleorg",
        newsletter=newsletter,
        sections=sections,
    )


def _sources(folder: Path, name: str) -> list[tuple[str, list[str]]]:
    names = [f"emails/{name}.html", "emails/_macros.html", "emails/layout.html"]
    return [
        (relative, (folder / relative).read_text(encoding="utf-8").splitlines())
        for relative in names
        if (folder / relative).is_file()
    ]


def _locate(problem: Problem, sources: list[tuple[str, list[str]]]) -> Located:
    # A CSS problem is the stylesheet line that sets the property for one of the element's
    # classes; an element's is the line that writes the element. Content from Markdown
    # (no class) falls back to the first line naming the property or the tag.
    selectors = [re.escape(f".{c}") + r"\b" for c in problem.classes] or [
        rf"(^|[\s,]){re.escape(problem.tag)}\b"
    ]
    if problem.prop:
        patterns = [rf"({s}).*[{{;]\s*{re.escape(problem.prop)}\s*:" for s in selectors]
        patterns.append(rf"[{{;\s\"]{re.escape(problem.prop)}\s*:")
    elif problem.classes:
        patterns = [rf'class="[^"]*\b{re.escape(c)}\b' for c in problem.classes]
    else:
        patterns = [rf"<{re.escape(problem.tag)}\b"] if problem.tag else []
    for pattern in patterns:
        for relative, lines in sources:
            for number, line in enumerate(lines, start=1):
                if re.search(pattern, line):
                    return Located(relative, number, problem)
    return Located(sources[0][0] if sources else "emails", 1, problem)
