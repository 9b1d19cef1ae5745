"""The one place that wires the swap stages together.

Two passes over the clip:

1. **analyze** (decode → detect/landmarks → track): the detector runs every
   ``detect_interval`` frames (and on every shot cut), live tracks get landmark-only updates in
   between. Only geometry is kept (about 1 KB per face per frame), never images.
2. Between the passes each track is smoothed (Kalman forward, or forward + RTS) and the tracks to
   swap, and the source of each, are chosen with the whole clip known (``largest``,
   ``--target-face``, ``--track-id``, ``--map``; ``mmvideo.targets``); a farm chunk instead follows
   the choice its plan made over the whole clip.
3. **render** (decode → prepare → generate → compose → encode): five stages in threads joined by
   bounded queues, so memory stays flat whatever the clip length; faces from several frames are
   batched for the generator. The encoder runs on the calling thread inside the writer's
   context, so any error or Ctrl-C removes the partial output.

The same smoothed landmarks drive both the crop alignment and the generator's depth and
landmark maps (``prepare_target``), so the swapped face cannot jitter against its own crop.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

import cv2
import numpy as np
import torch
from threadpoolctl import threadpool_limits

from magicmask.face.align import align_identity, flow_landmarks, to_uint8
from magicmask.face.analyzer import (
    FaceAnalyzer,
    FaceConfig,
    build_landmarker,
    pick_face,
)
from magicmask.face.hands import HandDetector, HandTracker, hand_mask, without_hands
from magicmask.face.image import as_rgb8, load_image
from magicmask.face.parsing import FaceParser, ParseTracker, parser_model
from magicmask.face.prepare import PrepareConfig, TargetInputs, prepare_target
from magicmask.face.types import Face, iou_matrix
from magicmask.inference import Swapper
from mmcore.atomic import check_output, remove_stale_partials
from mmcore.errors import InvalidInput, MissingInput, ModelError
from mmvideo.compose import CROP, SeamTracker, paste
from mmvideo.config import (
    ComposeConfig,
    DetectConfig,
    EncodeConfig,
    SwapConfig,
    SwapJob,
)
from mmvideo.generate import generate_faces
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.frame import Frame
from mmvideo.io.media import is_sequence_info, open_reader, probe_media, source_timecode
from mmvideo.io.probe import MediaInfo
from mmvideo.io.sequence import parse_pattern
from mmvideo.matte import CropWriter, MatteWriter
from mmvideo.post.tag import make_tag
from mmvideo.post.writer import PostOptions, open_writer
from mmvideo.progress import Progress
from mmvideo.queues import (
    StageRun,
    drain,
    map_stage,
    put,
    spawn,
    stop_and_join,
    threaded,
)
from mmvideo.smooth import jitter, predict_landmarks, smooth_track
from mmvideo.targets import anchor_targets, assign_sources, match_anchors, parse_map
from mmvideo.track import (
    Track,
    Tracker,
    frame_signature,
    is_shot_cut,
    propagate_box,
    select_tracks,
)

log = logging.getLogger(__name__)

QUEUE_SIZE = 8  # decoded frames waiting for the next stage
# frame groups (a generator batch each, with their model inputs) waiting between stages
GROUP_QUEUE_SIZE = 1
THUMB = 128  # contact-sheet thumbnail side


@dataclass
class Analysis:
    """What pass 1 learned: the tracks (raw geometry), the cut frames and a thumbnail per track."""

    tracks: list[Track]
    cuts: list[int]
    frames: int
    thumbnails: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class SwapSummary:
    """What ``run_swap`` reports at the end."""

    frames: int
    faces_per_track: dict[int, int]
    frames_without_face: int
    tracks: int
    selected: list[int]
    cuts: list[int]
    stage_seconds: dict[str, float]
    jitter: dict[str, float]  # RMS landmark acceleration (px/frame²): raw, kalman, rts
    sources: dict[int, str] = field(default_factory=dict)  # track id → its source image
    # per swapped track, the frames of its life it was not swapped in: [{first, last, reason}]
    # (inclusive ranges; reasons in UNSWAPPED_REASONS)
    unswapped: dict[int, list[dict]] = field(default_factory=dict)

    def missed(self) -> dict[int, list[dict]]:
        """The unswapped ranges of written frames (what ``--require-all`` refuses)."""
        out = {
            tid: [r for r in ranges if r["reason"] != OUTSIDE_RANGE]
            for tid, ranges in self.unswapped.items()
        }
        return {tid: ranges for tid, ranges in out.items() if ranges}

    def lines(self) -> list[str]:
        swapped = ", ".join(f"track {t}: {n}" for t, n in sorted(self.faces_per_track.items()))
        stages = ", ".join(f"{k} {v:.1f}s" for k, v in self.stage_seconds.items())
        jit = ", ".join(f"{k} {v:.3f}" for k, v in self.jitter.items())
        return [
            f"frames: {self.frames} written, {self.frames_without_face} without a swapped face",
            f"tracks: {self.tracks} found, swapped {self.selected or 'none'} ({swapped or 'no faces'})",
            *(
                [
                    f"sources: {', '.join(f'track {t}: {p}' for t, p in sorted(self.sources.items()))}"
                ]
                if len(set(self.sources.values())) > 1
                else []
            ),
            f"unswapped frames of swapped tracks: {format_ranges(self.unswapped) or 'none'}",
            f"shot cuts at frames: {self.cuts or 'none'}",
            f"time per stage: {stages}",
            f"jitter (RMS landmark acceleration, px/frame^2): {jit or 'n/a'}",
        ]


OUTSIDE_RANGE = "outside the frame range"
# why a frame of a swapped track's life has no swapped face
UNSWAPPED_REASONS = ("no detection", "rejected", OUTSIDE_RANGE)


def format_ranges(unswapped: dict[int, list[dict]]) -> str:
    """``track 1: 150-154 no detection, 160 rejected; track 2: ...``"""
    return "; ".join(
        f"track {tid}: "
        + ", ".join(
            f"{r['first']}{'' if r['last'] == r['first'] else '-' + str(r['last'])} {r['reason']}"
            for r in ranges
        )
        for tid, ranges in sorted(unswapped.items())
        if ranges
    )


def unswapped_frames(
    tracks: list[Track],
    plan: dict[int, list[tuple[int, Face]]],
    start: int,
    stop: int,
) -> dict[int, list[dict]]:
    """Per track of ``tracks`` (the swapped ones), the frames from its first face to its last
    that got no swapped face, as ranges with the reason: outside ``[start, stop)`` (analysed,
    not written), ``rejected`` (a landmark fit refused as having lost the face) or ``no
    detection`` (no face found for it in that frame)."""
    swapped = {(f, tid) for f, items in plan.items() for tid, _ in items}
    out: dict[int, list[dict]] = {}
    for track in tracks:
        ranges: list[dict] = []
        for f in range(track.first, track.last + 1):
            if not start <= f < stop:
                reason = OUTSIDE_RANGE
            elif (f, track.id) in swapped:
                continue
            else:
                reason = "rejected" if f in track.rejected else "no detection"
            if ranges and ranges[-1]["last"] == f - 1 and ranges[-1]["reason"] == reason:
                ranges[-1]["last"] = f
            else:
                ranges.append({"first": f, "last": f, "reason": reason})
        out[track.id] = ranges
    return out


def face_config(cfg: DetectConfig, device: str = "cpu") -> FaceConfig:
    """The face analyser settings of the detect slice, for video frames."""
    return FaceConfig(
        face_backend=cfg.face_backend,
        detector=cfg.detector,
        face_models=_models_dir(cfg),
        detect_upsample=cfg.detect_upsample,
        min_face_size=cfg.min_face_size,
        detect_max_side=cfg.detect_max_side,
        smallest_face=cfg.smallest_face,
        second_detector=None if cfg.second_detector == "none" else cfg.second_detector,
        device=device,
    )


def target_inputs_config(cfg: ComposeConfig) -> PrepareConfig:
    """How each target face's model inputs are rendered: the trained defaults, with the pasted
    mask's forehead reach from the compose slice."""
    return PrepareConfig(mask_forehead=cfg.mask_forehead)


def source_face_config(device: str = "cpu", cfg: DetectConfig | None = None) -> FaceConfig:
    """Stills (the source actor, a --target-face reference) are searched harder than frames:
    one photo, so a larger detection size and upsampling cost little. Same backend and detector
    as the frames (``cfg``; None = the defaults)."""
    cfg = cfg or DetectConfig()
    return FaceConfig(
        face_backend=cfg.face_backend,
        detector=cfg.detector,
        face_models=_models_dir(cfg),
        detect_upsample=1,
        min_face_size=32,
        detect_max_side=1024,
        device=device,
    )


def _models_dir(cfg: DetectConfig) -> Path | None:
    if cfg.face_models is None:
        return None
    path = Path(cfg.face_models)
    if not path.is_dir():
        raise MissingInput(f"{path}: face model folder not found (--face-models)")
    return path


def encode_options(cfg: EncodeConfig) -> EncodeOptions:
    """The encode slice as the I/O layer's options; CRF and preset only where the codec has them
    (ProRes and FFV1 are intra-only, NVENC has its own presets)."""
    x26x = cfg.codec in ("libx264", "libx265")
    return EncodeOptions(
        codec=cfg.codec,
        crf=cfg.crf if x26x else None,
        encoder_preset=cfg.encoder_preset if x26x else None,
    )


def _frame_range(job: SwapJob, info: MediaInfo) -> tuple[int, int, int, int]:
    """(first analysed frame, first written frame, stop, analysis stop) for the job's range."""
    n = info.video.frames
    stop = n if job.stop is None else min(job.stop, n)
    if not 0 <= job.start < stop:
        raise InvalidInput(
            f"{job.input}: bad frame range {job.start}..{job.stop} (clip has {n} frames)"
        )
    first = max(0, job.start - max(job.warmup, 0))
    return first, job.start, stop, min(n, stop + max(job.lookahead, 0))


# -- pass 1 ------------------------------------------------------------------------------------


def analyze(
    path: str,
    info: MediaInfo,
    cfg: SwapConfig,
    analyzer: FaceAnalyzer,
    models: Swapper | None,
    start: int = 0,
    stop: int | None = None,
    progress: Progress | None = None,
) -> Analysis:
    """Pass 1: find and track every face in frames ``[start, stop)``; keeps geometry only.

    ``models`` provides the identity encoder for association and re-identification; ``None``
    tracks by IoU alone.
    """
    tracker = Tracker(cfg.track, gap_frames(cfg, info))
    gaps = _GapFiller(tracker, analyzer, cfg)
    thumbs: dict[int, tuple[float, np.ndarray]] = {}
    cuts: list[int] = []
    use_identity = models is not None and (
        cfg.track.identity_weight > 0 or cfg.track.target_face or cfg.track.map
    )
    prev_sig = None
    last_detect = None
    count = 0
    # closed on every way out, so the decode thread is joined before an error leaves here
    frames = threaded(open_reader(path, info, start=start, stop=stop), threading.Event())
    with closing(frames):
        for frame in frames:
            image = frame.image
            sig = frame_signature(image)
            cut = is_shot_cut(prev_sig, sig, cfg.track.shot_cut_threshold)
            prev_sig = sig
            if cut:
                tracker.cut(frame.index)
                cuts.append(frame.index)
            gaps.next_frame(image, cut)
            detect_round = (
                cut
                or last_detect is None
                or frame.index - last_detect >= cfg.detect.detect_interval
            )
            if detect_round:
                faces = analyzer.detect(image)
                if use_identity and _identity_needed(tracker, faces):
                    _embed(image, faces, models)
                for track, face in zip(tracker.update_detections(frame.index, faces), faces):
                    _keep_thumbnail(thumbs, track.id, image, face)
                last_detect = frame.index
            else:
                _landmark_update(tracker, analyzer, frame)
            gaps.fill(frame.index, image, detect_round)
            count += 1
            if progress:
                progress.advance("analyze")
    tracks = [t for t in tracker.tracks if t.faces]
    return Analysis(tracks, cuts, count, {k: v[1] for k, v in thumbs.items()})


def gap_frames(cfg: SwapConfig, info: MediaInfo) -> int:
    """``gap_seconds`` in frames of this clip (at least 1 when gap filling is on)."""
    if cfg.track.gap_seconds <= 0:
        return 0
    fps = float(info.video.fps or 25.0)
    return max(1, round(cfg.track.gap_seconds * fps))


class _GapFiller:
    """Holds live tracks through the frames where neither the detector nor the landmark update
    found their face (issue 16: a viewer sees the original face flash back otherwise).

    Per missed frame of a live track, at most ``max_gap`` frames after its last detection:

    1. *Prediction*: the Kalman filter's constant-velocity guess of the 68 points
       (``predict_landmarks``), replaced by the previous frame's points carried into this one
       by Lucas–Kanade flow when that tracking passes its forward-backward check.
    2. *Confirmation*: the landmarker runs on the box those points give. Its inner points
       (brows to mouth) must lie within ``gap_max_residual`` × the inner face's size, on average,
       of the predicted ones and their size within ±33 % of the predicted size; the
       landmarker's points are then the frame's face. Only frames where the flow passed its
       check are confirmed this way: on a blank or changed patch the landmarker's mean shape can
       lie close to a near-frontal prediction. The residual rejects a landmarker that had to bend
       far from the face that moved as the flow says (an occluder, a turn it cannot fit).
    3. Where that fails, or on a detection round (the first detector found no face for the
       track), the first detector and then the second (``second_detector``) look in the region
       around the predicted box (``FaceAnalyzer.detect_near``); a face found there
       (overlapping the box, IoU >= 0.3) counts as a detection, its landmarks fitted on the
       last detection's box moved to where that detector put the face.

    Unconfirmed frames are left unswapped (the two-pass smoother interpolates the short ones).
    A predicted box whose center leaves the frame loses the track.
    """

    def __init__(self, tracker: Tracker, analyzer: FaceAnalyzer, cfg: SwapConfig):
        self.tracker, self.analyzer, self.cfg = tracker, analyzer, cfg
        self.gray: np.ndarray | None = None
        self.prev_gray: np.ndarray | None = None
        self.carry: dict[int, np.ndarray] = {}  # track id → its points in the previous frame

    def next_frame(self, image: np.ndarray, cut: bool) -> None:
        if self.tracker.max_gap <= 0:
            return
        self.prev_gray = None if cut else self.gray
        self.gray = cv2.cvtColor(as_rgb8(image), cv2.COLOR_RGB2GRAY)
        if cut:
            self.carry.clear()

    def fill(self, frame: int, image: np.ndarray, detect_round: bool) -> None:
        if self.tracker.max_gap <= 0:
            return
        self.tracker.expire_gaps(frame)
        # through a gap the flow carries its own points, not the landmarker's: a landmarker
        # stretches its points to the box it is given, and fed back they balloon in a few frames
        followed = {}
        for track in self.tracker.live():
            if track.last_seen != frame:
                followed[track.id] = self._follow(track, frame, image, detect_round)
        carry = {}
        for t in self.tracker.live():
            points = followed.get(t.id)
            if points is None and t.last_seen == frame:
                points = t.faces[frame].landmarks
            if points is not None:
                carry[t.id] = points
        self.carry = carry

    def _follow(
        self, track: Track, frame: int, image: np.ndarray, detect_round: bool
    ) -> np.ndarray | None:
        """Try to fill ``frame`` for ``track``; the points to carry into the next frame (None:
        the track's own face of this frame, or the track is gone)."""
        anchor = track.faces[max(track.detected)]
        points = predict_landmarks(track, frame, self.cfg.smooth)
        previous = self.carry.get(track.id)
        flowed = None
        if previous is not None and self.prev_gray is not None:
            fb_max = max(0.5, 0.02 * _spread(anchor.landmarks))
            flowed = flow_landmarks(self.prev_gray, self.gray, previous, fb_max)
            if flowed is not None:
                points = flowed
        # Without flow (no texture to follow, or the patch changed beyond the forward-backward
        # check) only the second detector may fill: the landmarker alone fits its mean shape
        # to any box, a blank one included, close enough to a predicted frontal face to pass.
        confirmable = flowed is not None
        box = propagate_box(anchor.box, anchor.landmarks[17:], points[17:])
        h, w = image.shape[:2]
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        if not (0 <= cx < w and 0 <= cy < h):
            self.tracker.leave(track)
            return None
        held = self._held_face(image, box, points) if confirmable else None
        if held is not None and not detect_round:
            self.tracker.update_landmarks(frame, track, held)
            track.filled.add(frame)
            return points
        if self._second_detector(track, frame, image, box, anchor, held):
            return None  # a detection: its own points from here
        if held is not None:
            self.tracker.update_landmarks(frame, track, held)
            track.filled.add(frame)
            return points
        if confirmable:
            # the landmarker refused the predicted face: the report says "rejected", not
            # "no detection" (the two-pass smoother may still fill the frame)
            track.rejected.add(frame)
        return points

    def _held_face(self, image, box, points) -> Face | None:
        """The landmarker's face on the flow-predicted ``box`` when it confirms the flowed
        ``points`` (step 2 of the class notes); None when it does not."""
        face = self.analyzer.landmarks(image, box[None])[0]
        size = _spread(points)
        residual = _residual(face.landmarks, points)
        if residual > self.cfg.track.gap_max_residual:
            return None
        if not 0.75 < _spread(face.landmarks) / size < 1.33:
            return None
        # the box follows the prediction, not these points: a landmarker fed back its own
        # stretched box drifts and balloons over a few frames
        face.box = box
        face.embedding = None
        face.extra["gap_residual"] = residual
        return face

    def _second_detector(self, track, frame, image, box, anchor, held) -> bool:
        faces = self.analyzer.detect_near(image, box, min_iou=0.3)
        if not faces:
            return False
        overlap = iou_matrix(box[None], np.stack([f.box for f in faces]))[0]
        # The landmarker follows the box it is given, and MMOD's boxes sit differently on the
        # face than the first detector's (fed one, the points jump by a few pixels and the next
        # anchors inherit it). So a find only says where the face is: the anchor's box is
        # moved onto the points fitted in MMOD's box, and the landmarks fitted again in that.
        # The predicted box alone is not trusted: it carries whatever the landmark updates
        # before the gap drifted (on the Jackie Chan clip, points slid to the chin were
        # "confirmed" there).
        found = faces[int(np.argmax(overlap))]
        face_box = propagate_box(anchor.box, anchor.landmarks[17:], found.landmarks[17:])
        (face,) = self.analyzer.landmarks(image, face_box[None])
        face.box = face_box
        # But where the flow-held face (``held``) lies within the confirmation tolerance of
        # that fit, it is kept: on a turned head the landmarker's fit swings with the box it is
        # given (frontal mean shape on the cheek one frame, on the profile the next: 15-29
        # px/frame^2 on the profile clip), and the held face follows the previous frames.
        # The find still counts as a detection; a drift beyond the tolerance is corrected.
        if held is not None and _residual(face.landmarks, held.landmarks) <= (
            self.cfg.track.gap_max_residual
        ):
            face = held
        track.add(frame, face, detected=True)
        track.filled.add(frame)  # one landmarker fit on a derived box: trusted less
        return True


def _residual(landmarks: np.ndarray, reference: np.ndarray) -> float:
    """Mean distance of the inner points (brows to mouth) of ``landmarks`` from those of
    ``reference``, in units of the reference's inner-face size (``_spread``)."""
    d = np.linalg.norm(landmarks[17:] - reference[17:], axis=1).mean()
    return float(d) / _spread(reference)


def _identity_needed(tracker: Tracker, faces: list[Face]) -> bool:
    """Whether this detector round needs identity embeddings (they cost more than detection).

    One face following one live, already-embedded track is linked by IoU alone; anything else
    (several faces or tracks, a lost track to re-identify, a track not yet embedded) needs them.
    """
    if not faces:
        return False
    live = tracker.live()
    lost = any(t.state == "lost" for t in tracker.tracks)
    return len(faces) > 1 or len(live) != 1 or lost or live[0].embedding is None


def _landmark_update(tracker: Tracker, analyzer: FaceAnalyzer, frame: Frame) -> None:
    """Landmarks at the tracked boxes of the tracks the last detector round confirmed."""
    live = [t for t in tracker.live() if t.misses == 0]
    if not live:
        return
    boxes = np.stack([t.faces[t.last_seen].box for t in live])
    for track, face in zip(live, analyzer.landmarks(frame.image, boxes)):
        # Move the box from the last *detected* face, by the inner points (brows to mouth):
        # chaining frame to frame, or following the jaw outline, which the predictor stretches
        # to the box it is given, lets the box drift and grow between detector runs.
        anchor = track.faces[max(track.detected)]
        if not 0.75 < _spread(face.landmarks) / _spread(anchor.landmarks) < 1.33:
            # landmarks that balloon or collapse have lost the face (or never had one): no
            # more updates, and no swap, until the detector confirms it again
            track.misses = max(track.misses, 1)
            track.rejected.add(frame.index)
            continue
        face.box = propagate_box(anchor.box, anchor.landmarks[17:], face.landmarks[17:])
        face.embedding = None
        tracker.update_landmarks(frame.index, track, face)


def _spread(landmarks: np.ndarray) -> float:
    """Size of the inner face (brows to mouth) in pixels: the root of its bounding-box area."""
    inner = landmarks[17:]
    return float(np.sqrt(max(np.prod(np.ptp(inner, axis=0)), 1e-6)))


def _embed(image: np.ndarray, faces: list[Face], models: Swapper) -> None:
    crops = np.stack([align_identity(image, f.landmarks)[0] for f in faces])
    for face, e in zip(faces, models.embed(crops)):
        face.embedding = e


def _keep_thumbnail(thumbs: dict, track_id: int, image: np.ndarray, face: Face) -> None:
    if track_id in thumbs and thumbs[track_id][0] >= face.area:
        return
    h, w = image.shape[:2]
    x0, y0, x1, y1 = face.box
    pad = 0.2 * max(x1 - x0, y1 - y0)
    x0, y0 = int(max(0, x0 - pad)), int(max(0, y0 - pad))
    x1, y1 = int(min(w, x1 + pad)), int(min(h, y1 + pad))
    if x1 <= x0 or y1 <= y0:
        return
    crop = image[y0:y1, x0:x1]
    if crop.dtype != np.uint8:
        crop = (crop >> 8).astype(np.uint8)
    thumbs[track_id] = (
        face.area,
        cv2.resize(crop, (THUMB, THUMB), interpolation=cv2.INTER_AREA),
    )


# -- between the passes --------------------------------------------------------------------------


def plan_faces(
    analysis: Analysis,
    cfg: SwapConfig,
    reference: np.ndarray | None,
    start: int,
    stop: int,
    assignment: dict[int, str] | None = None,
) -> tuple[dict[int, list[tuple[int, Face]]], list[int], dict[str, float]]:
    """Smooth the selected tracks; returns frame → [(track id, smoothed face)] for frames in
    ``[start, stop)``, the selected ids and the jitter of raw / Kalman / RTS geometry.

    The tracks are those of ``assignment`` (track → source, ``mmvideo.targets``) when given,
    else the config's selection with ``reference`` as the target face."""
    if assignment is None:
        selected = sorted(select_tracks(analysis.tracks, cfg.track, reference))
    else:
        selected = sorted(assignment)
    plan: dict[int, list[tuple[int, Face]]] = {}
    chosen = [t for t in analysis.tracks if t.id in selected]
    for track in chosen:
        for index, face in smooth_track(track, cfg.smooth).items():
            if start <= index < stop:
                plan.setdefault(index, []).append((track.id, face))
    return plan, selected, track_jitter(chosen, cfg)


def track_jitter(tracks: list[Track], cfg: SwapConfig) -> dict[str, float]:
    """Mean over runs of consecutive frames of the RMS landmark acceleration, per method."""
    out = {}
    for method in ("none", "kalman", "rts"):
        values = []
        smooth_cfg = replace(cfg.smooth, smoothing=method)
        for track in tracks:
            faces = smooth_track(track, smooth_cfg)
            for run in _consecutive(sorted(faces)):
                if len(run) >= 3:
                    values.append(jitter(np.stack([faces[i].landmarks for i in run])))
        if values:
            out["raw" if method == "none" else method] = float(np.mean(values))
    return out


def _consecutive(frames: list[int]) -> list[list[int]]:
    runs: list[list[int]] = []
    for f in frames:
        if runs and f == runs[-1][-1] + 1:
            runs[-1].append(f)
        else:
            runs.append([f])
    return runs


# -- pass 2 --------------------------------------------------------------------------------------


@dataclass
class _Group:
    """Consecutive frames travelling together through generate/compose (one generator batch)."""

    frames: list[Frame]
    tracks: list[list[int]]  # per frame: the track of each of its faces
    faces: list[list[TargetInputs]]  # per frame: each face's model inputs
    outputs: np.ndarray | None = None  # [n faces, 224, 224, 3] float32
    mattes: list[np.ndarray] | None = None  # per frame: its blend matte (``--matte-out``)
    crops: list[list[np.ndarray]] | None = None  # per frame: its faces as blended (``--crop-out``)


def group_ends(index: int, faces: int, batch: int) -> bool:
    """Whether the generator group closes after frame ``index``, holding ``faces`` faces.

    At one batch of faces, or at the end of a block of ``batch`` frames (frames are what cost
    memory: 6 MB each at 1080p). Blocks count from frame 0, not from where the run starts, so a
    farm chunk that starts on a block boundary batches every face with the same neighbours as a
    single run does: torch's CPU kernels, and so the last bits of a face, depend on batch size.
    """
    return faces >= batch or (index + 1) % batch == 0


def post_options(job: SwapJob, info: MediaInfo, models: Swapper) -> PostOptions:
    """The hand-offs every output gets: the provenance tag (it holds replaced faces), the
    timecode of its first frame, and on request the watermark and C2PA credentials."""
    return PostOptions(
        provenance=make_tag(models.sha256, created=job.created).to_text(),
        timecode=source_timecode(info, override=job.timecode),
        watermark=job.watermark,
        sign=(job.sign_cert, job.sign_key) if job.sign_cert else None,
    )


def render(
    job: SwapJob,
    info: MediaInfo,
    cfg: SwapConfig,
    plan: dict[int, list[tuple[int, Face]]],
    models: Swapper,
    identities: dict[int, torch.Tensor],
    start: int,
    stop: int,
    masks: MaskModels,
    progress: Progress | None = None,
    post: PostOptions | None = None,
    begin: int | None = None,
) -> tuple[dict[int, int], int, dict[str, float]]:
    """Pass 2: write frames ``[start, stop)`` of the input with the planned faces swapped,
    each track's with its identity code ``identities[track]`` [1, D] and the mask types'
    models ``masks`` (``mask_models``). Frames ``[begin, start)``
    (``ComposeConfig.seam_lookback``) are swapped too but not written: the tracks' seam
    strengths start as in a run that began earlier.

    Returns faces swapped per track, frames written and seconds per stage.
    """
    begin = start if begin is None else begin
    # One source for every track keeps the generator's shared-identity batches (and their
    # bits); several are stacked one row per face.
    shared = {id(e): e for e in identities.values()}
    one = next(iter(shared.values())) if len(shared) == 1 else None
    run = StageRun()
    batch = max(1, cfg.generate.batch_size)
    q_frames = queue.Queue(maxsize=QUEUE_SIZE)
    q_groups, q_generated, q_done = (queue.Queue(maxsize=GROUP_QUEUE_SIZE) for _ in range(3))
    swapped: dict[int, int] = {}
    mattes = matte_writer(cfg, info)
    crop_writer = (
        CropWriter(cfg.encode.crop_out, sequence_first(info)) if cfg.encode.crop_out else None
    )

    def decode() -> None:
        with open_reader(job.input, info, start=begin, stop=stop) as reader:
            for frame in reader:
                if not put(q_frames, frame, run.stop):
                    return
                if progress:
                    progress.advance("decode")

    def prepare() -> None:
        # Some OpenCV IPP kernels (seen in the distance transform and exp) differ in the last
        # bits with memory alignment; without IPP the same input gives the same output. Per thread.
        cv2.ipp.setUseIPP(False)
        inputs = target_inputs_config(cfg.compose)
        group, n_faces = _Group([], [], []), 0
        # per track: its hands and parsed face from frame to frame
        trackers: dict[int, TrackMasks] = {}
        for frame in drain(q_frames, run):
            t = time.perf_counter()
            planned = plan.get(frame.index, [])
            for tid, _ in planned:
                if tid not in trackers:
                    trackers[tid] = masks.track()
            faces = [face for _, face in planned]
            tracked = [trackers[tid] for tid, _ in planned]
            group.frames.append(frame)
            group.tracks.append([tid for tid, _ in planned])
            group.faces.append(prepare_faces(frame.image, faces, inputs, tracked, frame.index))
            n_faces += len(planned)
            run.add_time("prepare", time.perf_counter() - t)
            if progress:
                progress.advance("prepare")
            if group_ends(frame.index, n_faces, batch):
                if not put(q_groups, group, run.stop):
                    return
                group, n_faces = _Group([], [], []), 0
        if group.frames:
            put(q_groups, group, run.stop)

    def generate(group: _Group) -> _Group:
        faces = [ti for items in group.faces for ti in items]
        if faces:
            tracks = [tid for tids in group.tracks for tid in tids]
            e_s = one if one is not None else torch.cat([identities[t] for t in tracks])
            group.outputs = generate_faces(models, e_s, faces, cfg.generate)
        if progress:
            progress.advance("generate", len(group.frames))
        return group

    # per track: the adaptive seam match's strength from frame to frame (frames come in order)
    seam_trackers: dict[int, SeamTracker] = {}

    def compose(group: _Group) -> _Group:
        k = 0
        if mattes is not None:
            group.mattes = [np.zeros(f.image.shape[:2], np.float32) for f in group.frames]
        if crop_writer is not None:
            group.crops = [[np.zeros((CROP, CROP, 4), np.float32) for _ in f] for f in group.faces]
        for i, (frame, tids, items) in enumerate(zip(group.frames, group.tracks, group.faces)):
            if items:
                outputs = group.outputs[k : k + len(items)]
                matte = group.mattes[i] if group.mattes else None
                crops = group.crops[i] if group.crops else None
                seams = [
                    partial(seam_trackers.setdefault(tid, SeamTracker()).update, index=frame.index)
                    for tid in tids
                ]
                frame.image = compose_faces(
                    frame.image, items, outputs, cfg.compose, matte, crops, seams
                )
                k += len(items)
            for tid in tids if frame.index >= start else ():
                swapped[tid] = swapped.get(tid, 0) + 1
        if progress:
            progress.advance("compose", len(group.frames))
        return group

    threads = [
        spawn("decode", decode, run, q_frames),
        spawn("prepare", prepare, run, q_groups),
        map_stage("generate", generate, q_groups, q_generated, run),
        map_stage("compose", compose, q_generated, q_done, run),
    ]
    written = 0
    try:
        with open_writer(
            job.output,
            info,
            encode_options(cfg.encode),
            copy_streams=job.copy_streams,
            start=start,
            stop=stop,
            post=post or post_options(job, info, models),
        ) as writer:
            for th in threads:
                th.start()
            for group in drain(q_done, run):
                t = time.perf_counter()
                for i, frame in enumerate(group.frames):
                    if frame.index < start:
                        continue  # the look-back: composed for its seam strengths only
                    if mattes is not None:
                        frame.matte = group.mattes[i]  # an EXR output holds it too
                        mattes.write(frame.index, frame.matte)
                    writer.write(frame)
                    if crop_writer is not None:
                        faces = zip(group.tracks[i], group.faces[i], group.crops[i])
                        crop_writer.write(frame.index, [(t, ti.matrix, c) for t, ti, c in faces])
                    written += 1
                run.add_time("encode", time.perf_counter() - t)
                if progress:
                    progress.advance("encode", len(group.frames))
            if run.errors:
                raise run.errors[0]
            if written != stop - start:
                raise InvalidInput(
                    f"{job.input}: decoded {written} frames, expected {stop - start}"
                )
    finally:
        stop_and_join(run, threads)
    return swapped, written, run.seconds


def matte_writer(cfg: SwapConfig, info: MediaInfo) -> MatteWriter | None:
    """The ``--matte-out`` stage, numbering files as a sequence output of this input is."""
    return MatteWriter(cfg.encode.matte_out, sequence_first(info)) if cfg.encode.matte_out else None


def sequence_first(info: MediaInfo) -> int:
    """The file number of position 0 in a sequence output of this input (0 for a video)."""
    return info.sequence.first if is_sequence_info(info) else 0


@dataclass
class TrackMasks:
    """One face track's mask state from frame to frame (None: that type is off)."""

    hands: HandTracker | None = None
    parsed: ParseTracker | None = None


@dataclass
class MaskModels:
    """The models of the mask types beyond the hull (``compose.mask``), built once per run."""

    hands: HandDetector | None = None
    parser: FaceParser | None = None

    def track(self) -> TrackMasks:
        """A new face track's mask state (a tracker starts cold at its first frame)."""
        return TrackMasks(
            HandTracker(self.hands) if self.hands is not None else None,
            ParseTracker(self.parser) if self.parser is not None else None,
        )


def mask_models(cfg: SwapConfig, device: str = "cpu") -> MaskModels:
    """The hand finder (``hands``) and the user's face parser (``parser``, its BiSeNet weights
    from ``--face-models``) that ``cfg.compose.mask`` asks for. Loading them is also their
    check: a missing or foreign file is a one-line ``ModelError``, so commands build them
    before anything else loads or decodes."""
    types = cfg.compose.mask_types()
    folder = _models_dir(cfg.detect)
    parser = None
    if "parser" in types:
        try:
            parser = FaceParser(parser_model(folder), device)
        except ModelError as exc:
            raise ModelError(f"{exc}; or leave parser out of --mask") from exc
    return MaskModels(HandDetector(folder) if "hands" in types else None, parser)


def prepare_face(
    image: np.ndarray,
    face: Face,
    inputs: PrepareConfig,
    masks: TrackMasks | None = None,
    index: int = 0,
) -> TargetInputs:
    """One face's generator inputs and paste mask: the hull, cut to the parsed face and with
    the hands in front of it taken out where ``masks`` (the face's track's) has them on;
    ``index`` is the frame's number."""
    ti = prepare_target(image, face.landmarks, face.landmarks_3d, inputs)
    if masks is not None and masks.parsed is not None:
        # hull ∩ parsed face: hair, glasses, hats and whatever else covers it stay the target's
        ti.mask = np.minimum(ti.mask, masks.parsed(to_uint8(ti.crop), index))
    if masks is not None and masks.hands is not None:
        # cut before compose erodes and feathers the mask: the erosion keeps the feathered
        # edge off the hand itself
        # the landmarks let it turn down the face itself taken for a hand (a blurred profile)
        found = masks.hands(to_uint8(image), face.box, index, face.landmarks)
        ti.mask = without_hands(ti.mask, hand_mask(found, ti.mask.shape, ti.matrix))
    return ti


# One frame's swap is three steps: prepare its faces, generate them, compose them into the
# frame. ``swap_frame`` runs them on one frame; ``render`` runs the same three in its stage
# threads, generating the faces of several frames in one batch.


def prepare_faces(
    image: np.ndarray,
    faces: list[Face],
    inputs: PrepareConfig,
    masks: list[TrackMasks | None],
    index: int = 0,
) -> list[TargetInputs]:
    """Step 1: the generator inputs and paste masks of a frame's planned ``faces``; ``masks``
    holds each face's track's mask state (None: the hull alone), ``index`` is the frame's
    number."""
    return [
        prepare_face(image, face, inputs, tracked, index)
        for face, tracked in zip(faces, masks, strict=True)
    ]


def compose_faces(
    image: np.ndarray,
    faces: list[TargetInputs],
    outputs: np.ndarray,
    cfg: ComposeConfig,
    matte: np.ndarray | None = None,
    crops: list[np.ndarray] | None = None,
    seams: list[Callable[[float], float]] | None = None,
) -> np.ndarray:
    """Step 3: ``image`` with the generated ``outputs`` (one per face, step 2's
    ``generate_faces``) pasted in; a copy, the decoder's buffer may be shared. Without faces the
    image itself. ``matte`` (H×W float32) gathers the blend weights, ``crops`` (one 224×224×4
    buffer per face) receive the faces as blended, ``seams`` (one per face) smooth the adaptive
    seam match along each face's track (``compose.paste``)."""
    if not faces:
        return image
    image = image.copy()
    for k, (ti, out) in enumerate(zip(faces, outputs, strict=True)):
        face_out = crops[k] if crops is not None else None
        seam = seams[k] if seams is not None else None
        paste(image, out, ti.crop, ti.matrix, ti.mask, cfg, matte, face_out, seam)
    return image


def swap_frame(
    image: np.ndarray,
    faces: list[Face],
    models: Swapper,
    e_s: torch.Tensor,
    cfg: SwapConfig,
    masks: MaskModels | None = None,
    matte: np.ndarray | None = None,
) -> np.ndarray:
    """One frame with its planned ``faces`` swapped, outside the threaded render (preview sheets,
    ``mmvideo tune``'s previews): the three steps ``render`` runs. ``e_s`` is one identity
    [1, D] for every face or one per face; ``masks`` is ``mask_models(cfg)``, built once by
    the caller (one frame: each face's hands and parsed face are found afresh; None: the hull
    alone); ``matte`` gathers the blend weights as ``--matte-out`` does. Always a new image."""
    trackers = [masks.track() if masks is not None else None for _ in faces]
    items = prepare_faces(image, faces, target_inputs_config(cfg.compose), trackers)
    if not items:
        return image.copy()
    outputs = generate_faces(models, e_s, items, cfg.generate)
    return compose_faces(image, items, outputs, cfg.compose, matte)


# -- the whole job -------------------------------------------------------------------------------


def source_identity(
    path: str, analyzer: FaceAnalyzer, models: Swapper, index: int | None = None
) -> torch.Tensor:
    """The identity code ``e_s`` [1, D] of face ``index`` (largest first; None = the largest)
    in the still at ``path``, computed once per job.

    No face in the source is a ``NoFaceFound`` error, an index past the faces found an
    ``InvalidInput`` error, both raised before any video is decoded.
    """
    image = load_image(path)
    faces = analyzer.detect(image)
    face = pick_face(faces, index, name=path)
    if len(faces) > 1:
        x0, y0, x1, y1 = (int(v) for v in face.box)
        log.info(
            "%s: using face %d of %d (largest first), box %d,%d-%d,%d",
            path,
            index or 0,
            len(faces),
            x0,
            y0,
            x1,
            y1,
        )
    crop, _ = align_identity(image, face.landmarks)
    return torch.from_numpy(models.embed(crop[None]))


def run_swap(
    job: SwapJob,
    cfg: SwapConfig,
    models: Swapper,
    analyzer: FaceAnalyzer | None = None,
    progress: Progress | None = None,
    source_analyzer: FaceAnalyzer | None = None,
    masks: MaskModels | None = None,
) -> SwapSummary:
    """Swap ``job.source``'s face into ``job.input`` frames ``[start, stop)`` → ``job.output``.

    ``analyzer`` (frames) and ``source_analyzer`` (stills) default to the backend and detector
    ``cfg.detect`` names; tests pass them in to load the models once. ``masks`` (the mask
    types' models) default to ``mask_models(cfg)``, built before anything is decoded.
    """
    # BLAS sums (the face fits, the filters) in an order that depends on its thread count, and
    # the generator turns last-bit differences into pixel changes: one BLAS thread makes the
    # output independent of the core count, and a farm chunk the same as a single run.
    # Process-wide, so it covers the stage threads too.
    with threadpool_limits(limits=1, user_api="blas"):
        try:
            return _run_swap(job, cfg, models, analyzer, progress, source_analyzer, masks)
        finally:
            if progress:
                progress.close()


def _run_swap(
    job: SwapJob,
    cfg: SwapConfig,
    models: Swapper,
    analyzer: FaceAnalyzer | None,
    progress: Progress | None,
    source_analyzer: FaceAnalyzer | None,
    masks: MaskModels | None,
) -> SwapSummary:
    if job.batch_size:
        # the job's own batch size (a farm may tune it per node) wins over the preset's
        cfg = replace(cfg, generate=replace(cfg.generate, batch_size=job.batch_size))
    torch.manual_seed(job.seed)
    if job.device == "cpu":
        torch.set_num_threads(max(1, cfg.generate.threads))
    if masks is None:
        masks = mask_models(cfg, job.device)  # a missing mask model fails before any decoding
    info = probe_media(job.input, fill_missing=job.fill_missing)
    if parse_pattern(job.output) is None:
        # before any work, not after the analysis; replacing an existing output is the
        # command's decision (-y), taken before the models loaded
        check_output(job.output, job.input, job.source)
        remove_stale_partials(Path(job.output))
    first, start, stop, last = _frame_range(job, info)
    post = post_options(job, info, models)  # a bad --timecode fails here, before any decoding
    analyzer, source_analyzer = analyzers(cfg, job.device, analyzer, source_analyzer)
    t0 = time.perf_counter()
    if job.targets is not None:  # a farm chunk: the plan chose the tracks and their sources
        paths = [t["source"] for t in job.targets]
    else:
        paths = [job.source] if job.source else []
        paths += [e.source for e in parse_map(cfg.track.map)]
    identities = {}  # each source's identity, computed once however many tracks it goes to
    for path in paths:
        if path not in identities:
            index = cfg.detect.source_face_index if path == job.source else None
            identities[path] = source_identity(path, source_analyzer, models, index)
    if job.targets is None:
        references, reference = _references(cfg, source_analyzer, models)
    seconds = {"source": time.perf_counter() - t0}
    if progress:
        progress.begin("analyze", ["analyze"], last - first)
    t0 = time.perf_counter()
    analysis = analyze(job.input, info, cfg, analyzer, models, first, last, progress)
    seconds["analyze"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    if job.targets is not None:
        assignment = match_anchors(analysis.tracks, job.targets)
    else:
        assignment = assign_sources(analysis.tracks, cfg.track, job.source, references, reference)
    # the look-back frames are analysed already (the warm-up): planned, swapped, not written
    begin = max(first, start - cfg.compose.seam_lookback())
    plan, selected, jit = plan_faces(analysis, cfg, None, begin, stop, assignment)
    seconds["smooth"] = time.perf_counter() - t0
    if progress:
        progress.begin(
            "render",
            ["decode", "prepare", "generate", "compose", "encode"],
            stop - begin,
        )
    swapped, written, stage_seconds = render(
        job,
        info,
        cfg,
        plan,
        models,
        {tid: identities[path] for tid, path in assignment.items()},
        start,
        stop,
        masks,
        progress,
        post,
        begin,
    )
    if progress:
        progress.end()
    seconds.update(stage_seconds)
    return SwapSummary(
        frames=written,
        faces_per_track=swapped,
        frames_without_face=written - sum(index >= start for index in plan),
        tracks=len(analysis.tracks),
        selected=selected,
        cuts=analysis.cuts,
        stage_seconds=seconds,
        jitter=jit,
        sources=dict(sorted(assignment.items())),
        unswapped=unswapped_frames(
            [t for t in analysis.tracks if t.id in assignment], plan, start, stop
        ),
    )


def analyzers(
    cfg: SwapConfig,
    device: str,
    analyzer: FaceAnalyzer | None = None,
    source_analyzer: FaceAnalyzer | None = None,
) -> tuple[FaceAnalyzer, FaceAnalyzer]:
    """The frame and still analysers the config names (those given are kept)."""
    if analyzer is None or source_analyzer is None:
        # one landmark model (~100 MB for dlib's) shared by the frame and the still analysers
        landmarker = build_landmarker(face_config(cfg.detect, device))
        analyzer = analyzer or FaceAnalyzer(face_config(cfg.detect, device), landmarker=landmarker)
        source_analyzer = source_analyzer or FaceAnalyzer(
            source_face_config(device, cfg.detect), landmarker=landmarker
        )
    return analyzer, source_analyzer


def _references(
    cfg: SwapConfig, stills: FaceAnalyzer, models: Swapper
) -> tuple[dict[str, np.ndarray], np.ndarray | None]:
    """Identity embeddings of the map's reference photos (by path) and of ``target_face``."""
    refs = {
        e.reference: source_identity(e.reference, stills, models)[0].numpy()
        for e in parse_map(cfg.track.map)
        if e.reference is not None
    }
    target = None
    if cfg.track.target_face:
        target = source_identity(cfg.track.target_face, stills, models)[0].numpy()
    return refs, target


def plan_targets(
    path: str, source: str | None, cfg: SwapConfig, models: Swapper, device: str = "cpu"
) -> list[dict]:
    """The tracks a single run of the whole clip swaps and their sources, decided once for a
    farm plan (``mmvideo.targets.anchor_targets``): the same analysis as that run's, so the
    same tracks."""
    with threadpool_limits(limits=1, user_api="blas"):
        if device == "cpu":
            torch.set_num_threads(max(1, cfg.generate.threads))
        info = probe_media(path)
        analyzer, stills = analyzers(cfg, device)
        references, reference = _references(cfg, stills, models)
        analysis = analyze(path, info, cfg, analyzer, models, 0, info.video.frames)
        assignment = assign_sources(analysis.tracks, cfg.track, source, references, reference)
        return anchor_targets(analysis.tracks, assignment)
