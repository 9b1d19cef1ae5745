"""Temporal smoothing of each track's geometry (landmarks and depth) with Kalman filters.

Every landmark coordinate follows a constant-velocity model (state: position, velocity). All
coordinates of one kind share F, Q, R and the same measurement times, so their covariances
and gains are identical: one filterpy ``KalmanFilter`` with a 2-state model computes the gain,
and it is applied to all 136 (x, y) — or 68 depth — coordinates at once. That keeps a 68-point
filter at a few microseconds per frame instead of inverting 136×136 matrices.

``smoothing = "rts"`` runs the forward filter over the whole track, then filterpy's
Rauch–Tung–Striebel smoother backwards (two-pass, offline); it also fills the track's gaps of up
to ``Track.max_gap`` frames (frames gap filling could not confirm) from both sides, and
interpolates the frames gap filling did confirm the same way (they say the face is there; their
points do not steer the filter). The one-pass filter trusts gap-filled frames ``LOOSE``× less.
Noise levels are fractions of the face size so one preset fits small and large faces. A track
taken up again after a shot cut is smoothed per segment (``Track.breaks``): no filter runs
across a cut.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace

import numpy as np
from filterpy.common import Q_discrete_white_noise
from filterpy.kalman import KalmanFilter, rts_smoother

from magicmask.face.types import Face
from mmvideo.config import SmoothConfig
from mmvideo.track import Track, propagate_box

_F = np.array([[1.0, 1.0], [0.0, 1.0]])
# measurement noise factor of a gap-filled face (the landmarker on a predicted box): its points
# are noisier than a detected face's, and trusted fully they shake the neighbouring frames
LOOSE = 3.0


@dataclass
class FilterRun:
    """Forward-filter output for one group of coordinates over consecutive frames."""

    means: np.ndarray  # (T, 2, N) posterior [position; velocity] per coordinate
    covs: np.ndarray  # (T, 2, 2) posterior covariance, shared by all coordinates
    q: np.ndarray  # (2, 2) process noise


def kalman_forward(
    zs: np.ndarray,
    observed: np.ndarray,
    process_std: float,
    measurement_std: float,
    loose: np.ndarray | None = None,
) -> FilterRun:
    """Constant-velocity Kalman filter over ``zs`` (T×N); frames where ``observed`` is False are
    predicted only, frames where ``loose`` is True are trusted ``LOOSE``× less (a gap-filled
    face). Returns the per-frame posteriors for an optional RTS pass."""
    kf = KalmanFilter(dim_x=2, dim_z=1)
    kf.F = _F.copy()
    kf.H = np.array([[1.0, 0.0]])
    kf.R = np.array([[measurement_std**2]])
    kf.Q = Q_discrete_white_noise(dim=2, dt=1.0, var=process_std**2)
    # Start at the first measurement with an unknown velocity.
    kf.P = np.diag([measurement_std**2, (10 * measurement_std) ** 2])
    kf.x = np.zeros((2, 1))
    # kf.x stays 0 because it only ever sees z = 0; its P and K are what every coordinate uses.
    zero = np.zeros((1, 1))
    t, n = zs.shape
    x = np.zeros((2, n))
    x[0] = zs[0]
    means = np.empty((t, 2, n))
    covs = np.empty((t, 2, 2))
    means[0], covs[0] = x, kf.P
    for k in range(1, t):
        kf.predict()
        x = _F @ x
        if observed[k]:
            scale = LOOSE if loose is not None and loose[k] else 1.0
            kf.update(zero, R=np.array([[(scale * measurement_std) ** 2]]))
            x = x + kf.K @ (zs[k][None] - x[:1])
        means[k], covs[k] = x, kf.P
    return FilterRun(means, covs, kf.Q.copy())


def rts(run: FilterRun) -> np.ndarray:
    """Rauch–Tung–Striebel smoothed positions (T×N) from a forward run (filterpy's smoother)."""
    t = run.means.shape[0]
    xs, _, _, _ = rts_smoother(run.means, run.covs, [_F] * t, [run.q] * t)
    return xs[:, 0]


def smooth_series(
    zs: np.ndarray,
    observed: np.ndarray,
    process_std: float,
    measurement_std: float,
    method: str,
    loose: np.ndarray | None = None,
) -> np.ndarray:
    """Positions (T×N) after ``method`` in ``none`` | ``kalman`` | ``rts``."""
    if method == "none" or zs.shape[0] < 2:
        return zs.copy()
    run = kalman_forward(zs, observed, process_std, measurement_std, loose)
    return rts(run) if method == "rts" else run.means[:, 0]


def smooth_track(track: Track, cfg: SmoothConfig) -> dict[int, Face]:
    """The track's faces with smoothed landmarks (and depth, when the backend gives 3-D points).

    Frames inside the track where it has no face are filter steps without a measurement, so the
    velocity is not fooled by a gap. Only the two-pass smoother invents faces there, in gaps of
    up to ``track.max_gap`` frames, where it has seen both sides.
    """
    out: dict[int, Face] = {}
    for segment in _segments(track):
        out.update(_smooth_segment(track, segment, cfg))
    return out


def _segments(track: Track) -> list[list[int]]:
    """The track's frames split where it was taken up again after a shot cut."""
    segments: list[list[int]] = []
    for f in sorted(track.faces):
        if not segments or f in track.breaks:
            segments.append([])
        segments[-1].append(f)
    return segments


def _landmark_series(
    track: Track, frames: list[int], last: int
) -> tuple[np.ndarray, np.ndarray, float, np.ndarray]:
    """The flattened landmarks of ``frames`` over every frame from the first to ``last``
    (missing ones held from the previous), which frames were measured, and the noise scale
    (the first face's box diagonal)."""
    span = np.arange(frames[0], last + 1)
    present = np.isin(span, frames)
    first = track.faces[frames[0]]
    scale = float(np.hypot(first.box[2] - first.box[0], first.box[3] - first.box[1]))
    xy = np.zeros((len(span), 136))
    xy[present] = np.stack([track.faces[f].landmarks.reshape(-1) for f in frames])
    xy[~present] = _hold(xy, present)
    return span, present, scale, xy


def predict_landmarks(track: Track, frame: int, cfg: SmoothConfig, history: int = 12) -> np.ndarray:
    """The 68 points the constant-velocity Kalman filter expects at ``frame`` (after the
    track's last face): the forward filter over its last ``history`` faces of the current
    segment, run on without measurements."""
    frames = _segments(track)[-1][-history:]
    span, present, scale, xy = _landmark_series(track, frames, frame)
    if len(span) < 2:
        return xy[-1].reshape(68, 2).astype(np.float32)
    run = kalman_forward(xy, present, cfg.process_noise * scale, cfg.measurement_noise * scale)
    return run.means[-1, 0].reshape(68, 2).astype(np.float32)


def _smooth_segment(track: Track, frames: list[int], cfg: SmoothConfig) -> dict[int, Face]:
    if cfg.smoothing == "none" or len(frames) < 2:
        return {f: track.faces[f] for f in frames}
    span, present, scale, xy = _landmark_series(track, frames, frames[-1])
    if cfg.smoothing == "rts":
        # Both sides are known: the stretch the first detector lost is interpolated across, its
        # frames only saying that the face is there. Their landmarker fits err together (closed
        # eyes, a head going down: a bias over several frames, not noise a weight averages out)
        # and, measured, they bend the track on the good frames either side.
        observed, loose = present & ~np.isin(span, sorted(_gap_stretch(track))), None
    else:
        # One pass: a frame trusted less makes the filter lag behind the face, and catch up with
        # a jump at the next detection; only the gap-filled frames themselves are down-weighted.
        observed, loose = present, np.isin(span, sorted(track.filled))
    sm_xy = smooth_series(
        xy,
        observed,
        cfg.process_noise * scale,
        cfg.measurement_noise * scale,
        cfg.smoothing,
        loose,
    )
    has_depth = all(track.faces[f].landmarks_3d is not None for f in frames)
    if has_depth:
        z = np.zeros((len(span), 68))
        z[present] = np.stack([track.faces[f].landmarks_3d[:, 2] for f in frames])
        z[~present] = _hold(z, present)
        sm_z = smooth_series(
            z,
            observed,
            cfg.depth_process_noise * scale,
            cfg.depth_measurement_noise * scale,
            cfg.smoothing,
            loose,
        )
    fill = _fillable(present, track.max_gap) if cfg.smoothing == "rts" else present
    held = np.maximum.accumulate(np.where(present, np.arange(len(present)), 0))
    out = {}
    for i, f in enumerate(span):
        if not fill[i]:
            continue
        lm = sm_xy[i].reshape(68, 2).astype(np.float32)
        lm3 = np.concatenate([lm, sm_z[i][:, None]], 1).astype(np.float32) if has_depth else None
        # a filled frame borrows the last face's box (moved with the points) and pose; an
        # interpolated one moves its own box with the points
        base = track.faces[int(span[held[i]])]
        box = base.box if observed[i] else propagate_box(base.box, base.landmarks[17:], lm[17:])
        out[int(f)] = replace(base, box=box, landmarks=lm, landmarks_3d=lm3)
    return out


def _gap_stretch(track: Track) -> set[int]:
    """The frames of ``track`` held through a detection gap: the gap-filled ones and the
    landmark updates that follow a second-detector find (their box comes from it)."""
    found = sorted(track.detected)
    out = set(track.filled)
    for f in track.faces:
        i = bisect.bisect_right(found, f) - 1
        if f not in track.detected and i >= 0 and found[i] in track.filled:
            out.add(f)
    return out


def _fillable(present: np.ndarray, max_gap: int) -> np.ndarray:
    """``present`` plus the runs of missing frames no longer than ``max_gap`` (always between
    two present frames: a segment starts and ends with a face)."""
    out = present.copy()
    i = 0
    while i < len(present):
        if present[i]:
            i += 1
            continue
        j = i
        while not present[j]:
            j += 1
        if j - i <= max_gap:
            out[i:j] = True
        i = j
    return out


def _hold(values: np.ndarray, present: np.ndarray) -> np.ndarray:
    """Last observed row for each unobserved row (placeholders the filter never reads)."""
    idx = np.maximum.accumulate(np.where(present, np.arange(len(present)), 0))
    return values[idx][~present]


def jitter(landmarks: np.ndarray) -> float:
    """RMS frame-to-frame acceleration of a landmark sequence (T×68×2) in pixels per frame²."""
    if len(landmarks) < 3:
        return 0.0
    acc = landmarks[2:] - 2 * landmarks[1:-1] + landmarks[:-2]
    return float(np.sqrt(np.mean(np.sum(acc**2, axis=-1))))
