"""Admin pages: newsletter settings, sections and editor accounts."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable

from flask import abort, current_app, flash, g, redirect, render_template, request, url_for
from markupsafe import Markup
from sqlalchemy.orm import Session
from werkzeug.wrappers import Response

from digest.core.extensions import db_session
from digest.core.models import Editor, EditorRole, Newsletter, Section
from digest.core.validation import Invalid
from digest.domain import archive, editors, look, newsletters, two_factor
from digest.domain.email_check import sample_issue_html
from digest.domain.subscribers.signup import consent_text
from digest.mail import outbox
from digest.mail.look import FONTS, Look
from digest.web.editor import admin, commit_change, get_or_404
from digest.web.editor.outbox import html_policy
from digest.web.language import speak


def _settings_page(data: newsletters.SettingsInput, errors: dict[str, str], status: int = 200,
                   look_data: look.LookInput | None = None,
                   look_errors: dict[str, str] | None = None) -> tuple[str, int]:
    newsletter = g.newsletter
    return render_template(
        "editor/settings.html",
        data=data,
        errors=errors,
        look_data=look_data or look.as_input(look.look_of(newsletter)),
        look_errors=look_errors or {},
        fonts=FONTS,
        time_zones=newsletters.time_zones(),
        weekdays=newsletters.WEEKDAYS,
        languages=newsletters.available_languages(current_app.config),
        sections=newsletters.sections(db_session(), newsletter) if newsletter else [],
    ), status


def _as_input(newsletter: Newsletter | None) -> newsletters.SettingsInput:
    if newsletter is None:
        return newsletters.SettingsInput()
    return newsletters.SettingsInput(
        name=newsletter.name,
        description=newsletter.description,
        from_name=newsletter.from_name,
        from_address=newsletter.from_address or "",
        reply_to=newsletter.reply_to or "",
        postal_address=newsletter.postal_address,
        time_zone=newsletter.time_zone,
        send_weekday=str(newsletter.send_weekday or ""),
        send_time=newsletter.send_time or "",
        review_hours=str(newsletter.review_hours),
        consent_text=newsletter.consent_text,
        no_post=newsletter.no_post.value,
        track_clicks="on" if newsletter.track_clicks else "",
        track_opens="on" if newsletter.track_opens else "",
        keep_reader_engagement="on" if newsletter.keep_reader_engagement else "",
        language=newsletter.language,
    )


@admin.route("/settings", methods=["GET", "POST"])
def settings() -> Response | tuple[str, int]:
    """Show and save the newsletter settings (creating the newsletter the first time)."""
    if request.method == "GET":
        return _settings_page(_as_input(g.newsletter), {})
    form = request.form
    data = newsletters.SettingsInput(**{key: form.get(key, "") for key in newsletters.SettingsInput.__dataclass_fields__})
    dbs = db_session()
    try:
        newsletter = newsletters.update_settings(
            dbs, g.newsletter, data, available=newsletters.available_languages(current_app.config)
        )
    except Invalid as exc:
        dbs.rollback()
        return _settings_page(data, exc.errors, 400)
    dbs.commit()
    flash("The settings are saved.", "success")
    if not newsletter.postal_address:
        flash("No postal address yet: issues cannot be sent until you add one.", "warning")
    return redirect(url_for("editor.admin.settings"))


def _look_form() -> look.LookInput:
    form = request.form
    return look.LookInput(**{key: form.get(key, "") for key in look.LookInput.__dataclass_fields__})


@admin.post("/settings/look")
def look_save() -> Response | tuple[str, int]:
    """Save the newsletter's look (accent colours, fonts, footer text)."""
    if g.newsletter is None:
        abort(409, "Save the newsletter's settings before choosing its look.")
    data = _look_form()
    dbs = db_session()
    try:
        look.update_look(dbs, g.newsletter, data)
    except Invalid as exc:
        dbs.rollback()
        return _settings_page(_as_input(g.newsletter), {}, 400, data, exc.errors)
    dbs.commit()
    flash("The look is saved: the next emails and the pages use it.", "success")
    return redirect(url_for("editor.admin.settings", _anchor="look"))


@admin.post("/settings/look/preview-email")
def look_preview_email() -> Response:
    """Show the sample issue's email in the look of the form (unsaved)."""
    return _look_preview("email")


@admin.post("/settings/look/preview-page")
def look_preview_page() -> Response:
    """Show the archive page in the look of the form (unsaved)."""
    return _look_preview("page")


def _look_preview(what: str) -> Response:
    if g.newsletter is None:
        abort(409, "Save the newsletter's settings before choosing its look.")
    try:
        chosen = look.check_look(_look_form())
    except Invalid as exc:
        html = render_template("editor/look_refused.html", errors=exc.errors)
        response: Response = current_app.response_class(html, status=400, mimetype="text/html")
    else:
        response = _previewed(what, chosen)
    response.headers["X-Frame-Options"] = "SAMEORIGIN"
    return response


def _previewed(what: str, chosen: Look) -> Response:
    newsletter = g.newsletter
    if what == "email":
        html = sample_issue_html(current_app.config, newsletter.name, newsletter.postal_address, chosen,
                                 newsletter.language)
        response = current_app.response_class(html, mimetype="text/html")
        response.headers["Content-Security-Policy"] = html_policy(outbox.image_origins(html))
        return response
    css = look.stylesheet(chosen)
    speak(newsletter.language)  # the reader's page, as readers see it
    html = render_template(
        "archive/index.html", newsletter=newsletter, look=chosen, look_preview_css=Markup(css),  # noqa: S704 (built from checked values)
        issues=archive.sent_issues(db_session(), newsletter, with_posts=True), consent_text=consent_text(current_app.config, newsletter),
        form={}, errors={}, local_time=archive.local_time, local_date=archive.local_date,
        summary=lambda issue: archive.summary(current_app.config, issue),
    )
    response = current_app.response_class(html, mimetype="text/html")
    digest = base64.b64encode(hashlib.sha256(css.encode()).digest()).decode()
    # The site's policy, plus this one inline stylesheet by its hash; nothing can be submitted.
    response.headers["Content-Security-Policy"] = (
        f"default-src 'self'; img-src 'self' data: https:; style-src 'self' 'sha256-{digest}'; "
        "script-src 'none'; object-src 'none'; base-uri 'none'; frame-ancestors 'self'; "
        "form-action 'none'"
    )
    return response


def _section(section_id: int) -> Section:
    if g.newsletter is None:
        abort(404)
    section = newsletters.get_section(db_session(), g.newsletter, section_id)
    if section is None:
        abort(404)
    return section


def _apply(
    change: Callable[[Session], object], done: str, back: tuple[str, str | None]
) -> Response:
    commit_change(change, done, (Invalid, editors.EditorError))
    endpoint, anchor = back
    return redirect(url_for(endpoint, _anchor=anchor))


# Where each kind of change returns: (endpoint, anchor).
_SECTIONS = ("editor.admin.settings", "sections")
_EDITORS = ("editor.admin.editors_list", None)


@admin.post("/sections")
def section_add() -> Response:
    """Add a section at the end."""
    if g.newsletter is None:
        abort(409, "Save the newsletter's settings before adding sections.")
    name = request.form.get("name", "")
    # The "New post" page offers the first section and returns to the post form.
    back = ("editor.post_new", None) if request.form.get("then") == "new-post" else _SECTIONS
    return _apply(lambda dbs: newsletters.add_section(dbs, g.newsletter, name, request.form.get("description", "")),
                  f"The section {name.strip()} is added.", back)


@admin.post("/sections/<int:section_id>")
def section_rename(section_id: int) -> Response:
    """Rename a section and change its description."""
    section = _section(section_id)
    name = request.form.get("name", "")
    return _apply(lambda dbs: newsletters.rename_section(dbs, section, name, request.form.get("description", "")),
                  f"The section {name.strip()} is saved.", _SECTIONS)


@admin.post("/sections/<int:section_id>/move")
def section_move(section_id: int) -> Response:
    """Move a section up or down."""
    section = _section(section_id)
    offset = -1 if request.form.get("direction") == "up" else 1
    return _apply(lambda dbs: newsletters.move_section(dbs, section, offset),
                  f"The section {section.name} is moved {'up' if offset < 0 else 'down'}.", _SECTIONS)


@admin.post("/sections/<int:section_id>/delete")
def section_remove(section_id: int) -> Response:
    """Remove a section nobody uses."""
    section = _section(section_id)
    name = section.name
    return _apply(lambda dbs: newsletters.remove_section(dbs, section), f"The section {name} is removed.", _SECTIONS)


def _editors_page(**shown: object) -> str:
    dbs = db_session()
    return render_template("editor/editors.html", editors=editors.list_editors(dbs), roles=list(EditorRole),
                           require_two_factor=two_factor.required(dbs), **{"password": None, **shown})


@admin.get("/editors")
def editors_list() -> str:
    """List editors with their roles, status and second factor."""
    return _editors_page()


@admin.post("/editors/two-factor")
def editors_two_factor() -> Response:
    """Require (or stop requiring) two-factor sign-in of every editor."""
    require = request.form.get("require") == "1"
    done = ("Every editor now signs in with a second factor; those without one set it up at their next page."
            if require else "Two-factor sign-in is now each editor's choice.")
    return _apply(lambda dbs: two_factor.set_required(dbs, require), done, _EDITORS)


@admin.post("/editors")
def editor_create() -> Response | tuple[str, int]:
    """Create an editor with a generated password, shown once."""
    dbs = db_session()
    password = editors.generate_password()
    role_value = request.form.get("role", "")
    email = request.form.get("email", "")
    try:
        role = EditorRole(role_value)
        editor = editors.create_editor(dbs, email, password, role, name=request.form.get("name", "").strip()[:200])
    except (ValueError, editors.EditorError) as exc:
        dbs.rollback()
        message = str(exc) if isinstance(exc, editors.EditorError) else "Choose a role."
        flash(message[0].upper() + message[1:] + ".", "error")
        return _editors_page(email=email), 400
    dbs.commit()
    flash(f"{editor.email} can now log in as {editor.role.value}.", "success")
    return _editors_page(password=password, password_for=editor.email), 201


def _editor(editor_id: int) -> Editor:
    return get_or_404(Editor, editor_id)


@admin.post("/editors/<int:editor_id>/role")
def editor_role(editor_id: int) -> Response:
    """Change an editor's role."""
    editor = _editor(editor_id)
    try:
        role = EditorRole(request.form.get("role", ""))
    except ValueError:
        abort(400, "Choose a role.")
    return _apply(lambda dbs: editors.set_role(dbs, editor, role), f"{editor.email} is now {role.value}.", _EDITORS)


@admin.post("/editors/<int:editor_id>/active")
def editor_active(editor_id: int) -> Response:
    """Deactivate or reactivate an editor."""
    editor = _editor(editor_id)
    active = request.form.get("active") == "1"
    return _apply(lambda dbs: editors.set_active(dbs, editor, active),
                  f"{editor.email} is {'reactivated' if active else 'deactivated and logged out'}.", _EDITORS)


@admin.post("/editors/<int:editor_id>/password")
def editor_password(editor_id: int) -> Response | tuple[str, int]:
    """Give an editor a new generated password, shown once."""
    editor = _editor(editor_id)
    dbs = db_session()
    password = editors.generate_password()
    editors.set_password(dbs, editor, password)
    dbs.commit()
    flash(f"{editor.email} has a new password.", "success")
    return _editors_page(password=password, password_for=editor.email), 200
