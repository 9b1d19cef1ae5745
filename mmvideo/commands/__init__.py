"""The ``mmvideo`` command line: one click group, sub-commands loaded lazily.

Every click command lives in this package, one module per command group; the library modules
they call know nothing of click. A sub-command's module is imported only when invoked, so
``mmvideo probe`` does not pay for importing torch. This is the only place that maps
errors to exit codes (through ``runner``).
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from mmvideo import __version__
from mmvideo.commands.runner import configure_logging, run_command

log = logging.getLogger("mmvideo")

# name -> "module:attribute" of a click command
COMMANDS: dict[str, str] = {
    "swap": "mmvideo.commands.swap:swap",
    "tracks": "mmvideo.commands.swap:tracks",
    "plan": "mmvideo.commands.farm:plan_command",
    "run-chunk": "mmvideo.commands.farm:run_chunk_command",
    "merge": "mmvideo.commands.farm:merge_command",
    "batch": "mmvideo.commands.farm:batch_command",
    "probe": "mmvideo.commands.io:probe_command",
    "transcode": "mmvideo.commands.io:transcode_command",
    "models": "mmvideo.commands.models:models",
    "train-preprocess": "mmvideo.commands.train:preprocess_command",
    "train-fit": "mmvideo.commands.train:fit_command",
    "train-export": "mmvideo.commands.train:export_command",
    "train-evaluate": "mmvideo.commands.train:evaluate_command",
    "verify": "mmvideo.commands.verify:verify_command",
    "preview": "mmvideo.commands.preview:preview_command",
    "faces": "mmvideo.commands.faces:faces",
    "tune": "mmvideo.commands.tune:tune_command",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        return getattr(importlib.import_module(module), attr)


@click.group(cls=LazyGroup)
@click.version_option(__version__, prog_name="mmvideo")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
@click.option("-q", "--quiet", is_flag=True, help="Only errors.")
def cli(verbose: int, quiet: bool) -> None:
    """Swap a source actor's face into video with MagicMask, offline."""
    configure_logging(verbose, quiet)


def main(argv: list[str] | None = None) -> int:
    """Console entry point: run the group and turn our errors into one-line messages."""
    return run_command(cli, argv)


def run() -> None:
    sys.exit(main())
