"""Output files: checked before any work, written to a temp file and renamed, so a failure never
leaves a half-written file, and an existing file is replaced only when the user said so.

``check_output`` (with ``mmvideo.commands.options.overwrite_options``) is the one place the ``-y`` / ``-n``
policy lives: every command that writes a file checks its outputs with it before it loads a
model or decodes a frame. ``temp_beside`` is the one way a temp file is made: every writer, the
encoders included, gets the mode a plain ``open`` would give under the umask. ``write_errors``
turns an OS error while writing (a full disk, a folder gone) into the one-line
``OutputError``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from mmcore.errors import MMVideoError, OutputError

log = logging.getLogger(__name__)

OVERWRITE_HINT = "pass -y/--overwrite to replace it"

# The suffix of the video encoders' temp files, which ``remove_stale_partials`` looks for.
PARTIAL = ".partial"


@contextmanager
def write_errors(
    path: str | os.PathLike,
    action: str = "write",
    kept: str = "",
    errors: tuple[type[Exception], ...] = (OSError,),
) -> Iterator[None]:
    """The one way an error while making an output (a full disk, a folder gone, no permission)
    becomes the project's one line, an ``OutputError``: ``PATH: cannot ACTION (REASON)KEPT``.

    ``errors`` widens what is caught: torch's writer reports a full disk as a RuntimeError. The
    project's own errors from inside the block pass through as they are (``OutputError`` is an
    OSError, ``ModelError`` a RuntimeError)."""
    try:
        yield
    except MMVideoError:
        raise
    except errors as exc:
        reason = getattr(exc, "strerror", None) or next(
            iter(str(exc).splitlines()), type(exc).__name__
        )
        raise OutputError(f"{path}: cannot {action} ({reason}){kept}") from exc


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
        what = "is not a folder" if folder.exists() else "does not exist"
        raise OutputError(f"{out}: folder {folder} {what}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{out}: folder {folder} is not writable")
    if out.exists():
        if overwrite is not True:
            raise OutputError(f"{out}: already exists; {OVERWRITE_HINT}")
        if not os.access(out, os.W_OK):
            raise OutputError(f"{out}: exists and is not writable")
    return out


def temp_beside(path: str | os.PathLike, suffix: str = ".tmp") -> Path:
    """Create a fresh, empty hidden file ``.<name>.<8 hex><suffix>`` in ``path``'s folder, so
    the final rename stays on one file system; return its path.

    Unlike ``tempfile.mkstemp`` (always 0600, a mode that survives the rename), the file gets
    the mode a plain ``open`` would give it under the umask, so other farm nodes, group members
    and web servers can read what we write. Writers that open the path again (PyAV, ffmpeg,
    OpenCV, torch) truncate it and keep that mode.
    """
    path = Path(path)
    while True:
        tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}{suffix}")
        with write_errors(path):
            try:
                os.close(os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o666))
                return tmp
            except FileExistsError:
                continue


def remove_stale_partials(out: Path) -> None:
    """Delete the partial files of ``out`` that a killed run (SIGKILL, a lost node) left behind:
    only names ``temp_beside(out, PARTIAL)`` gives this very output, never another file of the
    folder. A run still writing the same output at the same time loses its partial too, so two
    live runs must not share an output."""
    own = re.compile(rf"\.{re.escape(out.name)}\.[0-9a-f]{{8}}{re.escape(PARTIAL)}")
    if not out.parent.is_dir():
        return
    for path in out.parent.iterdir():
        if own.fullmatch(path.name) and not path.is_dir():
            path.unlink(missing_ok=True)
            log.info("%s: removed %s, left by an interrupted run", out, path.name)


@contextmanager
def atomic_output(path: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh temporary path in ``path``'s folder: renamed onto ``path`` when the block ends
    normally, deleted when it raises. ``suffix`` lets writers that pick a format by extension
    (OpenCV, ffmpeg) see the right one."""
    path = Path(path)
    tmp = temp_beside(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def write_json_atomic(path: str | os.PathLike, data: Any) -> None:
    """Write JSON beside ``path``, flushed to disk, and rename, so readers (other farm nodes)
    never see a half-written file; the folder is created if needed."""
    path = Path(path)
    with write_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_output(path) as tmp, open(tmp, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
