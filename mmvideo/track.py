"""Detections → tracks: Hungarian assignment on box IoU plus identity similarity.

A track is born from an unmatched detection. With gap filling (``max_gap`` frames, from the
``gap_seconds`` key) it stays live for ``max_gap`` frames after its last detection, the pipeline
following it meanwhile with optical flow (``magicmask.face.align.flow_landmarks``) and the
landmarker; without it, it survives ``track_patience`` detection rounds without a match. It is then *lost* and can be
re-identified by its identity embedding for ``reid_max_gap`` frames, after which it ends; a face
that leaves the frame is lost at once. Within a shot the face must be reachable from the track's
last box, and where it reappears in place of the hidden face (an occlusion) a lower identity bar
applies (``Tracker.reid_threshold_in_place``). A shot cut loses every track: a face in the next shot
joins its track again only by identity (``breaks`` records where, so the filters restart there).
Between detector runs the pipeline updates each live track from landmarks alone;
``propagate_box`` carries the detector box along.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

import cv2
import numpy as np
from scipy.optimize import linear_sum_assignment

from magicmask.face.types import Face, box_side, iou_matrix
from mmcore.errors import InvalidInput
from mmvideo.config import TrackConfig

log = logging.getLogger(__name__)

TrackState = Literal["active", "lost", "ended"]
# in-frame face pairs needed before re-identification trusts their mean cosine
MIN_IMPOSTORS = 10
# how far (face sizes per frame) a face may move while its track is not seen, within a shot:
# twice the fastest walker of the crowd clip (0.25)
REID_SPEED = 0.5
# A face where a lost track's face was hidden joins it at this quantile of the clip's
# different-person identity cosines (``Tracker.reid_threshold_in_place``)
IN_PLACE_QUANTILE = 0.95
# frames over which a track's last motion is measured (``_in_place``)
MOTION_FRAMES = 10


@dataclass
class Track:
    """One face followed through time: raw per-frame geometry, keyed by frame index."""

    id: int
    shot: int
    faces: dict[int, Face] = field(default_factory=dict)
    # frames whose face came from the detector (the others are landmark-only updates)
    detected: set[int] = field(default_factory=set)
    # frames whose landmark fit was refused (it lost the face): reported as "rejected"
    rejected: set[int] = field(default_factory=set)
    embedding: np.ndarray | None = None  # running mean identity, L2-normalised
    state: TrackState = "active"
    misses: int = 0
    last_seen: int = -1
    last_detected: int = -1
    # frames filled by gap filling (the landmarker confirmed a predicted face, or the second
    # detector did): smoothing trusts them less than detected or landmark-updated faces
    filled: set[int] = field(default_factory=set)
    # frames where the track continues after a shot cut (re-identified): smoothing restarts there
    breaks: set[int] = field(default_factory=set)
    # frames the two-pass smoother may fill between two faces (the tracker's gap, 0: none)
    max_gap: int = 0

    @property
    def first(self) -> int:
        return min(self.faces)

    @property
    def last(self) -> int:
        return max(self.faces)

    def add(self, frame: int, face: Face, detected: bool) -> None:
        self.faces[frame] = face
        self.last_seen = frame
        if detected:
            self.detected.add(frame)
            self.last_detected = frame
            self.misses = 0
        if face.embedding is not None:
            e = face.embedding.astype(np.float32)
            mean = e if self.embedding is None else self.embedding + e
            self.embedding = mean / max(float(np.linalg.norm(mean)), 1e-8)

    def total_area(self) -> float:
        return float(sum(f.area for f in self.faces.values()))

    def median_area(self) -> float:
        return float(np.median([f.area for f in self.faces.values()]))


def association_cost(
    track_boxes: np.ndarray,
    track_embeddings: list[np.ndarray | None],
    det_boxes: np.ndarray,
    det_embeddings: list[np.ndarray | None],
    cfg: TrackConfig,
) -> np.ndarray:
    """Cost in [0, 1] of linking each track to each detection.

    ``iou_weight·(1−IoU) + identity_weight·(1−cos)/2``; where either side has no embedding the
    IoU term alone is used, so a missing identity never makes a pair cheaper.
    """
    cost = 1.0 - iou_matrix(track_boxes, det_boxes)
    total = cfg.iou_weight + cfg.identity_weight
    if total <= 0 or cfg.identity_weight <= 0:
        return cost
    for i, te in enumerate(track_embeddings):
        for j, de in enumerate(det_embeddings):
            if te is not None and de is not None:
                id_cost = (1.0 - float(np.dot(te, de))) / 2.0
                cost[i, j] = (cfg.iou_weight * cost[i, j] + cfg.identity_weight * id_cost) / total
    return cost


def assign(cost: np.ndarray, max_cost: float) -> list[tuple[int, int]]:
    """Minimum-cost one-to-one matching (Hungarian), dropping pairs above ``max_cost``."""
    if cost.size == 0:
        return []
    rows, cols = linear_sum_assignment(cost)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if cost[r, c] <= max_cost]


def propagate_box(
    box: np.ndarray, old_landmarks: np.ndarray, new_landmarks: np.ndarray
) -> np.ndarray:
    """Move a detector box with its face: the scale and shift that maps the old landmarks'
    bounding box onto the new one, applied to ``box``.

    dlib's shape predictor expects a box like its detector's, so between detector runs we keep
    that box attached to the face instead of using the landmarks' own (tighter) bounds.
    """
    o0, o1 = old_landmarks.min(0), old_landmarks.max(0)
    n0, n1 = new_landmarks.min(0), new_landmarks.max(0)
    scale = float(np.sqrt(np.prod(np.maximum(n1 - n0, 1e-3)) / np.prod(np.maximum(o1 - o0, 1e-3))))
    oc, nc = (o0 + o1) / 2, (n0 + n1) / 2
    b = np.asarray(box, np.float64).reshape(2, 2)
    return ((b - oc) * scale + nc).reshape(4).astype(np.float32)


def frame_signature(image: np.ndarray) -> np.ndarray:
    """A small hue/saturation histogram of the frame, compared across frames to find cuts."""
    small = cv2.resize(image, (64, 36), interpolation=cv2.INTER_AREA)
    if small.dtype != np.uint8:
        small = (small >> 8).astype(np.uint8)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1], None, [16, 8], [0, 180, 0, 256])
    return cv2.normalize(hist, hist).flatten()


def is_shot_cut(previous: np.ndarray | None, current: np.ndarray, threshold: float) -> bool:
    """True when the histogram correlation between consecutive frames drops below ``threshold``."""
    if previous is None:
        return False
    return float(cv2.compareHist(previous, current, cv2.HISTCMP_CORREL)) < threshold


class Tracker:
    """Online multi-face tracker; feed it frames in order, read ``tracks`` at the end.

    ``max_gap``: frames a track stays live after its last detection (gap filling; 0: the
    ``track_patience`` rule instead).
    """

    def __init__(self, cfg: TrackConfig, max_gap: int = 0):
        self.cfg = cfg
        self.max_gap = max_gap
        self.tracks: list[Track] = []
        self.shot = 0
        # identity cosines of faces found together in one frame: two people for certain, so
        # they show how alike this encoder makes different people on this footage
        self.impostors: list[float] = []

    def live(self) -> list[Track]:
        return [t for t in self.tracks if t.state == "active"]

    def cut(self, frame: int) -> None:
        """A shot cut before ``frame``: every live track is lost; only its identity can bring
        it back (position means nothing across a cut)."""
        log.debug("shot cut at frame %d", frame)
        for t in self.tracks:
            if t.state == "active":
                t.state = "lost"
        self.shot += 1

    def expire_gaps(self, frame: int) -> None:
        """Lose the live tracks whose gap has outlasted ``max_gap`` frames since a detection."""
        if self.max_gap <= 0:
            return
        for t in self.live():
            if frame - t.last_detected > self.max_gap:
                t.state = "lost"

    def leave(self, track: Track) -> None:
        """The track's face has left the frame: lost (it may come back by identity)."""
        track.state = "lost"

    def update_detections(self, frame: int, faces: list[Face]) -> list[Track]:
        """Link one detector round to the tracks; returns the track of each face, in order."""
        live = self.live()
        cost = association_cost(
            np.array([t.faces[t.last_seen].box for t in live]).reshape(-1, 4),
            [t.embedding for t in live],
            np.array([f.box for f in faces]).reshape(-1, 4),
            [f.embedding for f in faces],
            self.cfg,
        )
        self._note_impostors(faces)
        owner: list[Track | None] = [None] * len(faces)
        for r, c in assign(cost, self.cfg.max_match_cost):
            owner[c] = live[r]
        unmatched = [t for t in live if t not in owner]
        for t in unmatched:
            t.misses += 1
            if self.max_gap <= 0 and t.misses > self.cfg.track_patience:
                t.state = "lost"
        self.expire_gaps(frame)
        self._expire(frame)
        # a face too far from its track's last box (a fast move, a return after an occlusion
        # or a cut) joins it by identity rather than splitting it
        new = [j for j in range(len(faces)) if owner[j] is None]
        for j, track in self._reidentify(frame, [faces[j] for j in new], unmatched).items():
            owner[new[j]] = track
        for j, face in enumerate(faces):
            if owner[j] is None:
                owner[j] = self._new_track()
            owner[j].state = "active"
            owner[j].add(frame, face, detected=True)
        return owner  # type: ignore[return-value]

    def update_landmarks(self, frame: int, track: Track, face: Face) -> None:
        """A landmark-only update between detector runs (no association needed)."""
        track.add(frame, face, detected=False)

    def _expire(self, frame: int) -> None:
        for t in self.tracks:
            if t.state == "lost" and frame - t.last_seen > self.cfg.reid_max_gap:
                t.state = "ended"

    def _note_impostors(self, faces: list[Face]) -> None:
        codes = [f.embedding for f in faces if f.embedding is not None]
        for i, a in enumerate(codes):
            self.impostors.extend(float(np.dot(a, b)) for b in codes[i + 1 :])

    def reid_threshold(self) -> float:
        """The identity cosine a face needs to join a lost track: ``reid_min_similarity`` on
        the scale from how alike two different people of this footage are (the mean cosine of
        faces seen together in one frame; 0 until ``MIN_IMPOSTORS`` such pairs) to 1.

        An encoder that puts everyone at cosine 0.8-0.9 (the embedded model's does on the crowd
        clip; same person 0.92-0.99) would otherwise join any face to any lost track at 0.6.
        """
        if len(self.impostors) < MIN_IMPOSTORS:
            return self.cfg.reid_min_similarity
        floor = max(0.0, float(np.mean(self.impostors)))
        return floor + self.cfg.reid_min_similarity * (1.0 - floor)

    def reid_threshold_in_place(self) -> float:
        """The identity cosine a face needs to join a lost track of its shot where that track's
        face was hidden (``_in_place``): the ``IN_PLACE_QUANTILE`` of this footage's
        different-person cosines, so that at most one pair of different people in twenty looks
        this alike; never above ``reid_threshold()``.

        An occluded face comes back where it went behind someone, and its return (often turned,
        blurred or half hidden) can score lower than the bar that must keep a face anywhere in
        the frame from taking another's track: on the crowd clip a woman hidden for 49 frames
        came back at cosine 0.943 to her track, with the bar at 0.945 and the different-person
        pairs reaching 0.94. Position is the evidence identity lacks there.
        """
        bar = self.reid_threshold()
        if len(self.impostors) < MIN_IMPOSTORS:
            return bar
        return min(bar, float(np.quantile(self.impostors, IN_PLACE_QUANTILE)))

    def _reidentify(
        self, frame: int, faces: list[Face], unmatched: list[Track]
    ) -> dict[int, Track]:
        """Index of ``faces`` → the lost (or this round unmatched, still live) track it joins.

        A pair qualifies when the face's identity is at least the bar alike to the track's and,
        in the same shot, the track's face could have moved there (``_reachable``); the bar is
        ``reid_threshold_in_place()`` where the face is where the track's face was hidden,
        ``reid_threshold()`` elsewhere. Qualifying pairs are matched one to one by the highest
        total cosine (Hungarian), so the order the detector lists faces in does not decide who
        takes a track. A track taken up again after a cut starts a new segment."""
        # an unmatched track that another face of this round already joined is taken
        tracks = [
            t
            for t in self.tracks
            if t.embedding is not None
            and (t.state == "lost" or (t in unmatched and t.last_seen != frame))
        ]
        if not faces or not tracks:
            return {}
        anywhere, in_place = self.reid_threshold(), self.reid_threshold_in_place()
        sim = np.full((len(faces), len(tracks)), -np.inf)
        for i, face in enumerate(faces):
            if face.embedding is None:
                continue
            for k, t in enumerate(tracks):
                same_shot = t.shot == self.shot
                if same_shot and not _reachable(t, frame, face):
                    continue
                cos = float(np.dot(t.embedding, face.embedding))
                bar = in_place if same_shot and _in_place(t, frame, face) else anywhere
                if cos >= bar:
                    sim[i, k] = cos
        ok = np.isfinite(sim)
        if not ok.any():
            return {}
        rows, cols = linear_sum_assignment(np.where(ok, -sim, 1e6))
        out = {}
        for i, k in zip(rows, cols):
            if not ok[i, k]:
                continue
            best = tracks[k]
            log.debug("re-identified track %d (cos %.3f)", best.id, sim[i, k])
            if best.shot != self.shot:
                best.breaks.add(frame)
                best.shot = self.shot
            out[int(i)] = best
        return out

    def _new_track(self) -> Track:
        track = Track(id=len(self.tracks) + 1, shot=self.shot, max_gap=self.max_gap)
        self.tracks.append(track)
        return track


def _reachable(track: Track, frame: int, face: Face) -> bool:
    """Whether ``face`` is where ``track``'s face could be by ``frame`` in the same shot: its
    centre within a face size of the last one plus ``REID_SPEED`` face sizes per frame since.
    Within a shot a face does not teleport; across a cut position means nothing."""
    last = track.faces[track.last_seen].box
    side = box_side(last)
    moved = np.hypot(*(_center(face.box) - _center(last)))
    return bool(moved <= side * (1.0 + REID_SPEED * (frame - track.last_seen)))


def _center(box: np.ndarray) -> np.ndarray:
    return (np.asarray(box[:2], np.float64) + np.asarray(box[2:], np.float64)) / 2


def _in_place(track: Track, frame: int, face: Face) -> bool:
    """Whether ``face`` is where ``track``'s face went out of sight: a similar size (within
    1.5×) and its centre within one face size of the path from the track's last centre to
    where the track's last motion carries it by ``frame`` (a hidden person may stop or walk
    on). The motion is the mean velocity over the track's last ``MOTION_FRAMES`` frames."""
    last = track.faces[track.last_seen].box
    side = box_side(last)
    face_side = box_side(face.box)
    if not 1 / 1.5 <= face_side / side <= 1.5:
        return False
    a = _center(last)
    earlier = [f for f in track.faces if track.last_seen - MOTION_FRAMES <= f < track.last_seen]
    if earlier:
        first = min(earlier)
        velocity = (a - _center(track.faces[first].box)) / (track.last_seen - first)
    else:
        velocity = np.zeros(2)
    b = a + velocity * (frame - track.last_seen)
    p = _center(face.box)
    ab = b - a
    t = float(np.clip(np.dot(p - a, ab) / max(float(np.dot(ab, ab)), 1e-9), 0.0, 1.0))
    return bool(np.hypot(*(p - (a + t * ab))) <= side)


def select_tracks(
    tracks: list[Track], cfg: TrackConfig, reference: np.ndarray | None = None
) -> set[int]:
    """Ids of the tracks to swap: one ``track_id``, the most similar to a reference face, the
    largest (box area summed over the clip: size × screen time), or all."""
    if not tracks:
        return set()
    if cfg.track_id is not None:
        if cfg.track_id not in {t.id for t in tracks}:
            raise InvalidInput(
                f"track {cfg.track_id}: no such track (tracks: {', '.join(str(t.id) for t in tracks)})"
            )
        return {cfg.track_id}
    if reference is not None:
        scored = [
            (float(np.dot(t.embedding, reference)), t.id) for t in tracks if t.embedding is not None
        ]
        if not scored:
            raise InvalidInput("target face: no track has an identity embedding to compare with")
        return {max(scored)[1]}
    if cfg.target == "largest":
        # summed over frames, so a big face that stays wins over a brief (often false) one
        return {max(tracks, key=lambda t: (t.total_area(), -t.id)).id}
    return {t.id for t in tracks}
