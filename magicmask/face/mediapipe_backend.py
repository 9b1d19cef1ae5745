"""MediaPipe Face Mesh backend: 468 3-D points from Google's ``face_landmark.tflite``, offline.

Face Mesh places every point of the face, the hidden side of a turned head included, where its
3-D position projects; dlib's 68-point predictor instead slides the far jaw and eye points onto
the visible silhouette and collapses a profile toward a frontal shape. So this backend is the
one that reads large yaw (an AFLW2000 face at -55° reads -55°, where dlib reads -4°; see
``tests/test_face_mediapipe.py``).

Weights: ``face_landmark.tflite`` (Apache 2.0) as the ``mediapipe`` 0.10.14 wheel ships it in
``mediapipe/modules/face_landmark/`` (later wheels no longer carry it). Install that wheel with
``--no-deps`` (its own requirements would add a second OpenCV and downgrade protobuf); it is only
read, never imported. Or put ``face_landmark.tflite`` in ``--face-models DIR``. The network runs
on the TFLite runtime of ``ai-edge-litert`` (the ``mediapipe`` extra).

Per box, as MediaPipe's own graph does: a square region 1.5× the box around its center, resized
to 192×192 (RGB in [0, 1]); then a second pass on the region the first pass's points give
(their bounding box ×1.5, turned so the eye corners are level), which recentres the crop on
the face whatever the detector's box convention.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from magicmask.face.align import affine_scale, invert_affine, transform_points
from magicmask.face.model_files import package_file, user_file
from magicmask.face.types import Landmarks
from mmcore.errors import ModelError

MODEL_NAME = "face_landmark.tflite"
INSTALL_HINT = "--no-deps mediapipe==0.10.14"
INPUT_SIZE = 192
ROI_SCALE = 1.5
EYE_CORNERS = (33, 263)  # outer corners, image-left and image-right on a frontal face

# Face Mesh vertex nearest each iBUG 68 point: the argmin over the 468 vertices of the distance
# to dlib's point, averaged over the 36 near-frontal (|yaw| < 15°) identity stills of the test
# data, in units of the eye distance (mean residual 0.02-0.12; the jaw contour, which the two
# define differently, is the loosest). tests/test_face_mediapipe.py re-checks the agreement.
MESH_TO_68 = np.array(
    (
        127, 227, 177, 215, 172, 136, 149, 148, 152, 377, 378, 365, 397, 435, 401, 454, 356,  # jaw
        156, 63, 105, 66, 55, 285, 296, 334, 293, 383,  # brows
        168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose
        7, 160, 158, 155, 153, 144, 382, 385, 386, 249, 373, 380,  # eyes
        61, 74, 37, 11, 267, 269, 291, 405, 314, 17, 84, 91,  # outer lips
        62, 38, 13, 268, 308, 317, 14, 87,  # inner lips
    )
)  # fmt: skip


def wheel_model(face_models: Path | None, module: str, name: str, what: str) -> Path:
    """A model file of the mediapipe wheel: ``name`` in the user's folder, else in the installed
    wheel's ``mediapipe/modules/<module>/``. Shared by Face Mesh and the hand models."""
    if face_models is not None:
        return user_file(face_models, name, what, "--face-models")
    return package_file("mediapipe", f"modules/{module}/{name}", INSTALL_HINT)


def model_path(face_models: Path | None) -> Path:
    """``face_landmark.tflite`` in the user's folder, else in the installed mediapipe wheel."""
    return wheel_model(face_models, "face_landmark", MODEL_NAME, "Face Mesh")


def tflite_interpreter(path: Path, threads: int, size: int, what: str):
    """A ready TFLite interpreter for a network with one (1, size, size, 3) float input."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError as exc:
        raise ModelError(
            f"{what}: TFLite runtime missing (pip install 'mmvideo[mediapipe]')"
        ) from exc
    try:
        interpreter = Interpreter(model_path=str(path), num_threads=threads)
        interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as exc:
        raise ModelError(f"{path}: not a readable TFLite model ({exc})") from exc
    (inp,) = interpreter.get_input_details()
    if tuple(inp["shape"]) != (1, size, size, 3):
        raise ModelError(
            f"{path}: input {tuple(inp['shape'])} is not {what}'s (1, {size}, {size}, 3)"
        )
    return interpreter


def roi_matrix(center: np.ndarray, side: float, angle: float, size: int = INPUT_SIZE) -> np.ndarray:
    """2×3 similarity taking a square of ``side`` px at ``center``, turned by ``angle`` degrees
    (counter-clockwise in the image), onto the ``size``×``size`` network input."""
    a, s = np.radians(angle), size / side
    c, sn = np.cos(a) * s, np.sin(a) * s
    m = np.array([[c, sn, 0.0], [-sn, c, 0.0]])
    m[:, 2] = size / 2 - m[:, :2] @ center
    return m


def roi_input(
    image: np.ndarray, m: np.ndarray, size: int, border: int = cv2.BORDER_REPLICATE
) -> np.ndarray:
    """The (1, size, size, 3) float input, RGB in [0, 1], of the region ``m`` maps onto the input."""
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR, borderMode=border)
    return (crop.astype(np.float32) / 255.0)[None]


def roi_from_points(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """MediaPipe's tracking region: the points' box ×1.5, turned so the eye corners are level."""
    d = points[EYE_CORNERS[1], :2] - points[EYE_CORNERS[0], :2]
    angle = float(np.degrees(np.arctan2(d[1], d[0])))
    # the box is taken in the level frame, so a tilted head does not inflate it
    m = cv2.getRotationMatrix2D((0.0, 0.0), angle, 1.0)
    level = points[:, :2] @ m[:, :2].T
    lo, hi = level.min(axis=0), level.max(axis=0)
    center = cv2.invertAffineTransform(m)[:, :2] @ ((lo + hi) / 2)
    return center, ROI_SCALE * float((hi - lo).max()), angle


class MeshLandmarker:
    """Face Mesh on each box: the 68 iBUG points (2-D and 3-D) plus all 468 in ``extra``.

    ``extra["mesh"]`` is (468, 3) in image pixels with z toward the camera; ``extra["mesh_score"]``
    the network's face-presence probability for the final crop.
    """

    def __init__(self, face_models: Path | None = None, passes: int = 2, threads: int = 1):
        self._net = tflite_interpreter(model_path(face_models), threads, INPUT_SIZE, "Face Mesh")
        self._input = self._net.get_input_details()[0]["index"]
        self._points, self._flag = (d["index"] for d in self._net.get_output_details())
        self.passes = passes

    def _run(self, image: np.ndarray, m: np.ndarray) -> tuple[np.ndarray, float]:
        self._net.set_tensor(self._input, roi_input(image, m, INPUT_SIZE))
        self._net.invoke()
        pts = self._net.get_tensor(self._points).reshape(468, 3).astype(np.float64)
        logit = float(self._net.get_tensor(self._flag).ravel()[0])
        xy = transform_points(pts, invert_affine(m))
        return np.column_stack([xy, -pts[:, 2] / affine_scale(m)]), 1.0 / (1.0 + np.exp(-logit))

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[Landmarks]:
        out = []
        for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            center, side, angle = (
                np.array([(x0 + x1) / 2, (y0 + y1) / 2]),
                ROI_SCALE * max(x1 - x0, y1 - y0),
                0.0,
            )
            for _ in range(self.passes):
                mesh, score = self._run(image, roi_matrix(center, max(side, 1.0), angle))
                center, side, angle = roi_from_points(mesh)
            pts = mesh[MESH_TO_68].astype(np.float32)
            out.append(
                Landmarks(
                    points=np.ascontiguousarray(pts[:, :2]),
                    points_3d=pts,
                    extra={"mesh": mesh.astype(np.float32), "mesh_score": np.float32(score)},
                )
            )
        return out
