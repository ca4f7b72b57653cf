"""docs/security.md promises each line with a test: every test it names must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = re.compile(r"`(?:tests/)?(test_\w+\.py)(?:::(test_\w+))?`|`(test_\w+)`")


def _tests_in(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    return {node.name for node in ast.walk(tree)
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.startswith("test_")}


@pytest.mark.one_backend
def test_every_test_the_threat_model_names_exists() -> None:
    """A bare test name belongs to the file named last before it, as the page writes them."""
    tests = {path.name: _tests_in(path) for path in (ROOT / "tests").glob("test_*.py")}
    missing: list[str] = []
    current: str | None = None
    for found in REFERENCE.finditer((ROOT / "docs" / "security.md").read_text()):
        file, name, bare = found.groups()
        if file is not None:
            current = file
            if file not in tests:
                missing.append(file)
            elif name is not None and name not in tests[file]:
                missing.append(f"{file}::{name}")
        elif current is None or bare not in tests.get(current, set()):
            missing.append(f"{current}::{bare}")
    assert missing == []
