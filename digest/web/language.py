"""The language of a reader's page: the newsletter's (Flask-Babel, domain "messages").

A view that knows the newsletter calls `speak(newsletter.language)` before it renders;
a page that cannot know it (a link too damaged to name one) speaks the language of the
instance's first newsletter. The editor's workspace (everything under /editor) and the
API stay English, unless a view speaks otherwise (the editor's preview of a reader's page).
Text the layers below write for readers comes as `Text` and is translated here
(`translated`), so JSON answers keep the English.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, format_date, gettext, refresh

from digest.core.extensions import db_session
from digest.core.models import Newsletter
from digest.core.resources import translation_folders
from digest.core.translatable import Text
from digest.domain import newsletters
from digest.domain.archive import local_time
from digest.mail.language import SOURCE_LANGUAGE, Language, language, languages

babel = Babel()


def init_app(app: Flask) -> None:
    """Set up Flask-Babel over the packaged catalogues and the instance's own."""
    # Flask-Babel merges the folders in order, the last one's entries winning.
    folders = reversed(translation_folders(app.config))
    app.config["BABEL_TRANSLATION_DIRECTORIES"] = ";".join(str(folder) for folder in folders)
    babel.init_app(app, default_locale=SOURCE_LANGUAGE, default_domain="messages",
                   locale_selector=_selected)
    app.jinja_env.globals["page_language"] = page_language
    app.jinja_env.globals["reader_date"] = reader_date
    app.jinja_env.policies["ext.i18n.trimmed"] = True  # as extraction reads {% trans %} blocks


def speak(code: str) -> None:
    """Make the rest of this request's pages speak the language code (a newsletter's)."""
    g.language = code
    refresh()  # Flask-Babel keeps the locale it chose first for the whole request


def page_language() -> Language:
    """Return the language this request's page speaks (for its lang and dir attributes)."""
    return language(_selected(), *translation_folders(current_app.config))


def translated(message: str) -> str:
    """Return a message in the page's language when it is Text (marked with N_), else as it is."""
    return gettext(message.msgid, **message.values) if isinstance(message, Text) else message


def translated_errors(errors: Mapping[str, str]) -> dict[str, str]:
    """Return an Invalid's errors (field → message) in the page's language."""
    return {field: translated(message) for field, message in errors.items()}


def reader_date(newsletter: Newsletter, moment: dt.datetime | None) -> str:
    """Return moment's day in the newsletter's time zone, written as the page's language does."""
    local = local_time(newsletter, moment)
    return format_date(local.date(), "long") if local else ""


def available() -> dict[str, Language]:
    """Return the languages a newsletter may choose, by code."""
    return languages(*translation_folders(current_app.config))


def _workspace() -> bool:
    path = request.path if has_request_context() else ""
    return path.startswith(("/editor/", "/api/")) or path == "/editor"


def _selected() -> str:
    code = g.get("language")
    if code is None and _workspace():
        code = g.language = SOURCE_LANGUAGE
    if code is None:
        code = g.language = newsletters.default_language(db_session()) or SOURCE_LANGUAGE
    return code if code in available() else SOURCE_LANGUAGE
