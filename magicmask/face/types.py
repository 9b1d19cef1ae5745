"""Records passed between face-analysis stages and to the video pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class Face:
    """One face found in one image, in that image's pixel coordinates (x right, y down).

    ``landmarks`` are 68 points in the iBUG/dlib order for every backend (backends with another
    layout convert, keeping their native points in ``extra``); ``landmarks_3d`` (68×3, z toward the
    camera, same pixel units) is set by backends that predict depth. ``embedding`` is filled by an
    identity encoder when asked. ``pose`` is (yaw, pitch, roll) in degrees when estimated.
    """

    box: np.ndarray  # (4,) float32 x0, y0, x1, y1
    score: float
    landmarks: np.ndarray  # (68, 2) float32
    landmarks_3d: np.ndarray | None = None  # (68, 3) float32
    embedding: np.ndarray | None = None  # (D,) float32, L2-normalised
    pose: tuple[float, float, float] | None = None
    extra: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = self.box
        return float(max(0.0, x1 - x0) * max(0.0, y1 - y0))


@dataclass
class Landmarks:
    """What a landmark backend returns for one box: 68 iBUG points, optional 3-D, native extras."""

    points: np.ndarray  # (68, 2) float32 image pixels
    points_3d: np.ndarray | None = None  # (68, 3) float32, z toward the camera
    extra: dict[str, np.ndarray] = field(default_factory=dict)


def box_side(box: np.ndarray) -> float:
    """The longer side of a box (x0, y0, x1, y1), at least 1 px: a face's size."""
    return float(max(box[2] - box[0], box[3] - box[1], 1.0))


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` (N×4 x0,y0,x1,y1) with every box in ``b`` (M×4) → N×M."""
    a = np.asarray(a, np.float64).reshape(-1, 4)[:, None]
    b = np.asarray(b, np.float64).reshape(-1, 4)[None]
    w = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    h = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = w * h
    area_a = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1])
    area_b = (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])
    return inter / np.maximum(area_a + area_b - inter, 1e-9)
