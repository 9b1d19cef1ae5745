"""Hands in front of a face: MediaPipe's palm detector and hand landmarker, and the hand silhouette.

Weights: ``palm_detection_full.tflite`` and ``hand_landmark_full.tflite`` (Apache 2.0, the licence
of the ``mediapipe`` wheel, its ``LICENSE`` file and ``License: Apache 2.0`` metadata), from the
same ``mediapipe`` 0.10.14 wheel as Face Mesh (``mediapipe/modules/palm_detection/`` and
``hand_landmark/``), or from ``--face-models DIR``; run on the same TFLite runtime.

Per face, as MediaPipe's hand graph does per frame, but only inside a square region
``region``× the face box around its center (a hand that occludes the face has its palm there; the
rest of the frame is never looked at, which keeps the cost to one palm pass per face):

1. palm detection on that region resized to 192×192: 2016 SSD anchors, each a box and 7 palm
   keypoints, score sigmoid > ``min_palm``, weighted non-maximum suppression (IoU 0.3);
2. each palm's hand region: turned so wrist → middle-finger knuckle points up, shifted half a
   palm toward the fingers, 2.6× the palm's longer side;
3. hand landmarks on that region at 224×224: 21 points (x, y, z) and a presence score, kept
   above ``min_presence``.

Over a clip, ``HandTracker`` (one per face track) runs steps 1-2 only to find new hands: a hand
already found is looked for again in the region its previous landmarks give (MediaPipe's own
tracking), which skips the palm pass, the costlier half; and it smooths each hand's points in time
(a 1€ filter) so the mask does not flicker.

``hand_mask`` draws the silhouette (fingers as capsules along the bone chains, palm as a filled
polygon, widths proportional to the palm length) and ``without_hands`` takes it out of a face mask.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from magicmask.face.align import affine_scale, flow_landmarks, invert_affine, transform_points
from magicmask.face.mediapipe_backend import (
    roi_input,
    roi_matrix,
    tflite_interpreter,
    wheel_model,
)
from mmcore.errors import InvalidInput, ModelError

PALM_MODEL = "palm_detection_full.tflite"
HAND_MODEL = "hand_landmark_full.tflite"
PALM_SIZE = 192
HAND_SIZE = 224

# palm_detection_cpu.pbtxt's SsdAnchorsCalculator: strides 8, 16, 16, 16 with fixed-size anchors,
# i.e. 2 anchors per cell of the 24×24 grid, then 6 per cell of the 12×12 grid (the three
# stride-16 layers share their grid).
_ANCHOR_GRIDS = ((PALM_SIZE // 8, 2), (PALM_SIZE // 16, 6))
NMS_IOU = 0.3
# palm_detection_detection_to_roi.pbtxt: wrist center (0) → middle-finger knuckle (2) is turned
# to point up; the region is shifted half a box toward the fingers and scaled 2.6.
_PALM_WRIST, _PALM_MIDDLE = 0, 2
ROI_SHIFT, ROI_SCALE = -0.5, 2.6
# hand_landmark_landmarks_to_roi.pbtxt: the region tracked from the previous frame's wrist and
# finger roots/first joints, shifted a tenth toward the fingers and scaled 2.
_TRACK_POINTS = (0, 1, 2, 3, 5, 6, 9, 10, 13, 14, 17, 18)
TRACK_SHIFT, TRACK_SCALE = -0.1, 2.0

# HandTracker's savings. Optical flow carries a slow hand's points from frame to frame in a patch
# of its tracking region this size (flow's cost does not grow with the frame), trusting the
# points that come back within FLOW_FB_MAX patch pixels; a hand is slow below CARRY_MOTION palm
# lengths per frame between its last two landmark passes. A palm within SAME_PALM_SHIFT face
# sides of one turned down before, and within a factor SAME_PALM_SIZE of its size, is that palm.
# The search region, shrunk to CHANGE_GRID² cell means of its gray levels, has changed when a
# cell moved by more than REGION_CHANGE levels since the previous frame: a hand coming in moves
# cells by 44-87 on the occlusion clip, a talking head by at most 21-34 (bench/face_analysis.py).
FLOW_SIZE, FLOW_FB_MAX = 128, 1.0
CARRY_MOTION = 0.1
SAME_PALM_SHIFT, SAME_PALM_SIZE = 0.15, 1.33
CHANGE_GRID, REGION_CHANGE = 8, 24.0
# A hand in front of a face hangs on an arm, so part of it lies off the face: a "hand" whose
# wrist lies inside the face's landmark hull and whose 21 points all lie within FACE_MARGIN face
# sizes (the square root of the hull's area) of it is the face itself, which the palm detector
# and the landmarker take for a hand on a turning, blurred profile (the occlusion clip's frames
# 27-28: wrist 5-12 px inside, every point within 4-5 px of the hull of a ~100 px face, while
# the real hand's wrist lies 50-60 px outside it in frames 19-24).
FACE_MARGIN = 0.1

# The 21 hand landmarks: 0 wrist, then 4 per finger from knuckle to tip (thumb 1-4, index 5-8,
# middle 9-12, ring 13-16, little 17-20).
FINGERS = (
    (0, 1, 2, 3, 4),
    (5, 6, 7, 8),
    (9, 10, 11, 12),
    (13, 14, 15, 16),
    (17, 18, 19, 20),
)
PALM = (0, 1, 2, 5, 9, 13, 17)
# Half-widths as fractions of the palm length (wrist → middle knuckle, ~8.5 cm on an adult hand):
# a finger is ~2 cm wide, the thumb ~2.3 cm, the wrist ~6 cm. The points are joint centers, so
# the palm polygon is also stroked with the finger width to reach the hand's outer edge.
FINGER_RADIUS, THUMB_RADIUS, WRIST_RADIUS = 0.13, 0.15, 0.33
# The forearm continues past the wrist point: a stub of this length (× palm length) covers the
# wrist of a hand raised in front of the chin.
WRIST_STUB = 0.6


@dataclass
class Hand:
    """One hand, in image pixels: 21 points (x, y, z toward the camera, same units), the
    landmarker's presence score and the palm detector's score."""

    points: np.ndarray  # (21, 3) float32
    score: float
    palm_score: float

    def palm_length(self) -> float:
        """Wrist → middle knuckle in 3-D, so a hand seen edge-on keeps its size."""
        return float(np.linalg.norm(self.points[9] - self.points[0]))


def ssd_anchors() -> np.ndarray:
    """(2016, 2) anchor centers in [0, 1], in the order of the palm detector's outputs."""
    out = []
    for n, per_cell in _ANCHOR_GRIDS:
        y, x = np.mgrid[0:n, 0:n]
        centers = np.stack([(x + 0.5) / n, (y + 0.5) / n], axis=-1).reshape(-1, 1, 2)
        out.append(np.repeat(centers, per_cell, axis=1).reshape(-1, 2))
    return np.concatenate(out)


def decode_palms(
    raw: np.ndarray, logits: np.ndarray, anchors: np.ndarray, min_score: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes (N, 4) x0 y0 x1 y1, keypoints (N, 7, 2) and scores (N,) in [0, 1] input units, of
    the anchors scoring above ``min_score``: offsets are in input pixels from the anchor center."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(logits.reshape(-1), -100.0, 100.0)))
    keep = scores > min_score
    raw, anchors = raw.reshape(-1, 18)[keep] / PALM_SIZE, anchors[keep]
    center, half = raw[:, :2] + anchors, raw[:, 2:4] / 2
    boxes = np.concatenate([center - half, center + half], axis=1)
    keypoints = raw[:, 4:].reshape(-1, 7, 2) + anchors[:, None]
    return boxes, keypoints, scores[keep]


def weighted_nms(
    boxes: np.ndarray, keypoints: np.ndarray, scores: np.ndarray, iou: float = NMS_IOU
) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """MediaPipe's weighted NMS: the best box absorbs every box overlapping it by more than
    ``iou``; the merged box and keypoints are their score-weighted mean, with the best's score."""
    out = []
    order = np.argsort(-scores, kind="stable")
    area = np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0), axis=1)
    while order.size:
        top, rest = boxes[order[0]], boxes[order]
        inter = np.prod(
            np.maximum(np.minimum(rest[:, 2:], top[2:]) - np.maximum(rest[:, :2], top[:2]), 0.0),
            axis=1,
        )
        overlap = inter / np.maximum(area[order] + area[order[0]] - inter, 1e-12)
        # the best box is in its own group even when degenerate (zero area)
        overlap[0] = 1.0
        group, order = order[overlap > iou], order[overlap <= iou]
        w = scores[group] / scores[group].sum()
        out.append(
            (
                w @ boxes[group],
                np.tensordot(w, keypoints[group], axes=1),
                float(scores[group[0]]),
            )
        )
    return out


def _upright(tail: np.ndarray, head: np.ndarray) -> float:
    """MediaPipe's rotation (radians) that turns ``tail`` → ``head`` to point up."""
    d = head - tail
    return float(np.pi / 2 - np.arctan2(-d[1], d[0]))


def _region(
    center: np.ndarray, size: np.ndarray, rotation: float, shift: float, scale: float
) -> tuple[np.ndarray, float, float]:
    """MediaPipe's RectTransformation: a box of ``size`` (w, h) at ``center`` turned by
    ``rotation``, shifted ``shift`` × its height along its own y axis, squared to its longer side
    and scaled; as center, side and angle (degrees, ``roi_matrix``'s convention)."""
    c, s = np.cos(rotation), np.sin(rotation)
    center = center + shift * size[1] * np.array([-s, c])
    return center, scale * float(size.max()), float(np.degrees(rotation))


def hand_roi(box: np.ndarray, keypoints: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Centre, side and angle (degrees, ``roi_matrix``'s convention) of the hand region of a
    palm given in image pixels."""
    rotation = _upright(keypoints[_PALM_WRIST], keypoints[_PALM_MIDDLE])
    return _region((box[:2] + box[2:]) / 2, box[2:] - box[:2], rotation, ROI_SHIFT, ROI_SCALE)


def landmark_roi(points: np.ndarray) -> tuple[np.ndarray, float, float]:
    """The next frame's hand region from this frame's 21 points, as MediaPipe's tracking does
    (hand_landmark_landmarks_to_roi.pbtxt): the box of the wrist and the lower finger joints
    (steadier than the tips) in the hand's own upright frame, shifted and scaled to hold the hand.
    """
    p = np.asarray(points, dtype=np.float64)[:, :2]
    knuckles = ((p[5] + p[13]) / 2 + p[9]) / 2
    rotation = _upright(p[0], knuckles)
    c, s = np.cos(rotation), np.sin(rotation)
    stable = p[list(_TRACK_POINTS)]
    middle = (stable.min(axis=0) + stable.max(axis=0)) / 2
    # the points turned by -rotation about the box middle: their box there is the hand's own
    upright = (stable - middle) @ np.array([[c, -s], [s, c]])
    lo, hi = upright.min(axis=0), upright.max(axis=0)
    mid = (lo + hi) / 2
    center = middle + np.array([c * mid[0] - s * mid[1], s * mid[0] + c * mid[1]])
    return _region(center, hi - lo, rotation, TRACK_SHIFT, TRACK_SCALE)


class HandDetector:
    """Hands near each face box: ``detector(image, boxes)`` → one list of ``Hand`` per box.

    ``image`` is RGB uint8; ``region`` sizes the square searched around each face box (× its
    longer side). Deterministic: the same frame gives the same hands.

    ``min_presence`` is above MediaPipe's 0.5: the palm detector fires on noses and jaws (a
    frontal nose in ``talking_head_jackie_chan_01.mp4`` reaches 0.43 from the landmarker), while
    real hands, motion-blurred ones included, score above 0.9.
    """

    def __init__(
        self,
        face_models: Path | None = None,
        region: float = 2.5,
        min_palm: float = 0.5,
        min_presence: float = 0.7,
        threads: int = 1,
    ):
        try:
            palm_path = wheel_model(face_models, "palm_detection", PALM_MODEL, "palm detector")
            hand_path = wheel_model(face_models, "hand_landmark", HAND_MODEL, "hand landmarker")
            self._palm = tflite_interpreter(palm_path, threads, PALM_SIZE, "palm detector")
            self._hand = tflite_interpreter(hand_path, threads, HAND_SIZE, "hand landmarker")
        except ModelError as exc:
            # the quality preset asks for hands: say how to go on without them
            raise ModelError(f"{exc}; or --mask hull to leave hands out") from exc
        self._palm_in = self._palm.get_input_details()[0]["index"]
        self._palm_out = [d["index"] for d in self._palm.get_output_details()]
        self._hand_in = self._hand.get_input_details()[0]["index"]
        # landmarks (1, 63), presence (1, 1), handedness, world landmarks: the first two are used
        self._hand_out = [d["index"] for d in self._hand.get_output_details()[:2]]
        self._anchors = ssd_anchors()
        self.region, self.min_palm, self.min_presence = region, min_palm, min_presence

    def palms(
        self, image: np.ndarray, box: np.ndarray
    ) -> list[tuple[np.ndarray, np.ndarray, float]]:
        """Palms in the region around one face box: (box (4,), keypoints (7, 2), score), image px."""
        x0, y0, x1, y1 = np.asarray(box, dtype=np.float64)
        side = self.region * max(x1 - x0, y1 - y0, 1.0)
        m = roi_matrix(np.array([(x0 + x1) / 2, (y0 + y1) / 2]), side, 0.0, PALM_SIZE)
        # outside the frame is black, as MediaPipe pads its detector input
        self._palm.set_tensor(self._palm_in, roi_input(image, m, PALM_SIZE, cv2.BORDER_CONSTANT))
        self._palm.invoke()
        raw, logits = (self._palm.get_tensor(i)[0].astype(np.float64) for i in self._palm_out)
        back = invert_affine(m)
        out = []
        for b, k, score in weighted_nms(*decode_palms(raw, logits, self._anchors, self.min_palm)):
            corners = transform_points(b.reshape(2, 2) * PALM_SIZE, back)
            out.append((corners.reshape(4), transform_points(k * PALM_SIZE, back), score))
        return out

    def landmarks(
        self, image: np.ndarray, center: np.ndarray, side: float, angle: float
    ) -> tuple[np.ndarray, float]:
        """21 points (x, y, z toward the camera) in image pixels and the presence score, of the
        hand region ``center``/``side``/``angle``."""
        m = roi_matrix(center, max(side, 1.0), angle, HAND_SIZE)
        self._hand.set_tensor(self._hand_in, roi_input(image, m, HAND_SIZE))
        self._hand.invoke()
        pts = self._hand.get_tensor(self._hand_out[0]).reshape(21, 3).astype(np.float64)
        presence = float(self._hand.get_tensor(self._hand_out[1]).ravel()[0])
        xy = transform_points(pts[:, :2], invert_affine(m))
        return np.column_stack([xy, -pts[:, 2] / affine_scale(m)]), presence

    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[list[Hand]]:
        out = []
        for box in np.asarray(boxes, dtype=np.float64).reshape(-1, 4):
            hands = []
            for palm_box, keypoints, palm_score in self.palms(image, box):
                points, presence = self.landmarks(image, *hand_roi(palm_box, keypoints))
                if presence > self.min_presence:
                    hands.append(Hand(points.astype(np.float32), presence, palm_score))
            out.append(hands)
        return out


class OneEuro:
    """Casiez et al.'s 1€ filter on one hand's points, in frames and palm lengths: a low-pass
    whose cutoff rises with the speed, so a still hand's points stop shaking (``min_cutoff``,
    cycles per frame) while a moving hand is followed with little lag (``beta`` per palm length
    per frame): a lagging mask would uncover the leading edge of a hand moving into the face.
    (The wheel's own hand tracking graph does not smooth; its lag-free output shakes.)"""

    def __init__(self, min_cutoff: float = 0.05, beta: float = 5.0, d_cutoff: float = 1.0):
        self.min_cutoff, self.beta, self.d_cutoff = min_cutoff, beta, d_cutoff
        self._x: np.ndarray | None = None
        self._dx: np.ndarray | None = None

    @staticmethod
    def _alpha(cutoff: np.ndarray | float) -> np.ndarray | float:
        return 1.0 / (1.0 + 1.0 / (2.0 * np.pi * cutoff))

    def __call__(self, points: np.ndarray, scale: float) -> np.ndarray:
        x = np.asarray(points, dtype=np.float64)
        if self._x is None:
            self._x, self._dx = x, np.zeros_like(x)
            return x
        a = self._alpha(self.d_cutoff)
        self._dx = a * (x - self._x) + (1 - a) * self._dx
        # one cutoff per point, from its speed in palm lengths per frame
        speed = np.linalg.norm(self._dx, axis=-1, keepdims=True) / max(scale, 1e-6)
        a = self._alpha(self.min_cutoff + self.beta * speed)
        self._x = a * x + (1 - a) * self._x
        return self._x


@dataclass
class _Track:
    """One tracked hand: its raw points in the last frame (the next region comes from them), its
    filter, how fast it moved between its last two landmark passes (palm lengths per frame), the
    frames flow has carried it since the last one, and, when flow may carry it into the next
    frame, this frame's gray patch of its next region with that region's matrix."""

    hand: Hand
    filt: OneEuro
    motion: float = np.inf
    carried: int = 0
    patch: np.ndarray | None = None
    matrix: np.ndarray | None = None


class HandTracker:
    """One face track's hands, frame after frame, as MediaPipe's hand tracking graph finds them:
    a hand found in one frame is looked for in the next in the region its landmarks give (one
    landmark pass, no palm pass). The palm detector only looks for new hands: on the first frame,
    after a gap in ``index``, on a frame where a tracked hand was lost, every ``palm_every``
    frames while no hand is tracked and every ``recheck_every`` frames while one is, and, while
    none is, on every frame where the region it searches has changed (``REGION_CHANGE``): a hand
    coming in, often a palm the landmarker turns down for a frame or two before it is a hand.

    Two savings on top (issue 15: ≤ 8 ms per face and frame). A palm the landmarker turned down
    (the detector fires on jaws and noses) is remembered where it lay relative to the face box,
    and the same palm in a later pass goes to the landmarker again only after ``recheck_every``
    frames. A hand that moved less than ``carry_motion`` palm lengths per frame between its last
    two landmark passes is carried into the next frame by optical flow (``flow_landmarks`` on a
    ``FLOW_SIZE`` patch of its region) for up to ``carry`` frames in a row; where the flow fails
    its forward-backward check the landmarker runs at once.

    Each hand's points are smoothed in time (``OneEuro``) unless ``smooth`` is False. The caller
    owns one per face track and gives it that track's frames in order; a new tracker (a farm
    chunk, a preview frame) starts cold, which only costs its first frame a palm pass.
    ``tracker(image, box, index, face)`` → the hands near the face ``box`` of frame ``index``;
    with the face's landmarks ``face`` (N, 2+, image pixels) a "hand" lying on the face itself
    (``on_face``) is turned down like a palm the landmarker turns down.
    """

    def __init__(
        self,
        detector: HandDetector,
        palm_every: int = 3,
        recheck_every: int = 12,
        smooth: bool = True,
        carry: int = 1,
        carry_motion: float = CARRY_MOTION,
    ):
        self.detector, self.smooth = detector, smooth
        self.palm_every, self.recheck_every = max(1, palm_every), max(1, recheck_every)
        self.carry, self.carry_motion = max(0, carry), carry_motion
        self._index: int | None = None
        self._since_palm = 0
        self._cells: np.ndarray | None = None  # the search region's gray cell means
        self._hands: list[_Track] = []
        # palms turned down: center and side over the face box's side, relative to its center,
        # and the frame the landmarker last saw them
        self._rejected: list[tuple[np.ndarray, int]] = []

    def __call__(
        self, image: np.ndarray, box: np.ndarray, index: int, face: np.ndarray | None = None
    ) -> list[Hand]:
        cold = self._index is None or index != self._index + 1
        self._index = index
        near = _near(box, self.detector.region)
        followed = [self._follow(image, t, near, face) for t in ([] if cold else self._hands)]
        kept = [t for t in followed if t is not None]
        lost = len(kept) < len(self._hands)
        cells, previous = _region_cells(image, box, self.detector.region), self._cells
        self._cells = cells
        changed = previous is not None and np.abs(cells - previous).max() > REGION_CHANGE
        self._since_palm += 1
        every = self.recheck_every if kept else 1 if changed else self.palm_every
        if cold or lost or self._since_palm >= every:
            self._since_palm = 0
            self._find(image, box, index, kept, face)
        self._hands = kept
        if not self.smooth:
            return [t.hand for t in kept]
        return [
            Hand(
                t.filt(t.hand.points, t.hand.palm_length()).astype(np.float32),
                t.hand.score,
                t.hand.palm_score,
            )
            for t in kept
        ]

    def _follow(
        self, image: np.ndarray, track: _Track, near, face: np.ndarray | None
    ) -> _Track | None:
        """A tracked hand in this frame (carried by flow or from a landmark pass on its region),
        or None where it is gone (or is the face ``face`` itself)."""
        hand = track.hand
        if track.patch is not None:
            moved = flow_landmarks(
                track.patch,
                _gray_patch(image, track.matrix),
                transform_points(hand.points, track.matrix),
                FLOW_FB_MAX,
            )
            if moved is not None:
                xy = transform_points(moved, invert_affine(track.matrix))
                points = np.column_stack([xy, hand.points[:, 2]]).astype(np.float32)
                if near(points) and _off_face(points, face):
                    carried = Hand(points, hand.score, hand.palm_score)
                    return self._carriable(
                        image, _Track(carried, track.filt, track.motion, track.carried + 1)
                    )
        points, presence = self.detector.landmarks(image, *landmark_roi(hand.points))
        if (
            presence <= self.detector.min_presence
            or not near(points)
            or not _off_face(points, face)
        ):
            return None
        found = Hand(points.astype(np.float32), presence, hand.palm_score)
        motion = float(
            np.linalg.norm(points[:, :2] - hand.points[:, :2], axis=1).mean()
            / max(found.palm_length(), 1e-6)
        )
        return self._carriable(image, _Track(found, track.filt, motion))

    def _carriable(self, image: np.ndarray, track: _Track) -> _Track:
        """``track`` with the patch flow needs to carry it into the next frame, when it may."""
        if track.carried < self.carry and track.motion < self.carry_motion:
            track.matrix = roi_matrix(*landmark_roi(track.hand.points), FLOW_SIZE)
            track.patch = _gray_patch(image, track.matrix)
        return track

    def _find(
        self,
        image: np.ndarray,
        box: np.ndarray,
        index: int,
        kept: list[_Track],
        face: np.ndarray | None,
    ) -> None:
        """One palm pass: the new hands are added to ``kept``; a palm the landmarker turns down,
        or whose hand lies on the face ``face`` itself, is remembered."""
        det, rejected = self.detector, []
        for palm_box, keypoints, palm_score in det.palms(image, box):
            # a palm on a hand already tracked is that hand
            center = (palm_box[:2] + palm_box[2:]) / 2
            if any(_inside(center, t.hand.points) for t in kept):
                continue
            where = _relative_palm(palm_box, box)
            seen = [i for p, i in self._rejected if _same_palm(p, where)]
            if seen and index - max(seen) < self.recheck_every:
                rejected.append((where, max(seen)))
                continue
            points, presence = det.landmarks(image, *hand_roi(palm_box, keypoints))
            if presence > det.min_presence and _off_face(points, face):
                kept.append(
                    _Track(Hand(points.astype(np.float32), presence, palm_score), OneEuro())
                )
            else:
                rejected.append((where, index))
        self._rejected = rejected


def _near(box: np.ndarray, region: float):
    """Whether a hand's points reach into the square ``region`` × the face box searched for
    palms: a tracked hand that leaves it is dropped, as the detector would not find it there."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64).reshape(4)
    half = region * max(x1 - x0, y1 - y0, 1.0) / 2
    center = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    return lambda points: bool((np.abs(points[:, :2] - center).max(axis=1) < half).any())


def _off_face(points: np.ndarray, face: np.ndarray | None) -> bool:
    """Whether a hand's points are not the face itself (``on_face``); with no face landmarks
    given, every hand is."""
    return face is None or not on_face(points, face)


def on_face(points: np.ndarray, face: np.ndarray, margin: float = FACE_MARGIN) -> bool:
    """Whether a hand's points (21, 2+) lie on the face itself, i.e. are no hand in front of it:
    its wrist inside the hull of the face's landmarks ``face`` (N, 2+) and every point within
    ``margin`` face sizes of that hull (all in image pixels). A real hand over a face reaches
    off it: its wrist below the chin or beside the cheek, or its fingers past the brows."""
    hull = cv2.convexHull(np.asarray(face, dtype=np.float32)[:, :2])
    size = np.sqrt(cv2.contourArea(hull))

    def inside(p) -> float:
        return cv2.pointPolygonTest(hull, (float(p[0]), float(p[1])), True)

    pts = np.asarray(points, dtype=np.float64)
    return inside(pts[0]) > 0 and all(inside(p) > -margin * size for p in pts)


def _region_cells(image: np.ndarray, box: np.ndarray, region: float) -> np.ndarray:
    """The square ``region`` × the face box searched for palms, as ``CHANGE_GRID``² means of its
    gray levels (float32): what tells a hand coming in from a still frame."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64).reshape(4)
    side = region * max(x1 - x0, y1 - y0, 1.0)
    size = 8 * CHANGE_GRID  # 8×8 samples per cell
    m = roi_matrix(np.array([(x0 + x1) / 2, (y0 + y1) / 2]), side, 0.0, size)
    crop = cv2.warpAffine(image, m, (size, size), flags=cv2.INTER_LINEAR)
    gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
    return cv2.resize(gray, (CHANGE_GRID,) * 2, interpolation=cv2.INTER_AREA).astype(np.float32)


def _gray_patch(image: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """The ``FLOW_SIZE`` gray patch of ``image`` that ``matrix`` maps out (flow's input)."""
    patch = cv2.warpAffine(
        image,
        matrix,
        (FLOW_SIZE, FLOW_SIZE),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    return cv2.cvtColor(patch, cv2.COLOR_RGB2GRAY)


def _relative_palm(palm_box: np.ndarray, box: np.ndarray) -> np.ndarray:
    """A palm's center (from the face box's center) and side, over the face box's side: where a
    palm the detector finds on a jaw lies, whichever way the head moves in the frame."""
    x0, y0, x1, y1 = np.asarray(box, dtype=np.float64).reshape(4)
    side = max(x1 - x0, y1 - y0, 1.0)
    center = (palm_box[:2] + palm_box[2:]) / 2 - ((x0 + x1) / 2, (y0 + y1) / 2)
    return np.array([*center, max(palm_box[2:] - palm_box[:2])]) / side


def _same_palm(a: np.ndarray, b: np.ndarray) -> bool:
    """Two palms (``_relative_palm``) at the same place on the face, of about the same size."""
    return bool(
        np.linalg.norm(a[:2] - b[:2]) < SAME_PALM_SHIFT
        and abs(np.log(max(a[2], 1e-6) / max(b[2], 1e-6))) < np.log(SAME_PALM_SIZE)
    )


def _inside(point: np.ndarray, points: np.ndarray) -> bool:
    lo, hi = points[:, :2].min(axis=0), points[:, :2].max(axis=0)
    return bool((point >= lo).all() and (point <= hi).all())


def hand_silhouette(
    hand: Hand, shape: tuple[int, int], matrix: np.ndarray | None = None
) -> np.ndarray:
    """(H, W) uint8 0/255: the hand drawn into an image of ``shape``, its points first mapped by
    the 2×3 ``matrix`` when given (e.g. frame → aligned crop)."""
    pts, length = hand.points[:, :2].astype(np.float64), hand.palm_length()
    if matrix is not None:
        pts, length = transform_points(pts, matrix), length * affine_scale(matrix)
    out = np.zeros(shape, np.uint8)
    # 4 bits of sub-pixel precision, as face_mask draws its hull
    fixed = np.round(pts * 16.0).astype(np.int32)

    def capsule(a: np.ndarray, b: np.ndarray, radius: float) -> None:
        # OpenCV's thick lines have round caps: a capsule of this half-width
        cv2.line(
            out,
            tuple(map(int, a)),
            tuple(map(int, b)),
            255,
            max(1, round(2 * radius)),
            cv2.LINE_8,
            4,
        )

    wrist = pts[0] + WRIST_STUB * (pts[0] - pts[9])
    capsule(fixed[0], np.round(wrist * 16.0).astype(np.int32), WRIST_RADIUS * length)
    cv2.fillConvexPoly(out, cv2.convexHull(fixed[list(PALM)]), 255, cv2.LINE_8, 4)
    hull = cv2.convexHull(fixed[list(PALM)]).reshape(-1, 2)
    for a, b in zip(hull, np.roll(hull, -1, axis=0)):
        capsule(a, b, FINGER_RADIUS * length)
    for finger in FINGERS:
        radius = (THUMB_RADIUS if finger[1] == 1 else FINGER_RADIUS) * length
        for a, b in itertools.pairwise(finger):
            capsule(fixed[a], fixed[b], radius)
    return out


def hand_mask(
    hands: Sequence[Hand],
    shape: tuple[int, int],
    matrix: np.ndarray | None = None,
    grow: float = 4.0,
    feather: float = 1.0,
) -> np.ndarray:
    """(H, W) float32 in [0, 1]: 1 on every hand, grown by ``grow`` px and then softened by a
    ``feather``-px Gaussian, so the soft edge lies outside the hand: with ``grow`` ≥ 3 ×
    ``feather`` the hand itself stays above 0.996 (a face pasted through it moves < 1 gray level).
    The default has one more pixel for the lag of ``HandTracker``'s smoothing (~1 px behind a
    hand sweeping a fifth of its palm length per frame)."""
    hard = np.zeros(shape, np.uint8)
    for hand in hands:
        np.maximum(hard, hand_silhouette(hand, shape, matrix), out=hard)
    radius = round(grow)
    if radius > 0 and hard.any():
        hard = cv2.dilate(hard, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1,) * 2))
    mask = hard.astype(np.float32) * (1.0 / 255.0)
    if feather > 0 and hard.any():
        mask = cv2.GaussianBlur(mask, (0, 0), feather)
    return mask


def edge_flicker(masks: Sequence[np.ndarray], band: int = 3) -> float:
    """Mean frame-to-frame change of a mask sequence (each (H, W) in [0, 1]) at its edges: over
    consecutive pairs, the mean |m_t - m_t-1| within ``band`` px of either mask's edge, in gray
    levels (0-255). A mask that follows a moving hand changes there too; one that shakes changes
    more. Pairs where neither mask has an edge are skipped; 0 when none is left."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * band + 1,) * 2)
    changes = []
    for a, b in itertools.pairwise(masks):
        hard = ((a > 0.5) | (b > 0.5)).astype(np.uint8), ((a > 0.5) & (b > 0.5)).astype(np.uint8)
        edge = (cv2.dilate(hard[0], kernel) > 0) & ~(cv2.erode(hard[1], kernel) > 0)
        if edge.any():
            changes.append(float(np.abs(a - b)[edge].mean()) * 255.0)
    return float(np.mean(changes)) if changes else 0.0


def without_hands(face: np.ndarray, hands: np.ndarray) -> np.ndarray:
    """The face mask with the hands taken out: ``face × (1 − hands)``, both (H, W) in [0, 1]."""
    if face.shape != hands.shape:
        raise InvalidInput(f"hand mask {hands.shape} does not match the face mask {face.shape}")
    return (face * (1.0 - np.clip(hands, 0.0, 1.0))).astype(face.dtype, copy=False)
