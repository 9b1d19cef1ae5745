"""insightface backend: SCRFD boxes + 5 points, 68 3-D landmarks (1k3d68), 106 2-D landmarks (2d106det).

Models come from a folder the user names (``--face-models DIR``, e.g. an unpacked ``buffalo_l``)
and are opened through insightface's own ``model_zoo.get_model`` with a file path, so its shape
based routing (SCRFD / Landmark) and pre/post-processing apply unchanged. A missing file is our
``ModelError`` naming the file and the folder; insightface is never asked to download.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from magicmask.face.model_files import user_file
from magicmask.face.types import Landmarks
from mmcore.errors import ModelError

log = logging.getLogger(__name__)

# File names in insightface's packs, preferred first (buffalo_l, buffalo_m/s, antelopev2).
DETECTOR_FILES = (
    "det_10g.onnx",
    "det_2.5g.onnx",
    "det_500m.onnx",
    "scrfd_10g_bnkps.onnx",
)
LANDMARK_3D_FILE = "1k3d68.onnx"
LANDMARK_2D_FILE = "2d106det.onnx"
_OPTION = "--face-models"


def _providers(device: str) -> list[str]:
    return (
        ["CUDAExecutionProvider", "CPUExecutionProvider"]
        if device.startswith("cuda")
        else ["CPUExecutionProvider"]
    )


def _first_present(folder: Path | None, names: tuple[str, ...], what: str) -> Path:
    if folder is not None:
        for name in names:
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    # None present: report the preferred file, with the alternatives.
    try:
        return user_file(folder, names[0], what, _OPTION)
    except ModelError as exc:
        raise ModelError(f"{exc} (or one of {', '.join(names[1:])})") from None


def _load(path: Path, device: str, kind: type, what: str):
    from insightface.model_zoo import get_model

    try:
        model = get_model(str(path), providers=_providers(device))
    except Exception as exc:  # onnx/onnxruntime raise many types for a bad file
        raise ModelError(f"{path}: cannot load {what} ({type(exc).__name__}: {exc})") from exc
    if not isinstance(model, kind):
        raise ModelError(f"{path}: not an insightface {what} model (got {type(model).__name__})")
    return model


class ScrfdDetector:
    """SCRFD through insightface's ``SCRFD`` class, on a fixed square input."""

    def __init__(
        self,
        face_models: Path | None,
        threshold: float = 0.5,
        device: str = "cpu",
        input_size: int = 640,
    ):
        from insightface.model_zoo.scrfd import SCRFD

        path = _first_present(face_models, DETECTOR_FILES, "insightface SCRFD detector")
        self._model = _load(path, device, SCRFD, "SCRFD detector")
        self._model.prepare(
            ctx_id=0 if device.startswith("cuda") else -1,
            input_size=(input_size, input_size),
            det_thresh=threshold,
        )

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        det, kps = self._model.detect(
            np.ascontiguousarray(image[..., ::-1])
        )  # insightface wants BGR
        det = np.asarray(det, dtype=np.float32).reshape(-1, 5)
        points = None if kps is None else np.asarray(kps, dtype=np.float32).reshape(-1, 5, 2)
        return det[:, :4], det[:, 4], points


class InsightfaceLandmarker:
    """68 iBUG points with depth from ``1k3d68``; ``2d106det``'s 106 points in ``extra`` when present."""

    def __init__(self, face_models: Path | None, device: str = "cpu"):
        from insightface.model_zoo.landmark import Landmark

        path3d = user_file(
            face_models, LANDMARK_3D_FILE, "insightface 68-point 3-D landmark", _OPTION
        )
        self._model3d = _load(path3d, device, Landmark, "68-point 3-D landmark")
        if self._model3d.lmk_num != 68 or self._model3d.lmk_dim != 3:
            raise ModelError(
                f"{path3d}: expected 68 3-D landmarks, model gives {self._model3d.taskname}"
            )
        self._model2d = None
        path2d = Path(face_models) / LANDMARK_2D_FILE
        if path2d.is_file():
            self._model2d = _load(path2d, device, Landmark, "106-point landmark")
        else:
            log.info("%s not found: faces get no 106-point landmarks", path2d)

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[Landmarks]:
        from insightface.app.common import Face as InsightFace

        bgr = np.ascontiguousarray(image[..., ::-1])
        out = []
        for box in np.asarray(boxes, dtype=np.float32):
            face = InsightFace(bbox=box)
            pts3d = np.asarray(self._model3d.get(bgr, face), dtype=np.float32)
            extra = {}
            if self._model2d is not None:
                extra["landmarks_106"] = np.asarray(self._model2d.get(bgr, face), dtype=np.float32)
            # 1k3d68 is trained on 3DDFA-style labels (as AFLW2000-3D): x right, y down, z toward the
            # camera, in pixels about the face centre.
            out.append(Landmarks(pts3d[:, :2].copy(), pts3d, extra))
        return out
