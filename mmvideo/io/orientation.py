"""Display-matrix orientation: which transform makes stored pixels upright.

Phones store pixels as the sensor saw them and put a display matrix (rotation and optional flip)
in the container. We bake that transform into the pixels on decode, so ``Frame.image`` is always
upright (face detectors need that) and the encoder writes upright pixels with no rotation tag.
The decision mirrors ffmpeg's own autorotate (fftools ``get_rotation`` + ``transpose``/flip), so
our frames equal ``ffmpeg -i clip`` frames pixel for pixel.
"""

from __future__ import annotations

import math
import struct

import numpy as np

# transform name -> function on an H×W×C array
_TRANSFORMS = {
    "none": lambda a: a,
    "clock": lambda a: np.rot90(a, -1),
    "cclock": lambda a: np.rot90(a, 1),
    "cclock_flip": lambda a: a.transpose(1, 0, *range(2, a.ndim)),
    "clock_flip": lambda a: np.rot90(a, -1)[::-1],
    "hflip": lambda a: a[:, ::-1],
    "vflip": lambda a: a[::-1],
    "rotate180": lambda a: a[::-1, ::-1],
}


def parse_display_matrix(raw: bytes) -> tuple[float, ...]:
    """The nine entries of an AV display matrix (16.16 fixed point, last column 2.30)."""
    values = struct.unpack("<9i", bytes(raw)[:36])
    return tuple(v / (1 << 30) if i % 3 == 2 else v / (1 << 16) for i, v in enumerate(values))


def display_rotation(matrix: tuple[float, ...]) -> float:
    """Counter-clockwise rotation in degrees, as ffprobe prints it (``av_display_rotation_get``)."""
    scale0 = math.hypot(matrix[0], matrix[3])
    scale1 = math.hypot(matrix[1], matrix[4])
    if scale0 == 0.0 or scale1 == 0.0:
        return 0.0
    return -math.degrees(math.atan2(matrix[1] / scale1, matrix[0] / scale0))


def upright_transform(matrix: tuple[float, ...] | None) -> str:
    """Name of the transform that shows stored pixels the way players do (fftools logic)."""
    if matrix is None:
        return "none"
    theta = -round(display_rotation(matrix))
    theta -= 360 * math.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1.0:
        return "cclock_flip" if matrix[3] > 0 else "clock"
    if abs(theta - 180) < 1.0:
        hflip, vflip = matrix[0] < 0, matrix[4] < 0
        return {
            (True, True): "rotate180",
            (True, False): "hflip",
            (False, True): "vflip",
        }.get((hflip, vflip), "none")
    if abs(theta - 270) < 1.0:
        return "clock_flip" if matrix[3] < 0 else "cclock"
    # like ffmpeg, other angles (and a lone vertical flip, which reads as 0°) are not applied
    return "none"


def swaps_axes(transform: str) -> bool:
    """Whether the transform turns W×H into H×W."""
    return transform in ("clock", "cclock", "cclock_flip", "clock_flip")


def apply_transform(image: np.ndarray, transform: str) -> np.ndarray:
    """Apply a named transform; returns a C-contiguous array (a view only when nothing moves)."""
    if transform == "none":
        return image
    return np.ascontiguousarray(_TRANSFORMS[transform](image))
