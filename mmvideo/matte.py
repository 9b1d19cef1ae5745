"""The matte output stage (``--matte-out``): the blend matte of every written frame, for a
compositor to redo or adjust the comp.

A matte is the coverage ``compose.paste`` blended each frame with: straight (not
premultiplied), linear 0–1, one channel, the output frame's size; several faces in one frame
combine as ``over`` does (``m + a·(1 − m)``). A 16-bit PNG holds ``round(65535·m)``; an EXR
holds ``m`` as a float channel ``A``. Every written frame gets one, all zero where no face was
swapped, so the sequence has no holes. Files are numbered like a sequence output of the same
run: the input sequence's first number (0 for a video) plus the frame's position, so a range
or a farm chunk writes its own frames' numbers into one shared sequence. Each file is written
to a temporary name and renamed.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mmcore.atomic import atomic_output, check_output
from mmcore.errors import OutputError
from mmvideo.io.sequence import SequencePattern, first_line, oiio_module, parse_pattern

MATTE_KINDS = ("png", "exr")


def matte_pattern(text: str, overwrite: bool | None = True) -> SequencePattern:
    """``text`` as a PNG or EXR frame pattern whose folder exists and whose frames may be
    written under the -y/-n choice (``overwrite``), else a one-line error; commands call it
    before any model loads."""
    pattern = parse_pattern(text)
    if pattern is None or pattern.kind not in MATTE_KINDS:
        raise OutputError(
            f"{text}: --matte-out takes a PNG or EXR frame pattern (e.g. matte.%06d.png)"
        )
    if pattern.kind == "exr":
        oiio_module("EXR mattes")
    check_output(pattern.path(0))  # the folder exists and is writable
    existing = pattern.scan()
    if existing and overwrite is not True:
        raise OutputError(
            f"{text}: {len(existing)} matte frames already exist; "
            "pass -y/--overwrite to replace them"
        )
    return pattern


def to_png16(matte: np.ndarray) -> np.ndarray:
    """The 16-bit PNG code values of a 0–1 matte."""
    return np.rint(np.clip(matte, 0.0, 1.0) * 65535.0).astype(np.uint16)


class MatteWriter:
    """Writes one matte file per frame: file number ``first + frame position``."""

    def __init__(self, pattern: str, first: int = 0):
        self.pattern = matte_pattern(pattern)
        self.first = first

    def write(self, index: int, matte: np.ndarray) -> Path:
        path = self.pattern.path(self.first + index)
        suffix = Path(path).suffix
        with atomic_output(path, suffix) as tmp:
            if self.pattern.kind == "png":
                if not cv2.imwrite(str(tmp), to_png16(matte)):
                    raise OutputError(f"{path}: cannot write")
            else:
                self._write_exr(tmp, path, matte)
        return path

    @staticmethod
    def _write_exr(tmp: Path, path: Path, matte: np.ndarray) -> None:
        oiio = oiio_module("EXR mattes")
        h, w = matte.shape
        spec = oiio.ImageSpec(w, h, 1, "float")
        spec.channelnames = ("A",)
        spec.alpha_channel = 0
        spec.attribute("compression", "zip")
        out = oiio.ImageOutput.create(str(tmp))
        if out is None or not out.open(str(tmp), spec):
            raise OutputError(f"{path}: cannot write: {first_line(oiio.geterror())}")
        ok = out.write_image(np.ascontiguousarray(matte[..., None], np.float32))
        error = out.geterror()
        out.close()
        if not ok:
            raise OutputError(f"{path}: cannot write: {first_line(error)}")
