"""The email lint run on every email template and on a rendered issue.

Contract: `check_templates(config, folder)` renders each email of folder/emails (the
digest from the demo content, with its image-heavy post; the reader's emails with every
optional part filled in) as a reader receives it, CSS inlined, in every language a
newsletter may choose (digest.mail.language), and returns what digest.mail.lint finds,
each problem placed at the template line that causes it.
`check_issue(session, issue_id, config)` lints an issue's largest reader variant. Neither
writes anything.
"""

from __future__ import annotations

import datetime as dt
import html
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from jinja2 import Environment, TemplateError, TemplateSyntaxError
from sqlalchemy.orm import Session

from digest.core.resources import overrides_dir, resource_dir, template_folders, translation_folders
from digest.domain import demo, identity, links
from digest.domain.issue_mail import prepare_issue
from digest.domain.transactional import Schedule
from digest.mail.language import SOURCE_LANGUAGE, languages
from digest.mail.lint import Problem, lint_html
from digest.mail.look import Look
from digest.mail.render import (
    PREVIEW_UID,
    IssueContent,
    NewsletterView,
    PostContent,
    PreparedIssue,
    Reader,
    RenderSettings,
    SectionContent,
    essentials_problems,
    size_report,
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
    """Return every lint problem of every email in folder (default: the packaged templates,
    under the operator's overrides in the instance's templates/ when there are any)."""
    folders = (folder,) if folder else template_folders(config)
    found: list[Located] = []
    seen: set[str] = set()
    names = sorted({n for f in folders for n in email_names(f)})
    for code, speaks in languages(*translation_folders(config)).items():
        for name in names:
            for located in _email_problems(config, folders, name, code):
                if code != SOURCE_LANGUAGE and located.problem.rule == "render":
                    said = f"in {speaks.english_name} ({code}), {located.problem.message}"
                    located = replace(located, problem=replace(located.problem, message=said))
                if str(located) not in seen:  # the layout's problems show once, not per email or language
                    seen.add(str(located))
                    found.append(located)
    return found


def _email_problems(
    config: Mapping[str, Any], folders: tuple[Path, ...], name: str, code: str
) -> list[Located]:
    try:
        html = sample_html(config, folders, name, code)
    except TemplateError as exc:
        return [_broken(name, exc)]
    except (KeyError, ValueError, TypeError) as exc:  # a translation's placeholder the English lacks
        message = f"a translation does not fit its placeholders ({type(exc).__name__}: {exc})"
        return [Located(f"emails/{name}.html", 1, Problem("render", message, 1))]
    if html is None:
        message = ("no sample content to render this email with (a NAME.txt twin and a "
                   "context in digest.domain.email_check)")
        return [Located(f"emails/{name}.html", 1, Problem("sample", message, 1))]
    sources = _sources(folders, name)
    return [_locate(problem, sources) for problem in lint_html(html)]


def _broken(name: str, exc: TemplateError) -> Located:
    # A syntax error names its file and line; an undefined value only its message.
    where = getattr(exc, "name", None) or f"emails/{name}.html"
    line = getattr(exc, "lineno", None) or 1
    message = f"the template does not render: {exc.message or exc}"
    return Located(str(where), int(line), Problem("render", message, int(line)))


def check_issue(session: Session, issue_id: int, config: Mapping[str, Any]) -> list[Problem]:
    """Return the lint problems of an issue's HTML (every section, the longest values)."""
    return lint_html(prepare_issue(session, issue_id, config).largest_html())


def sample_html(
    config: Mapping[str, Any], folders: Path | tuple[Path, ...], name: str, language: str = SOURCE_LANGUAGE
) -> str | None:
    """Return email NAME rendered with sample content in language, as a reader receives it
    (None: no sample)."""
    folders = folders if isinstance(folders, tuple) else (folders,)
    if name == "digest":
        return _sample_issue(config, folders, language).largest_html()
    if not any((folder / "emails" / f"{name}.txt").is_file() for folder in folders):
        return None
    env = email_templates(*folders, language=language, catalogues=translation_folders(config))
    return render_email(env, name, _reader_context())[0]


def _sample_issue(
    config: Mapping[str, Any], folders: tuple[Path, ...], language: str = SOURCE_LANGUAGE
) -> PreparedIssue:
    settings = RenderSettings(links.mail_domain(config), folders, identity.SignedLinks(config),
                              translation_folders(config))
    content = _demo_content(config)
    return PreparedIssue(replace(content, newsletter=replace(content.newsletter, language=language)), settings)


def _reader_context() -> dict[str, Any]:
    return {
        "newsletter": _Fields(**_NEWSLETTER),
        "site_url": SITE,
        "name": "Ada Lovelace",
        "first_name": "Ada",
        "email": "ada@example.com",
        "confirm_url": f"{SITE}/confirm/uidAdaAdaAdaAdaAdaAda.sample-token-of-typical-length",
        "preferences_url": f"{SITE}/preferences/uidAdaAdaAdaAdaAdaAda.sample-token",
        "unsubscribe_url": f"{SITE}/unsubscribe/uidAdaAdaAdaAdaAdaAda.sample-token",
        "expires_days": 7,
        "sections": ("News", "Tools"),
        "all_sections": tuple(section for _, section, _ in demo.SECTIONS),
        "schedule": Schedule(1, "08:00", "Europe/Berlin"),
        "status": "paused",
        "latest_issue_subject": "Open weights catch up",
        "latest_issue_url": f"{SITE}/archive/weekly-model/open-weights-catch-up",
    }


def sample_issue_html(
    config: Mapping[str, Any], name: str, postal_address: str, look: Look, language: str = SOURCE_LANGUAGE
) -> str:
    """Return the sample issue's HTML (every section, a sample reader) as a newsletter of
    this name, address, look and language would send it."""
    content = _demo_content(config, pictures=False)  # shown to an editor: no address to fetch
    newsletter = replace(content.newsletter, name=name, postal_address=postal_address, look=look,
                         language=language)
    settings = RenderSettings(links.mail_domain(config), template_folders(config),
                              identity.SignedLinks(config), translation_folders(config))
    prepared = PreparedIssue(replace(content, newsletter=newsletter), settings)
    return prepared.parts_for(Reader(None, PREVIEW_UID, "reader@example.org"))[0]


def _demo_content(config: Mapping[str, Any], *, pictures: bool = True) -> IssueContent:
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
                PostContent(i, post.title, post.summary, _sample_body(post.body, pictures),
                            post.link or f"{SITE}/p/{i}")
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


def _sample_body(body: str, pictures: bool) -> str:
    # The lint sees the demo's pictures linked as uploads are (their 2x email size), at a
    # sample address that is never fetched.
    if not pictures:
        return demo.demo_body(body)
    return demo.demo_body(body, lambda name: f"{SITE}/media/demo-{name}/email2x.png")


def _sources(folders: tuple[Path, ...], name: str) -> list[tuple[str, list[str]]]:
    names = [f"emails/{name}.html", "emails/_macros.html", "emails/layout.html"]
    found = []
    for relative in names:
        path = _first(folders, relative)
        if path is not None:
            found.append((_shown(folders, relative, path), path.read_text(encoding="utf-8").splitlines()))
    return found


def _first(folders: tuple[Path, ...], relative: str) -> Path | None:
    return next((f / relative for f in folders if (f / relative).is_file()), None)


def _shown(folders: tuple[Path, ...], relative: str, path: Path) -> str:
    # An operator's override is named by its own path; a packaged template as before.
    return relative if path == folders[-1] / relative else str(path)


def check_overrides(config: Mapping[str, Any]) -> list[Located]:
    """Return why the operator's overrides (INSTANCE/templates) must not be used: a template
    that does not compile, an email that drops what every email must carry (the unsubscribe
    link, the postal address, the text part's unsubscribe URL and the issue's links), or a
    digest over the size guard; each at the override's line."""
    overrides = overrides_dir(config)
    if not overrides.is_dir():
        return []
    folders = (overrides, resource_dir("templates"))
    found = _syntax_problems(overrides)
    if found:
        return found
    html_names = ("emails/digest.html", "emails/layout.html", "emails/_macros.html")
    text_names = ("emails/digest.txt", "emails/layout.txt")
    try:
        prepared = _sample_issue(config, folders)
        missing = essentials_problems(prepared)
        report = size_report(prepared)
    except TemplateError as exc:
        return [_broken("digest", exc)]
    for part, message in missing:
        found.append(_at_footer(overrides, text_names if part == "text" else html_names, message))
    if report.refuse:
        found.append(_at_footer(overrides, html_names, report.message))
    for name in email_names(folders[-1]):
        if name != "digest":
            found.extend(_reader_email_problems(overrides, folders, name))
    return found


def _syntax_problems(overrides: Path) -> list[Located]:
    env = Environment(autoescape=True, extensions=["jinja2.ext.i18n"])
    found = []
    for path in sorted(overrides.rglob("*")):
        if path.is_file() and path.suffix in (".html", ".txt", ".xml"):
            try:
                env.parse(path.read_text(encoding="utf-8"))
            except TemplateSyntaxError as exc:
                message = f"the template does not compile: {exc.message}"
                found.append(Located(str(path), exc.lineno, Problem("render", message, exc.lineno)))
    return found


def _reader_email_problems(overrides: Path, folders: tuple[Path, ...], name: str) -> list[Located]:
    # Whatever essential the packaged email carries, its override must carry too.
    mine = (f"emails/{name}.html", "emails/layout.html", "emails/_macros.html")
    mine_text = (f"emails/{name}.txt", "emails/layout.txt")
    if not any((overrides / relative).is_file() for relative in mine + mine_text):
        return []
    context = _reader_context()
    packaged = render_email(email_templates(folders[-1]), name, context)
    try:
        overridden = render_email(email_templates(*folders), name, context)
    except TemplateError as exc:
        return [_broken(name, exc)]
    essentials = {
        "the unsubscribe link": context["unsubscribe_url"],
        "the confirmation link": context["confirm_url"],
        "the preferences link": context["preferences_url"],
        "the postal address": context["newsletter"].postal_address,
    }
    found = []
    if packaged[1].strip() and not overridden[1].strip():
        found.append(_at_footer(overrides, mine_text, "the text part is empty"))
    for index, (part, names) in enumerate((("HTML", mine), ("text", mine_text))):
        had, has = html.unescape(packaged[index]), html.unescape(overridden[index])
        for label, value in essentials.items():
            if value in had and value not in has:
                found.append(_at_footer(overrides, names, f"the {part} part drops {label}"))
    return found


def _at_footer(overrides: Path, names: tuple[str, ...], message: str) -> Located:
    # The line to fix: the override's footer block (where these belong), else its first line.
    for relative in names:
        path = overrides / relative
        if path.is_file():
            lines = path.read_text(encoding="utf-8").splitlines()
            number = next((i for i, line in enumerate(lines, start=1) if "block footer" in line), 1)
            return Located(str(path), number, Problem("essential", message, number))
    return Located(str(overrides / names[0]), 1, Problem("essential", message, 1))


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
