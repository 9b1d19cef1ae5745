"""Imports point down only (docs/architecture.md, "Layers"), and no project modules import each
other in a circle.

Read from the source with ``ast``, so an import hidden inside a function counts as much as one at
the top of a module: a function-level import is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("mmcore", "magicmask", "mmvideo", "train")

# module prefix -> prefixes it must not import (a prefix matches itself and its submodules)
FORBIDDEN = {
    "mmcore": ("magicmask", "mmvideo", "train"),
    "magicmask": ("mmvideo", "train"),
    "train": ("mmvideo",),
}
# mmvideo.io sits under everything else in mmvideo: it may import only these of the project
IO_ALLOWED = ("mmcore", "mmvideo.io", "mmvideo.queues", "mmvideo.progress")
# the post-production layer wraps io's writers and is used by the pipeline, never the reverse
# the click commands are the top layer: only the entry point imports them
COMMANDS, ENTRY = "mmvideo.commands", "mmvideo.__main__"
POST_ALLOWED = ("mmcore", "mmvideo.io", "mmvideo.post", "mmvideo.queues", "mmvideo.progress")


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _modules(root: Path = REPO) -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def _is_package(module: str, modules: dict[str, Path]) -> bool:
    return modules[module].name == "__init__.py"


def _imports(module: str, modules: dict[str, Path]) -> list[tuple[str, int]]:
    """(imported project module, line) for every import in ``module``, at any depth."""
    tree = ast.parse(modules[module].read_text(), str(modules[module]))
    package = module if _is_package(module, modules) else module.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # "from pkg import sub" imports the submodule pkg.sub where there is one
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names
            ]
        else:
            continue
        for name in targets:
            while name and name not in modules:
                name = name.rpartition(".")[0]  # "import a.b.c" of a name inside a module
            if name:
                out.append((name, node.lineno))
    return out


def upward_imports(root: Path = REPO) -> list[str]:
    modules = _modules(root)
    bad = []
    for module in modules:
        for target, line in _imports(module, modules):
            where = f"{module}:{line} imports {target}"
            for low, high in FORBIDDEN.items():
                if _under(module, low) and any(_under(target, h) for h in high):
                    bad.append(where)
            for layer, allowed in (("mmvideo.io", IO_ALLOWED), ("mmvideo.post", POST_ALLOWED)):
                if (
                    _under(module, layer)
                    and target != "mmvideo"  # the package itself: __version__
                    and not any(_under(target, a) for a in allowed)
                ):
                    bad.append(where)
            if _under(target, COMMANDS) and not (_under(module, COMMANDS) or module == ENTRY):
                bad.append(where)
    return sorted(set(bad))


def import_cycles(root: Path = REPO) -> list[list[str]]:
    """Strongly connected groups of the import graph (Tarjan), larger than one. Function-level
    imports are edges too: hiding one side of a cycle inside a function is still a cycle."""
    modules = _modules(root)
    graph = {m: sorted({t for t, _ in _imports(m, modules) if t != m}) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    cycles = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return cycles


def test_imports_point_down_only():
    assert upward_imports() == []


def test_no_circular_imports_between_project_modules():
    assert import_cycles() == []


@pytest.mark.parametrize(
    "files, expected",
    [
        ({"magicmask/checkpoint.py": "from mmvideo.atomic import atomic_output\n"}, "upward"),
        (
            {"mmvideo/io/media.py": "def close():\n    from mmvideo.post.tag import parse_tag\n"},
            "upward",
        ),
        (
            {"train/fit.py": "if __name__ == '__main__':\n    from mmvideo.cli import main\n"},
            "upward",
        ),
        ({"mmvideo/io/media.py": "from ..post import tag\n"}, "upward"),
        ({"mmvideo/tune.py": "from mmvideo.commands import options\n"}, "upward"),
        ({"mmvideo/__main__.py": "from mmvideo.commands import run\n"}, None),
        (
            {"mmvideo/a.py": "from mmvideo import b\n", "mmvideo/b.py": "import mmvideo.a\n"},
            "cycle",
        ),
        (
            {
                "mmvideo/a.py": "from mmvideo import b\n",
                "mmvideo/b.py": "def f():\n    import mmvideo.a\n",
            },
            "cycle",
        ),
    ],
)
def test_the_checks_catch_what_they_are_for(tmp_path, files, expected):
    for package in PACKAGES:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "mmvideo" / "io").mkdir()
    (tmp_path / "mmvideo" / "io" / "__init__.py").write_text("")
    (tmp_path / "mmvideo" / "post").mkdir()
    (tmp_path / "mmvideo" / "post" / "__init__.py").write_text("")
    (tmp_path / "mmvideo" / "post" / "tag.py").write_text("")
    (tmp_path / "mmvideo" / "cli.py").write_text("")
    (tmp_path / "mmvideo" / "commands").mkdir()
    (tmp_path / "mmvideo" / "commands" / "__init__.py").write_text("")
    (tmp_path / "mmvideo" / "commands" / "options.py").write_text("")
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    found = {"upward": bool(upward_imports(tmp_path)), "cycle": bool(import_cycles(tmp_path))}
    assert found == {"upward": expected == "upward", "cycle": expected == "cycle"}
