"""The languages a newsletter can be written in, and their gettext catalogues.

A language is a folder of catalogues: `digest/translations/CODE/LC_MESSAGES/` holds
`messages.po` (the reader's pages: signup, confirm, preferences, unsubscribe, archive,
feed) and `emails.po` (the emails and the digest's chrome), compiled to `.mo` when the
package is built (hatch_build.py). An operator's INSTANCE/translations folder is read
first, as INSTANCE/templates is for templates. Adding a language is adding its folder
(docs/languages.md): the list here is read from the folders, with names and writing
direction from Babel's locale data, so no code changes.

English is the language of the source strings: it needs no catalogue and is always there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.support import NullTranslations, Translations

SOURCE_LANGUAGE = "en"
DOMAINS = ("messages", "emails")
PACKAGED = Path(__file__).resolve().parent.parent / "translations"


@dataclass(frozen=True)
class Language:
    """One language readers can be addressed in."""

    code: str  # as Babel spells a locale: "de", "pt_BR"
    name: str  # in the language itself: "Deutsch", "português (Brasil)"
    english_name: str
    direction: str  # "ltr" or "rtl"

    @property
    def tag(self) -> str:
        """Return the BCP 47 tag HTML's lang attribute and Content-Language take: "pt-BR"."""
        return self.code.replace("_", "-")


def _language(code: str) -> Language | None:
    try:
        locale = Locale.parse(code)
    except (ValueError, UnknownLocaleError):
        return None
    return Language(
        code=str(locale),
        name=locale.get_display_name(locale) or code,
        english_name=locale.get_display_name("en") or code,
        direction=locale.text_direction,
    )


def _catalogued(folder: Path) -> set[str]:
    if not folder.is_dir():
        return set()
    return {
        entry.name for entry in folder.iterdir()
        if any((entry / "LC_MESSAGES" / f"{domain}.mo").is_file() for domain in DOMAINS)
    }


@functools.cache
def languages(*folders: Path) -> dict[str, Language]:
    """Return the languages with a compiled catalogue in folders (and English), by code."""
    codes = {SOURCE_LANGUAGE}.union(*(_catalogued(folder) for folder in folders))
    found = {code: _language(code) for code in sorted(codes)}
    return {code: language for code, language in found.items() if language is not None}


def language(code: str, *folders: Path) -> Language:
    """Return the language of code, or English when no catalogue of it is installed."""
    known = languages(*folders)
    return known.get(code) or known[SOURCE_LANGUAGE]


@functools.cache
def translations(code: str, domain: str, *folders: Path) -> NullTranslations:
    """Return the catalogue of code's domain, merged from folders (the first one's entries
    win); English, or a language without one, gets the source strings."""
    merged: NullTranslations = NullTranslations()
    if code == SOURCE_LANGUAGE:
        return merged
    for folder in reversed(folders):
        found = Translations.load(str(folder), [code], domain)
        if isinstance(found, Translations):
            if isinstance(merged, Translations):
                merged.merge(found)
            else:
                merged = found
    return merged
