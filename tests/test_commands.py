"""Every click command lives in ``mmvideo/commands/``: the library modules know nothing of click.

Read from the source with ``ast``, so an import inside a function counts too.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("mmcore", "magicmask", "mmvideo", "train")
COMMANDS = REPO / "mmvideo" / "commands"


def _imports_click(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        if any(n == "click" or n.startswith("click.") for n in names):
            return True
    return False


def test_only_the_commands_package_imports_click():
    outside = [
        str(path.relative_to(REPO))
        for package in PACKAGES
        for path in sorted((REPO / package).rglob("*.py"))
        if COMMANDS not in path.parents and _imports_click(path)
    ]
    assert outside == []


def test_the_commands_package_is_found():
    # guards the test above against a moved package: it would pass with nothing to check
    assert _imports_click(COMMANDS / "__init__.py")
