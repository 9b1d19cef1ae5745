"""Output files: checked before any work, written to a temp file and renamed, so a failure never
leaves a half-written file, and an existing file is replaced only when the user said so.

``overwrite_options`` and ``check_output`` are the one place the ``-y`` / ``-n`` policy lives:
every command that writes a file takes the flags and checks its outputs with them before it
loads a model or decodes a frame.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from mmvideo.errors import OutputError

OVERWRITE_HINT = "pass -y/--overwrite to replace it"


def overwrite_options(fn):
    """``-y/--overwrite`` and ``-n/--no-overwrite`` (ffmpeg's letters) as one ``overwrite``
    parameter: True, False, or None when neither was given (commands treat None as -n)."""
    return click.option(
        "--overwrite/--no-overwrite",
        "-y/-n",
        "overwrite",
        default=None,
        help="Replace existing output files (-y), or refuse to (-n, the default).",
    )(fn)


def check_output(
    path: str | os.PathLike,
    *inputs: str | os.PathLike | None,
    overwrite: bool | None = True,
) -> Path:
    """Fail early, with one line, if ``path`` cannot be written, is one of ``inputs`` (None
    entries are skipped), or exists while ``overwrite`` is not True.

    Library writers call it with the default (they replace their own temp-and-rename target);
    commands pass the user's ``-y``/``-n`` choice before any model loads.
    """
    out = Path(path)
    for other in inputs:
        if other is not None and out.resolve() == Path(other).resolve():
            raise OutputError(f"{out}: output is the input file; choose another name")
    if out.is_dir():
        raise OutputError(f"{out}: is a directory; give a file name")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"{out}: folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: folder {folder} is not writable")
    if out.exists():
        if overwrite is not True:
            raise OutputError(f"{out}: already exists; {OVERWRITE_HINT}")
        if not os.access(out, os.W_OK):
            raise OutputError(f"{out}: exists and is not writable")
    return out


def create_beside(path: str | os.PathLike, suffix: str = ".tmp") -> tuple[int, Path]:
    """Create a fresh hidden file in ``path``'s folder; return its open descriptor and path.

    Unlike ``tempfile.mkstemp`` (always 0600, a mode that survives the rename), the file gets
    the mode a plain ``open`` would give it under the umask, so other farm nodes, group members
    and web servers can read what we write.
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        try:
            return os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666), tmp
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{path}: cannot write: {exc.strerror}") from exc


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path in ``path``'s folder: renamed onto ``path`` when the block ends
    normally, deleted when it raises. ``suffix`` lets writers that pick a format by extension
    (OpenCV, ffmpeg) see the right one."""
    path = Path(path)
    fd, tmp = create_beside(path, suffix)
    os.close(fd)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
