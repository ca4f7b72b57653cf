"""The shipped catalogues are complete: every string a reader can see is extracted from the
code and templates as they are now, and every shipped language translates each of them
(no missing, empty or fuzzy entry, the same placeholders as the English)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.pofile import read_po

from digest.mail.language import DOMAINS, PACKAGED, SOURCE_LANGUAGE
from tests.support.pseudo import extracted

SHIPPED = ("de", "fr", "es", "pt_BR", "he")
_PLACEHOLDER = re.compile(r"%\((\w+)\)[sd]|\{(\w+)\}")


def _placeholders(text: str | tuple[str, ...]) -> set[str]:
    texts = (text,) if isinstance(text, str) else text
    return {a or b for t in texts for a, b in _PLACEHOLDER.findall(t)}


def _read(path: Path, code: str) -> Catalog:
    with path.open("rb") as source:
        return read_po(source, locale=code, domain=path.stem)


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_template_holds_every_string_the_code_marks(domain: str) -> None:
    """digest/translations/DOMAIN.pot is what extraction gives today: a string marked in the
    code but not in the template never reaches a translator."""
    template = _read(PACKAGED / f"{domain}.pot", SOURCE_LANGUAGE)
    now = {message.id for message in extracted(domain) if message.id}
    kept = {message.id for message in template if message.id}
    assert not now - kept, f"run the update in docs/languages.md: new strings {sorted(now - kept)[:10]}"
    assert not kept - now, f"run the update in docs/languages.md: gone strings {sorted(kept - now)[:10]}"


@pytest.mark.parametrize("code", SHIPPED)
@pytest.mark.parametrize("domain", DOMAINS)
def test_each_shipped_language_translates_every_string(domain: str, code: str) -> None:
    """A shipped catalogue has every string of the template, none empty or fuzzy, each with
    the placeholders of its English (a missing one would print nothing to the reader)."""
    template = _read(PACKAGED / f"{domain}.pot", SOURCE_LANGUAGE)
    catalog = _read(PACKAGED / code / "LC_MESSAGES" / f"{domain}.po", code)
    problems: list[str] = []
    for source in template:
        if not source.id:
            continue
        found: Message | None = catalog.get(source.id, source.context)
        if found is None:
            problems.append(f"missing: {source.id!r}")
        elif found.fuzzy:
            problems.append(f"fuzzy: {source.id!r}")
        elif not (found.string if isinstance(found.string, str) else all(found.string)):
            problems.append(f"empty: {source.id!r}")
        elif _placeholders(found.string) != _placeholders(source.id):
            problems.append(f"placeholders differ: {source.id!r} → {found.string!r}")
    assert not problems, f"{code} {domain}.po:\n" + "\n".join(problems[:20])
