"""Where the top-level folders (templates, migrations) are, in a wheel or a checkout."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGE_DIR = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """Return a top-level folder (templates, migrations) in a wheel or a source checkout."""
    installed = PACKAGE_DIR / name
    return installed if installed.is_dir() else PACKAGE_DIR.parent / name


def template_folders(config: Mapping[str, Any]) -> tuple[Path, ...]:
    """Return the folders templates are looked up in: the instance's `templates/` (an
    operator's overrides) when it exists, then the packaged templates."""
    packaged = resource_dir("templates")
    overrides = overrides_dir(config)
    return (overrides, packaged) if overrides.is_dir() else (packaged,)


def overrides_dir(config: Mapping[str, Any]) -> Path:
    """Return the folder an operator puts template overrides in: INSTANCE/templates."""
    return Path(config["INSTANCE_PATH"]) / "templates"


def translation_folders(config: Mapping[str, Any]) -> tuple[Path, ...]:
    """Return the folders gettext catalogues are looked up in: the instance's
    `translations/` (an operator's own, winning) when it exists, then the packaged ones."""
    packaged = PACKAGE_DIR / "translations"
    own = Path(config["INSTANCE_PATH"]) / "translations"
    return (own, packaged) if own.is_dir() else (packaged,)
