"""magicmask.quality on constructed cases: a real face against itself, blurred, noised and shifted."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from magicmask import quality
from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
from magicmask.face.image import load_image


@pytest.fixture(scope="module")
def face(data_dir):
    image = load_image(data_dir / "id_obama_01.jpg", max_side=800)
    found = FaceAnalyzer(FaceConfig(face_backend="dlib", detector="hog", detect_upsample=1)).detect(
        image
    )
    return image, found[0].landmarks


def test_an_image_against_itself_scores_ssim_1_and_ratios_1(face):
    image, landmarks = face
    r = quality.realism(image, image.copy(), landmarks)
    assert (r.chip_ssim, r.sharpness_ratio, r.band_ratio, r.color_band_ratio) == pytest.approx(
        (1.0, 1.0, 1.0, 1.0), abs=1e-12
    )


def test_the_chip_is_150_px_and_follows_the_face(face):
    image, landmarks = face
    chip = quality.face_chip(image, landmarks)
    assert chip.shape == (quality.CHIP_SIZE, quality.CHIP_SIZE, 3)
    moved = np.zeros((image.shape[0] + 40, image.shape[1] + 60, 3), np.uint8)
    moved[40:, 60:] = image
    # the same face elsewhere in a bigger frame gives the same chip
    again = quality.face_chip(moved, landmarks + np.float32([60, 40]))
    assert quality.ssim(quality.gray(chip), quality.gray(again)) > 0.999


def test_a_blurred_copy_loses_sharpness_and_band_energy(face):
    image, landmarks = face
    r = quality.realism(image, cv2.GaussianBlur(image, (0, 0), 2.0), landmarks)
    assert r.sharpness_ratio < 0.5 and r.band_ratio < 1.0 and r.chip_ssim < 0.95


def _patches(image, landmarks, paint):
    """``image`` with ``paint(roi)`` applied to two 12 px discs on the cheeks (blotch-sized)."""
    out = image.astype(np.float32)
    mask = np.zeros(image.shape[:2], np.uint8)
    for k in (2, 14):  # jaw-line points, moved halfway to the nose tip: the cheeks
        c = (landmarks[k] + landmarks[30]) / 2
        cv2.circle(mask, (int(c[0]), int(c[1])), 12, 1, -1)
    m = cv2.GaussianBlur(mask.astype(np.float32), (0, 0), 3)[..., None]
    return np.clip(out * (1 - m) + paint(out) * m, 0, 255).astype(np.uint8)


def test_coloured_blotches_raise_the_colour_band_where_the_grey_band_hardly_moves(face):
    image, landmarks = face
    blue = _patches(image, landmarks, lambda x: x * [0.55, 0.75, 1.25])  # a blue cast
    r_blue = quality.realism(image, blue, landmarks)
    # a blue cast at about the same lightness: the colour band sees it, the grey band hardly
    assert r_blue.color_band_ratio > 1.2 and r_blue.band_ratio < 1.05


def test_noise_raises_the_sharpness_ratio(face):
    image, landmarks = face
    noise = np.random.default_rng(0).normal(0, 12, image.shape)
    noisy = np.clip(image + noise, 0, 255).astype(np.uint8)
    r = quality.realism(image, noisy, landmarks)
    assert r.sharpness_ratio > 1.5 and r.chip_ssim < 0.95


def test_a_face_shifted_by_a_few_pixels_is_not_identical(face):
    image, landmarks = face
    shifted = np.roll(image, (3, 3), axis=(0, 1))
    r = quality.realism(image, shifted, landmarks)
    assert r.chip_ssim < 0.8
    # the shift keeps the detail: sharpness says nothing of alignment, SSIM does
    assert r.sharpness_ratio == pytest.approx(1.0, abs=0.1)


def test_ssim_definition_on_flat_and_inverted_images():
    rng = np.random.default_rng(0)
    a = rng.uniform(0, 255, (64, 64))
    assert quality.ssim(a, a) == pytest.approx(1.0)
    assert quality.ssim(a, 255.0 - a) < 0.0  # anti-correlated structure
    flat = np.full((64, 64), 128.0)
    assert quality.ssim(flat, flat) == pytest.approx(1.0)
    assert np.isnan(quality.ratio(1.0, 0.0))


def test_pose_error_is_the_mean_absolute_angle_difference():
    err = quality.pose_abs_error([[10, -4, 2], [0, 0, 0]], [[7, -1, 2], [0, 0, 0]])
    assert err == pytest.approx([2.0, 0.0])


def test_jitter_ratio_is_1_for_the_same_track_and_grows_with_added_shake():
    rng = np.random.default_rng(0)
    base = rng.uniform(0, 100, (68, 2))
    t = np.arange(30)[:, None, None]
    track = base + np.concatenate([t * 1.0, t * 0.5], axis=2) + rng.normal(0, 0.2, (30, 68, 2))
    assert quality.jitter_ratio(track, track) == pytest.approx(1.0)
    shaky = track + rng.normal(0, 1.0, track.shape)
    assert quality.jitter_ratio(shaky, track) > 2.0
    # frames without a face break the sequence: triples through them do not count
    valid = np.ones(30, bool)
    valid[10] = False
    spiked = track.copy()
    spiked[10] += 50.0
    assert quality.jitter_ratio(spiked, track, valid) == pytest.approx(1.0, abs=0.2)


def test_identity_summary_means_and_thresholds():
    e = quality.Embedding
    src = e(np.r_[1.0, np.zeros(127)], np.r_[1.0, np.zeros(511)])
    near = e(np.r_[1.0, 0.5, np.zeros(126)], np.r_[1.0, 1.0, np.zeros(510)])
    far = e(np.r_[0.0, 1.0, np.zeros(126)], np.r_[0.0, 1.0, np.zeros(510)])
    s = quality.identity(src, [far, far], [near, far])
    assert s.dlib_dist_original == pytest.approx(np.sqrt(2))
    assert s.dlib_dist_swap == pytest.approx((0.5 + np.sqrt(2)) / 2)
    assert (s.dlib_same_original, s.dlib_same_swap) == (0.0, 0.5)
    assert s.facenet_original == pytest.approx(0.0)
    assert s.facenet_gain == pytest.approx(np.sqrt(0.5) / 2)
    assert s.dlib_distance_drop == pytest.approx(np.sqrt(2) - (0.5 + np.sqrt(2)) / 2)


def _ramp_with_disc(step: float) -> tuple[np.ndarray, np.ndarray]:
    """A textured ramp and a disc mask; the disc's inside raised by ``step`` grey levels."""
    rng = np.random.default_rng(0)
    ramp = np.linspace(40, 200, 200, dtype=np.float32)[None, :, None]
    image = ramp + rng.normal(0, 6, (160, 200, 3)).astype(np.float32)
    mask = np.zeros((160, 200), np.float32)
    cv2.circle(mask, (100, 80), 50, 1.0, -1)
    image[mask > 0.5] += step
    return np.clip(image, 0, 255).astype(np.uint8), mask


def test_seam_ratio_is_1_without_a_seam_above_with_a_step_below_with_a_smear():
    image, mask = _ramp_with_disc(0)
    assert quality.seam_ratio(image, image.copy(), mask) == pytest.approx(1.0)
    stepped, _ = _ramp_with_disc(25)
    assert quality.seam_ratio(image, stepped, mask) > 1.5  # a seam
    smeared = cv2.GaussianBlur(image, (0, 0), 2)
    assert quality.seam_ratio(image, smeared, mask) < 0.5
    band = quality.edge_band(mask)
    # 6 px wide along a 50 px disc's edge: about 2π·50·6 pixels, on both sides of it
    assert 0.8 * 2 * np.pi * 50 * 6 < band.sum() < 1.2 * 2 * np.pi * 50 * 6
    assert band[80, 50] and band[80, 52] and band[80, 48] and not band[80, 100]


def test_a_color_step_counts_in_the_seam_ratio():
    image, mask = _ramp_with_disc(0)
    tinted = image.astype(np.int16)
    tinted[mask > 0.5] += np.int16([20, -10, -10])  # the grey level barely moves
    tinted = np.clip(tinted, 0, 255).astype(np.uint8)
    assert quality.seam_ratio(image, tinted, mask) > 1.5
