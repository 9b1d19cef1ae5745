"""Running a click command as a process: the log level, SIGTERM, one-line errors, exit codes.

``mmvideo``'s command group runs through :func:`run_command`. This is the only place errors
become exit codes.
"""

from __future__ import annotations

import logging
import signal
import sys
from collections.abc import Sequence

import click

from mmcore.errors import MMVideoError, Terminated, raise_terminated


def configure_logging(verbose: int = 0, quiet: bool = False) -> None:
    """Log to stderr: warnings, or info (``-v``), debug (``-vv``), errors only (``-q``)."""
    level = (
        logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    )
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def run_command(
    command: click.Command, argv: Sequence[str] | None = None, prog_name: str = "mmvideo"
) -> int:
    """Run ``command`` and turn our errors into one-line messages; return the exit code."""
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        command.main(args=argv, prog_name=prog_name, standalone_mode=False)
    except MMVideoError as exc:
        click.echo(f"mmvideo: error: {exc}", err=True)
        return exc.exit_code
    except click.exceptions.Abort as exc:
        return _interrupted(exc.__cause__)
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except KeyboardInterrupt as exc:
        return _interrupted(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)
    return 0


def _interrupted(exc: BaseException | None) -> int:
    """The shell's codes: 128 + the signal (130 Ctrl-C, 143 SIGTERM)."""
    if isinstance(exc, Terminated):
        click.echo("mmvideo: terminated", err=True)
        return 128 + signal.SIGTERM
    click.echo("mmvideo: interrupted", err=True)
    return 128 + signal.SIGINT
