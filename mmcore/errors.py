"""Errors raised across mmvideo, magicmask and train.

Each error subclasses both MMVideoError and the matching built-in, so callers can catch either.
The message is one line that names the file and the reason, with a hint where one helps.
Exit codes are chosen only in ``mmvideo/commands/__init__.py``.
"""

from __future__ import annotations


class MMVideoError(Exception):
    """Base class of every error mmvideo reports to the user."""

    exit_code = 1


class MissingInput(MMVideoError, FileNotFoundError):
    """An input file or folder does not exist or is not the expected kind."""

    exit_code = 2


class InvalidInput(MMVideoError, ValueError):
    """An input exists but cannot be used (corrupt, empty, wrong kind, unsupported)."""

    exit_code = 3


class NoFaceFound(InvalidInput):
    """No usable face where one is required (e.g. the source image)."""


class OutputError(MMVideoError, OSError):
    """The output cannot be written where asked (unwritable, same as input, ...)."""

    exit_code = 4


class ModelError(MMVideoError, RuntimeError):
    """A model or checkpoint file is missing, mismatched or tampered with."""

    exit_code = 5


class DecodeError(InvalidInput):
    """A frame in the middle of a clip could not be decoded."""

    def __init__(self, path: str, frame_index: int, reason: str):
        super().__init__(
            f"{path}: decode error at frame {frame_index}: {reason} "
            "(use --skip-bad-frames to repeat the last good frame instead)"
        )
        self.path = path
        self.frame_index = frame_index


class Terminated(KeyboardInterrupt):
    """SIGTERM (farm managers, ``docker stop``), raised on the main thread so that it unwinds
    like Ctrl-C: writers drop their partial files and stage threads are joined."""


def raise_terminated(signum, frame) -> None:
    """A SIGTERM handler that turns the signal into ``Terminated`` on the main thread."""
    raise Terminated
