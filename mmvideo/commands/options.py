"""The click option every command that writes a file shares (commands of all three packages)."""

from __future__ import annotations

import click


def overwrite_options(fn):
    """``-y/--overwrite`` and ``-n/--no-overwrite`` (ffmpeg's letters) as one ``overwrite``
    parameter: True, False, or None when neither was given (commands treat None as -n); the
    commands pass it to ``mmcore.atomic.check_output`` before any model loads."""
    return click.option(
        "--overwrite/--no-overwrite",
        "-y/-n",
        "overwrite",
        default=None,
        help="Replace existing output files (-y), or refuse to (-n, the default).",
    )(fn)
