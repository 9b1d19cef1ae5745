"""Landmark groups of the 68-point iBUG layout and the landmark heat-maps fed to the geometric module.

The paper feeds FAN landmarks as "landmark features"; we render one channel per facial component
(**[ours]**, see the spec): each channel is a Gaussian of the distance to that component's
outline, so the channel carries the component's shape, not only 68 isolated dots.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy import ndimage

# Component groups in iBUG/dlib index order; "closed" outlines are drawn as loops.
LANDMARK_GROUPS: dict[str, tuple[int, ...]] = {
    "jaw": tuple(range(17)),
    "right_brow": tuple(range(17, 22)),
    "left_brow": tuple(range(22, 27)),
    "nose": tuple(range(27, 36)),
    "right_eye": tuple(range(36, 42)),
    "left_eye": tuple(range(42, 48)),
    "outer_lip": tuple(range(48, 60)),
    "inner_lip": tuple(range(60, 68)),
}
_CLOSED = {"right_eye", "left_eye", "outer_lip", "inner_lip"}
# The nose is two strokes: the bridge (27-30) and the nostril arc (31-35), joined at the tip.
_STROKES: dict[str, tuple[tuple[int, ...], ...]] = {
    name: ((27, 28, 29, 30), (31, 32, 33, 34, 35), (30, 33)) if name == "nose" else (idx,)
    for name, idx in LANDMARK_GROUPS.items()
}
_SUBPIXEL_BITS = 4  # cv2 draws with 1/16-pixel vertex precision


def landmark_heatmaps(points_crop: np.ndarray, size: int = 224, sigma: float = 2.0) -> np.ndarray:
    """(8, size, size) float32 heat-maps in [0, 1], one per ``LANDMARK_GROUPS`` entry, in order.

    Each is ``exp(-d² / 2σ²)`` with ``d`` the pixel distance to the group's outline, computed only
    within 4σ of the outline (beyond it the value is below e⁻⁸ and stored as 0); a group whose
    points all fall outside the crop is all zeros.
    """
    xy = np.asarray(points_crop, dtype=np.float64)[:, :2]
    reach = int(np.ceil(4.0 * sigma))
    out = np.zeros((len(LANDMARK_GROUPS), size, size), dtype=np.float32)
    for i, name in enumerate(LANDMARK_GROUPS):
        g = xy[list(LANDMARK_GROUPS[name])]
        x0, y0 = np.maximum(np.floor(g.min(axis=0)).astype(int) - reach, 0)
        x1, y1 = np.minimum(np.ceil(g.max(axis=0)).astype(int) + reach + 1, size)
        if x1 <= x0 or y1 <= y0:
            continue  # the group lies outside the crop
        # Work in the group's window only: a few hundred pixels per group, not the full crop.
        canvas = np.full((y1 - y0, x1 - x0), 255, dtype=np.uint8)
        shifted = np.round((xy - (x0, y0)) * (1 << _SUBPIXEL_BITS)).astype(np.int32)
        curves = [shifted[list(stroke)].reshape(-1, 1, 2) for stroke in _STROKES[name]]
        cv2.polylines(canvas, curves, name in _CLOSED, 0, 1, cv2.LINE_8, _SUBPIXEL_BITS)
        if canvas.min() == 255:
            continue
        # scipy's exact EDT, not cv2.distanceTransform: OpenCV's (IPP) path returns values that
        # differ in the last bits between identical calls, which breaks bit-identical re-runs.
        dist = ndimage.distance_transform_edt(canvas).astype(np.float32)
        heat = np.exp((dist * dist) * (-0.5 / (sigma * sigma)))
        heat[dist > reach] = 0.0
        out[i, y0:y1, x0:x1] = heat
    return out
