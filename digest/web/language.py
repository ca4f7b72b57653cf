"""The language of a reader's page: the newsletter's (Flask-Babel, domain "messages").

A view that knows the newsletter calls `speak(newsletter.language)` before it renders;
a page that cannot know it (a link too damaged to name one) speaks the language of the
instance's first newsletter. The editor's workspace stays English.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from flask_babel import Babel, refresh

from digest.core.extensions import db_session
from digest.core.resources import translation_folders
from digest.domain import newsletters
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


def speak(code: str) -> None:
    """Make the rest of this request's pages speak the language code (a newsletter's)."""
    g.language = code
    refresh()  # Flask-Babel keeps the locale it chose first for the whole request


def page_language() -> Language:
    """Return the language this request's page speaks (for its lang and dir attributes)."""
    return language(_selected(), *translation_folders(current_app.config))


def available() -> dict[str, Language]:
    """Return the languages a newsletter may choose, by code."""
    return languages(*translation_folders(current_app.config))


def _selected() -> str:
    code = g.get("language")
    if code is None:
        code = g.language = newsletters.default_language(db_session()) or SOURCE_LANGUAGE
    return code if code in available() else SOURCE_LANGUAGE
