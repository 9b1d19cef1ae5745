"""Soft face masks from landmarks, and the component boxes of the AFSA loss."""

from __future__ import annotations

import cv2
import numpy as np

_JAW = slice(0, 17)
_BROWS = slice(17, 27)
_NOSE_BRIDGE_TOP = 27
_CHIN = 8

# AFSA components (paper eq. 11) as landmark index ranges, in the order the loss expects.
COMPONENTS: dict[str, tuple[int, ...]] = {
    "eyes": tuple(range(36, 48)),
    "nose": tuple(range(27, 36)),
    "mouth": tuple(range(48, 68)),
    "jaw": tuple(range(17)),
}


def face_outline(landmarks: np.ndarray, forehead: float = 0.3) -> np.ndarray:
    """Convex outline of the face: jaw and brows, with the brows raised to cover the forehead.

    The brows move up along the chin → nose-bridge direction by ``forehead`` times that distance,
    so the extension follows a tilted head instead of the image's vertical.
    """
    pts = np.asarray(landmarks, dtype=np.float32)[:, :2]
    up = pts[_NOSE_BRIDGE_TOP] - pts[_CHIN]
    raised = pts[_BROWS] + forehead * up
    return cv2.convexHull(np.concatenate([pts[_JAW], pts[_BROWS], raised])).reshape(-1, 2)


def face_mask(
    landmarks_crop: np.ndarray,
    size: int = 224,
    erosion: float = 0.0,
    feather: float = 4.0,
    forehead: float = 0.3,
) -> np.ndarray:
    """(size, size) float32 mask in [0, 1]: 1 on the face, 0 off it, ``feather``-px soft edge.

    ``erosion`` shrinks the hard mask by that many pixels before feathering (negative grows it),
    so a blend can keep the target's own jaw line or reach past it.
    """
    hull = np.round(face_outline(landmarks_crop, forehead) * 16.0).astype(np.int32)
    hard = np.zeros((size, size), dtype=np.uint8)
    cv2.fillConvexPoly(hard, hull, 255, cv2.LINE_8, 4)
    radius = round(abs(erosion))
    if radius:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
        hard = cv2.erode(hard, kernel) if erosion > 0 else cv2.dilate(hard, kernel)
    mask = hard.astype(np.float32) * (1.0 / 255.0)
    if feather > 0:
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return mask


def component_boxes(
    landmarks_crop: np.ndarray,
    margin: float = 6.0,
    min_side: float = 16.0,
    size: int = 224,
) -> np.ndarray:
    """(4, 4) float32 boxes (x0, y0, x1, y1) around eyes, nose, mouth and jaw, in crop pixels.

    Each is the min/max of its landmarks grown by ``margin`` px, widened to at least ``min_side``
    (closed eyes would otherwise give a box a few pixels high) and clipped to the crop.
    """
    pts = np.asarray(landmarks_crop, dtype=np.float32)[:, :2]
    boxes = np.empty((len(COMPONENTS), 4), dtype=np.float32)
    for i, idx in enumerate(COMPONENTS.values()):
        p = pts[list(idx)]
        lo, hi = p.min(axis=0) - margin, p.max(axis=0) + margin
        center, half = (lo + hi) / 2.0, np.maximum((hi - lo) / 2.0, min_side / 2.0)
        boxes[i, :2], boxes[i, 2:] = center - half, center + half
    return np.clip(boxes, 0.0, float(size))
