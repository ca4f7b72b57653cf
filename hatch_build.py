"""Compiles the gettext catalogues (digest/translations/*/LC_MESSAGES/*.po → .mo) when the
package is built or installed (editable installs too), so a checkout holds no binaries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def compile_catalogues(root: Path) -> list[Path]:
    """Compile every catalogue under root/digest/translations whose .mo is missing or older."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    compiled = []
    for po in sorted((root / "digest" / "translations").glob("*/LC_MESSAGES/*.po")):
        mo = po.with_suffix(".mo")
        if not mo.exists() or mo.stat().st_mtime < po.stat().st_mtime:
            with po.open("rb") as source:
                catalog = read_po(source, locale=po.parent.parent.name, domain=po.stem)
            partial = mo.with_suffix(".mo.partial")
            with partial.open("wb") as target:
                write_mo(target, catalog)  # fuzzy entries are left out, as msgfmt does
            partial.replace(mo)
        compiled.append(mo)
    return compiled


class CatalogueHook(BuildHookInterface):
    """Hatch's build hook: compile the catalogues, ship the .mo files (git ignores them)."""

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        root = Path(self.root)
        build_data["artifacts"].extend(
            str(mo.relative_to(root)) for mo in compile_catalogues(root)
        )
