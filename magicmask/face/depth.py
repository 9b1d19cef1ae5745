"""Dense face depth maps from landmarks (the paper uses DECA; we interpolate a fitted 3-D shape).

Per-landmark heights come from the backend's 3-D landmarks when it has them, otherwise from the
mean-face fit in ``pose.py``. They are spread over a fixed Delaunay triangulation of the mean
face (scipy) by rasterising each triangle's plane; triangles are drawn far to near, so on a turned
head the near cheek covers the far one as it does in the image.
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
from scipy.spatial import Delaunay

from magicmask.face.pose import fit_shape, mean_face

# Depth values are heights toward the camera in crop pixels, mapped so the landmarks' mean height
# sits at 0.5 and one crop width of relief spans the whole range; 0 is reserved for background.
_MIN_FACE_DEPTH = 0.05


@lru_cache(maxsize=1)
def face_triangles() -> np.ndarray:
    """(T, 3) vertex indices of the Delaunay triangulation of the frontal mean face."""
    tri = Delaunay(mean_face()[:, :2]).simplices.astype(np.int32)
    tri.setflags(write=False)
    return tri


def _plane_coefficients(xy: np.ndarray, z: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """(T, 3) coefficients (a, b, c) of z = a·x + b·y + c through each triangle's vertices."""
    a = np.concatenate([xy[tri], np.ones((len(tri), 3, 1))], axis=2)  # (T, 3, 3)
    b = z[tri]  # (T, 3)
    det = np.linalg.det(a)
    flat = np.abs(det) < 1e-6  # collinear in the image (edge-on triangle): use the mean height
    a[flat] = np.eye(3)
    coef = np.linalg.solve(a, b[..., None])[..., 0]
    coef[flat] = np.stack(
        [np.zeros(flat.sum()), np.zeros(flat.sum()), b[flat].mean(axis=1)], axis=1
    )
    return coef


def render_depth(points_xy: np.ndarray, heights: np.ndarray, size: int = 224) -> np.ndarray:
    """Rasterise per-landmark heights (crop pixels, toward the camera) into a [0, 1] depth map."""
    xy = np.asarray(points_xy, dtype=np.float64)[:, :2]
    z = np.asarray(heights, dtype=np.float64)
    tri = face_triangles()
    coef = _plane_coefficients(xy, z, tri)
    order = np.argsort(z[tri].mean(axis=1))  # far triangles first, near ones painted over them
    index = np.full((size, size), -1, dtype=np.int32)
    corners = np.round(xy * 16.0).astype(np.int32)  # 4 fractional bits of vertex precision
    for t in order:
        cv2.fillConvexPoly(index, corners[tri[t]], int(t), cv2.LINE_8, 4)
    inside = index >= 0
    ys, xs = np.nonzero(inside)
    c = coef[index[inside]]
    heights_px = c[:, 0] * xs + c[:, 1] * ys + c[:, 2]
    out = np.zeros((size, size), dtype=np.float32)
    out[inside] = np.clip(0.5 + heights_px / size, _MIN_FACE_DEPTH, 1.0)
    return out


def depth_map(
    landmarks_crop: np.ndarray,
    landmarks3d_crop: np.ndarray | None = None,
    size: int = 224,
) -> np.ndarray:
    """(size, size) float32 depth in [0, 1] of a face in a size×size crop; 0 = background.

    ``landmarks3d_crop`` (68×3) are 3-D landmarks already in crop pixels, z toward the camera;
    without them the mean face is fitted to the 2-D landmarks.
    """
    xy = np.asarray(landmarks_crop, dtype=np.float64)[:, :2]
    if landmarks3d_crop is not None:
        z = np.asarray(landmarks3d_crop, dtype=np.float64)[:, 2]
        heights = z - z.mean()
    else:
        heights = fit_shape(xy, (size, size)).depth
    return render_depth(xy, heights, size)
