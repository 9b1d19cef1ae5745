"""Similarity alignment of faces to the identity (112) and target (224) crops, and back.

Matrices are 2×3 float64 mapping frame → crop (``cv2.warpAffine`` convention); ``invert_affine``
gives crop → frame for pasting back.
"""

from __future__ import annotations

import cv2
import numpy as np

# ArcFace's 5-point template in a 112×112 crop: left eye, right eye, nose tip, left and right
# mouth corner (image left/right).
ARCFACE_112 = np.array(
    [
        [38.2946, 51.6963],
        [73.5318, 51.5014],
        [56.0252, 71.7366],
        [41.5493, 92.3655],
        [70.7299, 92.2041],
    ],
    dtype=np.float32,
)
# The paper resizes the aligned face to 256 and center-crops 224 (docs/design.md).
TEMPLATE_224 = (ARCFACE_112 * (256.0 / 112.0) - 16.0).astype(np.float32)

_LEFT_EYE = slice(36, 42)
_RIGHT_EYE = slice(42, 48)
_NOSE_TIP = 30
_MOUTH_LEFT = 48
_MOUTH_RIGHT = 54


def five_points(landmarks68: np.ndarray) -> np.ndarray:
    """The 5 ArcFace anchor points (eye centers, nose tip, mouth corners) from 68 iBUG points."""
    pts = np.asarray(landmarks68, dtype=np.float32)[:, :2]
    return np.stack(
        [
            pts[_LEFT_EYE].mean(axis=0),
            pts[_RIGHT_EYE].mean(axis=0),
            pts[_NOSE_TIP],
            pts[_MOUTH_LEFT],
            pts[_MOUTH_RIGHT],
        ]
    ).astype(np.float32)


def similarity_matrix(src_points: np.ndarray, dst_points: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping src → dst, 2×3.

    Umeyama's closed form, the same estimate ArcFace's own alignment uses; unlike
    ``cv2.estimateAffinePartial2D`` it has no random sampling, so it is exactly reproducible.
    """
    src = np.asarray(src_points, dtype=np.float64)[:, :2]
    dst = np.asarray(dst_points, dtype=np.float64)[:, :2]
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:  # keep a rotation, never a reflection
        d[1] = -1.0
    rot = u @ np.diag(d) @ vt
    var = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var if var > 0 else 1.0
    m = np.empty((2, 3), dtype=np.float64)
    m[:, :2] = scale * rot
    m[:, 2] = dst_mean - m[:, :2] @ src_mean
    return m


def invert_affine(m: np.ndarray) -> np.ndarray:
    """Inverse of a 2×3 affine matrix (crop → frame for a frame → crop matrix)."""
    return cv2.invertAffineTransform(np.asarray(m, dtype=np.float64))


def transform_points(points: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Apply a 2×3 affine matrix to (N, 2) points; extra columns (e.g. z) are dropped."""
    pts = np.asarray(points, dtype=np.float64)[:, :2]
    return (pts @ np.asarray(m, dtype=np.float64)[:, :2].T + m[:, 2]).astype(np.float32)


def affine_scale(m: np.ndarray) -> float:
    """The uniform scale factor of a similarity matrix."""
    return float(np.sqrt(abs(np.linalg.det(np.asarray(m, dtype=np.float64)[:, :2]))))


def flow_landmarks(
    prev_gray: np.ndarray, gray: np.ndarray, points: np.ndarray, fb_max: float
) -> np.ndarray | None:
    """``points`` (N×2, in ``prev_gray``) tracked into ``gray`` by pyramidal Lucas–Kanade flow.

    Each point is tracked forwards and back; those that return within ``fb_max`` pixels are
    trusted, and the similarity transform (shift, rotation, scale) they agree on (RANSAC) moves
    every point: one rigid motion of the face, which a single point on a blurred or occluded
    patch cannot drag. None when under half the points (or under 8) can be trusted.
    """
    p0 = np.ascontiguousarray(points, np.float32).reshape(-1, 1, 2)
    lk = {
        "winSize": (21, 21),
        "maxLevel": 3,
        "criteria": (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 20, 0.03),
    }
    p1, st1, _ = cv2.calcOpticalFlowPyrLK(prev_gray, gray, p0, None, **lk)
    if p1 is None:
        return None
    back, st2, _ = cv2.calcOpticalFlowPyrLK(gray, prev_gray, p1, None, **lk)
    fb = np.linalg.norm((back - p0).reshape(-1, 2), axis=1)
    good = (st1.reshape(-1) == 1) & (st2.reshape(-1) == 1) & (fb < fb_max)
    if good.sum() < max(8, len(p0) // 2):
        return None
    m, _ = cv2.estimateAffinePartial2D(
        p0[good], p1[good], method=cv2.RANSAC, ransacReprojThreshold=2 * fb_max
    )
    if m is None:
        return None
    return (points.reshape(-1, 2) @ m[:, :2].T + m[:, 2]).astype(np.float32)


def to_uint8(image: np.ndarray) -> np.ndarray:
    """uint8 view of an image at the project's boundary depths (uint8 or full-scale uint16)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.uint16:
        return ((image.astype(np.uint32) + 128) // 257).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}; expected uint8 or uint16")


def warp(image: np.ndarray, m: np.ndarray, size: int) -> np.ndarray:
    """Warp ``image`` into a size×size crop with matrix ``m``; uint8 out.

    Pixels outside the frame repeat the border, so a face at the frame edge does not get a hard
    black wedge that the generator would try to reproduce.
    """
    crop = cv2.warpAffine(
        image,
        np.asarray(m, dtype=np.float64),
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return to_uint8(crop)


def align_target(
    image: np.ndarray, landmarks68: np.ndarray, size: int = 224
) -> tuple[np.ndarray, np.ndarray]:
    """224×224 target crop (the paper's resize-256-crop-224 framing) and its frame → crop matrix."""
    template = TEMPLATE_224 * (size / 224.0)
    m = similarity_matrix(five_points(landmarks68), template)
    return warp(image, m, size), m


def align_identity(image: np.ndarray, landmarks68: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """112×112 crop aligned to ``ARCFACE_112`` for the identity encoders, and its matrix."""
    m = similarity_matrix(five_points(landmarks68), ARCFACE_112)
    return warp(image, m, 112), m
