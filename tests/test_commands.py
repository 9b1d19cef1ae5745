"""Every click command lives in ``mmvideo/commands/``: the library modules know nothing of click
(read from the source with ``ast``, so an import inside a function counts too); a command offers
only the config flags it uses."""

from __future__ import annotations

import ast
from pathlib import Path

import click
import pytest

from mmvideo.commands import cli, main
from mmvideo.config import config_keys

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


def _flags(command: str) -> set[str]:
    cmd = cli.get_command(click.Context(cli), command)
    return {o for p in cmd.params for o in (*p.opts, *p.secondary_opts)}


@pytest.mark.parametrize(
    "command, flag",
    [
        ("tune", "--matte-out"),
        ("tune", "--mask-feather"),
        ("tune", "--codec"),
        ("tracks", "--matte-out"),
        ("tracks", "--track-id"),
        ("tracks", "--source-face-index"),
        ("tracks", "--blend"),
        ("preview", "--crf"),
        ("preview", "--target-face"),
        ("preview", "--threads"),
    ],
)
def test_a_config_flag_the_command_would_ignore_is_refused(command, flag, capsys):
    assert main([command, flag, "x"]) == 2
    assert f"No such option '{flag}'" in capsys.readouterr().err


def test_each_command_offers_the_config_flags_it_uses():
    every = {k.flag for k in config_keys()}
    assert every <= _flags("swap") and every <= _flags("plan")
    face = {"--face-backend", "--detect-interval", "--gap-seconds", "--smoothing"}
    assert face <= _flags("tracks")
    assert face | {"--target-face", "--track-id", "--target", "--source-face-index"} <= _flags(
        "tune"
    )
    assert face | {"--track-id", "--mask-feather", "--mask", "--batch-size"} <= _flags("preview")
