"""A pseudo-language for finding text a reader sees that is not marked for translation.

`install_pseudo(instance)` extracts every marked string as pybabel would and writes a
compiled catalogue of language PSEUDO into INSTANCE/translations, each translation being
its English wrapped in ⟦ ⟧. Render a page or an email in PSEUDO and `unmarked(text)`
returns what is left outside the brackets once the values that are not the product's
own words (the newsletter's content, addresses, links, numbers) are taken out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo

from digest.mail.language import DOMAINS, PACKAGED

ROOT = Path(__file__).resolve().parent.parent.parent
PSEUDO = "eo"  # a locale Babel knows (Esperanto, two plural forms) that no catalogue ships
OPEN, CLOSE = "⟦", "⟧"
KEYWORDS = {
    "_": None, "gettext": None, "ngettext": (1, 2), "lazy_gettext": None, "N_": None,
    "pgettext": ((1, "c"), 2), "npgettext": ((1, "c"), 2, 3),
}


def extracted(domain: str) -> Catalog:
    """Return the strings domain's files mark now, as `pybabel extract -F DOMAIN.cfg` finds them."""
    with (PACKAGED / f"{domain}.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    catalog = Catalog()
    for filename, lineno, message, comments, context in extract_from_dir(
        str(ROOT), method_map, options_map, keywords=KEYWORDS, comment_tags=("Translators:",)
    ):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def install_pseudo(instance: Path) -> str:
    """Write PSEUDO's catalogues (every string wrapped in ⟦ ⟧) under INSTANCE/translations."""
    folder = instance / "translations" / PSEUDO / "LC_MESSAGES"
    folder.mkdir(parents=True, exist_ok=True)
    for domain in DOMAINS:
        catalog = Catalog(locale=PSEUDO, domain=domain)
        for message in extracted(domain):
            if not message.id:
                continue
            ids = message.id if isinstance(message.id, tuple) else (message.id,)
            wrapped = tuple(f"{OPEN}{text}{CLOSE}" for text in ids)
            catalog.add(message.id, wrapped if len(wrapped) > 1 else wrapped[0],
                        context=message.context)
        with (folder / f"{domain}.mo").open("wb") as target:
            write_mo(target, catalog)
    return PSEUDO


_BRACKETED = re.compile(f"{OPEN}[^{OPEN}{CLOSE}]*{CLOSE}")  # innermost: a marked string may hold another
_URL = re.compile(r"\b(?:https?|mailto):\S+")
_WORD = re.compile(r"[^\W\d_]{2,}")


def unmarked(text: str, allowed: Iterable[str] = ()) -> list[str]:
    """Return the words of text outside ⟦ ⟧ and outside the allowed values (content the
    newsletter's people wrote, names, addresses), which no catalogue could translate."""
    rest = text
    while (shorter := _BRACKETED.sub(" ", rest)) != rest:
        rest = shorter
    rest = _URL.sub(" ", rest)
    for value in sorted(allowed, key=len, reverse=True):
        if value:
            rest = rest.replace(value, " ")
    return _WORD.findall(rest)
