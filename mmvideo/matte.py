"""The compositor hand-offs: the blend matte of every written frame (``--matte-out``) and the
faces as blended, with their transforms (``--crop-out``), to redo or adjust the comp.

A matte is the coverage ``compose.paste`` blended each frame with: straight (not
premultiplied), linear 0–1, one channel, the output frame's size; several faces in one frame
combine as ``over`` does (``m + a·(1 − m)``). A 16-bit PNG holds ``round(65535·m)``; an EXR
holds ``m`` as a float channel ``A``. Every written frame gets one, all zero where no face was
swapped, so the sequence has no holes. Files are numbered like a sequence output of the same
run: the input sequence's first number (0 for a video) plus the frame's position, so a range
or a farm chunk writes its own frames' numbers into one shared sequence. Each file is written
to a temporary name and renamed.

``--crop-out FOLDER`` writes, per written frame ``N`` (numbered as the matte),
``crop.N.tT.png`` for the face of track ``T``: 224×224 16-bit RGBA, the face as it was blended
(generator output after the colour match, the chroma from the target and the Poisson offset;
sRGB-encoded like the frame) with the crop-space blend weight as straight alpha; and
``crop.N.json``: the frame number and, per face, its track, image, crop size and the 2×3 affine
from crop to frame pixels
(``crop_to_frame``; its inverse, ``frame_to_crop``, made the crop). A frame without faces gets a
sidecar with no faces.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from mmcore.atomic import atomic_output, check_output, write_json_atomic
from mmcore.errors import OutputError
from mmvideo.compose import invert_affine
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


def crop_folder(text: str, overwrite: bool | None = True) -> Path:
    """``text`` as a ``--crop-out`` folder that exists and holds no sidecars unless
    ``overwrite``, else a one-line error; commands call it before any model loads."""
    folder = Path(text)
    if not folder.is_dir():
        raise OutputError(f"{folder}: --crop-out folder does not exist")
    if overwrite is not True and any(folder.glob("crop.*.json")):
        raise OutputError(
            f"{folder}: holds face crops already; pass -y/--overwrite to replace them"
        )
    return folder


class CropWriter:
    """Writes each frame's blended faces and its JSON sidecar: frame number ``first + position``."""

    def __init__(self, folder: str, first: int = 0):
        self.folder = crop_folder(folder)
        self.first = first

    def write(self, index: int, faces: list[tuple[int, np.ndarray, np.ndarray]]) -> Path:
        """``faces``: (track id, 2×3 frame → crop alignment, 224×224×4 face and weight)."""
        number = self.first + index
        entries = []
        for track, matrix, face in faces:
            name = f"crop.{number:06d}.t{track}.png"
            with atomic_output(self.folder / name, ".png") as tmp:
                bgra = to_png16(face[..., [2, 1, 0, 3]])
                if not cv2.imwrite(str(tmp), bgra):
                    raise OutputError(f"{self.folder / name}: cannot write")
            entries.append(
                {
                    "track": int(track),
                    "image": name,
                    "size": [face.shape[1], face.shape[0]],
                    "crop_to_frame": invert_affine(matrix).tolist(),
                    "frame_to_crop": np.asarray(matrix, np.float64).tolist(),
                }
            )
        path = self.folder / f"crop.{number:06d}.json"
        write_json_atomic(path, {"frame": number, "faces": entries})
        return path
