"""Head pose and per-landmark depth from one fit of a 3-D mean face to the landmarks.

The mean face (``data/mean_face_68.npy``, 68×3, x right, y down, z toward the camera, eye
distance ≈ 0.76 units) is insightface's ``meanshape_68`` carried in our package so the default
backend needs no extra install. Backends that predict 3-D landmarks are fitted in 3-D (Umeyama);
the others by ``cv2.solvePnP`` under a pinhole camera (see ``_fit_2d``).

Angles follow the AFLW2000-3D convention (the test data's ground truth, checked in
``tests/test_face_pose.py``): yaw > 0 when the nose points toward the image's right (the face's
own left), pitch > 0 when the face looks up, roll > 0 when the face tilts clockwise in the image.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

_DATA = Path(__file__).resolve().parent / "data"
_FIT_POINTS = np.arange(17, 68)  # brows, nose, eyes, mouth: not the jaw contour
_FOCAL_SCALE = 2.0


@lru_cache(maxsize=1)
def mean_face() -> np.ndarray:
    """The 68×3 mean face (read-only), x right, y down, z toward the camera."""
    shape = np.load(_DATA / "mean_face_68.npy").astype(np.float64)
    shape.setflags(write=False)
    return shape


@dataclass
class ShapeFit:
    """A rigid fit of the mean face to one face's landmarks.

    ``rotation`` maps mean-face axes to camera axes (x right, y down, z toward the camera);
    ``depth`` is each landmark's height toward the camera relative to the landmarks' mean, in the
    image's pixel units (positive = nearer than the mean). Angles are in degrees.
    """

    rotation: np.ndarray  # (3, 3)
    scale: float  # image pixels per mean-face unit
    depth: np.ndarray  # (68,) float32
    yaw: float
    pitch: float
    roll: float

    @property
    def pose(self) -> tuple[float, float, float]:
        return (self.yaw, self.pitch, self.roll)


def _angles(rotation: np.ndarray) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of a face rotation in x-right, y-down, z-toward-camera axes."""
    r = rotation
    # R = Rz(roll) · Ry(-yaw) · Rx(pitch) with the axes above (3DDFA's decomposition); AFLW2000's
    # yaw is measured in y-up axes, hence the sign.
    yaw = np.degrees(np.arcsin(np.clip(r[2, 0], -1.0, 1.0)))
    pitch = np.degrees(np.arctan2(r[2, 1], r[2, 2]))
    roll = np.degrees(np.arctan2(r[1, 0], r[0, 0]))
    return float(yaw), float(pitch), float(roll)


def _fit_2d(
    landmarks68: np.ndarray, image_size: tuple[int, int]
) -> tuple[np.ndarray, float, np.ndarray]:
    """solvePnP of the mean face: (rotation in our axes, pixels per unit, camera-space points).

    Only the inner points (brows, eyes, nose, mouth) are fitted: on a turned head 2-D landmarkers
    put the far jaw points on the visible silhouette, which is not where the mean face's jaw
    points are, and fitting them pulls the yaw toward frontal (on the test data, a 44° profile
    read as 31° with them). The focal length is twice the image's long side: crops and
    tele shots are common, and the AFLW2000 poses fit best there (1× to 4× differ by < 2°).
    """
    h, w = image_size
    f = _FOCAL_SCALE * float(max(h, w))
    cam = np.array([[f, 0.0, w / 2.0], [0.0, f, h / 2.0], [0.0, 0.0, 1.0]])
    # OpenCV's camera looks along +z, so "toward the camera" is -z there.
    obj = mean_face() * np.array([1.0, 1.0, -1.0])
    img = np.ascontiguousarray(np.asarray(landmarks68, dtype=np.float64)[_FIT_POINTS, :2])
    ok, rvec, tvec = cv2.solvePnP(obj[_FIT_POINTS], img, cam, None, flags=cv2.SOLVEPNP_EPNP)
    if ok:
        ok, rvec, tvec = cv2.solvePnP(
            obj[_FIT_POINTS], img, cam, None, rvec, tvec, True, cv2.SOLVEPNP_ITERATIVE
        )
    if not ok or tvec[2, 0] <= 0:
        raise ValueError("cannot fit the mean face to these landmarks")
    r_cv, _ = cv2.Rodrigues(rvec)
    flip = np.diag([1.0, 1.0, -1.0])
    rotation = flip @ r_cv @ flip  # back to z-toward-camera axes on both sides
    cam_pts = obj @ r_cv.T + tvec[:, 0]
    return rotation, f / float(tvec[2, 0]), cam_pts


def _fit_3d(landmarks3d: np.ndarray) -> tuple[np.ndarray, float]:
    """Umeyama 3-D similarity of the mean face onto predicted 3-D landmarks: (rotation, scale)."""
    src = mean_face()
    dst = np.asarray(landmarks3d, dtype=np.float64)[:, :3]
    src_c, dst_c = src - src.mean(axis=0), dst - dst.mean(axis=0)
    u, s, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    d = np.ones(3)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[2] = -1.0
    rotation = u @ np.diag(d) @ vt
    scale = float((s * d).sum() / ((src_c**2).sum() / len(src)))
    return rotation, scale


def fit_shape(
    landmarks68: np.ndarray,
    image_size: tuple[int, int],
    landmarks3d: np.ndarray | None = None,
) -> ShapeFit:
    """Fit the mean face to one face (``image_size`` = (height, width) of the landmarks' image)."""
    if landmarks3d is not None:
        rotation, scale = _fit_3d(landmarks3d)
        z = np.asarray(landmarks3d, dtype=np.float64)[:, 2]
        depth = z - z.mean()
    else:
        rotation, scale, cam_pts = _fit_2d(landmarks68, image_size)
        depth = -(cam_pts[:, 2] - cam_pts[:, 2].mean()) * scale  # camera units → image pixels
    yaw, pitch, roll = _angles(rotation)
    return ShapeFit(rotation, scale, depth.astype(np.float32), yaw, pitch, roll)


def estimate_pose(
    landmarks68: np.ndarray,
    image_size: tuple[int, int],
    landmarks3d: np.ndarray | None = None,
) -> tuple[float, float, float]:
    """(yaw, pitch, roll) in degrees of one face; ``image_size`` is (height, width)."""
    return fit_shape(landmarks68, image_size, landmarks3d).pose
