"""Kalman and RTS smoothing of track geometry."""

from __future__ import annotations

import numpy as np

from magicmask.face.types import Face
from mmvideo.config import SmoothConfig
from mmvideo.smooth import jitter, kalman_forward, smooth_series, smooth_track
from mmvideo.track import Track


def noisy_path(t: int = 120, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    base = np.stack(np.meshgrid(np.arange(17.0), np.arange(4.0)), -1).reshape(-1, 2)[:68] * 5
    k = np.arange(t)[:, None, None]
    truth = base[None] + np.concatenate([100 + 20 * np.sin(k / 15), 80 + 10 * np.cos(k / 20)], -1)
    return truth, truth + rng.normal(0, 1.5, truth.shape)


def test_kalman_and_rts_lower_jitter_and_error():
    truth, noisy = noisy_path()
    flat = noisy.reshape(len(noisy), -1)
    obs = np.ones(len(flat), bool)
    kal = smooth_series(flat, obs, 0.3, 1.5, "kalman").reshape(noisy.shape)
    rts = smooth_series(flat, obs, 0.3, 1.5, "rts").reshape(noisy.shape)
    assert jitter(rts) < jitter(kal) < jitter(noisy) / 2
    err = [np.abs(x - truth).mean() for x in (noisy, kal, rts)]
    assert err[2] < err[1] < err[0]
    np.testing.assert_array_equal(smooth_series(flat, obs, 0.3, 1.5, "none"), flat)


def test_gain_is_shared_and_gaps_are_predicted():
    zs = np.tile(np.arange(10.0)[:, None], (1, 3)) * [1, 2, 3]
    obs = np.ones(10, bool)
    obs[4:7] = False
    run = kalman_forward(zs, obs, 0.1, 0.5)
    assert run.means.shape == (10, 2, 3) and run.covs.shape == (10, 2, 2)
    # covariance grows while unobserved, shrinks when measurements return
    assert run.covs[6, 0, 0] > run.covs[4, 0, 0] > run.covs[3, 0, 0]
    assert run.covs[7, 0, 0] < run.covs[6, 0, 0]
    # a constant-velocity path is followed through the gap
    assert np.all(np.abs(run.means[6, 0] - zs[6]) < 0.5 * np.array([1, 2, 3]))


def test_smooth_track_keeps_frames_box_and_depth():
    _, noisy = noisy_path(40)
    track = Track(id=1, shot=0)
    for i in range(40):
        if i in (10, 11):
            continue
        lm3 = np.concatenate([noisy[i], np.full((68, 1), 5.0)], 1).astype(np.float32)
        box = np.array([100, 80, 200, 180], np.float32)
        track.add(
            i,
            Face(box, 1.0, noisy[i].astype(np.float32), landmarks_3d=lm3),
            detected=True,
        )
    out = smooth_track(track, SmoothConfig(smoothing="rts"))
    assert sorted(out) == sorted(track.faces)
    f = out[20]
    assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
    np.testing.assert_allclose(f.landmarks_3d[:, :2], f.landmarks)
    np.testing.assert_allclose(f.landmarks_3d[:, 2], 5.0, atol=1e-4)
    np.testing.assert_array_equal(f.box, track.faces[20].box)
    # the raw track is left as it was
    assert track.faces[20].landmarks is not f.landmarks
    assert smooth_track(track, SmoothConfig(smoothing="none"))[20] is track.faces[20]


def test_jitter_of_a_straight_line_is_zero():
    line = np.arange(10.0)[:, None, None] * np.ones((10, 68, 2))
    assert jitter(line) == 0.0
    assert jitter(line[:2]) == 0.0


def _track(truth: np.ndarray, frames: list[int], max_gap: int) -> Track:
    track = Track(id=1, shot=0, max_gap=max_gap)
    for f in frames:
        lm = truth[f].astype(np.float32)
        box = np.array([*lm.min(0) - 5, *lm.max(0) + 5], np.float32)
        track.add(f, Face(box, 1.0, lm), detected=True)
    return track


def test_rts_fills_gaps_up_to_max_gap_from_both_sides():
    """Two-pass smoothing invents the faces of a short gap (seen from both sides) close to the
    true path; the forward filter alone, and gaps longer than ``max_gap``, invent none."""
    truth, _ = noisy_path(60)
    frames = [f for f in range(60) if not 20 <= f < 26 and not 40 <= f < 50]
    track = _track(truth, frames, max_gap=6)
    rts = smooth_track(
        track, SmoothConfig(smoothing="rts", process_noise=0.01, measurement_noise=0.005)
    )
    assert set(range(20, 26)) <= set(rts) and not set(range(40, 50)) & set(rts)
    err = max(np.abs(rts[f].landmarks - truth[f]).max() for f in range(20, 26))
    assert err < 2.0, err
    kal = smooth_track(track, SmoothConfig(smoothing="kalman"))
    assert sorted(kal) == frames


def test_predict_landmarks_extrapolates_the_motion():
    from mmvideo.smooth import predict_landmarks

    truth, _ = noisy_path(40)
    track = _track(truth, list(range(30)), max_gap=6)
    pred = predict_landmarks(track, 31, SmoothConfig(process_noise=0.01, measurement_noise=0.005))
    assert np.abs(pred - truth[31]).max() < 1.0
    assert np.abs(truth[29] - truth[31]).max() > 1.0  # holding the last face would not do


def test_a_track_is_smoothed_per_segment_across_a_cut():
    """No filter runs across ``breaks``: the face after a cut is not pulled toward the one
    before it (a re-identified track, somewhere else in the next shot)."""
    truth, _ = noisy_path(40)
    jumped = truth.copy()
    jumped[20:] += 300.0
    track = _track(jumped, list(range(40)), max_gap=0)
    track.breaks.add(20)
    out = smooth_track(track, SmoothConfig(smoothing="rts"))
    assert np.abs(out[20].landmarks - jumped[20]).max() < 3.0


def test_rts_interpolates_the_stretch_gap_filling_held_and_keeps_its_frames():
    """Gap-filled frames (and the landmark updates after a second-detector find) carry a common
    bias (the landmarker on a head going down): the two-pass smoother interpolates across them,
    so the good frames either side are exactly what they are without those points, and the
    held frames are still planned (swapped)."""
    truth, noisy = noisy_path(60)
    biased = noisy.copy()
    biased[20:28] += (0.0, 12.0)  # 8 frames whose points all slid down
    cfg = SmoothConfig(smoothing="rts")
    track = _track(biased, list(range(60)), max_gap=25)
    track.filled |= {20, 22, 24, 26}  # second-detector finds, each followed by an update
    track.detected -= {21, 23, 25, 27}
    clean = _track(noisy, list(range(60)), max_gap=25)
    clean.filled, clean.detected = set(track.filled), set(track.detected)
    out, ref = smooth_track(track, cfg), smooth_track(clean, cfg)
    assert sorted(out) == list(range(60))
    for f in [*range(20), *range(28, 60)]:
        np.testing.assert_allclose(out[f].landmarks, ref[f].landmarks, atol=1e-4)
    # the one-pass filter only down-weights the filled frames themselves
    kal = smooth_track(track, SmoothConfig(smoothing="kalman"))
    assert np.mean(kal[21].landmarks[:, 1] - noisy[21][:, 1]) > 5.0  # follows the slide
