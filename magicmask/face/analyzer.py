"""One small interface over the face backends: detect faces, update landmarks, in single images or batches.

A backend is a detector (boxes, scores, optional 5 points) plus a landmarker (68 iBUG points,
optional 3-D). ``FaceAnalyzer`` composes the two that ``FaceConfig`` names, detects on a
down-scaled copy of large frames, drops tiny faces and fills each face's head pose.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from magicmask.face.backends import BACKEND_PACKAGES, BACKENDS, DETECTORS
from magicmask.face.image import as_rgb8
from magicmask.face.model_files import package_dir
from magicmask.face.pose import estimate_pose
from magicmask.face.types import Face, Landmarks, box_side, iou_matrix
from mmcore.errors import InvalidInput, NoFaceFound

log = logging.getLogger(__name__)


def check_backend_installed(backend: str) -> None:
    """A one-line error when ``backend``'s optional package is missing, found without importing
    it, so commands can say so before they load models."""
    if backend in BACKEND_PACKAGES:
        package_dir(*BACKEND_PACKAGES[backend])


# mediapipe's Face Mesh reads turned heads, so it gets the detector that finds them (MMOD)
_DEFAULT_DETECTOR = {"dlib": "hog", "fan": "hog", "insightface": "scrfd", "mediapipe": "cnn"}
# Score thresholds where each detector's false positives stop on the test photos: HOG's SVM
# margin, MTCNN's and SCRFD's probabilities.
_DEFAULT_THRESHOLD = {"hog": 0.0, "cnn": 0.0, "mtcnn": 0.9, "scrfd": 0.5}
# Box side (pixels of the image it is given, no upsampling) below which each detector stops
# finding faces: HOG's 80×80 window, MMOD's ~40 px (dlib's documentation), MTCNN's 12 px
# P-Net window with margin, SCRFD's smallest anchors. Each upsampling step halves HOG's and MMOD's.
NATIVE_MIN_FACE = {"hog": 80, "cnn": 40, "mtcnn": 20, "scrfd": 16}
# Face side (px) a detector is given around a tracked face it looks for (``detect_near``;
# others: twice their native minimum). Measured on the 116 such searches of the 1080p crowd
# clip with ``balanced`` (bench/gap_fill.py --crowd): MMOD found 18 faces at 80 px, 38 at
# 120; HOG 27 at 160, 22 at 200. On the profile clip MMOD found all 7 at both sizes.
NEAR_FACE = {"hog": 160, "cnn": 120}


@dataclass(frozen=True)
class FaceConfig:
    """Which backend finds faces and landmarks, and how hard it looks.

    ``face_backend`` picks the landmarker (dlib 68-point, insightface 68-point 3-D + 106 2-D, FAN 2-D or
    3-D, MediaPipe Face Mesh 468-point 3-D); ``detector`` the boxes (None = the backend's default:
    hog for dlib and fan, scrfd for insightface, cnn for mediapipe). ``detect_max_side`` shrinks larger frames before detection (landmarks are still
    found at full resolution); ``min_face_size`` drops boxes with a shorter side, in original pixels.
    The detectors' own minimum sizes apply to the shrunk copy (~40 px for HOG with one upsampling,
    ~80 px without; 20 px for MTCNN), so a 1080p frame shrunk 3× loses faces under ~120 px unless
    ``detect_max_side`` is raised. ``smallest_face`` (original pixels, 0 = off) instead sizes the
    detection copy so that a face of that side reaches the detector's own minimum
    (``NATIVE_MIN_FACE``): 1080p with HOG and 60 px is detected at 1.33× (larger frames are not
    shrunk below what that face needs; ``detect_max_side``, if set, still caps the side).
    ``second_detector`` is what ``detect_near`` runs, after the first detector, around a tracked
    face the first detector missed in the whole frame (None: ``detect_near`` finds nothing). ``landmark_flip`` averages FAN over the mirrored crop too (face-alignment's default; 2× cost).
    """

    face_backend: str = "dlib"
    detector: str | None = None
    detect_upsample: int = 1
    min_face_size: int = 20
    detect_max_side: int = 640
    smallest_face: int = 0
    second_detector: str | None = None
    detect_threshold: float | None = None
    face_models: Path | None = None
    fan_landmarks: str = "2d"
    landmark_flip: bool = True
    device: str = "cpu"

    def resolved_detector(self) -> str:
        return self.detector or _DEFAULT_DETECTOR.get(self.face_backend, "hog")

    def resolved_threshold(self) -> float:
        if self.detect_threshold is not None:
            return self.detect_threshold
        return _DEFAULT_THRESHOLD.get(self.resolved_detector(), 0.5)

    def detect_scale(self, height: int, width: int) -> float:
        """Factor the frame is resized by before detection (below 1 shrinks, above 1 enlarges)."""
        scale = 1.0
        if self.smallest_face:
            upsample = self.detect_upsample if self.resolved_detector() in ("hog", "cnn") else 0
            native = NATIVE_MIN_FACE.get(self.resolved_detector(), 20) / 2**upsample
            scale = native / self.smallest_face
        if self.detect_max_side:
            scale = min(scale, self.detect_max_side / max(height, width))
        return scale if self.smallest_face else min(1.0, scale)


class Detector(Protocol):
    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]: ...


class Landmarker(Protocol):
    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[Landmarks]: ...


def build_detector(cfg: FaceConfig) -> Detector:
    """The detector ``cfg`` names; each backend module is imported only when chosen."""
    name = cfg.resolved_detector()
    if name == "hog":
        from magicmask.face.dlib_backend import HogDetector

        return HogDetector(cfg.detect_upsample, cfg.resolved_threshold())
    if name == "cnn":
        from magicmask.face.dlib_backend import MmodDetector

        return MmodDetector(cfg.detect_upsample, cfg.resolved_threshold())
    if name == "mtcnn":
        from magicmask.face.mtcnn_backend import MtcnnDetector

        return MtcnnDetector(cfg.min_face_size, cfg.resolved_threshold())
    if name == "scrfd":
        from magicmask.face.insightface_backend import ScrfdDetector

        return ScrfdDetector(cfg.face_models, cfg.resolved_threshold(), cfg.device)
    raise InvalidInput(f"face detector {name!r}: unknown (choose from {', '.join(DETECTORS)})")


def build_landmarker(cfg: FaceConfig) -> Landmarker:
    """The landmarker of ``cfg.face_backend``; imported only when chosen, like the detectors
    (FAN's module pulls torch, the others their optional packages or dlib's models)."""
    if cfg.face_backend == "dlib":
        from magicmask.face.dlib_backend import DlibLandmarker

        return DlibLandmarker()
    if cfg.face_backend == "insightface":
        from magicmask.face.insightface_backend import InsightfaceLandmarker

        return InsightfaceLandmarker(cfg.face_models, cfg.device)
    if cfg.face_backend == "fan":
        from magicmask.face.fan_backend import FanLandmarker

        return FanLandmarker(
            cfg.fan_landmarks,
            cfg.face_models,
            cfg.device,
            flip=cfg.landmark_flip,
            tight_boxes=cfg.resolved_detector() == "scrfd",
        )
    if cfg.face_backend == "mediapipe":
        from magicmask.face.mediapipe_backend import MeshLandmarker

        return MeshLandmarker(cfg.face_models)
    raise InvalidInput(
        f"face backend {cfg.face_backend!r}: unknown (choose from {', '.join(BACKENDS)})"
    )


class FaceAnalyzer:
    """Detects faces and their landmarks with the backend ``FaceConfig`` names."""

    def __init__(
        self,
        cfg: FaceConfig = FaceConfig(),
        detector: Detector | None = None,
        landmarker: Landmarker | None = None,
    ):
        self.cfg = cfg
        self._detector = detector or build_detector(cfg)
        self._landmarker = landmarker or build_landmarker(cfg)
        self._descriptor = None  # dlib's recognition network, loaded by the first describe()
        self._second: Detector | None = None  # built by the first detect_near()
        self._first_near: Detector | None = None  # the first detector without upsampling

    def detect(self, image: np.ndarray) -> list[Face]:
        """All faces in an RGB image (uint8/uint16), largest first; an empty list if none."""
        rgb = as_rgb8(image)
        scale = self.cfg.detect_scale(*rgb.shape[:2])
        small = rgb
        if scale != 1.0:
            size = (
                max(1, round(rgb.shape[1] * scale)),
                max(1, round(rgb.shape[0] * scale)),
            )
            interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
            small = cv2.resize(rgb, size, interpolation=interp)
        boxes, scores, points5 = self._detector(small)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4) / scale
        sides = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        keep = sides >= self.cfg.min_face_size
        if (~keep).any():
            log.debug(
                "dropped %d faces smaller than %d px",
                int((~keep).sum()),
                self.cfg.min_face_size,
            )
        boxes, scores = boxes[keep], np.asarray(scores, dtype=np.float32)[keep]
        if self.cfg.face_backend == "dlib" and self.cfg.resolved_detector() == "mtcnn":
            from magicmask.face.dlib_backend import mtcnn_to_dlib_boxes

            # Faces carry the predictor's box convention, so tracked boxes fed back to
            # landmarks() need no conversion.
            boxes = mtcnn_to_dlib_boxes(boxes)
        faces = self._faces(rgb, boxes, scores)
        if points5 is not None:
            for face, p in zip(faces, np.asarray(points5, dtype=np.float32)[keep] / scale):
                face.extra["points5"] = p
        return sorted(faces, key=lambda f: f.area, reverse=True)

    def detect_near(self, image: np.ndarray, box: np.ndarray, min_iou: float = 0.3) -> list[Face]:
        """Faces overlapping ``box`` (a tracked face the first detector missed in the whole
        frame) by at least ``min_iou``, found in a square region twice the box's side; empty
        without a second detector.

        The first detector looks there first, at the face size it finds best
        (``NEAR_FACE``): cheap, and a face it finds at that size can be lost in the whole
        frame's pyramid (a fast-moving, blurred head on the crowd clip); then the second
        detector, at its own. A small, fixed cost whatever the frame size.
        """
        if not self.cfg.second_detector:
            return []
        if self._second is None:
            self._second = build_detector(
                replace(self.cfg, detector=self.cfg.second_detector, detect_upsample=0)
            )
        rgb = as_rgb8(image)
        box = np.asarray(box, np.float32).reshape(4)
        first, first_detector = self.cfg.resolved_detector(), self._detector
        if self.cfg.detect_upsample and first in ("hog", "cnn"):
            # the region is already sized for the detector: no upsampling on top
            if self._first_near is None:
                self._first_near = build_detector(replace(self.cfg, detect_upsample=0))
            first_detector = self._first_near
        searches = [(first, first_detector)]
        if self.cfg.second_detector != first:
            searches.append((self.cfg.second_detector, self._second))
        for name, detector in searches:
            boxes, scores = _detect_region(rgb, box, detector, name)
            keep = iou_matrix(box[None], boxes)[0] >= min_iou
            if keep.any():
                return self._faces(rgb, boxes[keep], scores[keep])
        return []

    def landmarks(self, image: np.ndarray, boxes: np.ndarray) -> list[Face]:
        """Landmarks (and pose) for known boxes, e.g. tracked ones between detections; score 1.0."""
        rgb = as_rgb8(image)
        boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
        return self._faces(rgb, boxes, np.ones(len(boxes), dtype=np.float32))

    def describe(self, image: np.ndarray, faces: list[Face]) -> list[Face]:
        """Fill each face's ``embedding`` with dlib's 128-d descriptor (any backend's 68 points).

        Loads dlib's recognition network on first use; the identity encoders of
        ``magicmask.face.identity`` are the model's own, differentiable alternative.
        """
        if self._descriptor is None:
            from magicmask.face.dlib_backend import DlibDescriptor

            self._descriptor = DlibDescriptor()
        rgb = as_rgb8(image)
        boxes = np.array([f.box for f in faces], dtype=np.float32).reshape(-1, 4)
        for face, emb in zip(faces, self._descriptor(rgb, boxes, [f.landmarks for f in faces])):
            face.embedding = emb
        return faces

    def detect_batch(self, images: list[np.ndarray]) -> list[list[Face]]:
        """``detect`` for each image of a batch."""
        return [self.detect(image) for image in images]

    def landmarks_batch(
        self, images: list[np.ndarray], boxes: list[np.ndarray]
    ) -> list[list[Face]]:
        """``landmarks`` for each (image, boxes) of a batch."""
        return [self.landmarks(image, b) for image, b in zip(images, boxes)]

    def _faces(self, rgb: np.ndarray, boxes: np.ndarray, scores: np.ndarray) -> list[Face]:
        if not len(boxes):
            return []
        faces = []
        for box, score, lm in zip(boxes, scores, self._landmarker(rgb, boxes)):
            try:
                pose = estimate_pose(lm.points, rgb.shape[:2], lm.points_3d)
            except ValueError:
                pose = None  # degenerate landmarks: keep the face, leave its pose unknown
            faces.append(
                Face(
                    box=box.astype(np.float32),
                    score=float(score),
                    landmarks=lm.points,
                    landmarks_3d=lm.points_3d,
                    pose=pose,
                    extra=dict(lm.extra),
                )
            )
        return faces


def _detect_region(
    rgb: np.ndarray, box: np.ndarray, detector: Detector, name: str
) -> tuple[np.ndarray, np.ndarray]:
    """``detector`` (called ``name``) on the square region twice ``box``'s side around its
    center, resized so a face of the box's side is ``NEAR_FACE`` px; boxes in frame pixels."""
    h, w = rgb.shape[:2]
    side = box_side(box)
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    x0, y0 = int(max(0, cx - side)), int(max(0, cy - side))
    x1, y1 = int(min(w, cx + side)), int(min(h, cy + side))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32)
    scale = NEAR_FACE.get(name, 2 * NATIVE_MIN_FACE.get(name, 40)) / side
    region = cv2.resize(
        rgb[y0:y1, x0:x1],
        (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale))),
        interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR,
    )
    boxes, scores, _ = detector(region)
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4) / scale + (x0, y0, x0, y0)
    return boxes, np.asarray(scores, np.float32).reshape(-1)


def source_face(
    image: np.ndarray,
    analyzer: FaceAnalyzer,
    index: int | None = None,
    name: str = "source image",
    min_side: int = 64,
) -> Face:
    """The face to take the identity from: the largest one, or ``index`` (0 = largest).

    No face is an error naming ``name``; several faces are logged with how to choose another.
    """
    return pick_face(analyzer.detect(image), index, name, min_side)


def pick_face(
    faces: list[Face],
    index: int | None = None,
    name: str = "source image",
    min_side: int = 64,
) -> Face:
    """``source_face`` on faces already detected (largest first)."""
    if not faces:
        raise NoFaceFound(f"{name}: no face found (use a clearer, larger, more frontal photo)")
    if index is None:
        if len(faces) > 1:
            log.warning(
                "%s: %d faces found, using the largest; pass --source-face-index N "
                "(0 = largest) to choose another",
                name,
                len(faces),
            )
        index = 0
    if not 0 <= index < len(faces):
        raise InvalidInput(
            f"{name}: --source-face-index {index} out of range ({len(faces)} faces found)"
        )
    face = faces[index]
    side = min(face.box[2] - face.box[0], face.box[3] - face.box[1])
    if side < min_side:
        log.warning(
            "%s: the face is only %d px; the identity will be blurry (use a larger photo)",
            name,
            int(side),
        )
    return face
